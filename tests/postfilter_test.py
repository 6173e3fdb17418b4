"""The mixture post-filter (srcvq_jax/postfilter.py): masks sum to 1, sources kept or masked, names checked."""
import numpy as np
import pytest

from srcvq_jax import postfilter


def _two_tones(rate=8000, seconds=1.0):
  t = np.arange(int(rate * seconds)) / rate
  low = np.sin(2 * np.pi * 220 * t)[:, None] * np.ones((1, 2))
  high = 0.5 * np.sin(2 * np.pi * 2500 * t)[:, None] * np.ones((1, 2))
  # Estimates with the right spectra but the wrong amplitudes and phases: the masks take only their shares.
  estimate = np.stack([0.3 * np.cos(2 * np.pi * 220 * t)[:, None] * np.ones((1, 2)),
                       2.0 * np.cos(2 * np.pi * 2500 * t)[:, None] * np.ones((1, 2))]).astype(np.float32)
  return low, high, (low + high).astype(np.float32), estimate


def test_masked_estimates_sum_to_the_mixture_and_split_disjoint_spectra():
  low, high, mixture, estimate = _two_tones()
  masked = postfilter.mask_with_mixture(estimate, mixture, (True, True), n_fft=512, hop=128)
  assert masked.shape == estimate.shape and masked.dtype == np.float32
  np.testing.assert_allclose(masked.sum(axis=0), mixture, atol=1e-4)
  inner = slice(512, -512)  # away from the edges' zero padding
  for found, want in ((masked[0], low), (masked[1], high)):
    error = np.sum((found[inner] - want[inner]) ** 2) / np.sum(want[inner] ** 2)
    assert error < 1e-3, error


def test_only_the_named_sources_are_masked():
  _, _, mixture, estimate = _two_tones()
  both = postfilter.mask_with_mixture(estimate, mixture, (True, True))
  first = postfilter.mask_with_mixture(estimate, mixture, (True, False))
  np.testing.assert_array_equal(first[1], estimate[1])  # kept: the slot's decode, untouched
  np.testing.assert_allclose(first[0], both[0], atol=1e-6)  # masked: the same mask whichever others are
  assert postfilter.mask_with_mixture(estimate, mixture, (False, False)) is estimate


def test_parse_sources():
  sources = ('vocals', 'bass', 'drums', 'other')
  assert postfilter.parse_sources('', sources) == (False,) * 4
  assert postfilter.parse_sources(None, sources) == (False,) * 4
  assert postfilter.parse_sources('all', sources) == (True,) * 4
  assert postfilter.parse_sources('other, vocals', sources) == (True, False, False, True)
  with pytest.raises(ValueError, match='piano.*vocals,bass,drums,other'):
    postfilter.parse_sources('vocals,piano', sources)


def test_frames_fall_on_the_tracks_grid_whatever_the_offset():
  """A block starting mid-track (offset) masks its samples as the whole track does, away from its edges."""
  rng = np.random.default_rng(0)
  estimate = rng.normal(size=(2, 6000, 1)).astype(np.float32)
  mixture = (estimate.sum(axis=0) + 0.1 * rng.normal(size=(6000, 1))).astype(np.float32)
  whole = postfilter.mask_with_mixture(estimate, mixture, (True, False), n_fft=256, hop=64)
  for first in (1000, 1037):
    part = postfilter.mask_with_mixture(estimate[:, first:], mixture[first:], (True, False), offset=first,
                                        n_fft=256, hop=64)
    np.testing.assert_allclose(part[:, 256:], whole[:, first + 256:], atol=1e-5)
  shifted = postfilter.mask_with_mixture(estimate[:, 1037:], mixture[1037:], (True, False), n_fft=256, hop=64)
  assert np.abs(shifted[0, 256:] - whole[0, 1037 + 256:]).max() > 1e-3  # the offset is what makes them agree
