"""Tests of srcvq_jax.codes: the file format, edits in code space, per-frame decoding, the command line."""
import json
import os

import jax
import numpy as np
import pytest
import soundfile

import inference_test  # tests/ is on sys.path (pytest's rootdir-less import of test modules)
from srcvq_jax import checkpointing
from srcvq_jax import codes as codes_lib
from srcvq_jax import inference

WINDOW = inference_test.WINDOW
LENGTH = 3007  # several windows of the ci model, not a multiple of its stride (16)


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
  """(separator of a ci-config checkpoint, its workdir, a random stereo mixture at the model's rate)."""
  from configs import ci  # pylint: disable=g-import-not-at-top
  config = ci.get_config()
  workdir = tmp_path_factory.mktemp('codes') / 'run'
  inference_test.save_checkpoint(config, workdir)
  separator = inference.load(str(workdir), window=WINDOW)
  mixture = np.random.default_rng(0).normal(scale=0.3, size=(LENGTH, 2)).astype(np.float32)
  return separator, str(workdir), mixture


def _codes(setup, seed=0, length=LENGTH):
  separator, _, _ = setup
  audio = np.random.default_rng(seed).normal(scale=0.3, size=(length, 2)).astype(np.float32)
  return codes_lib.encode_audio(separator, audio, separator.sample_rate), audio


def test_file_round_trip_holds_only_integers(setup, tmp_path):
  codes, _ = _codes(setup)
  path = str(tmp_path / 'song.codes.npz')
  codes_lib.save(path, codes)
  with np.load(path, allow_pickle=False) as data:
    assert data['codes'].dtype == np.uint8  # K = 16 (ci config)
    assert data['active'].dtype == bool
    assert all(data[k].dtype.kind not in 'fc' for k in data.files)
    meta = json.loads(str(data['meta']))
  assert meta['num_samples'] == LENGTH and meta['sources'] == ['vocals', 'bass', 'drums', 'other'] and meta['fingerprint'] == codes.fingerprint
  loaded = codes_lib.load(path)
  np.testing.assert_array_equal(loaded.codes, codes.codes)
  np.testing.assert_array_equal(loaded.active, codes.active)
  assert loaded.replace(codes=None, active=None) == codes.replace(codes=None, active=None)
  assert codes_lib.code_dtype(1000) == np.uint16 and codes_lib.code_dtype(256) == np.uint8


def test_decode_equals_separate(setup):
  separator, _, mixture = setup
  codes = codes_lib.encode_audio(separator, mixture, separator.sample_rate)
  np.testing.assert_array_equal(codes.codes, separator.encode(mixture))
  decoded = codes_lib.decode_audio(separator, codes)
  np.testing.assert_allclose(decoded, separator.separate(mixture), atol=1e-5)


