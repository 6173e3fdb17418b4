"""Timing helpers shared by the benchmark scripts: interleaved repeats, median/min, one JSON line per measurement.

On a small shared CPU, absolute times drift by tens of percent between minutes; ratios of implementations timed
side by side are stable. So `interleaved` runs one repeat of every implementation in turn (A B C A B C ...) after a
warm-up, and reports median and min of each; scripts compare implementations from the same call only.

Line format (printed by `emit`, collected by run_all.sh, rendered by report.py):
  {"name": ..., "impl": ..., "config": ..., "median_ms": ..., "min_ms": ..., "repeats": ..., "units": ..., ...}
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from typing import Any, Callable, Mapping

from srcvq_jax import cli


def block(x: Any) -> Any:
  """Waits for JAX arrays in a pytree (no-op for NumPy/torch results): timings include the computation."""
  try:
    import jax  # pylint: disable=g-import-not-at-top
  except ImportError:
    return x
  return jax.block_until_ready(x)


def time_once(fn: Callable[[], Any]) -> float:
  """Milliseconds of one call of fn, including the wait for its (asynchronous) result."""
  start = time.perf_counter()
  block(fn())
  return (time.perf_counter() - start) * 1e3


def interleaved(fns: Mapping[str, Callable[[], Any]], *, warmup: int = 2, repeats: int = 10,
                inner: int = 1, settle: int = 0) -> dict[str, dict[str, float]]:
  """Times every fn of `fns` in turn, `repeats` rounds, after `warmup` untimed rounds.

  Args:
    fns: name -> zero-argument callable (its result is waited for).
    warmup: untimed calls of each fn first (compilation, caches, allocator).
    repeats: timed rounds; each round calls every fn `inner` times and records the mean of those calls.
    inner: calls per timed sample (for very short fns).
    settle: untimed calls of a fn right before each of its timed samples. For fns of a few ms, the switch from
      another framework costs a noticeable share (cold caches; the other runtime's worker threads still
      spinning), which a training loop running one framework never pays.

  Returns:
    name -> {'median_ms', 'min_ms', 'repeats', 'samples_ms'}.
  """
  for _ in range(warmup):
    for fn in fns.values():
      block(fn())
  samples = {name: [] for name in fns}
  for _ in range(repeats):
    for name, fn in fns.items():
      for _ in range(settle):
        block(fn())
      start = time.perf_counter()
      for _ in range(inner):
        out = fn()
      block(out)
      samples[name].append((time.perf_counter() - start) * 1e3 / inner)
  return {name: summarize(values) for name, values in samples.items()}


def summarize(samples_ms) -> dict[str, Any]:
  samples_ms = list(samples_ms)
  return {'median_ms': statistics.median(samples_ms), 'min_ms': min(samples_ms), 'repeats': len(samples_ms),
          'samples_ms': [round(v, 3) for v in samples_ms]}


def environment() -> dict[str, Any]:
  """Short description of the machine and library versions (attached to summary lines)."""
  env = {'python': platform.python_version(), 'cpus': os.cpu_count(), 'machine': platform.machine(),
         'malloc': cli.allocator()}
  for module in ('jax', 'flax', 'numpy', 'torch'):
    mod = sys.modules.get(module)
    if mod is not None:
      env[module] = getattr(mod, '__version__', '?')
  return env


def _round(value):
  if isinstance(value, float):
    return float(f'{value:.4g}')
  if isinstance(value, dict):
    return {k: _round(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_round(v) for v in value]
  return value


def emit(name: str, *, config: str, impl: str | None = None, stats: Mapping[str, Any] | None = None,
         units: str = 'ms', keep_samples: bool = False, **extra) -> dict[str, Any]:
  """Prints one JSON line {"name", "impl", "config", "median_ms", "min_ms", "repeats", "units", ...extra}."""
  line: dict[str, Any] = {'name': name}
  if impl is not None:
    line['impl'] = impl
  line['config'] = config
  if stats is not None:
    line.update({k: v for k, v in stats.items() if k != 'samples_ms' or keep_samples})
  line['units'] = units
  line.update(extra)
  line = _round(line)
  print(json.dumps(line), flush=True)
  return line


def torch_or_none():
  """torch, with the intra-op thread count of this machine, or None where it is not installed (optional)."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  torch.set_num_threads(os.cpu_count() or 1)
  return torch
