"""Tests of srcvq_jax.batch_spec's mask sampler."""
import numpy as np

from srcvq_jax import batch_spec


def test_masks_select_a_subset_of_at_least_one_present_source():
  presence, select = batch_spec.sample_masks(np.random.default_rng(0), 4000, 4, 0.75, 0.5)
  assert presence.dtype == select.dtype == np.float32
  assert np.all(presence.sum(axis=1) >= 1) and np.all(select <= presence)
  np.testing.assert_allclose(select.sum() / presence.sum(), 0.5, atol=0.02)


def test_select_one_prob_selects_one_present_source_uniformly():
  presence, select = batch_spec.sample_masks(np.random.default_rng(1), 8000, 4, 0.75, 0.5, select_one_prob=1.0)
  assert np.all(select.sum(axis=1) == 1) and np.all(select <= presence)
  full = presence.sum(axis=1) == 4
  np.testing.assert_allclose(select[full].mean(axis=0), 0.25, atol=0.02)  # uniform over the present sources
  presence, select = batch_spec.sample_masks(np.random.default_rng(2), 8000, 4, 0.75, 0.5, select_one_prob=0.5)
  singles = select.sum(axis=1) == 1
  # Half the examples are single by construction; of the rest, subsets of one source occur as before.
  _, plain = batch_spec.sample_masks(np.random.default_rng(3), 8000, 4, 0.75, 0.5)
  expected = 0.5 + 0.5 * np.mean(plain.sum(axis=1) == 1)
  np.testing.assert_allclose(singles.mean(), expected, atol=0.03)


def test_select_one_prob_zero_leaves_the_stream_unchanged():
  # The masks the sampler drew from this generator before select_one_prob existed (commit f8eaccb): a run of an
  # earlier config resumes on the same stream.
  presence, select = batch_spec.sample_masks(np.random.default_rng(4), 6, 4, 0.75, 0.5, select_one_prob=0.0)
  np.testing.assert_array_equal(presence, [[0, 1, 0, 1], [1, 1, 0, 1], [0, 1, 0, 1], [1, 0, 0, 1], [0, 0, 1, 1],
                                           [1, 0, 1, 1]])
  np.testing.assert_array_equal(select, [[0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [1, 0, 0, 1], [0, 0, 1, 1],
                                         [1, 0, 1, 0]])


def test_select_one_weights_draw_in_proportion_among_present_sources():
  weights = (1.0, 1.0, 1.0, 3.0)
  presence, select = batch_spec.sample_masks(np.random.default_rng(5), 20000, 4, 0.75, 0.5, select_one_prob=1.0,
                                             select_one_weights=weights)
  assert np.all(select.sum(axis=1) == 1) and np.all(select <= presence)
  full = presence.sum(axis=1) == 4
  np.testing.assert_allclose(select[full].mean(axis=0), np.array(weights) / 6, atol=0.02)
  # Where the heavy source is absent, the others share the draw evenly.
  without = (presence[:, 3] == 0) & (presence.sum(axis=1) == 3)
  np.testing.assert_allclose(select[without, :3].mean(axis=0), 1 / 3, atol=0.03)


def test_equal_select_one_weights_draw_the_uniform_stream():
  uniform = batch_spec.sample_masks(np.random.default_rng(6), 64, 4, 0.75, 0.5, select_one_prob=0.5)
  weighted = batch_spec.sample_masks(np.random.default_rng(6), 64, 4, 0.75, 0.5, select_one_prob=0.5,
                                     select_one_weights=(1.0, 1.0, 1.0, 1.0))
  for a, b in zip(uniform, weighted):
    np.testing.assert_array_equal(a, b)
