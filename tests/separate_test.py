"""Streamed separation (srcvq_jax.separate): block by block equals the whole file at once, at any input rate."""
import os

import numpy as np
import pytest
import soundfile

from srcvq_jax import inference
from srcvq_jax import separate
import inference_test  # tests/ is on sys.path


@pytest.fixture(scope='module')
def separator():
  from configs import ci  # pylint: disable=g-import-not-at-top
  config = ci.get_config()  # 8 kHz, stride 16
  graphdef, state = inference_test.random_state(config)
  return inference.Separator(config, graphdef, state['params'], window=inference_test.WINDOW, batch_size=4)


@pytest.mark.parametrize('rate, channels', [(8000, 2), (12000, 1), (44100, 2)])
def test_streamed_blocks_equal_the_whole_file(separator, tmp_path, rate, channels):
  """0.7 s blocks over a 4.3 s file (7 blocks, each with its context) give what one whole-file call gives."""
  rng = np.random.default_rng(rate)
  t = np.arange(int(4.3 * rate)) / rate
  audio = (0.3 * np.sin(2 * np.pi * 330 * t)[:, None] + 0.1 * rng.normal(size=(len(t), channels))
           ).astype(np.float32)
  path = str(tmp_path / 'song.wav')
  soundfile.write(path, audio, rate, subtype='FLOAT')
  whole = separate.separate_audio(separator, audio, rate)
  unit, context = separate.block_geometry(separator, rate)
  assert context >= separator.margin * rate / separator.sample_rate and context % unit == 0
  failures = separate.separate_files(separator, [path], str(tmp_path / 'out'), subtype='FLOAT', progress=False,
                                     block_seconds=0.7)
  assert not failures
  for s, source in enumerate(separator.sources):
    streamed, got_rate = soundfile.read(str(tmp_path / 'out' / 'song' / f'{source}.wav'), dtype='float32',
                                        always_2d=True)
    assert got_rate == rate and streamed.shape == audio.shape
    assert np.abs(whole[s]).max() > 1e-3
    np.testing.assert_allclose(streamed, whole[s], atol=2e-5 * np.abs(whole[s]).max(), rtol=0)
  assert sorted(os.listdir(tmp_path / 'out' / 'song')) == sorted(f'{s}.wav' for s in separator.sources)


@pytest.mark.parametrize('rate', [8000, 44100])
def test_streamed_blocks_equal_the_whole_file_with_the_mixture_postfilter(separator, tmp_path, rate):
  """With every source masked by the slots' spectra, blocks still give the whole file's stems, and those sum to
  the input (the masks sum to 1)."""
  separator.masked_sources = (True,) * separator.num_sources
  try:
    rng = np.random.default_rng(rate)
    audio = (0.2 * rng.normal(size=(int(3.1 * rate), 2))).astype(np.float32)
    path = str(tmp_path / 'song.wav')
    soundfile.write(path, audio, rate, subtype='FLOAT')
    whole = separate.separate_audio(separator, audio, rate)
    assert not separate.separate_files(separator, [path], str(tmp_path / 'out'), subtype='FLOAT', progress=False,
                                       block_seconds=0.7)
    for s, source in enumerate(separator.sources):
      streamed, _ = soundfile.read(str(tmp_path / 'out' / 'song' / f'{source}.wav'), dtype='float32',
                                   always_2d=True)
      np.testing.assert_allclose(streamed, whole[s], atol=2e-5 * np.abs(whole[s]).max(), rtol=0)
    if rate == separator.sample_rate:
      np.testing.assert_allclose(whole.sum(axis=0), audio, atol=1e-4)
  finally:
    separator.masked_sources = (False,) * separator.num_sources


def test_a_bad_sample_late_in_the_file_leaves_no_output(separator, tmp_path, fault_report):
  audio = np.zeros((8000 * 3, 2), np.float32)
  audio[-100] = np.nan
  path = str(tmp_path / 'bad.wav')
  soundfile.write(path, audio, 8000, subtype='FLOAT')
  failures = separate.separate_files(separator, [path], str(tmp_path / 'out'), progress=False, block_seconds=0.5)
  assert len(failures) == 1 and 'NaN or infinite samples (in 2.' in failures[0][1]
  assert not os.path.exists(tmp_path / 'out' / 'bad')  # the partial wavs and their folder are gone
  fault_report('a NaN sample late in a streamed input (`separate`)', 'a NaN 100 samples before the end of a 3 s '
               'file read in 0.5 s blocks', f'one line, "error: bad.wav: {failures[0][1]}"; the blocks already '
               'written are removed, other inputs still separated', '-')
