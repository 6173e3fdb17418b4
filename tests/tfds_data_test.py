"""Tests of the TFDS input pipeline (srcvq_jax/tfds_data.py, crop_store.py): remix batches from the crop store,
eval batches, resampling, load_tracks, errors.

The dataset is written here: tiny MUSDB18-HQ-layout wav tracks built with data_prep's builder. All stems of track i
are tones of one frequency FREQS[i], so the track a source came from can be read off its spectrum.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from configs import ci
from srcvq_jax import batch_spec
from srcvq_jax import crop_store
from srcvq_jax import errors
from srcvq_jax import input_pipeline
from srcvq_jax import audio as audio_lib
from srcvq_jax import tfds_data

tf = pytest.importorskip('tensorflow')
pytest.importorskip('tensorflow_datasets')

from data_prep import build as build_lib  # pylint: disable=g-import-not-at-top,wrong-import-position

RATE = 44100
STEMS = ('vocals', 'bass', 'drums', 'other')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# (subset, name, seconds); four training tracks so that the four sources of an example can all differ.
TRACKS = [('train', 'A - Track', 1.2), ('train', 'B - Track', 1.2), ('train', 'C - Track', 1.3),
          ('train', 'D - Track', 1.2), ('train', 'V - Valid', 1.5), ('test', 'T - Test', 1.1)]
FREQS = {name: 300.0 + 250.0 * i for i, (_, name, _) in enumerate(TRACKS)}


def track_stems(name: str, seconds: float) -> dict[str, np.ndarray]:
  """Four int16 [T, 2] stems of one tone (the track's frequency), each with its own level and pan."""
  n = int(seconds * RATE)
  tone = np.sin(2 * np.pi * FREQS[name] * np.arange(n) / RATE)
  return {stem: np.round(tone[:, None] * np.array([[3000.0 + 1000 * k, 2000.0 + 500 * k]])).astype(np.int16)
          for k, stem in enumerate(STEMS)}


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
  """(data_dir, root) of the fixture dataset built as 'chorale_mix' with 1 s chunks."""
  root = str(tmp_path_factory.mktemp('root'))
  for subset, name, seconds in TRACKS:
    folder = os.path.join(root, subset, name)
    os.makedirs(folder)
    stems = track_stems(name, seconds)
    for stem, audio in stems.items():
      sf.write(os.path.join(folder, stem + '.wav'), audio, RATE, subtype='PCM_16')
    mixture = np.sum([a.astype(np.int32) for a in stems.values()], axis=0).astype(np.int16)
    sf.write(os.path.join(folder, 'mixture.wav'), mixture, RATE, subtype='PCM_16')
  with open(os.path.join(root, 'validation_tracks.txt'), 'w') as f:
    f.write('V - Valid\n')
  data_dir = str(tmp_path_factory.mktemp('tfds'))
  build_lib.build('chorale_mix', root, data_dir, is_wav=True, chunk_seconds=1.0)
  return data_dir, root


def make_config(data_dir, **data):
  config = ci.get_config()
  config.data.source = 'tfds'
  config.data.dataset = 'chorale_mix'
  config.data.data_dir = data_dir
  config.data.sample_rate = 22050
  config.data.segment_length = 4096
  config.data.batch_size = 8
  for k, v in data.items():
    config.data[k] = v
  return config


def take(config, split='train', n=1, seed=0, **kwargs):
  it = input_pipeline.create_batches(config, split, seed=seed, **kwargs)
  return [next(it) for _ in range(n)]


def track_of(audio: np.ndarray, rate: int) -> str:
  """The fixture track whose frequency is the spectral peak of audio [T, C]."""
  spectrum = np.abs(np.fft.rfft(audio.sum(axis=-1)))
  peak = np.argmax(spectrum) * rate / audio.shape[0]
  return min(FREQS, key=lambda name: abs(FREQS[name] - peak))


def check_spec(batch, config, batch_size=None):
  data = config.data
  b = batch_size or data.batch_size
  s, t, c = len(data.sources), data.segment_length, data.channels
  assert set(batch) == set(batch_spec.BATCH_KEYS)
  assert batch[batch_spec.MIXTURE].shape == (b, t, c)
  assert batch[batch_spec.SOURCES].shape == (b, s, t, c)
  assert batch[batch_spec.PRESENCE].shape == (b, s) and batch[batch_spec.SELECT].shape == (b, s)
  for v in batch.values():
    assert v.dtype == np.float32 and np.all(np.isfinite(v))
  presence, select = batch[batch_spec.PRESENCE], batch[batch_spec.SELECT]
  assert set(np.unique(presence)) <= {0.0, 1.0} and set(np.unique(select)) <= {0.0, 1.0}
  assert np.all(presence.sum(axis=1) >= 1)
  assert np.all(select <= presence)
  np.testing.assert_allclose(batch[batch_spec.MIXTURE], batch_spec.mix(batch[batch_spec.SOURCES], presence), atol=1e-6)


# --- Tests -------------------------------------------------------------------------------------------------------


def test_package_imports_without_tensorflow():
  code = ('import sys, srcvq_jax.input_pipeline, srcvq_jax.tfds_data, srcvq_jax.crop_store, srcvq_jax.audio; '
          'assert "tensorflow" not in sys.modules and "tensorflow_datasets" not in sys.modules; print("ok")')
  result = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True, check=False)
  assert result.stdout.strip() == 'ok', result.stderr


