"""Synthetic training data, NumPy only (no TensorFlow): four synthetic instruments with distinct spectra, as
batches of the element spec (batch_spec) and as fixed "tracks"; for tests, benchmarks and smoke runs."""
from __future__ import annotations

from typing import Iterator, Sequence
import zlib

import numpy as np

from srcvq_jax import batch_spec


def _synthetic_source(rng: np.random.Generator, kind: int, length: int, channels: int,
                      sample_rate: int) -> np.ndarray:
  """One synthetic instrument, [T, C]. kind 0..3 ~ vocals (vibrato tone), bass (low saw), drums (noise hits),
  other (chord); beyond 3, a plain random tone. Distinct spectra so the sources are separable."""
  t = np.arange(length) / sample_rate
  if kind == 0:
    f0 = rng.uniform(220, 660)
    phase = 2 * np.pi * f0 * t + rng.uniform(2, 6) * np.sin(2 * np.pi * rng.uniform(4, 7) * t)
    mono = sum(np.sin(k * phase) / k**1.5 for k in range(1, 5))
  elif kind == 1:
    f0 = rng.uniform(41, 110)
    mono = 2 * ((f0 * t + rng.random()) % 1.0) - 1
  elif kind == 2:
    mono = np.zeros(length)
    period = int(sample_rate * rng.uniform(0.12, 0.3))
    decay = np.exp(-np.arange(period) / (0.02 * sample_rate))
    for start in range(int(rng.integers(0, period)), length, period):
      n = min(period, length - start)
      mono[start:start + n] += rng.standard_normal(n) * decay[:n]
  elif kind == 3:
    f0 = rng.uniform(180, 400)
    mono = sum(np.sin(2 * np.pi * f0 * r * t + rng.uniform(0, 2 * np.pi)) for r in (1.0, 1.26, 1.5))
  else:
    mono = np.sin(2 * np.pi * rng.uniform(100, 1000) * t)
  mono = mono / (np.abs(mono).max() + 1e-6)
  pan = rng.uniform(0.3, 0.7, size=channels)
  return (0.25 * mono[:, None] * pan[None, :]).astype(np.float32)


def _synthetic_stems(rng: np.random.Generator, data, length: int) -> np.ndarray:
  """One example's stems, float32 [S, length, C]: source s is instrument kind s."""
  return np.stack([_synthetic_source(rng, s, length, data.channels, data.sample_rate)
                   for s in range(len(data.sources))])


def synthetic_batches(config, batch_size: int, seed: int | Sequence[int]) -> Iterator[batch_spec.Batch]:
  """Endless NumPy batches with the pipeline's element spec; deterministic for a seed.

  Args:
    config: the experiment ConfigDict (uses config.data.{sources, segment_length, channels, sample_rate,
      presence_prob, select_prob}).
    batch_size: examples per batch (this process's local batch).
    seed: seed of all randomness (an int or a sequence of ints, as np.random.default_rng takes).
  """
  data = config.data
  rng = np.random.default_rng(seed)
  while True:
    sources = np.stack([_synthetic_stems(rng, data, data.segment_length) for _ in range(batch_size)])
    yield batch_spec.with_masks(sources, rng, data)


def step_batches(config, split: str, *, seed: int, start_step: int = 0, process_index: int = 0,
                 process_count: int = 1) -> Iterator[batch_spec.Batch]:
  """This process's batches of steps start_step, start_step + 1, ...: example g of step t drawn from (seed, split,
  t, g) (batch_spec.step_batches), so a resumed run continues the stream exactly."""
  data = config.data
  return batch_spec.step_batches(lambda rng: _synthetic_stems(rng, data, data.segment_length), data, split, seed=seed, start_step=start_step, process_index=process_index,
                                 process_count=process_count)


def synthetic_tracks(config, split: str, num_tracks: int, seconds: float) -> Iterator[tuple[str, np.ndarray]]:
  """Fixed synthetic "tracks" of a split: (name, stems float32 [S, T, C]), every source present, deterministic.

  The synthetic counterpart of tfds_data.load_tracks (evaluation and the in-training SDR without a dataset);
  track k of a split is the same for every call.
  """
  data = config.data
  length = int(round(seconds * data.sample_rate))
  for k in range(num_tracks):
    rng = np.random.default_rng([zlib.crc32(split.encode()), k])
    yield f'synthetic {split} {k}', _synthetic_stems(rng, data, length)
