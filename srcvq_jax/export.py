"""Inference-only export of a training run: python -m srcvq_jax.export --workdir=DIR --out=EXPORT_DIR [--step=N]

Reads the params (only: no optimizer moments, about a third of the checkpoint) and config of the latest (or
--step) checkpoint of WORKDIR/checkpoints that restores, and writes them as EXPORT_DIR/params (Orbax) and
EXPORT_DIR/config.json (checkpointing.save_export). Any machine can export any run: the params are restored
replicated over this machine's devices, whatever mesh trained it. Problems the user can fix are one line on
stderr (`error: ...`, exit status 2).
"""
from __future__ import annotations

from absl import app
from absl import flags
from absl import logging
from etils import epath

# JAX, Orbax and the model are imported inside the functions: a flag error prints before they load.
from srcvq_jax import cli
from srcvq_jax import config_lib
from srcvq_jax import errors


def export(workdir: str, out: str, step: int | None = None) -> int:
  """Writes the params and config of a training checkpoint as an inference-only export; returns the step.

  Raises:
    errors.UserError: no such workdir, no checkpoint (or `step`) that restores in it (checkpointing.load_params);
      or --out is a non-empty folder that is not an export (never overwritten, so a typo cannot clobber
      unrelated files).
  """
  import jax  # pylint: disable=g-import-not-at-top
  from srcvq_jax import checkpointing, library_logs, models, sharding  # pylint: disable=g-import-not-at-top

  out_path = epath.Path(out)
  if out_path.is_dir() and any(out_path.iterdir()) and not checkpointing.is_export(out):
    raise errors.UserError(f'--out={out} is a non-empty folder that is not an export: choose a new or empty '
                           'folder')
  if checkpointing.absolute(out) == checkpointing.absolute(workdir):
    raise errors.UserError('--out must differ from --workdir')
  replicated = sharding.replicated(sharding.inference_mesh(jax.devices()))

  def build(config_dict):
    config = config_lib.config_from_dict(config_dict)
    return config, models.abstract(config, replicated)[1]

  with library_logs.orbax_warnings_off():
    config, params, step = checkpointing.load_params(workdir, build, step)
  # Saved as the run's config reads today (fields added since it was written filled in, tuples as tuples).
  checkpointing.save_export(out, params, config.to_dict())
  return step


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """The command-line flags (defined by the command, not at import, so library users never get flag clashes)."""
  flags.DEFINE_string('workdir', None, 'Run directory of `python -m srcvq_jax.train` (its checkpoints/ is read).',
                      flag_values=flag_values)
  flags.DEFINE_string('out', None, 'Export directory to write (params/ and config.json).', flag_values=flag_values)
  flags.DEFINE_integer('step', None, 'Checkpoint step to export (default: the latest).', flag_values=flag_values)


def main(argv):
  if len(argv) > 1:
    cli.fail(f'unexpected arguments: {" ".join(argv[1:])}')
  f = flags.FLAGS
  if not f.workdir:
    cli.fail('--workdir is required')
  if not f.out:
    cli.fail('--out is required')
  # Orbax logs several INFO lines per array group; the command's result is the one line printed below.
  from srcvq_jax import library_logs  # pylint: disable=g-import-not-at-top
  library_logs.quiet_library_info()
  try:
    step = export(f.workdir, f.out, f.step)
  except errors.UserError as e:
    cli.fail(str(e))
  from srcvq_jax import checkpointing  # pylint: disable=g-import-not-at-top
  where = checkpointing.absolute(f.out)
  logging.info('exported step %d of %s to %s', step, f.workdir, where)
  print(f'exported step {step} of {f.workdir} to {where}')


if __name__ == '__main__':
  define_flags()
  app.run(main, flags_parser=cli.parse_flags)
