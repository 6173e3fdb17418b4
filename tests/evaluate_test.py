"""End-to-end tests of evaluation, analysis and the separation CLI on rendered ChoraleMix tracks and a ci checkpoint.

The checkpoint is a ci train state with random weights saved with checkpointing.save, exactly as
train_and_evaluate saves it (training steps add nothing these tests check, and cost ~1 min on a busy 2-core CPU).
ChoraleMix tracks (44.1 kHz) are resampled to the ci model's 8 kHz. Skipped where FluidSynth or a soundfont is
missing.
"""
import json
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile
from flax import nnx

from data_prep import chorale_mix
from srcvq_jax import analysis
from srcvq_jax import checkpointing
from srcvq_jax import errors
from srcvq_jax import eval_report
from srcvq_jax import evaluate
from srcvq_jax import inference
from srcvq_jax import loop
from srcvq_jax import models
from srcvq_jax import separate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ('vocals', 'bass', 'drums', 'other')


needs_renderer = pytest.mark.skipif(not chorale_mix.renderer_available(),
                                    reason='needs pyfluidsynth and a GM soundfont')


@pytest.fixture(scope='module')
def musdb_root(tmp_path_factory):
  """4 tracks of 3 s: 2 test, 2 train (musdb's test split has tracks 0 and 3 of the seed's order)."""
  root = str(tmp_path_factory.mktemp('chorale_mix'))
  chorale_mix.render(root, num_tracks=4, seconds=3.0, seed=1, workers=1, progress=False)
  return root


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  """A ci checkpoint with random weights (see inference_test.random_state for why NumPy-random)."""
  from configs import ci  # pylint: disable=g-import-not-at-top
  config = ci.get_config()
  config.data.source = 'synthetic'
  _, abstract = models.split_params(nnx.eval_shape(lambda: models.create(config)))
  tx = loop.create_optimizer(config)
  abstract = jax.eval_shape(lambda p: {'params': p, 'opt_state': tx.init(p), 'step': jnp.zeros((), jnp.int32)},
                            abstract)
  rng = np.random.default_rng(0)
  state = jax.tree.map(lambda x: jnp.asarray(
      rng.normal(size=x.shape) / np.sqrt(np.prod(x.shape[:-1])) if len(x.shape) >= 2 else np.zeros(x.shape),
      x.dtype), abstract)
  path = str(tmp_path_factory.mktemp('run'))
  manager = checkpointing.create_manager(path, async_save=False)
  checkpointing.save(manager, 2, state, config.to_dict())  # what train_and_evaluate calls
  manager.wait_until_finished()
  manager.close()
  return path


def _is_number(value):
  return isinstance(value, (int, float)) and math.isfinite(value)