def test_train_batches_spec_masks_and_gains(dataset):
  config = make_config(dataset[0])
  batches = take(config, n=3)
  for batch in batches:
    check_spec(batch, config)
    # Stems peak at 6000/32768; gains are at most gain_max.
    assert np.abs(batch[batch_spec.SOURCES]).max() <= config.data.gain_max * 6000 / 32768 * 1.01
  presence = np.concatenate([b[batch_spec.PRESENCE] for b in batches])
  assert 0 < presence.mean() < 1  # masks vary (presence_prob 0.75)


def test_remix_draws_each_source_from_a_different_track(dataset):
  config = make_config(dataset[0])
  rate = config.data.sample_rate
  used = set()
  for batch in take(config, n=3):
    for example in batch[batch_spec.SOURCES]:
      tracks = [track_of(source, rate) for source in example]
      assert len(set(tracks)) == 4, tracks
      assert set(tracks) <= {'A - Track', 'B - Track', 'C - Track', 'D - Track'}  # train split only
      used.add(tuple(tracks))
  assert len(used) > 1  # the assignment of tracks to sources is random


def test_without_remix_sources_share_a_track(dataset):
  config = make_config(dataset[0], remix=False)
  batch = take(config)[0]
  check_spec(batch, config)
  for example in batch[batch_spec.SOURCES]:
    assert len({track_of(source, config.data.sample_rate) for source in example}) == 1


def test_remix_prob_keeps_some_examples_as_mixed_and_remixes_the_rest(dataset):
  config = make_config(dataset[0], remix_prob=0.5)
  rate = config.data.sample_rate
  counts = [len({track_of(source, rate) for source in example})
            for batch in take(config, n=4) for example in batch[batch_spec.SOURCES]]
  assert set(counts) == {1, 4}, counts  # as mixed (one track) or remixed (four), nothing in between
  assert 8 <= counts.count(1) <= 24, counts  # about half of 32


def test_same_seed_same_batches_other_seed_differs(dataset):
  config = make_config(dataset[0])
  first, second, other = take(config, n=3, seed=5), take(config, n=3, seed=5), take(config, n=3, seed=6)
  for a, b in zip(first, second):
    for key in batch_spec.BATCH_KEYS:
      np.testing.assert_array_equal(a[key], b[key])
  assert not np.array_equal(first[0][batch_spec.SOURCES], other[0][batch_spec.SOURCES])


def test_crops_are_exact_int16_at_the_dataset_rate(dataset):
  # No resampling (44.1 kHz model) and a fixed gain of 0.5: every value is an int16 sample / 32768 / 2.
  config = make_config(dataset[0], sample_rate=44100, gain_min=0.5, gain_max=0.5)
  batch = take(config)[0]
  check_spec(batch, config)
  scaled = batch[batch_spec.SOURCES] * 32768 * 2
  np.testing.assert_array_equal(scaled, np.round(scaled))
  assert np.abs(scaled).max() <= 32767


