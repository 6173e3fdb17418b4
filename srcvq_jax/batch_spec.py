"""The batches every source of training data yields, and the one sampler of their masks.

Element spec of one batch (local to this process; B = global batch / process count, S sources, T samples,
C channels), the same for every source of batches (synthetic_data, crop_store, tfds_data; input_pipeline):
  mixture   float32 [B, T, C]      sum over s of presence[b, s] * sources[b, s]   (`mix`)
  sources   float32 [B, S, T, C]   each source's signal (after gain/channel swap), present or not
  presence  float32 [B, S]         1 where the source is in the input mixture (at least one per example)
  select    float32 [B, S]         1 where a present source is selected for the selective target
presence and select are drawn by `sample_masks` whatever the source of the audio. The complement mask is derived,
never stored: presence * (1 - select) (`complement`). NumPy only.
"""
from __future__ import annotations

from typing import Callable, Iterator
import zlib

import numpy as np

MIXTURE = 'mixture'
SOURCES = 'sources'
PRESENCE = 'presence'
SELECT = 'select'
BATCH_KEYS = (MIXTURE, SOURCES, PRESENCE, SELECT)

Batch = dict[str, np.ndarray]


def complement(presence, select):
  """Mask of present but unselected sources, [..., S]. Works on NumPy and JAX arrays."""
  return presence * (1 - select)


def sample_masks(rng: np.random.Generator, batch_size: int, num_sources: int, presence_prob: float,
                 select_prob: float, select_one_prob: float = 0.0,
                 select_one_weights=()) -> tuple[np.ndarray, np.ndarray]:
  """Random presence (>= 1 source per example) and selection (subset of presence) masks, float32 [B, S] each.

  select_one_prob: the share of examples whose selection is instead one present source, drawn uniformly or by
  select_one_weights (the read-out `separate` uses: a slot decoded alone). Drawn only when > 0, so the stream of a
  config without it is unchanged.
  select_one_weights: [S] positive weights of that draw among the present sources (empty = uniform): source i is
  the one with probability w_i / (sum of the present sources' w). Equal weights draw the uniform stream exactly.
  """
  presence = rng.random((batch_size, num_sources)) < presence_prob
  # Guarantee one present source: where none is, turn one on at random.
  empty = ~presence.any(axis=1)
  presence[empty, rng.integers(0, num_sources, size=int(empty.sum()))] = True
  select = presence & (rng.random((batch_size, num_sources)) < select_prob)
  if select_one_prob > 0:
    one = rng.random(batch_size) < select_one_prob
    keys = rng.random((batch_size, num_sources))
    if len(select_one_weights):
      # The argmax of u ** (1 / w) over the candidates is candidate i with probability w_i / sum(w) (Efraimidis and
      # Spirakis's weighted sampling); with every w = 1 the keys are u itself.
      keys = keys ** (1.0 / np.asarray(select_one_weights, np.float64))
    chosen = np.where(presence, keys, -1.0).argmax(axis=1)
    select = np.where(one[:, None], np.arange(num_sources) == chosen[:, None], select)
  return presence.astype(np.float32), select.astype(np.float32)


def mix(sources: np.ndarray, presence: np.ndarray) -> np.ndarray:
  """Mixture of present sources: [B, S, T, C], [B, S] -> [B, T, C]."""
  return np.einsum('bstc,bs->btc', sources, presence).astype(np.float32)


def with_masks(sources: np.ndarray, rng: np.random.Generator, data) -> Batch:
  """The batch of `sources` [B, S, T, C]: masks drawn from rng by sample_masks (config.data's probabilities), the
  mixture of the present sources."""
  presence, select = _sample_masks_of(data, rng, sources.shape[0], sources.shape[1])
  return _batch(sources, presence, select)


def _sample_masks_of(data, rng: np.random.Generator, batch_size: int, num_sources: int):
  """sample_masks with config.data's probabilities and weights (configs without the newer fields: their defaults)."""
  return sample_masks(rng, batch_size, num_sources, data.presence_prob, data.select_prob,
                      data.get('select_one_prob', 0.0), data.get('select_one_weights', ()))


def _batch(sources: np.ndarray, presence: np.ndarray, select: np.ndarray) -> Batch:
  return {MIXTURE: mix(sources, presence), SOURCES: sources, PRESENCE: presence, SELECT: select}


def example_rng(seed: int, split: str, step: int, index: int) -> np.random.Generator:
  """The generator of example `index` of the global batch of `step` (crc32 of the split: stable across runs)."""
  return np.random.default_rng([int(seed), zlib.crc32(split.encode()), int(step), int(index)])


def step_batches(draw_sources: Callable[[np.random.Generator], np.ndarray], data, split: str, *, seed: int,
                 start_step: int, process_index: int = 0, process_count: int = 1) -> Iterator[Batch]:
  """Batches of steps start_step, start_step + 1, ... in which every example is a pure function of (seed, split,
  step, example index): the stream a resumed run continues exactly, whatever the process count.

  Example g of step t (g in [0, data.batch_size)) takes its sources [S, T, C] from draw_sources(rng) and then its
  masks from the same rng = example_rng(seed, split, t, g); process p of P yields the examples [p B / P, (p + 1)
  B / P) of every global batch, so the global batch does not depend on P.
  """
  local = data.batch_size // process_count
  first = process_index * local
  step = start_step
  while True:
    sources, presence, select = [], [], []
    for index in range(first, first + local):
      rng = example_rng(seed, split, step, index)
      sources.append(draw_sources(rng))
      p, s = _sample_masks_of(data, rng, 1, len(data.sources))
      presence.append(p)
      select.append(s)
    yield _batch(np.stack(sources), np.concatenate(presence), np.concatenate(select))
    step += 1

