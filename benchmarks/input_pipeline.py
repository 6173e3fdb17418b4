"""Training-batch throughput (examples/s from the TFDS build's crop store, srcvq_jax/crop_store.py) against what
the train step consumes, same config.

  python -m benchmarks.input_pipeline [--data_dir=DIR --dataset=chorale_mix] [--config=small]

Without --data_dir it renders a small ChoraleMix (8 tracks x 15 s) and builds it in a temp dir first. Prints one
JSON line for the pipeline (first_batch_s includes building the store on first use; tf_onednn: whether TensorFlow's
oneDNN kernels ran while building it, TF_ENABLE_ONEDNN_OPTS=0/1 chooses), one for the step, and one with the ratio
(goal: pipeline >= 5x the step).
"""
import argparse
import importlib
import statistics
import tempfile
import time

import jax

from benchmarks import common
from srcvq_jax import cli
from srcvq_jax import loop


def pipeline_rate(config, batches: int) -> tuple[float, float]:
  from srcvq_jax import input_pipeline  # pylint: disable=g-import-not-at-top
  iterator = input_pipeline.create_batches(config, config.data.train_split, seed=0)
  start = time.perf_counter()
  next(iterator)
  first = time.perf_counter() - start
  for _ in range(3):
    next(iterator)
  start = time.perf_counter()
  for _ in range(batches):
    next(iterator)
  return batches * config.data.batch_size / (time.perf_counter() - start), first


def step_rate(config, steps: int) -> float:
  from srcvq_jax import sharding, synthetic_data, trainer  # pylint: disable=g-import-not-at-top
  mesh = sharding.create_mesh(config.mesh)
  tx = loop.create_optimizer(config)
  with jax.set_mesh(mesh):
    graphdef, state = trainer.create_train_state(config, mesh, tx)
    step = trainer.jit_train_step(config, graphdef, tx, mesh, jax.tree.map(lambda x: x.sharding, state))
    batch = sharding.to_global(next(synthetic_data.synthetic_batches(config, config.data.batch_size, 0)), mesh)
    state, metrics = step(state, batch, jax.random.key(0))
    jax.block_until_ready(metrics)
    times = []
    for _ in range(steps):
      start = time.perf_counter()
      state, metrics = step(state, batch, jax.random.key(0))
      jax.block_until_ready(metrics)
      times.append(time.perf_counter() - start)
  return config.data.batch_size / statistics.median(times)


def tf_onednn_enabled() -> bool:
  """Whether TensorFlow runs its oneDNN kernels (TF_ENABLE_ONEDNN_OPTS, or by default on AVX-512-class CPUs)."""
  from tensorflow.python.util import _pywrap_util_port  # pylint: disable=g-import-not-at-top
  return bool(_pywrap_util_port.IsMklEnabled())


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config', default='small', help='configs/<name>.py')
  parser.add_argument('--data_dir', default=None)
  parser.add_argument('--dataset', default='chorale_mix')
  parser.add_argument('--batches', type=int, default=30)
  parser.add_argument('--steps', type=int, default=8)
  args = parser.parse_args()
  config = importlib.import_module(f'configs.{args.config}').get_config()
  with tempfile.TemporaryDirectory() as tmp:
    data_dir = args.data_dir
    if data_dir is None:
      from data_prep import build, chorale_mix  # pylint: disable=g-import-not-at-top
      chorale_mix.render(f'{tmp}/chorale_mix', num_tracks=8, seconds=15, seed=0, workers=1, progress=False)
      build.build('chorale_mix', f'{tmp}/chorale_mix', f'{tmp}/tfds', is_wav=True, configs=('chunks',))
      data_dir = f'{tmp}/tfds'
    config.data.source = 'tfds'
    config.data.dataset = args.dataset
    config.data.data_dir = data_dir
    examples_per_s, first_batch_s = pipeline_rate(config, args.batches)
    common.emit('input_pipeline', config=args.config, impl='crop_store', units='examples/s',
                examples_per_s=examples_per_s, first_batch_s=first_batch_s, batch_size=config.data.batch_size,
                segment_length=config.data.segment_length, sample_rate=config.data.sample_rate,
                tf_onednn=tf_onednn_enabled())
  consumed = step_rate(config, args.steps)
  common.emit('input_pipeline_step_consumption', config=args.config, impl='jax', units='examples/s',
              examples_per_s=consumed, devices=jax.device_count())
  common.emit('input_pipeline_ratio', config=args.config, units='x', ratio=examples_per_s / consumed, goal=5.0)


if __name__ == '__main__':
  cli.relaunch_with_tcmalloc()
  main()