def test_eval_batches_are_fixed_crops_of_one_track(dataset):
  data_dir, root = dataset
  config = make_config(data_dir, sample_rate=44100)
  length = config.data.segment_length
  first, again = take(config, 'validation', n=2), take(config, 'validation', n=2)
  for a, b in zip(first, again):
    for key in batch_spec.BATCH_KEYS:
      np.testing.assert_array_equal(a[key], b[key])
  # Chunks of 'V - Valid' (1.5 s) start at 0 and 0.5 s; crops are consecutive within a chunk, no gain or swap.
  wavs = {stem: sf.read(os.path.join(root, 'train', 'V - Valid', stem + '.wav'), dtype='int16')[0] / 32768.0
          for stem in STEMS}
  starts = {chunk + k * length for chunk in (0, int(0.5 * RATE)) for k in range(RATE // length)}
  for batch in first:
    check_spec(batch, config)
    for example in batch[batch_spec.SOURCES]:
      # (A steady tone can repeat exactly at two starts: any start where all four stems match will do.)
      assert any(all(np.array_equal(example[s], wavs[stem][o:o + length]) for s, stem in enumerate(STEMS))
                 for o in starts)


def test_remix_with_fewer_tracks_than_sources_still_yields(dataset):
  # The validation split has one track: the remix repeats it instead of hanging.
  config = make_config(dataset[0])
  batch = next(crop_store.training_batches(config, 'validation', seed=0, start_step=0))
  check_spec(batch, config)


def test_processes_split_the_global_batch_and_a_resume_continues_the_stream(dataset):
  """Every training example is a function of (seed, split, step, index): two processes' local batches are the
  halves of the one-process global batch, and a stream started at step 2 is the uninterrupted one from step 2."""
  config = make_config(dataset[0])
  whole = take(config, n=3, seed=0)
  parts = [take(config, n=3, seed=0, process_index=i, process_count=2) for i in range(2)]
  resumed = take(config, n=1, seed=0, start_step=2)[0]
  for step in range(3):
    for key in batch_spec.BATCH_KEYS:
      np.testing.assert_array_equal(np.concatenate([parts[0][step][key], parts[1][step][key]]), whole[step][key])
  for key in batch_spec.BATCH_KEYS:
    np.testing.assert_array_equal(resumed[key], whole[2][key])
  assert not np.array_equal(whole[0][batch_spec.SOURCES], whole[1][batch_spec.SOURCES])


def test_crop_store_is_built_once_and_holds_the_decimated_chunks(dataset):
  data_dir, _ = dataset
  config = make_config(data_dir)  # 22.05 kHz: the store holds the chunks decimated by 2
  store = crop_store.open_store(config, 'train')
  index = os.stat(os.path.join(store.path, 'index.json'))
  again = crop_store.open_store(config, 'train')
  after = os.stat(os.path.join(again.path, 'index.json'))
  assert again.path == store.path and (after.st_ino, after.st_mtime_ns) == (index.st_ino, index.st_mtime_ns)
  assert not [name for name in os.listdir(os.path.dirname(store.path)) if '.tmp-' in name]
  assert set(store.track_names) == {'A - Track', 'B - Track', 'C - Track', 'D - Track'}
  builder, info = tfds_data.open_chunks(config, 'train')
  track, stems = next(tfds_data.split_chunks(builder, info, 'train', config.data.sources))
  assert info.ratio == 2 and stems.dtype == np.float32
  first = np.stack([store.audio[s][:store.lengths[0]] for s in range(4)])
  assert store.track_names[store.tracks[0]] == track
  np.testing.assert_allclose(first / 32768.0, stems, atol=1 / 32768)
  assert track_of(first[0].astype(np.float32), config.data.sample_rate) == track


def test_lowpass_decimation_passes_band_and_rejects_aliases():
  taps = audio_lib.lowpass_taps(2)
  n = 8192
  t = np.arange(n + len(taps) - 1) / RATE
  for freq, low, high in ((1000.0, -0.05, 0.05), (9000.0, -0.5, 0.05), (15000.0, -200, -60)):
    x = np.sin(2 * np.pi * freq * t).astype(np.float32)[None, :, None]  # [1, L, 1]
    y = audio_lib.decimate(tf.constant(x), taps, 2).numpy()  # pylint: disable=protected-access
    assert y.shape == (1, n // 2, 1)
    gain_db = 20 * np.log10(np.sqrt(2) * np.std(y) + 1e-12)
    assert low <= gain_db <= high, (freq, gain_db)


@pytest.mark.parametrize('ratio', [2, 3, 4])
def test_decimation_equals_scipy_upfirdn(ratio):
  # An independent reference with the same taps: upfirdn's full convolution, downsampled, starts (len - 1) / ratio
  # outputs before the first output whose window lies wholly inside the input ('VALID').
  scipy_signal = pytest.importorskip('scipy.signal')
  taps = audio_lib.lowpass_taps(ratio)
  offset = (len(taps) - 1) // ratio
  rng = np.random.default_rng(ratio)
  for shape in ((3, 5000, 2), (2, 4, 3001, 1)):  # [B, L, C] (load_tracks) and [B, S, L, C] (training batches)
    x = rng.uniform(-1, 1, shape).astype(np.float32)
    y = audio_lib.decimate(tf.constant(x), taps, ratio).numpy()  # pylint: disable=protected-access
    reference = scipy_signal.upfirdn(taps, x, down=ratio, axis=-2)[..., offset:offset + y.shape[-2], :]
    assert y.shape == shape[:-2] + ((shape[-2] - len(taps)) // ratio + 1, shape[-1])
    np.testing.assert_allclose(y, reference, rtol=0, atol=1e-6)


def test_onednn_is_as_the_environment_says():
  # tests/conftest.py turns oneDNN off unless the caller chose; tests/onednn_test.py reruns this file with it on.
  # TensorFlow's own report of the kernels it runs, so that neither run tests the other path by mistake.
  from tensorflow.python.util import _pywrap_util_port  # pylint: disable=g-import-not-at-top
  setting = os.environ.get('TF_ENABLE_ONEDNN_OPTS')
  if setting not in ('0', '1'):
    pytest.skip(f'TF_ENABLE_ONEDNN_OPTS={setting!r}: TensorFlow decides by the CPU')
  assert _pywrap_util_port.IsMklEnabled() == (setting == '1')


def test_load_tracks(dataset):
  data_dir, root = dataset
  wav = {stem: sf.read(os.path.join(root, 'test', 'T - Test', stem + '.wav'), dtype='int16')[0] / 32768.0
         for stem in STEMS}
  n = wav['vocals'].shape[0]
  tracks = list(tfds_data.load_tracks(make_config(data_dir, sample_rate=44100), 'test'))
  assert [name for name, _ in tracks] == ['T - Test']
  stems = tracks[0][1]
  assert stems.shape == (4, n, 2) and stems.dtype == np.float32
  for s, stem in enumerate(STEMS):
    np.testing.assert_array_equal(stems[s], wav[stem])
  # Resampled to 22.05 kHz: ceil(n / 2) samples, the tone kept.
  name, half = next(tfds_data.load_tracks(make_config(data_dir), 'test'))
  assert half.shape == (4, (n + 1) // 2, 2)
  assert track_of(half[0], 22050) == name
  # A mono model: the channels averaged.
  _, mono = next(tfds_data.load_tracks(make_config(data_dir, sample_rate=44100, channels=1), 'test'))
  np.testing.assert_allclose(mono[..., 0], stems.mean(axis=-1), atol=1e-7)


def test_long_tracks_are_stored_as_pieces_and_stitched_back(dataset, tmp_path, monkeypatch):
  """The tracks config keeps one record below protobuf's 2 GB by storing pieces (here 0.4 s instead of 60 s), in
  order; load_tracks stitches them into the track, equal to the wavs sample for sample."""
  from data_prep import musdb18  # pylint: disable=g-import-not-at-top
  _, root = dataset
  monkeypatch.setattr(musdb18, 'TRACK_PIECE_SECONDS', 0.4)
  data_dir = str(tmp_path / 'tfds')
  build_lib.build('chorale_mix', root, data_dir, is_wav=True, configs=('tracks',))
  builder = tfds_data._open_builder(make_config(data_dir), tfds_data.TRACKS_CONFIG)  # pylint: disable=protected-access
  examples = list(builder.as_dataset(split='train', shuffle_files=False).as_numpy_iterator())
  pieces = [(e['track'].decode(), int(e['offset'])) for e in examples]
  assert pieces[:3] == [('A - Track', 0), ('A - Track', int(0.4 * RATE)), ('A - Track', int(0.8 * RATE))]
  tracks = dict(tfds_data.load_tracks(make_config(data_dir, sample_rate=44100), 'train'))
  assert sorted(tracks) == ['A - Track', 'B - Track', 'C - Track', 'D - Track']
  for name, stems in tracks.items():
    for s, stem in enumerate(STEMS):
      wav = sf.read(os.path.join(root, 'train', name, stem + '.wav'), dtype='int16')[0] / 32768.0
      np.testing.assert_array_equal(stems[s], wav)


def test_clear_errors(dataset, tmp_path):
  data_dir, _ = dataset
  with pytest.raises(errors.DataError, match='not an integer multiple'):
    take(make_config(data_dir, sample_rate=16000))
  with pytest.raises(errors.DataError, match='data_prep.build'):
    take(make_config(str(tmp_path)))
  with pytest.raises(errors.DataError, match='data.data_dir is empty'):
    take(make_config(''))
  config = make_config(data_dir)
  config.data.sources = ('vocals', 'piano')
  with pytest.raises(errors.DataError, match='piano'):
    take(config)
  with pytest.raises(errors.DataError, match="no split 'holdout'"):
    take(make_config(data_dir), 'holdout')
