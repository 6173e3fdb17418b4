"""Tests for srcvq_jax.sdr: hand-computed cases and parity with museval.

The parity tests render short music-like stems with FluidSynth (four GM
programs, one on the percussion channel) and compare against museval itself
with the MUSDB18 settings (v4, 1 s windows, 1 s hop). museval's cost is
dominated by a fixed ~2 s linear solve per source, so the audio is kept short.
"""

import os

import numpy as np
import pytest
from scipy import signal

from benchmarks import sdr_speed
from srcvq_jax import sdr

SR = 44100
# Tests may point at another General MIDI soundfont via this variable.
SOUNDFONT = os.environ.get('SRCVQ_SOUNDFONT',
                           '/usr/share/sounds/sf2/FluidR3_GM.sf2')
TOL_DB = 0.01


def _render(program, notes, duration_s, bank=0, channel=0):
  """Renders notes [(on_s, off_s, key, velocity)] to [n_samples, 2] float64 (the benchmark's renderer)."""
  pytest.importorskip('fluidsynth')
  return sdr_speed.render_stem(SOUNDFONT, program, notes, duration_s, bank=bank, channel=channel)


@pytest.fixture(scope='module')
def stems():
  """[4, n_samples, 2] vocals/bass/drums/other-like stems, 6.5 s long."""
  pytest.importorskip('fluidsynth', reason='pyfluidsynth not installed')
  if not os.path.exists(SOUNDFONT):
    pytest.skip(f'soundfont {SOUNDFONT} not found')
  duration = 6.5
  lead = _render(53, [(0.1, 1.0, 67, 100), (1.2, 2.4, 69, 100),
                      (2.5, 4.0, 72, 100), (4.2, 6.3, 71, 100)], duration)
  bass = _render(33, [(t, t + 0.9, k, 110) for t, k in
                      zip(np.arange(0.0, 6.0, 1.0), [36, 43, 41, 36, 43, 41])],
                 duration)
  drums = _render(0, [(t, t + 0.1, (36, 42, 38, 42)[i % 4], 110)
                      for i, t in enumerate(np.arange(0.0, 6.25, 0.25))],
                  duration, bank=128, channel=9)
  other = _render(0, [(0.0, 3.0, k, 80) for k in (60, 64, 67)] +
                  [(3.0, 6.2, k, 80) for k in (57, 60, 64)], duration)
  return np.stack([lead, bass, drums, other])


def _degrade(refs, seed=0):
  """Estimates: references + scaled leakage + low-passed noise."""
  rng = np.random.default_rng(seed)
  n_src = refs.shape[0]
  b, a = signal.butter(4, 3000 / (SR / 2))
  est = refs.copy()
  for j in range(n_src):
    for k in range(n_src):
      if k != j:
        est[j] += 0.08 * (1 + (j + k) % 3) * refs[k]
    noise = signal.lfilter(b, a, rng.standard_normal(refs[j].shape), axis=0)
    est[j] += 0.004 * (j + 1) * noise
  return est


def _simple_sdr(ref, est):
  return 10 * np.log10(np.sum(ref**2) / np.sum((est - ref)**2))


# ---------------------------------------------------------------------------
# Hand-computable cases (no museval).


def test_scaled_estimate_known_db():
  rng = np.random.default_rng(0)
  refs = rng.standard_normal((3, 3 * SR, 2))
  # est = g * ref -> SDR = 10 log10(1 / (1 - g)^2) in every window.
  gains = np.array([0.5, 2.0, 0.9])
  got = sdr.sdr_per_window(refs, refs * gains[:, None, None])
  expected = -20 * np.log10(np.abs(1 - gains))
  assert got.shape == (3, 3)
  np.testing.assert_allclose(got, np.repeat(expected[:, None], 3, 1),
                             atol=1e-9)
  np.testing.assert_allclose(got[0], 6.020599913279624, atol=1e-9)
  # Zero error -> +inf (museval's _safe_db), ignored by the track median.
  perfect = sdr.sdr_per_window(refs, refs)
  assert np.all(np.isposinf(perfect))
  assert np.all(np.isnan(sdr.track_sdr(refs, refs)))