@needs_renderer
def test_evaluate_writes_every_row_source_and_analysis(workdir, musdb_root, tmp_path):
  out = str(tmp_path / 'eval')
  results = evaluate.run(workdir, 'test', musdb_root=musdb_root, out_dir=out, progress=False)
  with open(os.path.join(out, 'results.json'), encoding='utf-8') as f:
    saved = json.load(f)
  assert saved == results
  assert set(saved['sdr']) == {'model', 'oracle', 'mixture', 'silence', 'mixture_x0.25'}
  assert {'leakage_db', 'own_correlation', 'other_correlation'} <= set(saved['source_awareness'])
  assert all(_is_number(v) for v in saved['source_awareness']['leakage_db'].values())
  matrix = saved['source_awareness']['leakage_matrix_db']
  assert list(matrix) == list(SOURCES) and all(matrix[s][s] == 0.0 for s in SOURCES)
  for row, scores in saved['sdr'].items():
    assert set(scores) == set(SOURCES) | {'avg'}, row
    assert all(_is_number(v) for v in scores.values()), (row, scores)
    assert scores['avg'] == pytest.approx(np.mean([scores[s] for s in SOURCES]))
  assert all(v == 0.0 for v in saved['sdr']['silence'].values())
  # 0.25 x mixture scores 20 log10(4) ~ 12 dB more than the mixture only when the sources are orthogonal: just order.
  assert saved['sdr']['mixture_x0.25']['avg'] > saved['sdr']['mixture']['avg']
  assert saved['data']['tracks'] == 2 and len(saved['tracks']) == 2
  assert saved['data']['dataset_sample_rates'] == [44100] and saved['data']['model_sample_rate'] == 8000
  assert saved['data']['resampled']
  for track in saved['tracks']:
    assert track['seconds'] == pytest.approx(3.0, abs=0.01)
    assert set(track['sdr']) == set(saved['sdr'])
  # ci model: 8000 / 16 frames/s x 4 sources x 2 codebooks x log2(16) bits.
  assert saved['bitrate_kbps'] == pytest.approx(8000 / 16 * 4 * 2 * 4 / 1000)
  codebook = saved['codebook']
  assert set(codebook['per_source']) == set(SOURCES)
  for stats in codebook['per_source'].values():
    assert len(stats['perplexity']) == 2 and all(1.0 <= p <= 16.0 for p in stats['perplexity'])
    assert all(0.0 < u <= 1.0 for u in stats['used_fraction'])
  analysis = saved['analysis']
  assert analysis['points'] >= 8 and _is_number(analysis['silhouette']) and -1 <= analysis['silhouette'] <= 1
  assert _is_number(analysis['knn_accuracy']) and 0 <= analysis['knn_accuracy'] <= 1
  with open(os.path.join(out, 'tsne.png'), 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  assert saved['timing']['realtime_factor'] > 0 and saved['timing']['audio_s'] == pytest.approx(6.0, abs=0.02)
  with open(os.path.join(out, 'results.md'), encoding='utf-8') as f:
    report = f.read()
  assert '| | vocals | bass | drums | other | Avg |' in report and 'smoke-level' in report
  assert eval_report.format_table(saved).count('\n') == 6  # header, rule, 5 rows


def _write_root(root, tracks, rate):
  """A MUSDB18-HQ layout of test tracks {name: seconds} at `rate`: distinct tones and noise per stem, their sum."""
  import soundfile as sf  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  for k, (name, seconds) in enumerate(tracks.items()):
    folder = os.path.join(root, 'test', name)
    os.makedirs(folder)
    t = np.arange(int(seconds * rate)) / rate
    stems = [0.2 * np.sin(2 * np.pi * (110 + 90 * i + 7 * k) * t)[:, None] * (1 + 0.5 * np.sin(t * (i + 1)))[:, None]
             + 0.02 * rng.normal(size=(len(t), 2)) for i in range(4)]
    for stem, audio in zip(list(SOURCES) + ['mixture'], stems + [sum(stems)]):
      sf.write(os.path.join(folder, f'{stem}.wav'), audio.astype(np.float32), rate, subtype='FLOAT')


def test_scores_in_blocks_equal_the_whole_tracks(workdir, tmp_path):
  """--block_seconds=1: each track (16 kHz wavs, an 8 kHz model) read from disk and scored in 1 s blocks, each
  with its context: the same table, reconstruction, source awareness, code statistics and latents as whole."""
  root = str(tmp_path / 'root')
  _write_root(root, {'A - Long': 3.5, 'B - Long': 2.25}, 16000)
  whole = evaluate.run(workdir, 'test', musdb_root=root, out_dir=str(tmp_path / 'whole'), progress=False)
  blocks = evaluate.run(workdir, 'test', musdb_root=root, out_dir=str(tmp_path / 'blocks'), progress=False,
                        block_seconds=1.0)
  assert [t['blocks'] for t in whole['tracks']] == [1, 1] and [t['blocks'] for t in blocks['tracks']] == [4, 3]
  for row in whole['sdr']:
    for source, value in whole['sdr'][row].items():
      assert blocks['sdr'][row][source] == pytest.approx(value, abs=1e-3), (row, source)
  for a, b in zip(whole['tracks'], blocks['tracks']):
    assert b['reconstruction_sdr'] == pytest.approx(a['reconstruction_sdr'], abs=1e-3)
  for name, scores in whole['source_awareness'].items():
    if isinstance(scores, dict):
      for source, value in scores.items():
        assert blocks['source_awareness'][name][source] == pytest.approx(value, rel=1e-4, abs=1e-4), (name, source)
  assert blocks['codebook']['frames'] == whole['codebook']['frames']
  assert blocks['codebook']['perplexity'] == pytest.approx(whole['codebook']['perplexity'], rel=1e-3)
  assert blocks['analysis']['points'] == whole['analysis']['points']
  assert blocks['timing']['audio_s'] == pytest.approx(whole['timing']['audio_s'])


def test_masked_sources_score_in_blocks_as_whole_and_label_the_row(workdir, tmp_path):
  """--masked_sources: the post-filter's model row is the same whole or in 1 s blocks, differs from the codes'
  row only for the masked source, and says that it read the mixture."""
  root = str(tmp_path / 'root')
  _write_root(root, {'A - Long': 2.5}, 16000)
  kwargs = dict(musdb_root=root, progress=False, run_analysis=False, run_leakage=False)
  codes = evaluate.run(workdir, 'test', out_dir=str(tmp_path / 'codes'), **kwargs)
  whole = evaluate.run(workdir, 'test', out_dir=str(tmp_path / 'whole'), masked_sources='other', **kwargs)
  blocks = evaluate.run(workdir, 'test', out_dir=str(tmp_path / 'blocks'), masked_sources='other',
                        block_seconds=1.0, **kwargs)
  assert whole['masked_sources'] == ['other'] and codes['masked_sources'] == []
  assert 'other as masks of the mixture' in whole['row_titles']['model']
  assert blocks['tracks'][0]['blocks'] == 3
  for source in SOURCES:
    assert blocks['sdr']['model'][source] == pytest.approx(whole['sdr']['model'][source], abs=1e-3), source
    if source != 'other':
      assert whole['sdr']['model'][source] == pytest.approx(codes['sdr']['model'][source], abs=1e-6), source
  assert whole['sdr']['model']['other'] != pytest.approx(codes['sdr']['model']['other'], abs=1e-3)
  with pytest.raises(errors.UserError, match='--masked_sources: masked sources piano'):
    evaluate.run(workdir, 'test', out_dir=str(tmp_path / 'bad'), masked_sources='piano', **kwargs)


@needs_renderer
@pytest.mark.slow
def test_museval_agrees_with_the_table(workdir, musdb_root, tmp_path):
  """museval's filter fitting takes ~15 s per track whatever its length: one track."""
  out = str(tmp_path / 'eval')
  results = evaluate.run(workdir, 'test', musdb_root=musdb_root, out_dir=out, max_tracks=1, max_seconds=2.0,
                         run_museval=True, run_analysis=False, progress=False)
  assert results['museval']['max_abs_sdr_diff_db'] < 0.01
  for source in SOURCES:
    assert results['museval']['scores']['SDR'][source] == pytest.approx(results['sdr']['model'][source], abs=0.01)
  (name,) = [t['name'] for t in results['tracks']]
  assert os.path.isfile(os.path.join(out, 'museval', name + '.json'))
  assert 'analysis' not in results


@needs_renderer
def test_evaluate_data_errors_are_user_errors(workdir, musdb_root, tmp_path):
  with pytest.raises(errors.UserError, match='--split=bogus'):
    evaluate.run(workdir, 'bogus', musdb_root=musdb_root, out_dir=str(tmp_path))
  with pytest.raises(errors.UserError, match='no such directory'):
    evaluate.run(workdir, 'test', musdb_root=str(tmp_path / 'missing'), out_dir=str(tmp_path))
  with pytest.raises(errors.UserError, match='no data'):  # the ci config has no data_dir
    evaluate.run(workdir, 'test', out_dir=str(tmp_path))


def _write_inputs(folder, musdb_root):
  """A mono 22.05 kHz file, a stereo 44.1 kHz ChoraleMix mixture, and bad inputs."""
  rng = np.random.default_rng(0)
  t = np.arange(int(2.3 * 22050)) / 22050
  mono = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.normal(size=t.shape)).astype(np.float32)
  paths = {'mono': os.path.join(folder, 'mono.wav'),
           'stereo': os.path.join(musdb_root, 'test', sorted(os.listdir(os.path.join(musdb_root, 'test')))[0],
                                  'mixture.wav'),
           'three': os.path.join(folder, 'three.wav'), 'empty': os.path.join(folder, 'empty.wav'),
           'garbage': os.path.join(folder, 'garbage.wav'), 'missing': os.path.join(folder, 'missing.wav')}
  soundfile.write(paths['mono'], mono, 22050)
  soundfile.write(paths['three'], np.zeros((800, 3), np.float32), 8000)
  soundfile.write(paths['empty'], np.zeros((0, 2), np.float32), 44100)
  with open(paths['garbage'], 'w', encoding='utf-8') as f:
    f.write('not audio\n')
  return paths


