"""Inference-only export of a training run: python -m srcvq_jax.export --workdir=DIR --out=EXPORT_DIR [--step=N]

Reads the latest (or --step) checkpoint of WORKDIR/checkpoints and writes EXPORT_DIR/params (Orbax, the model's
parameters only: no optimizer moments, about a third of the checkpoint) and EXPORT_DIR/config.json (the run's
config), with checkpointing.save_export. Any machine can export any run: the checkpoint is restored replicated
over this machine's devices, whatever mesh trained it. Problems the user can fix are one line on stderr
(`error: ...`, exit status 2).
"""
from __future__ import annotations

import logging as std_logging
from typing import Any

from absl import app
from absl import flags
from absl import logging
import ml_collections
from etils import epath

# JAX, Orbax and the model are imported inside the functions: a flag error prints before they load.
from srcvq_jax import cli
from srcvq_jax import config_lib

# Restore targets are replicated over all devices: an export does not depend on the training mesh.
_EXPORT_MESH = {'data': -1, 'fsdp': 1}


def open_checkpoints(workdir: str):
  """(read-only CheckpointManager of WORKDIR/checkpoints, its latest step); cli.UserError when there is none.

  The caller closes the manager.
  """
  from srcvq_jax import checkpointing  # pylint: disable=g-import-not-at-top

  if not epath.Path(workdir).is_dir():
    raise cli.UserError(f'--workdir={workdir} does not exist')
  directory = epath.Path(workdir) / checkpointing.CHECKPOINT_DIR
  if not directory.is_dir():
    raise cli.UserError(f'no checkpoints in {workdir} (no {checkpointing.CHECKPOINT_DIR}/ folder): is it the '
                        '--workdir of a `python -m srcvq_jax.train` run?')
  manager = checkpointing.create_manager(workdir, read_only=True)
  latest = manager.latest_step()
  if latest is None:
    manager.close()
    raise cli.UserError(f'no checkpoint yet: {directory} holds no finished checkpoint; train until the first '
                        'train.checkpoint_every step')
  return manager, latest


def load_checkpoint_params(workdir: str, step: int | None = None) -> tuple[ml_collections.ConfigDict, Any, int]:
  """(config, params as a pure dict replicated over all devices, step) of a training checkpoint.

  Args:
    workdir: the --workdir of a training run.
    step: the checkpoint step; None: the latest.

  Raises:
    cli.UserError: no such workdir, no checkpoint in it, or no checkpoint `step`.
  """
  from srcvq_jax import checkpointing, sharding, trainer  # pylint: disable=g-import-not-at-top

  manager, _ = open_checkpoints(workdir)
  mesh = sharding.create_mesh(ml_collections.ConfigDict(_EXPORT_MESH))

  def restore_step(candidate):
    config = config_lib.config_from_dict(checkpointing.restore_config(manager, candidate))
    _, target = trainer.abstract_train_state(config, mesh)
    # The whole state is restored (the checkpoint's structure) and only params are kept: checkpointing.py has no
    # partial restore, and the moments cost ~2x params of memory for the time of an export.
    return config, checkpointing.restore(manager, candidate, target)['params']

  try:
    if step is not None:
      if step not in manager.all_steps():
        raise cli.UserError(f'no checkpoint of step {step} in {manager.directory} (steps: '
                            f'{sorted(manager.all_steps())})')
      try:
        config, params = restore_step(step)
      except Exception as e:  # pylint: disable=broad-except  (Orbax and TensorStore raise many types)
        raise cli.UserError(f'checkpoint step {step} in {manager.directory} does not restore '
                            f'({checkpointing.reason(e)})') from None
    else:
      # The newest step that restores (a read-only command moves nothing; the trainer moves broken steps aside).
      restored, step = checkpointing.restore_latest(manager, restore_step, move_bad=False)
      if step is None:
        raise cli.UserError(f'no checkpoint in {manager.directory} restores (steps {sorted(manager.all_steps())} '
                            'are all broken: see the warnings above)')
      config, params = restored
  finally:
    manager.close()
  return config, params, step


def export(workdir: str, out: str, step: int | None = None) -> int:
  """Writes the params and config of a training checkpoint as an inference-only export; returns the step.

  Raises:
    cli.UserError: see load_checkpoint_params; or --out is a non-empty folder that is not an export (never
      overwritten, so a typo cannot clobber unrelated files).
  """
  from srcvq_jax import checkpointing  # pylint: disable=g-import-not-at-top

  out_path = epath.Path(out)
  if out_path.is_dir() and any(out_path.iterdir()) and not checkpointing.is_export(out):
    raise cli.UserError(f'--out={out} is a non-empty folder that is not an export: choose a new or empty folder')
  if checkpointing.absolute(out) == checkpointing.absolute(workdir):
    raise cli.UserError('--out must differ from --workdir')
  config, params, step = load_checkpoint_params(workdir, step)
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
  logging.get_absl_handler().addFilter(
      lambda record: record.levelno >= std_logging.WARNING or '/orbax/' not in record.pathname)
  try:
    step = export(f.workdir, f.out, f.step)
  except cli.UserError as e:
    cli.fail(str(e))
  from srcvq_jax import checkpointing  # pylint: disable=g-import-not-at-top
  where = checkpointing.absolute(f.out)
  logging.info('exported step %d of %s to %s', step, f.workdir, where)
  print(f'exported step {step} of {f.workdir} to {where}')


if __name__ == '__main__':
  define_flags()
  app.run(main, flags_parser=cli.parse_flags)