def test_other_rate_and_mono_come_back_at_their_own_rate_and_channels(setup):
  separator, _, _ = setup
  mono = np.random.default_rng(1).normal(scale=0.3, size=(4410, 1)).astype(np.float32)
  codes = codes_lib.encode_audio(separator, mono, 11025)
  assert codes.sample_rate == 11025 and codes.channels == 1 and codes.num_samples == 4410
  assert codes.num_frames == -(-3200 // separator.stride)  # 0.4 s at the model's 8 kHz
  decoded = codes_lib.decode_audio(separator, codes, together=True)
  assert decoded.shape == (1, 4410, 1) and np.all(np.isfinite(decoded))


def test_mute_equals_decoding_without_the_source(setup):
  """Muting the vocals slot for frames [20, 120) through per-frame masks equals the whole-track selection without vocals
  (Separator.apply's path) inside the range and with them outside it, away from the range's edges."""
  separator, _, mixture = setup
  codes = codes_lib.encode_audio(separator, mixture, separator.sample_rate)
  first, last = 20, 120
  muted = codes_lib.apply_edits(codes, [('range', f'{first}f:{last}f'), ('mute', 'vocals')])
  assert not muted.active[first:last, 0].any() and muted.active[:first].all() and muted.active[last:].all()
  decoded = codes_lib.decode_audio(separator, muted, together=True)[0]
  without_a = separator.apply(mixture, np.array([0.0, 1.0, 1.0, 1.0]))
  with_a = separator.apply(mixture, np.ones(4))
  margin, stride = separator.margin, separator.stride
  inside = slice(first * stride + margin, last * stride - margin)
  np.testing.assert_allclose(decoded[inside], without_a[inside], atol=1e-5)
  np.testing.assert_allclose(decoded[:first * stride - margin], with_a[:first * stride - margin], atol=1e-5)
  np.testing.assert_allclose(decoded[last * stride + margin:], with_a[last * stride + margin:], atol=1e-5)
  assert np.abs(decoded[inside] - with_a[inside]).max() > 1e-3  # the edit is audible


def test_each_edit_changes_only_its_slot_and_frames(setup, tmp_path):
  codes, _ = _codes(setup)
  other, _ = _codes(setup, seed=5, length=1000)  # shorter: looped
  other_path = str(tmp_path / 'other.codes.npz')
  codes_lib.save(other_path, other)
  first, last = 30, 90
  frames = codes.num_frames
  for edit in (('mute', 'bass'), ('solo', 'vocals'), ('swap', f'bass:{other_path}'), ('shift', 'bass:+7'), ('shift', 'bass:-7')):
    edited = codes_lib.apply_edits(codes, [('range', f'{first}f:{last}f'), edit])
    changed_codes = (edited.codes != codes.codes).any(-1)
    changed = changed_codes | (edited.active != codes.active)
    assert changed.any(), edit
    outside = np.ones(frames, bool)
    outside[first:last] = False
    assert not changed[outside].any(), edit
    assert not changed[:, 0].any(), edit  # slot vocals untouched (solo=vocals changes the others only)
  swapped = codes_lib.apply_edits(codes, [('swap', f'bass:{other_path}')])
  np.testing.assert_array_equal(swapped.codes[:, 1], other.codes[np.arange(frames) % other.num_frames, 1])
  shifted = codes_lib.shift(codes, 'bass', 7)
  np.testing.assert_array_equal(shifted.codes[7:, 1], codes.codes[:-7, 1])
  assert not shifted.active[:7, 1].any() and shifted.active[7:, 1].all()


def test_edits_compose_in_order(setup, tmp_path):
  codes, _ = _codes(setup)
  other, _ = _codes(setup, seed=3)
  path = str(tmp_path / 'other.codes.npz')
  codes_lib.save(path, other)
  one = codes_lib.apply_edits(codes, [('shift', 'bass:+5'), ('swap', f'bass:{path}')])
  two = codes_lib.apply_edits(codes, [('swap', f'bass:{path}'), ('shift', 'bass:+5')])
  expected_one = codes_lib.swap(codes_lib.shift(codes, 'bass', 5), 'bass', other)
  expected_two = codes_lib.shift(codes_lib.swap(codes, 'bass', other), 'bass', 5)
  np.testing.assert_array_equal(one.codes, expected_one.codes)
  np.testing.assert_array_equal(two.codes, expected_two.codes)
  assert (one.codes != two.codes).any()
  ranged = codes_lib.apply_edits(codes, [('range', '0f:10f'), ('mute', 'vocals'), ('range', '10f:20f'), ('mute', 'bass')])
  assert not ranged.active[:10, 0].any() and ranged.active[10:, 0].all()
  assert not ranged.active[10:20, 1].any() and ranged.active[:10, 1].all() and ranged.active[20:, 1].all()


def test_swapped_source_decodes_as_the_other_songs(setup, tmp_path):
  separator, _, _ = setup
  song_a, _ = _codes(setup, seed=0)
  song_b, _ = _codes(setup, seed=1, length=LENGTH + 800)
  swapped = codes_lib.swap(song_a, 'bass', song_b)
  alone = codes_lib.decode_audio(separator, swapped, ['bass'])[0]
  b_alone = codes_lib.decode_audio(separator, song_b, ['bass'])[0][:LENGTH]
  end = LENGTH - separator.margin  # A ends there; B goes on (the decoder's receptive field sees it)
  np.testing.assert_allclose(alone[:end], b_alone[:end], atol=1e-5)


def test_fingerprint_tells_models_apart(setup, tmp_path):
  separator, workdir, mixture = setup
  codes = codes_lib.encode_audio(separator, mixture, separator.sample_rate)
  params = jax.device_get(separator.params)
  checkpointing.save_export(str(tmp_path / 'export'), params, separator.config.to_dict())
  exported = inference.load(str(tmp_path / 'export'), window=WINDOW)
  assert codes_lib.separator_fingerprint(exported) == codes.fingerprint
  changed = jax.tree.map(np.copy, params)
  changed['decoder']['from_slots']['bias'] = changed['decoder']['from_slots']['bias'] + 1e-3
  other = inference.Separator(separator.config, separator.graphdef, changed, window=WINDOW)
  fingerprint = codes_lib.separator_fingerprint(other)
  assert fingerprint != codes.fingerprint
  with pytest.raises(codes_lib.CodesError, match=f'model {codes.fingerprint}.*model {fingerprint}'):
    codes_lib.decode_audio(other, codes)
  # The encoder does not take part: codes stay decodable when only it differs.
  encoder_only = jax.tree.map(np.copy, params)
  encoder_only['encoder'] = jax.tree.map(lambda x: x + 1.0, encoder_only['encoder'])
  assert codes_lib.model_fingerprint(separator.config, encoder_only) == codes.fingerprint


def test_command_line_encode_edit_decode(setup, tmp_path, capsys):
  separator, workdir, _ = setup
  audio = np.random.default_rng(2).normal(scale=0.3, size=(6000, 2)).astype(np.float32)
  soundfile.write(str(tmp_path / 'song.wav'), audio, 12000, subtype='FLOAT')
  song = str(tmp_path / 'song.codes.npz')
  codes_lib.run(['encode', str(tmp_path / 'song.wav'), '--workdir', workdir, '--out', song])
  assert 'kbit/s raw' in capsys.readouterr().out
  edited = str(tmp_path / 'edited.codes.npz')
  codes_lib.run(['edit', song, '--out', edited, '--range=0.1:0.3', '--mute=vocals'])
  codes_lib.run(['decode', edited, '--workdir', workdir, '--out', str(tmp_path / 'stems')])
  codes_lib.run(['decode', edited, '--workdir', workdir, '--out', str(tmp_path / 'mix.wav'), '--mix',
                 '--sources=vocals,bass', '--subtype=FLOAT'])
  stems = {name: soundfile.read(str(tmp_path / 'stems' / f'{name}.wav')) for name in ('vocals', 'bass', 'drums', 'other')}
  mix, rate = soundfile.read(str(tmp_path / 'mix.wav'), always_2d=True)
  assert rate == 12000 and mix.shape == (6000, 2)
  assert all(r == 12000 and x.shape == (6000, 2) for x, r in stems.values())
  expected = codes_lib.decode_audio(separator, codes_lib.load(edited), ['vocals', 'bass'], together=True)[0]
  np.testing.assert_allclose(mix, expected, atol=1e-6)


@pytest.mark.parametrize('args, message', [
    (['edit', '{missing}', '--out', '{out}', '--mute=vocals'], 'no such file'),
    (['edit', '{corrupt}', '--out', '{out}', '--mute=vocals'], 'not a readable codes file'),
    (['edit', '{song}', '--out', '{out}', '--mute=piano'], "unknown source 'piano'"),
    (['edit', '{song}', '--out', '{out}', '--range=0f:99999f', '--mute=vocals'], 'not within'),
    (['edit', '{song}', '--out', '{out}', '--range=abc', '--mute=vocals'], 'expected START:END'),
    (['edit', '{song}', '--out', '{out}', '--shift=vocals:x'], 'not a whole number'),
    (['edit', '{song}', '--out', '{out}', '--swap=vocals:{other_model}'], 'of model'),
    (['edit', '{song}', '--out', '{out}', '--swap=vocals:{other_shape}'], 'do not match'),
    (['edit', '{song}', '--out', '{out}'], 'no edit given'),
    (['decode', '{song}', '--workdir', '{workdir}', '--out', '{out}', '--sources=z'], "unknown source 'z'"),
    (['decode', '{other_model}', '--workdir', '{workdir}', '--out', '{out}'], 'of model'),
    (['encode', '{missing}', '--workdir', '{workdir}', '--out', '{out}'], 'no such file'),
])
def test_bad_input_is_one_line(setup, tmp_path, capsys, args, message):
  separator, workdir, _ = setup
  codes, _ = _codes(setup)
  paths = {'missing': str(tmp_path / 'missing.codes.npz'), 'corrupt': str(tmp_path / 'corrupt.codes.npz'),
           'song': str(tmp_path / 'song.codes.npz'), 'other_model': str(tmp_path / 'other.codes.npz'),
           'other_shape': str(tmp_path / 'shape.codes.npz'), 'out': str(tmp_path / 'out'), 'workdir': workdir}
  with open(paths['corrupt'], 'wb') as f:
    f.write(b'PK\x03\x04 not really a zip')
  codes_lib.save(paths['song'], codes)
  codes_lib.save(paths['other_model'], codes.replace(fingerprint='0123456789abcdef'))
  codes_lib.save(paths['other_shape'], codes.replace(codes=codes.codes[..., :1]))
  with pytest.raises(SystemExit):
    codes_lib.main([a.format(**paths) for a in args])
  err = capsys.readouterr().err.strip()
  assert err.startswith('error: ') and '\n' not in err and message in err, err
  assert not os.path.exists(paths['out'])


def test_codes_per_source_is_kept_in_the_file_and_counted_in_the_bitrate(tmp_path):
  """A model whose sources use different numbers of codes: its files say so, the raw bitrate counts only the
  used codes, and the fingerprint differs from the uniform model's (same params)."""
  from configs import ci  # pylint: disable=g-import-not-at-top
  config = ci.get_config()
  q = config.quantizer
  q.kind, q.fsq_levels, q.code_dim, q.codebook_size = 'fsq', (5, 3), 2, 15
  uniform_workdir = tmp_path / 'uniform'
  inference_test.save_checkpoint(config, uniform_workdir)
  q.codes_per_source = (2, 1, 2, 2)
  workdir = tmp_path / 'run'
  inference_test.save_checkpoint(config, workdir)
  separator = inference.load(str(workdir), window=WINDOW)
  audio = np.random.default_rng(1).normal(scale=0.3, size=(LENGTH, 2)).astype(np.float32)
  codes = codes_lib.encode_audio(separator, audio, separator.sample_rate)
  assert codes.codes_per_source == (2, 1, 2, 2) and (codes.codes[:, 1, 1] == 0).all()
  path = str(tmp_path / 'song.codes.npz')
  codes_lib.save(path, codes)
  loaded = codes_lib.load(path)
  assert loaded.codes_per_source == (2, 1, 2, 2)
  assert loaded.raw_bitrate() == pytest.approx(separator.frames_per_second * 7 * np.log2(15))
  uniform = inference.load(str(uniform_workdir), window=WINDOW)
  assert codes_lib.separator_fingerprint(uniform) != codes.fingerprint
  assert codes_lib.encode_audio(uniform, audio, uniform.sample_rate).codes_per_source is None