@needs_renderer
def test_separate_keeps_rate_length_and_channels(workdir, musdb_root, tmp_path):
  paths = _write_inputs(str(tmp_path), musdb_root)
  separator = inference.load(workdir)
  out = str(tmp_path / 'stems')
  order = ['mono', 'three', 'stereo', 'empty', 'garbage', 'missing']
  failures = separate.separate_files(separator, [paths[k] for k in order], out, progress=False)
  problems = {path: problem for path, problem in failures}
  assert set(problems) == {paths['three'], paths['empty'], paths['garbage'], paths['missing']}
  assert '3 channels' in problems[paths['three']] and 'no audio samples' in problems[paths['empty']]
  assert 'cannot read audio' in problems[paths['garbage']] and 'no such file' in problems[paths['missing']]
  for key, folder in (('mono', 'mono'), ('stereo', 'mixture')):
    info = soundfile.info(paths[key])
    for source in SOURCES:
      written = soundfile.info(os.path.join(out, folder, source + '.wav'))
      assert (written.samplerate, written.frames, written.channels) == (info.samplerate, info.frames,
                                                                         info.channels), (key, source)
    audio, _ = soundfile.read(os.path.join(out, folder, 'bass.wav'))
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0


def test_cli_errors_are_one_line(workdir, tmp_path):
  good = str(tmp_path / 'short.wav')
  soundfile.write(good, 0.1 * np.ones((8000, 1), np.float32), 16000)
  three = str(tmp_path / 'three.wav')
  soundfile.write(three, np.zeros((100, 3), np.float32), 16000)
  missing = str(tmp_path / 'missing.wav')
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu', 'TF_CPP_MIN_LOG_LEVEL': '3'}
  out = str(tmp_path / 'stems')
  proc = subprocess.run([sys.executable, '-m', 'srcvq_jax.separate', good, missing, three, f'--workdir={workdir}',
                         f'--out={out}'], cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                        check=False)
  assert proc.returncode == 1, proc.stderr
  errors = [line for line in proc.stderr.splitlines() if line.strip()]
  assert errors == [f'error: {missing}: no such file',
                    f'error: {three}: 3 channels; only mono and stereo are supported'], proc.stderr
  assert sorted(os.listdir(os.path.join(out, 'short'))) == sorted(s + '.wav' for s in SOURCES)
  proc = subprocess.run([sys.executable, '-m', 'srcvq_jax.separate', good, f'--workdir={workdir}', f'--out={out}',
                         '--masked_sources=vocals,piano'], cwd=REPO, env=env, capture_output=True, text=True,
                        timeout=300, check=False)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines() == [
      'error: --masked_sources: masked sources piano: not a source of this model (expected "all" or names from '
      'vocals,bass,drums,other)'], proc.stderr

  proc = subprocess.run([sys.executable, '-m', 'srcvq_jax.evaluate', f'--workdir={tmp_path / "nope"}'], cwd=REPO,
                        env=env, capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines() == [
      f'error: {tmp_path / "nope"}: no such directory (expected a training workdir or an export dir)']


def test_code_usage_perplexity_and_bitrate():
  usage = analysis.CodeUsage(num_sources=2, num_codebooks=1, codebook_size=4)
  codes = np.zeros((8, 2, 1), np.int64)
  codes[:, 0, 0] = [0, 1, 2, 3, 0, 1, 2, 3]  # source 0: uniform over 4 entries; source 1: always entry 0
  usage.add(codes)
  summary = usage.summary(('a', 'b'), frames_per_second=10.0)
  assert summary['per_source']['a']['perplexity'] == [pytest.approx(4.0)]
  assert summary['per_source']['b']['perplexity'] == [pytest.approx(1.0)]
  assert summary['per_source']['a']['used_fraction'] == [1.0] and summary['per_source']['b']['used_fraction'] == [0.25]
  assert summary['entropy_kbps'] == pytest.approx(10.0 * 2.0 / 1e3)  # 2 bits + 0 bits per frame
  assert analysis.bitrate_kbps(44100 / 256, 4 * 2, 64) == pytest.approx(44100 / 256 * 4 * 2 * 6 / 1e3)


def test_cluster_scores_and_tsne(tmp_path):
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(3), 12)
  groups = np.tile(np.repeat(np.arange(3), 4), 3)  # 3 tracks, 4 windows of each source per track
  separated = rng.normal(size=(36, 8)) * 0.1 + 5.0 * np.eye(3, 8)[labels]
  scores = analysis.cluster_scores(separated, labels, groups)
  assert scores['silhouette'] > 0.8 and scores['knn_accuracy'] == 1.0 and scores['knn_folds'] == 3
  mixed = analysis.cluster_scores(rng.normal(size=(36, 8)), labels, groups)
  assert mixed['silhouette'] < 0.2 and mixed['knn_chance'] == pytest.approx(1 / 3)
  assert analysis.cluster_scores(separated[:2], labels[:2], groups[:2])['silhouette'] is None
  assert analysis.plot_tsne(separated, labels, ('a', 'b', 'c'), str(tmp_path / 't.png'))
  assert os.path.getsize(tmp_path / 't.png') > 1000


