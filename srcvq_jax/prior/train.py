"""Trains the bass prior (srcvq_jax/prior/model.py) through the project's training loop (srcvq_jax/loop.py).

  python -m srcvq_jax.prior.train --config=configs/prior.py --vqvae_workdir=DIR --workdir=PRIOR_DIR

The VQ-VAE of --vqvae_workdir (a training workdir or an export) encodes its own data's training and validation
tracks (prior/data.py; cached in PRIOR_DIR/codes/); the prior learns the target slot's codes from the other slots'
codes with a cross-entropy loss: the same sharded jitted step, Orbax checkpoints, resume, metrics.jsonl and
TensorBoard as the VQ-VAE. The run's config records the VQ-VAE's fingerprint, so generation refuses another model.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import optax
from absl import app
from absl import flags
from absl import logging
from flax import nnx
from ml_collections import config_flags

from srcvq_jax import cli
from srcvq_jax import errors
from srcvq_jax import library_logs

CONSOLE_KEYS = ('train/loss', 'train/accuracy', 'train/steps_per_sec', 'eval/loss', 'eval/accuracy')


def nll_and_accuracy(model, codes):
  """Per-example-frame-codebook NLL [B, F, H] and correctness of the argmax [B, F, H] for the target slot
  (the train and eval steps' loss and metrics; scripts/prior_results.py scores the test split with it)."""
  logits = model(codes)
  target = codes[:, :, model.target]
  nll = optax.softmax_cross_entropy_with_integer_labels(logits, target)
  return nll, (jnp.argmax(logits, -1) == target).astype(jnp.float32)


def _metrics(prefix: str, nll, correct) -> dict[str, jax.Array]:
  metrics = {f'{prefix}/loss': nll.mean(), f'{prefix}/accuracy': correct.mean()}
  for h in range(nll.shape[-1]):
    metrics[f'{prefix}/nll/codebook{h}'] = nll[..., h].mean()
    metrics[f'{prefix}/accuracy/codebook{h}'] = correct[..., h].mean()
  return metrics


def train_step(state, batch, rng, *, graphdef, tx, config):
  """One Adam step on the mean cross-entropy of the target slot's codes."""
  del rng  # deterministic model

  def loss_fn(params):
    nll, correct = nll_and_accuracy(nnx.merge(graphdef, params), batch['codes'])
    return nll.mean(), (nll, correct)

  (_, (nll, correct)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state['params'])
  updates, opt_state = tx.update(grads, state['opt_state'], state['params'])
  params = optax.apply_updates(state['params'], updates)
  from srcvq_jax import loop  # pylint: disable=g-import-not-at-top
  metrics = {**_metrics('train', nll, correct), **loop.optimizer_metrics(config, state['step'], grads, params,
                                                                           updates)}
  return {'params': params, 'opt_state': opt_state, 'step': state['step'] + 1}, metrics


def eval_step(params, batch, *, graphdef):
  nll, correct = nll_and_accuracy(nnx.merge(graphdef, params), batch['codes'])
  return _metrics('eval', nll, correct), None


def validate(config, num_devices: int) -> None:

  if config.data.batch_size % num_devices:
    raise errors.ConfigError(f'data.batch_size={config.data.batch_size} must be a multiple of the '
                                 f'{num_devices} devices')
  if config.data.segment_frames <= 0:
    raise errors.ConfigError(f'data.segment_frames={config.data.segment_frames} must be positive')


def load_vqvae(vqvae_workdir: str):
  """The VQ-VAE as an inference.Separator (its chunked encode on whole tracks)."""
  from srcvq_jax import inference  # pylint: disable=g-import-not-at-top

  if not vqvae_workdir:
    raise errors.UserError('--vqvae_workdir is required (the trained VQ-VAE whose codes the prior learns)')
  return inference.load(vqvae_workdir)


def train_and_evaluate(config, workdir: str):
  """Encodes the VQ-VAE's tracks (cached), then trains the prior; returns the final train state."""
  import os  # pylint: disable=g-import-not-at-top

  from srcvq_jax import codes as codes_lib  # pylint: disable=g-import-not-at-top
  from srcvq_jax import loop, sharding  # pylint: disable=g-import-not-at-top
  from srcvq_jax.prior import data, model  # pylint: disable=g-import-not-at-top

  mesh = sharding.create_mesh(config.mesh)
  validate(config, mesh.devices.size)
  separator = load_vqvae(config.vqvae_workdir)
  try:
    nnx.eval_shape(lambda: model.create(config.prior, separator.config))  # before any encoding
  except ValueError as e:
    raise errors.ConfigError(str(e)) from None
  synthetic = dict(synthetic_tracks=config.data.synthetic_tracks, synthetic_seconds=config.data.synthetic_seconds)
  cache = os.path.join(workdir, data.CODES)
  train_tracks = data.tracks_of(data.encode_split(separator, config.data.train_split, cache, **synthetic))
  eval_tracks = data.tracks_of(data.encode_split(separator, config.data.eval_split, cache, **synthetic))
  fingerprint = codes_lib.separator_fingerprint(separator)
  with config.unlocked():
    config.vqvae_fingerprint = fingerprint
  local_batch = config.data.batch_size // jax.process_count()
  # (Tracks shorter than a segment, e.g. the synthetic ones of tests: segments of the longest track's length.)
  frames = min(int(config.data.segment_frames), max(len(t) for t in train_tracks))

  def train_batches(start_step):
    return data.batches(train_tracks, batch_size=local_batch, frames=frames, seed=config.data.seed,
                        start=start_step, process_index=jax.process_index())

  def eval_batches():
    eval_frames = min(frames, max(len(t) for t in eval_tracks))
    return data.batches(eval_tracks, batch_size=local_batch, frames=eval_frames, seed=config.data.seed + 1,
                        process_index=jax.process_index())

  task = loop.Task(
      create_model=lambda seed: model.create(config.prior, separator.config, seed),
      train_step=functools.partial(train_step, config=config), eval_step=eval_step,
      train_batches=train_batches, eval_batches=eval_batches, console_keys=CONSOLE_KEYS)
  logging.info('prior of %s: VQ-VAE %s (%s), %d training tracks', config.prior.target, fingerprint,
               config.vqvae_workdir, len(train_tracks))
  return loop.run(task, config, workdir, mesh)


def load(prior_workdir: str, vqvae_config, step: int | None = None):
  """(prior config, the prior model with the checkpoint's params, step) of a prior training workdir.

  Raises:
    errors.UserError: no such workdir, no checkpoint that restores in it, or not a prior's workdir.
  """
  with library_logs.orbax_warnings_off():
    return _load(prior_workdir, vqvae_config, step)


def _load(prior_workdir: str, vqvae_config, step: int | None):
  from srcvq_jax import checkpointing, models  # pylint: disable=g-import-not-at-top
  from srcvq_jax.prior import model  # pylint: disable=g-import-not-at-top

  on_one_device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

  def build(config_dict):
    if 'prior' not in config_dict:
      raise errors.UserError(f'{prior_workdir} is not a prior\'s workdir (its config has no prior section)')
    config = ml_collections.ConfigDict(config_dict)
    graphdef, target = models.abstract_of(lambda: model.create(config.prior, vqvae_config), on_one_device)
    return (config, graphdef), target

  (config, graphdef), params, step = checkpointing.load_params(prior_workdir, build, step)
  return config, nnx.merge(graphdef, params), step


# --- Command line ------------------------------------------------------------------------------------------------

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The command line's flags; defined on demand, not at import (other commands define --workdir too)."""
  config_flags.DEFINE_config_file('config', None, 'Prior config file (configs/prior.py).')
  flags.DEFINE_string('vqvae_workdir', None, 'The trained VQ-VAE (training workdir or export dir).')
  flags.DEFINE_string('workdir', None, "The prior's run directory (resumed if it exists).")


def main(argv):
  if len(argv) > 1:
    cli.fail(f'unexpected arguments: {" ".join(argv[1:])}')
  if not FLAGS.workdir:
    cli.fail('--workdir is required')
  library_logs.quiet_library_info()
  from srcvq_jax import loop  # pylint: disable=g-import-not-at-top

  config = FLAGS.config
  if FLAGS.vqvae_workdir:
    config.vqvae_workdir = FLAGS.vqvae_workdir
  loop.run_command(lambda: train_and_evaluate(config, FLAGS.workdir))


if __name__ == '__main__':
  cli.relaunch_with_tcmalloc()
  define_flags()
  flags.mark_flags_as_required(['config'])
  app.run(main, flags_parser=cli.parse_flags)
