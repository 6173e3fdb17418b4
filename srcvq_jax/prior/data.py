"""The prior's data: codes of real tracks' mixtures encoded by a trained VQ-VAE, and batches of crops of them.

The VQ-VAE's data config says where the tracks are (its TFDS build, or the synthetic source); each split's whole
tracks are mixed as they are (stems.sum(0): no remix, no gain or presence augmentation: the prior learns the codes
of real music) and encoded with argmax codes (inference.Separator.encode). The codes are cached in
PRIOR_WORKDIR/codes/<split>.npz with the VQ-VAE's fingerprint, and encoded again when the model differs.

Batches are random crops of `data.segment_frames` frames; batch n is a pure function of (data.seed, n, process), so
a resumed run reads exactly the batches the uninterrupted run would have.
"""
from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
from absl import logging

from srcvq_jax import codes as codes_lib
from srcvq_jax import errors

CODES = 'codes'


def split_tracks(vqvae_config, split: str, synthetic_tracks: int = 4, synthetic_seconds: float = 4.0):
  """(name, stems float32 [S, T, C]) of every track of `split` (the VQ-VAE's data.source)."""
  from srcvq_jax import synthetic_data  # pylint: disable=g-import-not-at-top
  from srcvq_jax import tfds_data  # pylint: disable=g-import-not-at-top

  if vqvae_config.data.source == 'synthetic':
    return synthetic_data.synthetic_tracks(vqvae_config, split, synthetic_tracks, synthetic_seconds)
  return tfds_data.load_tracks(vqvae_config, split)


def encode_split(separator, split: str, cache_dir: str | None, **synthetic) -> dict[str, np.ndarray]:
  """{'codes': int32 [N, S, H] of all tracks end to end, 'starts': int64 [tracks + 1] frame offsets, 'names'}
  of `split`'s mixtures; read from / written to CACHE_DIR/<split>.npz when the fingerprint matches."""
  fingerprint = codes_lib.separator_fingerprint(separator)
  path = None if cache_dir is None else os.path.join(cache_dir, f'{split}.npz')
  if path is not None and os.path.isfile(path):
    with np.load(path, allow_pickle=False) as cached:
      if str(cached['fingerprint']) == fingerprint:
        return {'codes': cached['codes'].astype(np.int32), 'starts': cached['starts'], 'names': cached['names']}
    logging.info('%s: codes of another model; encoding again', path)
  names, parts = [], []
  for name, stems in split_tracks(separator.config, split, **synthetic):
    parts.append(separator.encode(np.asarray(stems, np.float32).sum(0)))
    names.append(name)
  if not parts:
    raise errors.UserError(f'split {split!r} of the VQ-VAE\'s data has no tracks')
  starts = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)
  result = {'codes': np.concatenate(parts).astype(np.int32), 'starts': starts, 'names': np.array(names)}
  if path is not None:
    os.makedirs(cache_dir, exist_ok=True)
    tmp = path + '.tmp.npz'
    np.savez(tmp, codes=result['codes'].astype(codes_lib.code_dtype(separator.codebook_size)), starts=starts,
             names=result['names'], fingerprint=np.array(fingerprint))
    os.replace(tmp, path)
  logging.info('%s: %d tracks, %d frames of codes', split, len(parts), len(result['codes']))
  return result


def tracks_of(encoded: dict[str, np.ndarray]) -> list[np.ndarray]:
  """The per-track codes [T'_i, S, H] of encode_split's result."""
  starts = encoded['starts']
  return [encoded['codes'][a:b] for a, b in zip(starts[:-1], starts[1:])]


def crop_batch(tracks: list[np.ndarray], rng: np.random.Generator, batch_size: int, frames: int) -> np.ndarray:
  """int32 [B, frames, S, H]: crops at random tracks (in proportion to their length) and offsets."""
  lengths = np.array([len(t) for t in tracks], np.float64)
  if lengths.max() < frames:
    raise errors.UserError(f'every track is shorter than data.segment_frames={frames} frames (longest: '
                     f'{int(lengths.max())})')
  usable = np.where(lengths >= frames, lengths - frames + 1, 0)
  chosen = rng.choice(len(tracks), size=batch_size, p=usable / usable.sum())
  return np.stack([tracks[i][o:o + frames] for i, o in
                   ((i, int(rng.integers(0, usable[i]))) for i in chosen)]).astype(np.int32)


def batches(tracks: list[np.ndarray], *, batch_size: int, frames: int, seed: int, start: int = 0,
            process_index: int = 0) -> Iterator[dict[str, np.ndarray]]:
  """Batch n = start, start + 1, ... of crops, each drawn from its own (seed, n, process) generator."""
  n = start
  while True:
    rng = np.random.default_rng([seed, n, process_index])
    yield {CODES: crop_batch(tracks, rng, batch_size, frames)}
    n += 1
