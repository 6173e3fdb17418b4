"""Finite scalar quantization: the grid, integer codes and their inverse, straight-through gradients."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from srcvq_jax import fsq

LEVELS = (8, 5, 5, 5)


def test_every_code_is_one_grid_point_and_back():
  k = fsq.codebook_size(LEVELS)
  codes = jnp.arange(k)
  values = fsq.values_of(codes, LEVELS)  # [K, d]
  assert values.shape == (k, len(LEVELS))
  assert len({tuple(v) for v in np.asarray(values).round(6)}) == k  # K distinct points
  assert float(values.min()) >= -1.0 and float(values.max()) <= 1.0
  # Latents that land on each grid point give back its code (the grid value is inside its rounding cell).
  half = np.asarray([lvl // 2 for lvl in LEVELS], np.float32)
  offset = np.where(np.asarray(LEVELS) % 2 == 0, 0.5, 0.0)
  span = (np.asarray(LEVELS) - 1) * (1 + 1e-3) / 2
  target = np.asarray(values) * half  # the rounded integers
  z = np.arctanh((target + offset) / span) - np.arctanh(offset / span)
  again_values, again_codes = fsq.quantize_values(jnp.asarray(z, jnp.float32), LEVELS)
  np.testing.assert_array_equal(np.asarray(again_codes), np.arange(k))
  np.testing.assert_allclose(again_values, values, atol=1e-6)


def test_quantize_shapes_lookup_and_histogram():
  latents = 3 * jax.random.normal(jax.random.key(0), (2, 7, 4, 3, len(LEVELS)))  # [B, T', S, H, d]
  result = fsq.quantize(latents, LEVELS)
  assert result.vectors.shape == (2, 7, 4, 3 * len(LEVELS)) and result.codes.shape == (2, 7, 4, 3)
  assert result.codes.dtype == jnp.int32
  assert int(result.codes.min()) >= 0 and int(result.codes.max()) < fsq.codebook_size(LEVELS)
  np.testing.assert_allclose(fsq.lookup(result.codes, LEVELS), result.vectors, atol=1e-6)
  np.testing.assert_allclose(result.code_probs.sum(-1), 1.0, atol=1e-6)
  # Deterministic: the same latents, the same codes.
  np.testing.assert_array_equal(fsq.quantize(latents, LEVELS).codes, result.codes)


def test_gradients_pass_straight_through_and_are_finite():
  z = jax.random.normal(jax.random.key(1), (5, len(LEVELS)))
  grad = jax.grad(lambda x: jnp.sum(fsq.quantize_values(x, LEVELS)[0] * jnp.arange(1.0, 5.0)))(z)
  assert np.isfinite(np.asarray(grad)).all()
  # Rounding has zero derivative; straight-through gives the bound's derivative times the weights instead.
  assert np.all(np.abs(np.asarray(grad)) > 0)
  expected = jax.grad(lambda x: jnp.sum(fsq.bound(x, LEVELS) / np.asarray([4, 2, 2, 2]) * jnp.arange(1.0, 5.0)))(z)
  np.testing.assert_allclose(grad, expected, rtol=1e-6)


@pytest.mark.parametrize('levels', [(2,), (3, 4), (7, 7, 2)])
def test_other_level_sets(levels):
  codes = jnp.arange(fsq.codebook_size(levels))
  values = fsq.values_of(codes, levels)
  z = jnp.arctanh(jnp.clip(values, -0.999, 0.999))  # any latents: codes stay in range
  _, got = fsq.quantize_values(z * 5, levels)
  assert int(got.min()) >= 0 and int(got.max()) < fsq.codebook_size(levels)


def test_unused_positions_are_code_zero_and_zero_vectors():
  latents = 3 * jax.random.normal(jax.random.key(3), (2, 7, 3, 2, len(LEVELS)))
  used = fsq.used_codes((2, 1, 2), 2)
  np.testing.assert_array_equal(used, [[True, True], [True, False], [True, True]])
  full, masked = fsq.quantize(latents, LEVELS), fsq.quantize(latents, LEVELS, used)
  codes, vectors = np.asarray(masked.codes), np.asarray(masked.vectors).reshape(2, 7, 3, 2, -1)
  assert (codes[:, :, 1, 1] == 0).all() and (vectors[:, :, 1, 1] == 0).all()
  # Used positions are untouched.
  np.testing.assert_array_equal(np.where(used, np.asarray(full.codes), 0), codes)
  np.testing.assert_allclose(fsq.lookup(masked.codes, LEVELS, used), masked.vectors, atol=1e-6)
  assert np.abs(np.asarray(fsq.lookup(full.codes, LEVELS, used)).reshape(vectors.shape)[:, :, 1, 1]).max() == 0
