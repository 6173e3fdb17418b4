"""Tests of data_prep: listing/checking MUSDB18-layout roots, the TFDS builder (chunks/tracks), the CLI, bad input.

Every dataset here is written by the test itself (a few seconds of synthetic int16 stems per track), in the
MUSDB18-HQ wav layout and, with stempeg + ffmpeg, as MUSDB18 .stem.mp4 files.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

tfds = pytest.importorskip('tensorflow_datasets')
musdb = pytest.importorskip('musdb')

from data_prep import build as build_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from data_prep import musdb18  # pylint: disable=g-import-not-at-top,wrong-import-position

RATE = 44100
STEMS = ('vocals', 'bass', 'drums', 'other')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# --- Writing tiny datasets --------------------------------------------------------------------------------------


def make_stems(seed: int, seconds: float, rate: int = RATE, channels: int = 2) -> dict[str, np.ndarray]:
  """Four int16 [T, channels] stems: tones and noise bursts small enough that their sum never clips."""
  rng = np.random.default_rng(seed)
  n = int(seconds * rate)
  t = np.arange(n) / rate
  stems = {}
  for k, name in enumerate(STEMS):
    mono = np.sin(2 * np.pi * rng.uniform(80, 2000) * t) + 0.3 * rng.standard_normal(n) * (k == 2)
    pan = rng.uniform(0.4, 1.0, size=channels)
    stems[name] = np.round(4000 * mono[:, None] * pan[None, :]).astype(np.int16)
  return stems


def write_wav_track(root: str, subset: str, name: str, stems: dict[str, np.ndarray], rate: int = RATE) -> str:
  """Writes <root>/<subset>/<name>/{mixture,stems}.wav (PCM_16); mixture = exact sum of the stems."""
  folder = os.path.join(root, subset, name)
  os.makedirs(folder, exist_ok=True)
  for stem, audio in stems.items():
    sf.write(os.path.join(folder, stem + '.wav'), audio, rate, subtype='PCM_16')
  mixture = np.sum([a.astype(np.int32) for a in stems.values()], axis=0).astype(np.int16)
  sf.write(os.path.join(folder, 'mixture.wav'), mixture, rate, subtype='PCM_16')
  return folder


def make_wav_root(root: str, tracks, validation=None) -> str:
  """tracks: (subset, name, seconds) triples; validation: names for validation_tracks.txt (None: no file)."""
  for i, (subset, name, seconds) in enumerate(tracks):
    write_wav_track(root, subset, name, make_stems(i, seconds))
  if validation is not None:
    with open(os.path.join(root, 'validation_tracks.txt'), 'w') as f:
      f.write('# validation subset of train\n' + '\n'.join(validation) + '\n')
  return root


def write_stem_mp4(path: str, stems: dict[str, np.ndarray], streams: int = 5) -> None:
  """Writes a MUSDB18 .stem.mp4 (AAC streams: mixture, drums, bass, other, vocals), `streams` of them."""
  import stempeg  # pylint: disable=g-import-not-at-top

  order = [sum(s.astype(np.float32) for s in stems.values())] + [stems[n].astype(np.float32)
                                                                 for n in ('drums', 'bass', 'other', 'vocals')]
  data = np.stack(order[:streams]) / 32768.0
  stempeg.write_stems(path, data, sample_rate=RATE, writer=stempeg.StreamsWriter(codec='aac', bitrate=256000))


# Main fixture dataset: 3 train tracks (one of them listed for validation) + 1 test track, 1 s chunks.
TRACKS = [('train', 'Alpha - One', 2.5), ('train', 'Beta - Two', 2.0), ('train', 'Val - Three', 1.5),
          ('test', 'Test - Four', 2.2)]
CHUNK_SECONDS = 1.0


@pytest.fixture(scope='module')
def wav_root(tmp_path_factory):
  root = str(tmp_path_factory.mktemp('hq'))
  make_wav_root(root, TRACKS, validation=['Val - Three'])
  return root


@pytest.fixture(scope='module')
def built(wav_root, tmp_path_factory):
  """The fixture dataset built with both configs (2 shards per split) under its own name."""
  data_dir = str(tmp_path_factory.mktemp('tfds'))
  counts = build_lib.build('chorale_mix', wav_root, data_dir, is_wav=True, chunk_seconds=CHUNK_SECONDS,
                           num_shards=2)
  return data_dir, counts


def read_split(data_dir, name, config, split):
  version = '1.1.0' if config == 'tracks' else '1.0.0'  # the tracks config stores pieces since 1.1.0
  builder = tfds.builder_from_directory(os.path.join(data_dir, name, config, version))
  return builder, list(builder.as_dataset(split=split).as_numpy_iterator())


# --- Listing -----------------------------------------------------------------------------------------------------


def test_musdb_lists_wav_tracks_and_stems_sum_to_mixture(wav_root):
  db = musdb.DB(root=wav_root, is_wav=True, subsets='train')
  assert sorted(t.name for t in db.tracks) == ['Alpha - One', 'Beta - Two', 'Val - Three']
  track = db.tracks[0]
  assert track.rate == RATE
  total = sum(track.sources[name].audio for name in STEMS)
  np.testing.assert_allclose(total, track.audio, atol=1e-6)


def test_list_tracks_uses_validation_list(wav_root):
  splits = musdb18.list_tracks(wav_root, is_wav=True)
  names = {k: [t.name for t in v] for k, v in splits.items()}
  assert names == {'train': ['Alpha - One', 'Beta - Two'], 'validation': ['Val - Three'], 'test': ['Test - Four']}
  assert splits['train'][0].num_samples == int(2.5 * RATE)


def test_list_tracks_official_validation_without_list(tmp_path):
  # 'Leaf - Summerghost' is on musdb's official validation list; without validation_tracks.txt it must be used.
  root = make_wav_root(str(tmp_path), [('train', 'Leaf - Summerghost', 0.2), ('train', 'Other - Song', 0.2),
                                       ('test', 'Test - Song', 0.2)])
  names = {k: [t.name for t in v] for k, v in musdb18.list_tracks(root, is_wav=True).items()}
  assert names == {'train': ['Other - Song'], 'validation': ['Leaf - Summerghost'], 'test': ['Test - Song']}


def test_chunk_offsets():
  assert musdb18.chunk_offsets(100, 40) == [0, 40, 60]  # last chunk aligned to the end
  assert musdb18.chunk_offsets(80, 40) == [0, 40]
  assert musdb18.chunk_offsets(30, 40) == [0]  # shorter than a chunk: one shorter example
  assert musdb18.chunk_offsets(100, None) == [0]


# --- Builder -----------------------------------------------------------------------------------------------------


def expected_chunks(seconds):
  n, chunk = int(seconds * RATE), int(CHUNK_SECONDS * RATE)
  return [(o, min(o + chunk, n)) for o in musdb18.chunk_offsets(n, chunk)]


def test_build_writes_sharded_tfrecords_and_dataset_info(built):
  data_dir, counts = built
  folder = os.path.join(data_dir, 'chorale_mix', 'chunks', '1.0.0')
  with open(os.path.join(folder, 'dataset_info.json')) as f:
    info = json.load(f)
  assert info['name'] == 'chorale_mix' and info['configName'] == 'chunks'
  splits = {s['name']: s for s in info['splits']}
  assert set(splits) == {'train', 'validation', 'test'}
  expected = {'train': len(expected_chunks(2.5)) + len(expected_chunks(2.0)),
              'validation': len(expected_chunks(1.5)), 'test': len(expected_chunks(2.2))}
  assert counts['chunks'] == expected
  for split in expected:
    assert len(splits[split]['shardLengths']) == 2
    files = [f for f in os.listdir(folder) if f.startswith(f'chorale_mix-{split}.tfrecord-')]
    assert len(files) == 2
  metadata = json.load(open(os.path.join(folder, 'metadata.json')))
  assert metadata['sample_rate'] == RATE and metadata['sources'] == list(STEMS)
  assert metadata['tracks'] == {'train': ['Alpha - One', 'Beta - Two'], 'validation': ['Val - Three'],
                                'test': ['Test - Four']}
  assert counts['tracks'] == {'train': 2, 'validation': 1, 'test': 1}


def test_chunks_hold_the_exact_stems(built, wav_root):
  data_dir, _ = built
  builder, examples = read_split(data_dir, 'chorale_mix', 'chunks', 'train')
  features = builder.info.features
  assert features['vocals'].shape == (None, 2) and features['vocals'].np_dtype == np.int16
  assert 'mixture' not in features
  seen = set()
  for ex in examples:
    name = ex['track'].decode()
    offset = int(ex['offset'])
    assert ex['sample_rate'] == RATE
    for stem in STEMS:
      audio = ex[stem]
      assert audio.dtype == np.int16 and audio.ndim == 2 and audio.shape[1] == 2
      wav, _ = sf.read(os.path.join(wav_root, 'train', name, stem + '.wav'), dtype='int16')
      np.testing.assert_array_equal(audio, wav[offset:offset + audio.shape[0]])
    seen.add((name, offset, offset + ex['vocals'].shape[0]))
  assert seen == ({('Alpha - One',) + c for c in expected_chunks(2.5)} |
                  {('Beta - Two',) + c for c in expected_chunks(2.0)})


def test_tracks_config_holds_whole_tracks(built):
  data_dir, _ = built
  _, examples = read_split(data_dir, 'chorale_mix', 'tracks', 'test')
  assert len(examples) == 1
  assert examples[0]['track'] == b'Test - Four' and examples[0]['offset'] == 0
  assert examples[0]['drums'].shape == (int(2.2 * RATE), 2)


def test_build_is_reused_and_checks_chunk_length(built, wav_root):
  data_dir, counts = built
  assert build_lib.build('chorale_mix', wav_root, data_dir, is_wav=True, chunk_seconds=CHUNK_SECONDS) == counts
  with pytest.raises(musdb18.DataError, match='already built with chunk_seconds=1.0'):
    build_lib.build('chorale_mix', wav_root, data_dir, is_wav=True, chunk_seconds=2.0)


def test_stem_mp4_path(tmp_path):
  root = str(tmp_path / 'musdb18')
  sources = {}
  for subset, name, seconds in [('train', 'Stem - One', 1.3), ('train', 'Stem - Two', 1.0),
                                ('test', 'Stem - Test', 1.1)]:
    os.makedirs(os.path.join(root, subset), exist_ok=True)
    sources[name] = make_stems(len(sources), seconds)
    write_stem_mp4(os.path.join(root, subset, name + '.stem.mp4'), sources[name])
  # musdb reads them (drums, bass, other, vocals are streams 1..4).
  db = musdb.DB(root=root, subsets='test')
  assert [t.name for t in db.tracks] == ['Stem - Test']
  data_dir = str(tmp_path / 'tfds')
  counts = build_lib.build('musdb18', root, data_dir, chunk_seconds=1.0, configs=('chunks',))
  # No validation_tracks.txt and no official validation names: the validation split is left out.
  assert counts['chunks'] == {'train': 2 + 1, 'test': 2}
  _, examples = read_split(data_dir, 'musdb18', 'chunks', 'train')
  for ex in examples:
    reference = sources[ex['track'].decode()]
    offset = int(ex['offset'])
    for stem in STEMS:
      audio = ex[stem].astype(np.float64)
      ref = reference[stem][offset:offset + audio.shape[0]].astype(np.float64)
      assert audio.shape == ref.shape  # AAC padding trimmed to the true length
      snr = 10 * np.log10(np.sum(ref**2) / np.sum((audio - ref)**2))
      assert snr > 15, (ex['track'], stem, snr)  # lossy, but the same signal, in the right slot


# --- Bad input: one clear DataError naming the file, before anything is written ---------------------------------


@pytest.fixture
def good_root(tmp_path):
  return make_wav_root(str(tmp_path / 'root'), [('train', 'Good - A', 0.5), ('test', 'Good - B', 0.5)])


def track_file(root, stem, track='Good - A'):
  return os.path.join(root, 'train', track, stem + '.wav')


def assert_bad(root, *patterns, is_wav=True):
  with pytest.raises(musdb18.DataError) as e:
    musdb18.list_tracks(root, is_wav=is_wav)
  message = str(e.value)
  assert '\n' not in message
  for p in patterns:
    assert p in message, message
  return message


def test_bad_corrupt_wav(good_root):
  with open(track_file(good_root, 'bass'), 'wb') as f:
    f.write(b'RIFF\x00\x00not a wav at all')
  assert_bad(good_root, track_file(good_root, 'bass'), 'cannot read audio')


def test_bad_wrong_sample_rate(good_root):
  sf.write(track_file(good_root, 'vocals'), make_stems(0, 0.5, rate=22050)['vocals'], 22050)
  assert_bad(good_root, track_file(good_root, 'vocals'), 'sample rate 22050 Hz, expected 44100 Hz')


@pytest.mark.parametrize('channels', [1, 5])
def test_bad_channel_count(good_root, channels):
  sf.write(track_file(good_root, 'drums'), make_stems(0, 0.5, channels=channels)['drums'], RATE)
  assert_bad(good_root, track_file(good_root, 'drums'), f'{channels} channel(s), expected 2')


def test_bad_missing_stem(good_root):
  os.remove(track_file(good_root, 'other'))
  assert_bad(good_root, os.path.join(good_root, 'train', 'Good - A'), 'missing stem(s) other.wav')


def test_bad_stems_of_different_lengths(good_root):
  sf.write(track_file(good_root, 'bass'), make_stems(0, 0.4)['bass'], RATE)
  assert_bad(good_root, os.path.join(good_root, 'train', 'Good - A'), 'stems differ in length')


def test_bad_empty_stem(good_root):
  sf.write(track_file(good_root, 'bass'), np.zeros((0, 2), np.int16), RATE)
  assert_bad(good_root, track_file(good_root, 'bass'), 'empty')


def test_bad_missing_and_empty_root(tmp_path):
  assert_bad(str(tmp_path / 'nowhere'), 'does not exist')
  assert_bad(str(tmp_path), 'no tracks found')
  os.makedirs(tmp_path / 'train' / 'Some - Track')
  with pytest.raises(musdb18.DataError, match='pass --is_wav'):
    musdb18.list_tracks(str(tmp_path), is_wav=False)


def test_bad_validation_list_names_unknown_track(good_root):
  with open(os.path.join(good_root, 'validation_tracks.txt'), 'w') as f:
    f.write('Typo - Track\n')
  assert_bad(good_root, 'validation_tracks.txt', "'Typo - Track'")


def test_bad_stem_mp4(tmp_path):
  root = str(tmp_path)
  os.makedirs(os.path.join(root, 'train'))
  bad = os.path.join(root, 'train', 'Broken - One.stem.mp4')
  with open(bad, 'wb') as f:
    f.write(b'\x00\x00\x00\x18ftypmp42 garbage')
  assert_bad(root, bad, 'cannot read audio', is_wav=False)
  os.remove(bad)
  four = os.path.join(root, 'train', 'Four - Streams.stem.mp4')
  write_stem_mp4(four, make_stems(0, 0.3), streams=4)
  assert_bad(root, four, '4 audio stream(s), expected 5', 'missing stem', is_wav=False)


def test_bad_input_writes_nothing(good_root, tmp_path):
  os.remove(track_file(good_root, 'vocals'))
  data_dir = str(tmp_path / 'out')
  with pytest.raises(musdb18.DataError):
    build_lib.build('musdb18', good_root, data_dir, is_wav=True)
  assert not os.path.exists(data_dir) or not any(files for _, _, files in os.walk(data_dir))


def _generate(root, chunk_seconds=1.0):
  builder = musdb18.Musdb18(root=root, is_wav=True, data_dir=os.path.join(root, 'unused'))
  tracks = musdb18.list_tracks(root, is_wav=True)['train']
  generate = builder._generate_examples  # pylint: disable=protected-access
  return list(generate(tracks, True, int(chunk_seconds * RATE), 'train'))


def test_silent_stem_is_kept_and_logged(tmp_path, caplog):
  stems = make_stems(0, 0.5)
  stems['drums'][:] = 0
  root = str(tmp_path)
  write_wav_track(root, 'train', 'Quiet - Drums', stems)
  with caplog.at_level(logging.WARNING):
    examples = _generate(root, chunk_seconds=0.25)
  assert len(examples) == 2
  assert all(not ex['drums'].any() for _, ex in examples)
  assert 'stem drums is silent (kept)' in caplog.text and '1 silent stem(s) kept' in caplog.text


def test_short_track_is_one_shorter_example_and_logged(tmp_path, caplog):
  root = make_wav_root(str(tmp_path), [('train', 'Short - One', 0.3), ('train', 'Long - Two', 1.2)])
  with caplog.at_level(logging.WARNING):
    examples = _generate(root, chunk_seconds=1.0)
  lengths = sorted((ex['track'], ex['vocals'].shape[0]) for _, ex in examples)
  assert lengths == [('Long - Two', RATE), ('Long - Two', RATE), ('Short - One', int(0.3 * RATE))]
  assert '1 track(s) shorter than one chunk' in caplog.text


def test_truncated_wav(good_root):
  # libsndfile reports the frames actually present, so a cut file shows up as stems of different lengths.
  path = track_file(good_root, 'vocals')
  with open(path, 'rb') as f:
    data = f.read()
  with open(path, 'wb') as f:
    f.write(data[:len(data) // 2])
  assert_bad(good_root, os.path.join(good_root, 'train', 'Good - A'), 'stems differ in length', 'vocals.wav')


# --- CLI ---------------------------------------------------------------------------------------------------------


def run_cli(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  return subprocess.run([sys.executable, '-m', 'data_prep.build', *args], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=120, check=False)


def test_cli_bad_input_prints_one_line_and_exits_nonzero(good_root, tmp_path):
  os.remove(track_file(good_root, 'bass'))
  result = run_cli(f'--musdb_root={good_root}', '--is_wav', f'--data_dir={tmp_path / "out"}')
  assert result.returncode == 2
  assert 'Traceback' not in result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith('error: ') and 'Good - A' in last and 'missing stem(s) bass.wav' in last


@pytest.mark.slow
def test_cli_builds(wav_root, tmp_path):
  result = run_cli('--dataset=chorale_mix', f'--musdb_root={wav_root}', '--is_wav', f'--data_dir={tmp_path}',
                   '--chunk_seconds=1', '--configs=chunks')
  assert result.returncode == 0, result.stderr[-2000:]
  assert 'chorale_mix/chunks: train 5, validation 2, test 3 examples' in result.stdout
  assert os.path.exists(tmp_path / 'chorale_mix' / 'chunks' / '1.0.0' / 'dataset_info.json')
