"""Tests of the crop store's examples on an in-memory store (no TensorFlow): the speed augmentation."""
from __future__ import annotations

import numpy as np
import pytest

from configs import ci
from srcvq_jax import crop_store

RATE = 22050
TONE_HZ = 1000.0
AMPLITUDE = 8000.0


def tone_store(num_tracks: int = 4, seconds: float = 2.0) -> crop_store.CropStore:
  """Every source of every track the same stereo tone (one chunk per track)."""
  n = int(seconds * RATE)
  tone = np.round(AMPLITUDE * np.sin(2 * np.pi * TONE_HZ * np.arange(n * num_tracks) / RATE)).astype(np.int16)
  audio = tuple(np.stack([tone, tone], axis=-1) for _ in range(4))
  return crop_store.CropStore(audio=audio, starts=np.arange(num_tracks, dtype=np.int64) * n,
                              lengths=np.full(num_tracks, n, np.int64), tracks=np.arange(num_tracks, dtype=np.int32),
                              track_names=tuple(f'track {i}' for i in range(num_tracks)), path='')


def dominant_hz(x: np.ndarray) -> float:
  """The strongest frequency of a mono signal, to ~0.1 Hz (zero-padded FFT)."""
  n = 16 * len(x)
  spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), n))
  return float(np.argmax(spectrum)) * RATE / n


def data_config(**fields):
  data = ci.get_config().data
  data.sample_rate = RATE
  data.segment_length = 8192
  data.gain_min = data.gain_max = 1.0
  data.channel_swap = False
  for name, value in fields.items():
    data[name] = value
  return data


@pytest.mark.parametrize('semitones', [-2, -1, 1, 2, 4])
def test_repitched_crop_moves_the_pitch_by_whole_semitones_and_keeps_its_level_to_the_edges(semitones):
  store = tone_store()
  ratio = crop_store.speed_ratio(semitones)
  assert abs(float(ratio) / 2 ** (semitones / 12) - 1) < 0.006
  crop = crop_store._repitched_crop(store, 0, 1, 100, 8192, ratio)  # pylint: disable=protected-access
  assert crop.shape == (8192, 2) and crop.dtype == np.float32
  assert dominant_hz(crop[:, 0]) == pytest.approx(TONE_HZ * float(ratio), abs=1.0)
  # A steady tone stays steady: no fade-in from the filter's zero padding, no fade-out from reading short.
  for edge in (crop[:64, 0], crop[-64:, 0]):
    assert np.abs(edge).max() == pytest.approx(AMPLITUDE, rel=0.02)


def test_speed_augmentation_draws_a_speed_per_source_when_remixed_and_one_when_in_time():
  store = tone_store()
  allowed = {round(TONE_HZ * float(crop_store.speed_ratio(k))) for k in range(-2, 3)}
  remixed = data_config(speed_semitones=2)
  seen = set()
  for seed in range(12):
    x = crop_store.example(store, remixed, np.random.default_rng(seed))
    assert x.shape == (4, 8192, 2) and np.isfinite(x).all()
    pitches = {round(dominant_hz(source[:, 0])) for source in x}
    assert pitches <= {p + d for p in allowed for d in (-1, 0, 1)}, pitches
    seen |= pitches
  assert len(seen) >= 4, seen  # the speed varies from source to source and example to example
  in_time = data_config(speed_semitones=2, remix=False)
  for seed in range(6):
    x = crop_store.example(store, in_time, np.random.default_rng(seed))
    for source in x[1:]:
      np.testing.assert_array_equal(source, x[0])  # one crop, one speed: the sources stay in time


def test_speed_augmentation_off_leaves_the_stream_as_it_was():
  # speed_semitones = 0 draws nothing extra: the example is the crop store's plain remix.
  store = tone_store()
  plain = crop_store.example(store, data_config(), np.random.default_rng(3))
  rng = np.random.default_rng(3)
  chunks = []
  for _ in range(4):
    chunks.append(int(rng.integers(4)))
    while chunks[-1] in chunks[:-1]:
      chunks[-1] = int(rng.integers(4))
  offsets = [int(rng.integers(0, int(store.lengths[c]) - 8192 + 1)) for c in chunks]
  expected = np.stack([crop_store._crop(store, s, c, o, 8192)  # pylint: disable=protected-access
                       for s, (c, o) in enumerate(zip(chunks, offsets))]).astype(np.float32) / 32768.0
  np.testing.assert_array_equal(plain, expected)


def test_cached_resampling_filter_is_scipys_default():
  # The taps designed once per ratio are the filter resample_poly designs at every call (up to float32).
  from scipy import signal  # pylint: disable=g-import-not-at-top
  x = np.random.default_rng(0).standard_normal((4096, 2)).astype(np.float32)
  for semitones in (-2, 1, 3):
    ratio = crop_store.speed_ratio(semitones)
    up, down = ratio.denominator, ratio.numerator
    cached = signal.resample_poly(x, up, down, axis=0,
                                  window=crop_store._resampling_filter(up, down))  # pylint: disable=protected-access
    np.testing.assert_allclose(cached, signal.resample_poly(x, up, down, axis=0), atol=1e-5)
