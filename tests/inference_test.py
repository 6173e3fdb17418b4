"""Tests of srcvq_jax.inference: window plan, chunked == one-shot inference, loading checkpoints and exports."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from srcvq_jax import audio as audio_lib
from srcvq_jax import checkpointing
from srcvq_jax import config_lib
from srcvq_jax import errors
from srcvq_jax import inference
from srcvq_jax import loop
from srcvq_jax import models
from srcvq_jax import windows
from srcvq_jax.models import layers

# A length that is a multiple of neither the window nor the ci model's stride (16).
ODD_LENGTH = 5007
WINDOW = 1024  # ci config: 0.128 s at 8 kHz, so ODD_LENGTH needs several windows


def random_state(config, seed=0):
  """(graphdef, a train state {'params', 'opt_state', 'step'} as train_and_evaluate's) with NumPy-random params.

  NumPy instead of the model's initializers: XLA:CPU takes ~10 s to compile the PRNG-based init, and these tests
  need working weights, not those weights.
  """
  graphdef, abstract = models.split_params(nnx.eval_shape(lambda: models.create(config)))
  tx = loop.create_optimizer(config)
  abstract = jax.eval_shape(lambda p: {'params': p, 'opt_state': tx.init(p), 'step': jnp.zeros((), jnp.int32)},
                            abstract)
  rng = np.random.default_rng(seed)

  def param(x):  # kernels ~ N(0, 1 / fan_in) (fan_in = all axes but the last), biases zero
    if len(x.shape) < 2:
      return np.zeros(x.shape, x.dtype)
    return (rng.normal(size=x.shape) / np.sqrt(np.prod(x.shape[:-1]))).astype(x.dtype)

  params = jax.tree.map(param, abstract['params'])
  state = {'params': params, 'opt_state': jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), abstract['opt_state']),
           'step': np.zeros((), np.int32)}
  return graphdef, jax.tree.map(jnp.asarray, state)


def save_checkpoint(config, workdir, step=3):
  """Writes WORKDIR/checkpoints/<step> with the state tree and the save call of train_and_evaluate."""
  _, state = random_state(config)
  manager = checkpointing.create_manager(str(workdir), async_save=False)
  checkpointing.save(manager, step, state, config.to_dict())
  manager.wait_until_finished()
  manager.close()
  return state


@pytest.fixture(scope='module')
def model_and_separator():
  from configs import ci  # pylint: disable=g-import-not-at-top
  config = ci.get_config()
  graphdef, state = random_state(config)
  model = nnx.merge(graphdef, state['params'])
  return model, inference.Separator(config, graphdef, state['params'], window=WINDOW, batch_size=3)


@nnx.jit
def _model_call(model, audio, masks):
  quantized = model.encode(audio)
  return model.decode(quantized.vectors, masks), quantized.codes, quantized.vectors


def _one_shot(model, audio, masks):
  """One model call on the whole input, zero-padded to the stride as the chunked path pads it.

  Returns:
    audio [N, M, T, C], codes [N, T', S, H], vectors [N, T', S, H * D] for audio [N, T, C], masks [(N,) M, S].
  """
  length = audio.shape[1]
  padded = np.pad(audio, ((0, 0), (0, -length % 16), (0, 0)))
  masks = np.broadcast_to(masks, (len(audio),) + masks.shape[-2:])
  out, codes, vectors = jax.device_get(_model_call(model, padded, masks))
  return out[:, :, :length], codes, vectors


def test_window_plan_weights_sum_to_one_and_codes_are_partitioned():
  for length in (1, 15, 16, 1000, 1024, 1025, 5007, 20000):
    plan = windows.plan_windows(length, window=1024, margin=48, fade=48, stride=16)
    assert plan.length % 16 == 0 and plan.length >= length
    assert all(s % 16 == 0 for s in plan.starts) and plan.starts[0] == 0
    assert plan.starts[-1] + plan.window == plan.length
    total = np.zeros(plan.length)
    owned = np.zeros(plan.length // 16, int)
    for k, start in enumerate(plan.starts):
      total[start:start + plan.window] += plan.weight(k)
      first, last = plan.owned_frames(k)
      owned[first:last] += 1
    np.testing.assert_allclose(total, 1.0, atol=1e-6)
    assert (owned == 1).all()
  assert layers.receptive_margin_of_blocks((4, 4, 4, 4)) == 768
  assert layers.receptive_margin_of_blocks((4, 4)) == 48


def test_chunked_equals_one_shot_for_any_length(model_and_separator):
  model, separator = model_and_separator
  rng = np.random.default_rng(0)
  audio = (0.3 * rng.normal(size=(ODD_LENGTH, 2))).astype(np.float32)
  assert separator.plan(ODD_LENGTH).num_windows >= 4
  stems, codes = separator.separate(audio, return_codes=True)
  expected, expected_codes, expected_vectors = _one_shot(model, audio[None], np.eye(4, dtype=np.float32)[None])
  assert stems.shape == (4, ODD_LENGTH, 2) and np.isfinite(stems).all()
  np.testing.assert_allclose(stems, expected[0], atol=1e-5)
  np.testing.assert_array_equal(codes, expected_codes[0])
  # Inference-mode vectors are codebook entries: looking the codes up gives them back (per-slot codebooks).
  np.testing.assert_allclose(separator.slot_vectors(codes), expected_vectors[0], atol=1e-6)
  np.testing.assert_array_equal(separator.encode(audio), codes)
  np.testing.assert_array_equal(separator.encode(np.stack([audio, audio])), np.stack([codes, codes]))
  # Decoding the codes gives the separation (the decoder sees the same frames); reconstruct = all slots.
  np.testing.assert_allclose(separator.decode(codes, np.eye(4, dtype=np.float32))[:, :ODD_LENGTH], stems, atol=1e-5)
  reconstructed = separator.reconstruct(audio)
  np.testing.assert_allclose(reconstructed, _one_shot(model, audio[None], np.ones((1, 1, 4), np.float32))[0][0, 0],
                             atol=1e-5)
  # Oracle: stem i alone in, slot i alone out.
  sources = (0.2 * rng.normal(size=(4, ODD_LENGTH, 2))).astype(np.float32)
  oracle = separator.oracle(sources)
  for i in range(4):
    mask = np.eye(4, dtype=np.float32)[i][None, None]
    np.testing.assert_allclose(oracle[i], _one_shot(model, sources[i:i + 1], mask)[0][0, 0], atol=1e-5)


def test_track_within_one_window_equals_one_shot(model_and_separator):
  model, separator = model_and_separator
  audio = (0.3 * np.random.default_rng(1).normal(size=(333, 2))).astype(np.float32)
  assert separator.plan(333).num_windows == 1
  stems = separator.separate(audio)
  np.testing.assert_allclose(stems, _one_shot(model, audio[None], np.eye(4, dtype=np.float32)[None])[0][0],
                             atol=1e-5)
  with pytest.raises(ValueError):
    separator.separate(np.zeros((0, 2), np.float32))
  with pytest.raises(ValueError):
    separator.separate(np.zeros((100, 3), np.float32))


def test_windows_split_over_devices_give_the_same_result(model_and_separator):
  _, separator = model_and_separator
  split = inference.Separator(separator.config, separator.graphdef, separator.params, window=WINDOW, batch_size=3,
                              devices=jax.devices()[:2])
  assert split.batch_size == 3  # rounded up to 4 per call, two windows per device
  audio = (0.3 * np.random.default_rng(2).normal(size=(ODD_LENGTH, 2))).astype(np.float32)
  np.testing.assert_allclose(split.separate(audio), separator.separate(audio), atol=1e-5)


def test_resample_and_match_channels():
  x = np.random.default_rng(0).normal(size=(4410, 2)).astype(np.float32)
  y = audio_lib.resample(x, 44100, 8000, axis=0)
  assert y.shape == (800, 2) and y.dtype == np.float32
  assert audio_lib.resample(x, 22050, 22050, axis=0).shape == x.shape
  assert audio_lib.resample(np.stack([x, x]), 44100, 22050, axis=1).shape == (2, 2205, 2)
  assert audio_lib.match_channels(x[:, :1], 2).shape == (4410, 2)
  np.testing.assert_allclose(audio_lib.match_channels(x, 1)[:, 0], x.mean(1))
  config = config_lib.config_from_dict({'model': {'channels': [8, 16], 'strides': [4, 4]},
                                       'data': {'sources': ['a', 'b']}})
  assert config.model.strides == (4, 4) and config.data.sources == ('a', 'b')


def test_load_workdir_and_export(ci_config, tmp_path):
  state = save_checkpoint(ci_config, tmp_path / 'run')
  separator = inference.load(str(tmp_path / 'run'), window=WINDOW)
  assert separator.step == 3 and separator.sources == tuple(ci_config.data.sources)
  assert separator.sample_rate == 8000 and separator.config.model.strides == (4, 4)
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(state['params']), jax.device_get(separator.params))

  checkpointing.save_export(str(tmp_path / 'export'), jax.device_get(state['params']), ci_config.to_dict())
  exported = inference.load(str(tmp_path / 'export'), window=WINDOW)
  assert exported.step is None and exported.config.data.sources == separator.config.data.sources
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(exported.params), jax.device_get(separator.params))


def test_missing_or_empty_checkpoint_dir_is_a_user_error(tmp_path):
  missing = str(tmp_path / 'nowhere')
  with pytest.raises(errors.UserError, match='nowhere: no such directory'):
    inference.load(missing)
  assert not os.path.exists(missing)
  os.makedirs(tmp_path / 'empty' / 'checkpoints')
  with pytest.raises(errors.UserError, match='no checkpoint'):
    inference.load(str(tmp_path / 'empty'))
  os.makedirs(tmp_path / 'bare')
  with pytest.raises(errors.UserError, match='bare: no checkpoint'):
    inference.load(str(tmp_path / 'bare'))


def _check_chunked_equals_one_shot(config, seed, min_margin):
  """Separator's windows (margin >= min_margin samples) give the one-shot model's stems and codes."""
  graphdef, state = random_state(config, seed=seed)
  model = nnx.merge(graphdef, state['params'])
  separator = inference.Separator(config, graphdef, state['params'], window=WINDOW, batch_size=2)
  assert separator.margin >= min_margin
  audio = (0.3 * np.random.default_rng(seed).normal(size=(ODD_LENGTH, 2))).astype(np.float32)
  assert separator.plan(ODD_LENGTH).num_windows >= 4
  stems, codes = separator.separate(audio, return_codes=True)
  expected, expected_codes, _ = _one_shot(model, audio[None], np.eye(4, dtype=np.float32)[None])
  np.testing.assert_allclose(stems, expected[0], atol=1e-5)
  np.testing.assert_array_equal(codes, expected_codes[0])
  return model


@pytest.mark.parametrize('kind', ['gumbel', 'fsq'])
def test_chunked_equals_one_shot_with_residual_units(kind):
  # The residual units widen the receptive field: Separator's margin (vqvae.receptive_margin) must cover it.
  from configs import ci  # pylint: disable=g-import-not-at-top
  config = ci.get_config()
  config.model.residual_units = 2
  if kind == 'fsq':
    config.quantizer.kind, config.quantizer.fsq_levels = 'fsq', (5, 3)
    config.quantizer.code_dim, config.quantizer.codebook_size = 2, 15
  _check_chunked_equals_one_shot(config, 1, layers.receptive_margin_of_blocks(config.model.strides) + 1)


def test_chunked_equals_one_shot_with_decoder_only_residual_units():
  # Units in the decoder alone, at its latent-side level: the margin counts them at that level's frame rate.
  from configs import ci  # pylint: disable=g-import-not-at-top
  config = ci.get_config()
  config.model.decoder_residual_units = (3, 0)
  model = _check_chunked_equals_one_shot(config, 2, layers.receptive_margin_of_blocks(config.model.strides) + 1)
  assert [len(units) for units in model.decoder.residuals] == [3, 0]
  assert all(len(units) == 0 for units in model.encoder.residuals)


def test_chunked_equals_one_shot_with_spectral_input():
  # The spectral input's frames read half their window either side: the margin must cover it.
  from configs import ci  # pylint: disable=g-import-not-at-top
  config = ci.get_config()
  config.model.spectral_input_fft = 256
  _check_chunked_equals_one_shot(config, 3, layers.receptive_margin_of_blocks(config.model.strides) + 128)


def test_lstm_models_run_in_windows_that_advance_and_match_one_shot_closely():
  """An LSTM's reach is unbounded: the margin gives it model.lstm_context_frames of context, so windowed output is
  close to one-shot output (not equal), and the default window still advances by half its default length."""
  from configs import ci  # pylint: disable=g-import-not-at-top
  config = ci.get_config()
  config.model.encoder_lstm_layers = 1
  config.model.lstm_hidden = 8
  config.model.lstm_context_frames = 32
  graphdef, state = random_state(config, seed=2)
  model = nnx.merge(graphdef, state['params'])
  separator = inference.Separator(config, graphdef, state['params'], batch_size=2)
  default_window = int(inference.DEFAULT_WINDOW_SEGMENTS * config.data.segment_length)
  hop = separator.window - 2 * separator.margin - separator.fade
  assert separator.margin >= 32 * config_lib.total_stride(config)
  assert hop >= default_window // 2
  length = 4 * separator.window + 77
  audio = (0.3 * np.random.default_rng(1).normal(size=(length, 2))).astype(np.float32)
  assert separator.plan(length).num_windows >= 4
  stems = separator.separate(audio)
  expected, _, _ = _one_shot(model, audio[None], np.eye(4, dtype=np.float32)[None])
  error = np.sum((stems - expected[0]) ** 2) / np.sum(expected[0] ** 2)
  assert error < 1e-3, error