def test_additive_error_per_window_energy():
  rng = np.random.default_rng(1)
  refs = rng.standard_normal((2, 2 * SR, 2))
  err = rng.standard_normal(refs.shape)
  # Error energy 10x smaller in window 0, 100x in window 1 of source 1.
  err[:, :SR] *= np.sqrt(np.sum(refs[:, :SR]**2, axis=(1, 2)) /
                         np.sum(err[:, :SR]**2, axis=(1, 2)) / 10)[:, None,
                                                                     None]
  err[1, SR:] *= np.sqrt(np.sum(refs[1, SR:]**2) / np.sum(err[1, SR:]**2) /
                         100)
  got = sdr.sdr_per_window(refs, refs + err)
  np.testing.assert_allclose(got[:, 0], [10.0, 10.0], atol=1e-9)
  np.testing.assert_allclose(got[1, 1], 20.0, atol=1e-9)


def test_windows_and_silence_rules():
  rng = np.random.default_rng(2)
  n = int(4.5 * SR)  # 4 full windows; the partial one is dropped.
  refs = rng.standard_normal((2, n, 2))
  est = refs + 0.1 * rng.standard_normal(refs.shape)
  est[1, SR:2 * SR] = 0.0  # silent estimate -> window 1 NaN for ALL sources.
  refs[0, 2 * SR:3 * SR, 1] = -refs[0, 2 * SR:3 * SR, 0]  # anti-phase: silent.
  est[0, 3 * SR:3 * SR + 100] = 0.0  # partly silent: still evaluated.
  refs[0, 4 * SR:] = 0.0  # silent partial tail: dropped, no effect.
  got = sdr.sdr_per_window(refs, est)
  assert got.shape == (2, 4)
  np.testing.assert_array_equal(np.isnan(got),
                                [[False, True, True, False]] * 2)
  np.testing.assert_allclose(
      got[0, 3], _simple_sdr(refs[0, 3 * SR:4 * SR], est[0, 3 * SR:4 * SR]))
  # Track score = nanmedian of the two valid windows.
  np.testing.assert_allclose(sdr.track_sdr(refs, est),
                             np.mean(got[:, [0, 3]], axis=1))


def test_short_signal_and_padding():
  rng = np.random.default_rng(3)
  refs = rng.standard_normal((2, 1000, 2))
  est = refs[:, :900] * 0.5  # shorter estimate: zero-padded as museval does.
  got = sdr.sdr_per_window(refs, est)
  assert got.shape == (2, 1)  # one window over the whole (short) signal.
  padded = np.pad(est, [(0, 0), (0, 100), (0, 0)])
  np.testing.assert_allclose(got[:, 0],
                             [_simple_sdr(refs[j], padded[j]) for j in (0, 1)])
  # Longer estimate: truncated.
  long_est = np.concatenate([refs * 0.5, np.ones((2, 50, 2))], axis=1)
  np.testing.assert_allclose(
      sdr.sdr_per_window(refs, long_est), 6.020599913279624, atol=1e-9)


