"""Real-time factor of full-track separation (srcvq_jax.inference) on this machine.

Separates one stereo track (default 30 s at the config's rate; a random-init model of configs/base.py unless
--workdir names a trained one: the speed does not depend on the weights) into all sources with the chunked,
batched inference of srcvq_jax.inference, after one warm-up call that compiles it. Prints one JSON line per
(window, batch) setting: the median and the fastest of --repeats wall times, the real-time factors (audio seconds /
wall seconds) and the first call's time (mostly compilation). The process's CPU seconds are printed too: on a
machine shared with other jobs the wall time measures the contention as much as the code.

Usage:
  python -m benchmarks.separation_speed [--config configs/base.py] [--seconds 30] [--windows 1.5] [--batches 1]
  python -m benchmarks.separation_speed --windows 1,2,4,8 --batches 1,2,4,8     # a sweep
"""

import argparse
import importlib.util
import json
import os
import time

import numpy as np

from srcvq_jax import models

from srcvq_jax import cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_config(path):
  spec = importlib.util.spec_from_file_location('bench_config', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def _numbers(kind):
  return lambda text: [kind(v) for v in text.split(',') if v]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config', default=os.path.join(REPO, 'configs', 'base.py'))
  parser.add_argument('--workdir', default=None, help='trained workdir or export dir (default: random init)')
  parser.add_argument('--seconds', type=float, default=30.0)
  parser.add_argument('--windows', type=_numbers(float), default=None,
                      help='window lengths in training segments, comma-separated (default: the library default)')
  parser.add_argument('--batches', type=_numbers(int), default=None, help='windows per call, comma-separated')
  parser.add_argument('--repeats', type=int, default=5)
  args = parser.parse_args()

  import jax  # pylint: disable=g-import-not-at-top
  from srcvq_jax import inference  # pylint: disable=g-import-not-at-top

  if args.workdir:
    base = inference.load(args.workdir)
    config, graphdef, params = base.config, base.graphdef, base.params
  else:
    config = _load_config(args.config)
    graphdef, params = models.split_params(models.create(config))
  rate = int(config.data.sample_rate)
  num_samples = int(args.seconds * rate)
  rng = np.random.default_rng(0)
  # Noise with a 1/f-ish tilt: the speed is content-independent, the values only need to be finite.
  mixture = np.cumsum(rng.normal(size=(num_samples, config.data.channels)), axis=0).astype(np.float32)
  mixture = (mixture - mixture.mean(0)) / (np.abs(mixture).max() + 1e-9) * 0.5

  windows = args.windows or [inference.DEFAULT_WINDOW_SEGMENTS]
  batches = args.batches or [None]
  for window_segments in windows:
    for batch in batches:
      separator = inference.Separator(config, graphdef, params,
                                      window=int(window_segments * config.data.segment_length), batch_size=batch)
      started = time.perf_counter()
      separator.separate(mixture)
      compile_and_first = time.perf_counter() - started
      times, cpu_times = [], []
      for _ in range(args.repeats):
        started, cpu_started = time.perf_counter(), time.process_time()
        separator.separate(mixture)
        times.append(time.perf_counter() - started)
        cpu_times.append(time.process_time() - cpu_started)
      wall, cpu = float(np.median(times)), float(np.median(cpu_times))
      best = float(np.min(times))
      print(json.dumps({
          'benchmark': 'separation_speed',
          'config': os.path.relpath(args.config, REPO) if not args.workdir else args.workdir,
          'seconds': args.seconds,
          'sample_rate': rate,
          'sources': len(config.data.sources),
          'window_samples': separator.window,
          'margin_samples': separator.margin,
          'windows_per_track': separator.plan(num_samples).num_windows,
          'batch': separator.batch_size,
          'wall_s': round(wall, 4),
          'wall_s_all': [round(t, 4) for t in times],
          'realtime_factor': round(args.seconds / wall, 1),
          # The fastest repeat: the least disturbed by other jobs on a shared machine.
          'wall_s_best': round(best, 4),
          'realtime_factor_best': round(args.seconds / best, 1),
          # CPU seconds of all threads of this process: on a machine shared with other jobs, cores x audio seconds
          # / CPU seconds bounds what the wall-clock factor would be with every core free (perfect scaling).
          'cpu_s': round(cpu, 4),
          'realtime_factor_all_cores_free': round(args.seconds * (os.cpu_count() or 1) / cpu, 1),
          'load_average_1min': round(os.getloadavg()[0], 2),
          'first_call_s': round(compile_and_first, 2),
          'device': str(jax.devices()[0].platform),
          'cpu_count': os.cpu_count(),
          'malloc': cli.allocator(),
      }), flush=True)


if __name__ == '__main__':
  cli.relaunch_with_tcmalloc()
  main()
