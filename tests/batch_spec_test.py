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