def test_slot_embeddings_skip_inactive_windows_and_cap_points():
  embeddings = analysis.SlotEmbeddings()
  vectors = np.ones((2, 40, 3), np.float32)  # 2 sources, 40 frames, 4 windows of 10 frames
  stems = np.full((2, 160, 2), 0.1, np.float32)  # stride 4
  stems[1, 80:] = 0.0  # source 1 is silent in windows 2 and 3
  embeddings.add(vectors, stems, frames_per_window=10, stride=4, track=0)
  points, labels, groups = embeddings.arrays()
  assert points.shape == (6, 3) and embeddings.inactive == 2
  assert list(np.bincount(labels)) == [4, 2] and (groups == 0).all()
  capped, capped_labels, _ = embeddings.arrays(max_points=4)
  assert len(capped) == 4 and list(np.bincount(capped_labels)) == [2, 2]


def test_tsne_of_collapsed_codes_is_skipped_not_a_crash(tmp_path):
  """Identical points (collapsed codes) would segfault sklearn's t-SNE: the plot is skipped, the scores stay."""
  embeddings = analysis.SlotEmbeddings()
  stems = np.ones((4, 16 * 40, 2), np.float32)
  embeddings.add(np.ones((4, 40, 8), np.float32), stems, frames_per_window=4, stride=16, track=0)
  summary = analysis.embedding_summary(embeddings, SOURCES, str(tmp_path / 'tsne.png'), shared_codebooks=False)
  assert summary['points'] == 40 and summary['tsne_png'] is None and not os.path.exists(tmp_path / 'tsne.png')


