"""Short-time Fourier transform helpers in JAX (used inside the jitted step), matching librosa's conventions.

Conventions of librosa.stft(center=True, pad_mode='constant', window='hann'): the signal is zero-padded by
n_fft // 2 on both sides, frame f starts at sample f * hop of the padded signal, 1 + T // hop frames, periodic
Hann window. tests/losses_test.py checks the magnitude against librosa to float32 tolerance.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


@functools.lru_cache(maxsize=None)
def hann_window(n_fft: int) -> np.ndarray:
  """Periodic Hann window (scipy.signal.get_window('hann', n_fft), librosa's default), a trace-time constant."""
  return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


def frame(x: jax.Array, n_fft: int, hop: int) -> jax.Array:
  """Centered frames: [..., T] -> [..., 1 + T // hop, n_fft]."""
  length = x.shape[-1]
  num_frames = 1 + length // hop
  pad = n_fft // 2
  lead = [(0, 0)] * (x.ndim - 1)
  if n_fft % hop == 0:
    # Frames are runs of n_fft / hop consecutive hop-sized blocks: slicing + concatenation, no gather.
    ratio = n_fft // hop
    num_blocks = num_frames + ratio - 1
    padded = jnp.pad(x, lead + [(pad, num_blocks * hop - length - pad)])
    blocks = padded.reshape(*x.shape[:-1], num_blocks, hop)
    return jnp.concatenate([blocks[..., i:i + num_frames, :] for i in range(ratio)], axis=-1)
  padded = jnp.pad(x, lead + [(pad, pad + hop)])
  index = np.arange(num_frames)[:, None] * hop + np.arange(n_fft)[None, :]
  return padded[..., index]


def stft(x: jax.Array, n_fft: int, hop: int) -> jax.Array:
  """Complex STFT: [..., T] -> [..., frames, n_fft // 2 + 1]."""
  return jnp.fft.rfft(frame(x, n_fft, hop) * hann_window(n_fft), axis=-1)


def stft_magnitude(x: jax.Array, n_fft: int, hop: int, eps: float = 0.0) -> jax.Array:
  """|STFT|: [..., T] -> [..., frames, n_fft // 2 + 1]. eps > 0 keeps the gradient finite at zero magnitude."""
  spec = stft(x, n_fft, hop)
  return jnp.sqrt(jnp.real(spec) ** 2 + jnp.imag(spec) ** 2 + eps)
