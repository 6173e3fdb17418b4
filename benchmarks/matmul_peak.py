"""Float32 matmul throughput (2048^3 by default) of NumPy, jax.jit and torch: this machine's practical peak.

The train-step benchmark divides its FLOP rate by the best of these (measured in the same process) to report
FLOP utilization. Implementations run interleaved (see common.py); GFLOP/s = 2 n^3 / median time.

  python -m benchmarks.matmul_peak [--n 2048] [--repeats 10]
"""
from __future__ import annotations

import argparse

import numpy as np

from benchmarks import common
from srcvq_jax import cli


def measure(n: int = 2048, repeats: int = 10, warmup: int = 2) -> dict[str, dict]:
  """impl -> stats (common.interleaved) plus 'gflops' (median) and 'gflops_best' (min time) of an n^3 matmul."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  a = rng.standard_normal((n, n), dtype=np.float32)
  b = rng.standard_normal((n, n), dtype=np.float32)
  # Committed to the first device: the same single-device placement as the 1-device train step.
  device = jax.devices()[0]
  ja, jb = jax.device_put(a, device), jax.device_put(b, device)
  jit_matmul = jax.jit(jnp.matmul)
  fns = {'numpy': lambda: a @ b, 'jax.jit': lambda: jit_matmul(ja, jb)}
  torch = common.torch_or_none()
  if torch is not None:
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    fns['torch'] = lambda: ta @ tb
  stats = common.interleaved(fns, warmup=warmup, repeats=repeats)
  flops = 2.0 * n**3
  for s in stats.values():
    s['gflops'] = flops / (s['median_ms'] * 1e-3) / 1e9
    s['gflops_best'] = flops / (s['min_ms'] * 1e-3) / 1e9
  return stats


def peak_gflops(stats: dict[str, dict]) -> tuple[str, float]:
  """(impl, GFLOP/s at median time) of the fastest implementation: the peak that utilization is measured against."""
  impl = max(stats, key=lambda k: stats[k]['gflops'])
  return impl, stats[impl]['gflops']


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--n', type=int, default=2048)
  parser.add_argument('--repeats', type=int, default=10)
  args = parser.parse_args()
  stats = measure(args.n, args.repeats)
  for impl, s in stats.items():
    common.emit('matmul_peak', impl=impl, config=f'float32 {args.n}^3', stats=s, gflops=s['gflops'],
                gflops_best=s['gflops_best'])
  impl, peak = peak_gflops(stats)
  common.emit('matmul_peak', impl='summary', config=f'float32 {args.n}^3', units='GFLOP/s', peak_impl=impl,
              peak_gflops=peak, **common.environment())


if __name__ == '__main__':
  cli.relaunch_with_tcmalloc()
  main()
