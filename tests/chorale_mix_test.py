"""Tests of data_prep.chorale_mix: layout, audio format, stems summing to the mixture, splits, reproducibility, musdb.

Renders a few tracks of a few seconds (FluidSynth + FluidR3 GM); skipped where pyfluidsynth or a soundfont is missing.
"""
import filecmp
import json
import os

import numpy as np
import pytest

from data_prep import chorale_mix

SECONDS = 3.0
NUM_TRACKS = 3  # 1 test, 2 train of which 1 validation


pytestmark = pytest.mark.skipif(not chorale_mix.renderer_available(),
                                reason='needs pyfluidsynth and a GM soundfont')


def _read(path):
  import soundfile  # pylint: disable=g-import-not-at-top
  audio, rate = soundfile.read(path, dtype='int16', always_2d=True)
  return audio, rate


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
  root = str(tmp_path_factory.mktemp('chorale_mix'))
  dirs = chorale_mix.render(root, num_tracks=NUM_TRACKS, seconds=SECONDS, seed=7, workers=1, progress=False)
  return root, dirs


def test_split_rule_has_musdb18_proportions():
  assert chorale_mix.split_counts(150) == {'train': 100, 'validation': 14, 'test': 50}
  assert chorale_mix.split_counts(20) == {'train': 13, 'validation': 2, 'test': 7}
  for n in range(3, 40):
    counts = chorale_mix.split_counts(n)
    assert counts['test'] >= 1 and counts['validation'] >= 1 and counts['train'] > counts['validation']


def test_every_tune_lies_in_one_split():
  # A tune's tracks all share the split of its first track, and a new tune takes its position's split.
  plans = chorale_mix.plan_tracks(80, seed=0)  # 11 of these tracks share a tune with another one
  moved = [p.name for p in plans if (p.subset, p.validation) != chorale_mix.split_of(p.index)]
  assert 'BWV_244.15 - ChoraleMix' in moved
  split_of_tune = {}
  for plan in plans:
    split = (plan.subset, plan.validation)
    tune = chorale_mix.tune_of(plan.chorale.path)
    if tune not in split_of_tune:
      assert split == chorale_mix.split_of(plan.index), plan.name
    assert split_of_tune.setdefault(tune, split) == split, plan.name
  # Two harmonizations of the Passion chorale are one tune; another chorale is not.
  corpus = {c.name: c.path for c in chorale_mix.list_chorales()}
  assert chorale_mix.tune_of(corpus['bach/bwv244.15']) == chorale_mix.tune_of(corpus['bach/bwv244.54'])
  assert chorale_mix.tune_of(corpus['bach/bwv244.15']) != chorale_mix.tune_of(corpus['bach/bwv269'])


def test_layout_and_audio_format(dataset):
  root, dirs = dataset
  assert len(dirs) == NUM_TRACKS and len(set(dirs)) == NUM_TRACKS
  subsets = sorted(os.path.basename(os.path.dirname(d)) for d in dirs)
  assert subsets == ['test', 'train', 'train']
  import soundfile  # pylint: disable=g-import-not-at-top
  for d in dirs:
    assert os.path.basename(d).endswith(' - ChoraleMix')
    assert sorted(os.listdir(d)) == sorted(s + '.wav' for s in chorale_mix.STEMS)
    lengths = set()
    for stem in chorale_mix.STEMS:
      info = soundfile.info(os.path.join(d, stem + '.wav'))
      assert (info.samplerate, info.channels, info.subtype, info.format) == (44100, 2, 'PCM_16', 'WAV')
      lengths.add(info.frames)
    assert lengths == {int(SECONDS * 44100)}


def test_mixture_is_sum_of_stems_and_no_stem_silent(dataset):
  _, dirs = dataset
  for d in dirs:
    stems = {s: _read(os.path.join(d, s + '.wav'))[0].astype(np.int32) for s in chorale_mix.STEMS}
    total = sum(stems[s] for s in chorale_mix.SOURCES)
    np.testing.assert_array_equal(total, stems['mixture'])
    assert np.max(np.abs(stems['mixture'])) <= 0.91 * 32768  # scaled to peak at ~0.9: never clips
    for s in chorale_mix.SOURCES:
      rms_db = 20 * np.log10(np.sqrt(np.mean((stems[s] / 32768.0) ** 2)))
      assert rms_db > -40, (d, s, rms_db)
    # Stem levels are balanced (drums are not 10 dB under the rest).
    levels = [np.sqrt(np.mean(stems[s].astype(np.float64) ** 2)) for s in chorale_mix.SOURCES]
    assert 20 * np.log10(max(levels) / min(levels)) < 8


def test_split_files_and_metadata(dataset):
  root, dirs = dataset
  with open(os.path.join(root, 'validation_tracks.txt'), encoding='utf-8') as f:
    validation = [l.strip() for l in f if l.strip()]
  train = sorted(os.listdir(os.path.join(root, 'train')))
  assert len(validation) == 1 and set(validation) <= set(train)
  with open(os.path.join(root, 'chorale_mix.json'), encoding='utf-8') as f:
    meta = json.load(f)
  assert meta['seed'] == 7 and len(meta['tracks']) == NUM_TRACKS
  for d in dirs:
    record = meta['tracks'][os.path.basename(d)]
    assert 72 <= record['tempo_qpm'] <= 100 and -5 <= record['transpose'] <= 5
    assert record['chorale'].startswith('bach/bwv')
    assert record['subset'] == os.path.basename(os.path.dirname(d))
    assert record['validation'] == (os.path.basename(d) in validation)


