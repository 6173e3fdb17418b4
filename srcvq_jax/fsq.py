"""Finite scalar quantization (Mentzer et al., 2023), a codebook-free alternative to the Gumbel quantizer.

Glossary as in quantizer.py: B batch, T' latent frames, S sources, H codes per source and frame, d = len(levels)
scalars per code, K = prod(levels) values a code can take.

Each of the d scalars of a code is squashed into a bounded range and rounded to one of levels[i] values
(straight-through: the forward pass rounds, the gradient is the identity's), so a code is a point of a fixed d-dim
grid of K points, its integer the mixed-radix number of its digits. There is no codebook to learn, so no codebook
or commitment loss and no collapse: every grid point is reachable. The integer codes [B, T', S, H] and the slot
vectors [B, T', S, H * d] have the shapes of the Gumbel quantizer's with K = prod(levels) and D = d, so decoding,
editing and the code files work on them unchanged. Training and inference quantize the same way (deterministic).
"""
from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from srcvq_jax import quantizer as quantizer_lib

# Widens the squashed range by 0.1% so that the outermost integers are reached (L = 2 included) while no value can
# round beyond them.
_EPS = 1e-3


def codebook_size(levels: Sequence[int]) -> int:
  """K: the number of values one code takes."""
  return int(np.prod(levels))


def _basis(levels: Sequence[int]) -> np.ndarray:
  """Place value of each digit of the mixed-radix code: [1, L0, L0 L1, ...]."""
  return np.concatenate([[1], np.cumprod(levels[:-1])]).astype(np.int32)


def _round_ste(x: jax.Array) -> jax.Array:
  return x + jax.lax.stop_gradient(jnp.round(x) - x)


def bound(z: jax.Array, levels: Sequence[int]) -> jax.Array:
  """Squashes [..., d] into the rounding range of each digit: levels[i] integers (even levels: -L/2 .. L/2 - 1)."""
  levels_arr = np.asarray(levels, np.float32)
  half = (levels_arr - 1) * (1 + _EPS) / 2
  offset = np.where(levels_arr % 2 == 0, 0.5, 0.0).astype(np.float32)
  shift = np.arctanh(offset / half).astype(np.float32)
  return jnp.tanh(z + shift) * half - offset


def quantize_values(z: jax.Array, levels: Sequence[int]) -> tuple[jax.Array, jax.Array]:
  """[..., d] float -> (values in [-1, 1] [..., d] with straight-through gradients, int32 codes [...])."""
  rounded = _round_ste(bound(z.astype(jnp.float32), levels))
  half_width = np.asarray([level // 2 for level in levels], np.float32)
  digits = (jax.lax.stop_gradient(rounded) + half_width).astype(jnp.int32)
  codes = jnp.sum(digits * _basis(levels), axis=-1).astype(jnp.int32)
  return rounded / half_width, codes


def values_of(codes: jax.Array, levels: Sequence[int]) -> jax.Array:
  """Grid values of integer codes: int [...] -> float32 [..., d] (the inverse of quantize_values' codes)."""
  half_width = np.asarray([level // 2 for level in levels], np.float32)
  digits = (codes[..., None] // _basis(levels)) % np.asarray(levels, np.int32)
  return (digits.astype(jnp.float32) - half_width) / half_width


def used_codes(counts: Sequence[int], num_codebooks: int) -> np.ndarray:
  """bool [S, H]: True where source s uses code h (h < counts[s])."""
  return np.arange(num_codebooks)[None, :] < np.asarray(counts)[:, None]


def quantize(latents: jax.Array, levels: Sequence[int], used: np.ndarray | None = None
             ) -> quantizer_lib.QuantizedResult:
  """Encoder outputs [B, T', S, H, d] -> QuantizedResult (vectors [B, T', S, H * d], codes [B, T', S, H]).

  used: bool [S, H] (used_codes), None = every code; an unused position is code 0 with a zero vector, so it
  carries nothing and costs no entropy. code_probs is the batch's code histogram [S, H, K] (there are no
  logits), so perplexity and used fraction mean the same as for the Gumbel quantizer's argmax codes.
  """
  values, codes = quantize_values(latents, levels)
  if used is not None:
    values = values * used[:, :, None]
    codes = jnp.where(used, codes, 0)
  vectors = values.reshape(*values.shape[:3], -1)
  histogram = jax.nn.one_hot(codes, codebook_size(levels), dtype=jnp.float32).mean(axis=(0, 1))
  return quantizer_lib.QuantizedResult(vectors=vectors, codes=codes, code_probs=histogram)


def lookup(codes: jax.Array, levels: Sequence[int], used: np.ndarray | None = None) -> jax.Array:
  """Slot vectors of integer codes: int [B, T', S, H] -> float32 [B, T', S, H * d] (zero where not `used`)."""
  values = values_of(codes, levels)
  if used is not None:
    values = values * used[:, :, None]
  return values.reshape(*codes.shape[:3], -1)