def test_source_awareness_scores_can_fail():
  from srcvq_jax import analysis  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  stems = rng.normal(size=(4, 800, 2)).astype(np.float32) * 0.1
  # A source-aware model: stem i decodes into slot i only (a little into the others).
  routed = np.zeros((4, 4, 800, 2), np.float32)
  for i in range(4):
    routed[i, i] = stems[i]
    routed[i, [j for j in range(4) if j != i]] = 0.01 * stems[i]
  np.testing.assert_allclose(analysis.slot_leakage_db(routed, stems), -40.0, atol=1e-4)
  # Slots that all decode alike (an untrained model): 0 dB; no leak at all: the floor.
  alike = np.broadcast_to(stems[:, None], (4, 4, 800, 2))
  np.testing.assert_allclose(analysis.slot_leakage_db(alike, stems), 0.0, atol=1e-9)
  silent_others = np.zeros_like(routed)
  silent_others[np.arange(4), np.arange(4)] = stems
  np.testing.assert_array_equal(analysis.slot_leakage_db(silent_others, stems), analysis.LEAKAGE_FLOOR_DB)
  # The matrix says where a stem goes: stem 3 routed half into slot 0 (-6 dB there), the rest as before.
  confused = routed.copy()
  confused[3, 0] = 0.5 * stems[3]
  sums = analysis.AwarenessSums(4)
  sums.add(confused, None, stems)
  matrix = sums.leakage_matrix_db()
  np.testing.assert_allclose(np.diag(matrix), 0.0, atol=1e-9)
  np.testing.assert_allclose(matrix[3, 0], 20 * np.log10(0.5), atol=1e-4)
  np.testing.assert_allclose(matrix[3, 1:3], -40.0, atol=1e-4)
  np.testing.assert_allclose(matrix[:3][~np.eye(4, dtype=bool)[:3]], -40.0, atol=1e-4)
  # Separations: own reference vs the others' (a slot that outputs the mixture reproduces all alike).
  own, other = analysis.slot_correlations(stems, stems)
  np.testing.assert_allclose(own, 1.0)
  assert np.all(other < 0.01)
  own, other = analysis.slot_correlations(np.broadcast_to(stems.sum(0), stems.shape), stems)
  assert np.all(np.abs(own - other) < 0.05)