def test_same_seed_identical_bytes_and_rerun_skips(dataset, tmp_path):
  root, dirs = dataset
  other = str(tmp_path / 'again')
  dirs2 = chorale_mix.render(other, num_tracks=2, seconds=SECONDS, seed=7, workers=1, progress=False)
  # plan_tracks(n)[:m] == plan_tracks(m): the first two tracks are the same tracks, byte for byte.
  for d, d2 in zip(dirs, dirs2):
    assert os.path.basename(d) == os.path.basename(d2)
    for stem in chorale_mix.STEMS:
      assert filecmp.cmp(os.path.join(d, stem + '.wav'), os.path.join(d2, stem + '.wav'), shallow=False)
  # A rerun keeps complete tracks instead of rendering them again.
  mtimes = {d: os.path.getmtime(os.path.join(d, 'mixture.wav')) for d in dirs2}
  chorale_mix.render(other, num_tracks=2, seconds=SECONDS, seed=7, workers=1, progress=False)
  assert mtimes == {d: os.path.getmtime(os.path.join(d, 'mixture.wav')) for d in dirs2}


def test_render_independent_of_synth_history():
  # Workers reuse one synth for many tracks: a track must not depend on what that synth rendered before.
  plans = chorale_mix.plan_tracks(2, seed=3)
  fresh = chorale_mix.Renderer()
  used = chorale_mix.Renderer()
  try:
    chorale_mix.render_track(plans[0], 2.0, used)
    a, _ = chorale_mix.render_track(plans[1], 2.0, fresh)
    b, _ = chorale_mix.render_track(plans[1], 2.0, used)
  finally:
    fresh.close()
    used.close()
  for stem in chorale_mix.STEMS:
    np.testing.assert_array_equal(a[stem], b[stem])


def test_different_seed_different_audio():
  renderer = chorale_mix.Renderer()
  try:
    a, ra = chorale_mix.render_track(chorale_mix.plan_tracks(1, seed=1)[0], 2.0, renderer)
    b, rb = chorale_mix.render_track(chorale_mix.plan_tracks(1, seed=2)[0], 2.0, renderer)
  finally:
    renderer.close()
  assert ra['tempo_qpm'] != rb['tempo_qpm']
  assert not np.array_equal(a['mixture'], b['mixture'])


def test_musdb_reads_the_dataset(dataset):
  musdb = pytest.importorskip('musdb')
  root, dirs = dataset
  db = musdb.DB(root=root, is_wav=True)
  assert sorted(t.name for t in db.tracks) == sorted(os.path.basename(d) for d in dirs)
  assert len(musdb.DB(root=root, is_wav=True, subsets='test').tracks) == 1
  valid = musdb.DB(root=root, is_wav=True, subsets='train', split='valid', setup_file='musdb_setup.yaml')
  with open(os.path.join(root, 'validation_tracks.txt'), encoding='utf-8') as f:
    assert [t.name for t in valid.tracks] == [f.read().strip()]
  track = db.tracks[0]
  assert track.rate == 44100
  mixture = track.audio
  total = sum(track.targets[s].audio for s in chorale_mix.SOURCES)
  assert mixture.shape == (int(SECONDS * 44100), 2)
  np.testing.assert_allclose(total, mixture, atol=4 / 32768)
  np.testing.assert_allclose(track.targets['linear_mixture'].audio, mixture, atol=4 / 32768)
  assert set(track.sources) == set(chorale_mix.SOURCES)


def test_worker_processes_write_identical_files(dataset, tmp_path):
  # --workers renders in spawned processes, each with its own synth and a different share of the tracks.
  root, dirs = dataset
  other = str(tmp_path / 'workers')
  dirs2 = chorale_mix.render(other, num_tracks=NUM_TRACKS, seconds=SECONDS, seed=7, workers=2, progress=False)
  assert [os.path.relpath(d, other) for d in dirs2] == [os.path.relpath(d, root) for d in dirs]
  for d, d2 in zip(dirs, dirs2):
    for stem in chorale_mix.STEMS:
      assert filecmp.cmp(os.path.join(d, stem + '.wav'), os.path.join(d2, stem + '.wav'), shallow=False)


def test_stale_tracks_of_another_size_are_removed(tmp_path):
  root = str(tmp_path / 'grow_shrink')
  dirs = chorale_mix.render(root, num_tracks=4, seconds=1.5, seed=5, workers=1, progress=False)
  kept = chorale_mix.render(root, num_tracks=3, seconds=1.5, seed=5, workers=1, progress=False)
  assert kept == dirs[:3] and not os.path.exists(dirs[3])
  listed = sorted(os.path.join(root, s, n) for s in ('train', 'test') for n in os.listdir(os.path.join(root, s)))
  assert listed == sorted(kept)