def test_num_windows_matches_museval_framing():
  metrics = pytest.importorskip('museval.metrics')
  for n, win, hop in [(5 * SR, SR, SR), (5 * SR + 1, SR, SR),
                      (5 * SR - 1, SR, SR), (SR, SR, SR), (100, SR, SR),
                      (10 * SR, 2 * SR, SR // 2), (7 * SR + 123, 3 * SR, SR)]:
    framer = metrics.Framing(win, hop, n)
    assert sdr.num_windows(n, win, hop) == framer.nwin
    # Same windows: compare overlapped window sums with museval's slices.
    x = np.arange(n, dtype=np.float64)[None] % 97
    sums = sdr._frames(x, win, hop, framer.nwin)[0].sum(axis=-1)
    np.testing.assert_array_equal(sums, [x[0, s].sum() for s in framer])


def test_aggregation_and_table():
  per_window = np.array([[1.0, np.nan, 3.0, np.inf, 2.0],
                         [np.nan] * 5])
  np.testing.assert_array_equal(sdr.median_over_windows(per_window),
                                [2.0, np.nan])
  tracks = [np.array([1.0, np.nan]), np.array([3.0, 4.0]),
            np.array([np.nan, 6.0]), np.array([5.0, 2.0])]
  np.testing.assert_array_equal(sdr.aggregate_tracks(tracks), [3.0, 4.0])
  table = sdr.format_table(
      {'model': dict(vocals=1.0, bass=2.0, drums=3.0, other=4.0),
       'mixture': dict(vocals=-1.0, bass=np.nan)})
  lines = table.splitlines()
  assert lines[0] == '| | vocals | bass | drums | other | Avg |'
  assert lines[2] == '| model | 1.00 | 2.00 | 3.00 | 4.00 | 2.50 |'
  assert lines[3] == '| mixture | -1.00 | n/a | n/a | n/a | n/a |'


# ---------------------------------------------------------------------------
# Parity with museval on rendered music.


def test_museval_parity_on_rendered_music(stems):
  museval = pytest.importorskip('museval')
  refs = stems.copy()
  est = _degrade(refs)
  # Window 2: estimate of "bass" silent -> museval NaNs every source.
  est[1, 2 * SR:3 * SR] = 0.0
  # Window 3: reference of "vocals" silent (its estimate still leaks).
  refs[0, 3 * SR:4 * SR] = 0.0
  # Window 4: anti-phase "other" reference (nonzero energy, zero L+R sum).
  refs[3, 4 * SR:5 * SR, 1] = -refs[3, 4 * SR:5 * SR, 0]
  # Window 5: only part of an estimate and most of a reference silent.
  est[2, 5 * SR:5 * SR + SR // 2] = 0.0
  refs[0, 5 * SR:6 * SR - 1] = 0.0
  # Silent in the dropped partial window only: must not matter.
  refs[2, 6 * SR:] = 0.0

  expected = museval.evaluate(refs, est, win=SR, hop=SR, mode='v4')[0]
  got = sdr.sdr_per_window(refs, est)
  assert got.shape == expected.shape == (4, 6)
  np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
  np.testing.assert_array_equal(np.isnan(got[0]),
                                [False, False, True, True, True, False])
  np.testing.assert_allclose(got, expected, atol=TOL_DB, rtol=0)
  # Much tighter in practice: the filters cancel analytically.
  assert np.nanmax(np.abs(got - expected)) < 1e-6

  # Track and multi-track aggregation against museval's own stores, with a
  # second, short track (signal shorter than a window: a single window).
  short_refs = stems[[0, 2], :int(0.8 * SR)]
  short_est = _degrade(short_refs, seed=1)
  short_expected = museval.evaluate(short_refs, short_est, win=SR, hop=SR)[0]
  short_got = sdr.sdr_per_window(short_refs, short_est)
  assert short_got.shape == (2, 1)
  np.testing.assert_allclose(short_got, short_expected, atol=1e-6, rtol=0)

  names = list(sdr.MUSDB_SOURCES)
  store = museval.EvalStore()
  for track, values, targets in [('a', expected, names),
                                 ('b', short_expected, ['vocals', 'drums'])]:
    ts = museval.TrackStore(track_name=track)
    for target, sdr_values in zip(targets, values):
      nan = [np.nan] * len(sdr_values)
      ts.add_target(target, dict(SDR=list(sdr_values), SIR=nan, ISR=nan,
                                 SAR=nan))
    store.add_track(ts)
  museval_table = store.agg_frames_tracks_scores().unstack()['SDR']
  track_a = sdr.track_sdr(refs, est)
  track_b = np.full(4, np.nan)
  track_b[[0, 2]] = sdr.track_sdr(short_refs, short_est)
  ours = sdr.aggregate_tracks([track_a, track_b])
  for j, name in enumerate(names):
    # 1e-4: TrackStore quantizes per-window values to 1e-5 dB.
    np.testing.assert_allclose(ours[j], museval_table[name], atol=1e-4)


def test_museval_rejects_silent_source_we_return_nan(stems):
  museval = pytest.importorskip('museval')
  refs = stems[:2, :SR].copy()
  refs[1] = 0.0
  est = _degrade(refs)
  # museval refuses a reference that is silent over the whole track; the
  # per-window rule makes every window NaN, which is what we return.
  with pytest.raises(ValueError):
    museval.evaluate(refs, est, win=SR, hop=SR)
  assert np.all(np.isnan(sdr.sdr_per_window(refs, est)))


def test_museval_parity_float32_mono(stems):
  museval = pytest.importorskip('museval')
  # Mono float32 stems (museval keeps the input dtype), 2.3 s: cheap solves.
  refs = stems[[1, 2], :int(2.3 * SR), :1].astype(np.float32)
  est = _degrade(refs.astype(np.float64), seed=2).astype(np.float32)
  est[0, SR:2 * SR] = 0.0
  expected = museval.evaluate(refs, est, win=SR, hop=SR)[0]
  got = sdr.sdr_per_window(refs[..., 0], est[..., 0])  # 2-D input = mono.
  np.testing.assert_array_equal(np.isnan(got), [[False, True]] * 2)
  np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
