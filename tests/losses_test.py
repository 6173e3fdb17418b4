"""STFT parity with librosa, loss terms, weights and the selective/complement targets."""
import jax
import jax.numpy as jnp
import librosa
import numpy as np
import pytest

from srcvq_jax import batch_spec
from srcvq_jax import synthetic_data
from srcvq_jax import losses
from srcvq_jax import spectral
from srcvq_jax import trainer


@pytest.mark.parametrize('n_fft,hop,length', [pytest.param(2048, 512, 44100, marks=pytest.mark.slow),
                                              (1024, 512, 22016), (256, 64, 4096), (400, 160, 3000)])
def test_stft_magnitude_matches_librosa(n_fft, hop, length):
  x = np.random.default_rng(0).standard_normal((2, length)).astype(np.float32)
  ours = np.asarray(spectral.stft_magnitude(jnp.asarray(x), n_fft, hop))
  reference = np.abs(librosa.stft(x, n_fft=n_fft, hop_length=hop, window='hann', center=True,
                                  pad_mode='constant'))  # [2, bins, frames]
  np.testing.assert_allclose(ours, reference.transpose(0, 2, 1), rtol=1e-4, atol=1e-3 * np.abs(reference).max()
                             / 100)


def test_l1_and_stft_l1():
  x = jnp.ones((2, 512, 2))
  assert float(losses.l1(x, 0.5 * x)) == pytest.approx(0.5)
  assert float(losses.stft_l1(x, x, 128, 32)) == pytest.approx(0.0, abs=1e-3)
  assert float(losses.stft_l1(x, jnp.zeros_like(x), 128, 32)) > 1.0
  grad = jax.grad(lambda p: losses.stft_l1(p, jnp.zeros_like(p), 128, 32))(jnp.zeros((1, 512, 2)))
  assert np.isfinite(np.asarray(grad)).all()  # silent prediction and target: no NaN gradient


def test_weighted_total_and_ablation_weights(ci_config):
  audio = jnp.ones((2, 2, 4096, 2))
  targets = jnp.zeros_like(audio)
  terms = losses.reconstruction_terms(audio, targets, ci_config.loss)
  assert set(terms) == {'selective_l1', 'selective_stft', 'complement_l1', 'complement_stft'}
  weights = ci_config.loss.weights
  total = losses.weighted_total(terms, weights)
  assert float(total) == pytest.approx(sum(float(v) for v in terms.values()), rel=1e-6)
  ci_config.loss.weights.complement_l1 = 0.0
  ci_config.loss.weights.complement_stft = 0.0
  assert losses.active_selections(ci_config.loss.weights) == ('selective',)
  terms = losses.reconstruction_terms(audio[:, :1], targets[:, :1], ci_config.loss)
  assert set(terms) == {'selective_l1', 'selective_stft'}


def test_complement_target_is_zero_when_all_sources_selected(ci_config):
  batch = next(synthetic_data.synthetic_batches(ci_config, 4, seed=0))
  batch['presence'][:] = 1.0
  batch['select'][:] = 1.0
  batch['mixture'] = batch_spec.mix(batch['sources'], batch['presence'])
  masks = trainer.selection_masks(batch, ci_config.loss.weights)
  targets = trainer.selection_targets(masks, batch['sources'])
  np.testing.assert_array_equal(targets[:, 1], 0.0)
  np.testing.assert_allclose(targets[:, 0], batch['mixture'], rtol=1e-5, atol=1e-6)


def test_selective_plus_complement_is_the_mixture(ci_config):
  batch = next(synthetic_data.synthetic_batches(ci_config, 8, seed=3))
  masks = trainer.selection_masks(batch, ci_config.loss.weights)
  targets = trainer.selection_targets(masks, batch['sources'])
  np.testing.assert_allclose(targets.sum(axis=1), batch['mixture'], rtol=1e-5, atol=1e-6)
  assert (np.asarray(masks).sum(axis=1) <= 1).all()


def test_multi_resolution_and_log_magnitude_terms(ci_config):
  x = jax.random.normal(jax.random.key(0), (2, 1024, 2))
  y = 0.5 * x + 0.1 * jax.random.normal(jax.random.key(1), (2, 1024, 2))
  loss = ci_config.loss
  # The paper's single resolution is the default: the same number as stft_l1.
  np.testing.assert_allclose(losses.multi_resolution_stft_l1(x, y, loss), losses.stft_l1(x, y, 256, 64), rtol=1e-6)
  loss.stft_resolutions = ((128, 32), (512, 128))
  expected = np.mean([losses.stft_l1(x, y, n, h) for n, h in ((256, 64), (128, 32), (512, 128))])
  np.testing.assert_allclose(losses.multi_resolution_stft_l1(x, y, loss), expected, rtol=1e-5)
  loss.log_magnitude = 2.0
  with_log = float(losses.multi_resolution_stft_l1(x, y, loss))
  assert with_log > expected
  assert float(losses.multi_resolution_stft_l1(x, x, loss)) == pytest.approx(0.0, abs=1e-6)


def test_complement_absent_decodes_the_absent_slots_against_the_same_targets(ci_config):
  batch = next(synthetic_data.synthetic_batches(ci_config, 8, seed=3))
  batch['presence'][0] = [1.0, 0.0, 1.0, 0.0]
  batch['select'][0] = [1.0, 0.0, 0.0, 0.0]
  masks = np.asarray(trainer.selection_masks(batch, ci_config.loss.weights))
  np.testing.assert_array_equal(trainer.decoded_slots(batch, ci_config.loss), masks)  # off: the paper's
  ci_config.loss.complement_absent = True
  decoded = np.asarray(trainer.decoded_slots(batch, ci_config.loss))
  np.testing.assert_array_equal(decoded[:, 0], masks[:, 0])  # the selective decode is unchanged
  np.testing.assert_array_equal(decoded[:, 1], 1 - masks[:, 0])  # every slot not selected, present or absent
  np.testing.assert_array_equal(decoded[0, 1], [0.0, 1.0, 1.0, 1.0])
  assert (decoded[:, 1] >= masks[:, 1]).all() and (decoded[:, 1] > masks[:, 1]).any()
  ci_config.loss.weights.complement_l1 = ci_config.loss.weights.complement_stft = 0.0
  np.testing.assert_array_equal(trainer.decoded_slots(batch, ci_config.loss),
                                trainer.selection_masks(batch, ci_config.loss.weights))  # no complement decode


def test_negative_snr_reads_as_minus_snr_in_db_and_handles_silent_targets():
  rng = np.random.default_rng(0)
  target = jnp.asarray(rng.standard_normal((2, 4096, 2)), jnp.float32)
  mixture = 2.0 * target
  # 10 dB SNR: the error has a tenth of the target's energy.
  prediction = target + jnp.sqrt(0.1) * jnp.asarray(rng.standard_normal((2, 4096, 2)), jnp.float32)
  assert float(losses.negative_snr(prediction, target, mixture)) == pytest.approx(-10.0, abs=0.3)
  # A perfect estimate reaches the soft ceiling, not -inf.
  assert float(losses.negative_snr(target, target, mixture)) == pytest.approx(-losses.SNR_MAX_DB, abs=1.0)
  # Silent target: the ceiling for a silent estimate, the estimate's energy over 30 dB below the mixture's for another
  # (0.1 x target: -20 dB of the target, -26 dB of the mixture: +4 dB); gradients finite everywhere.
  silent = jnp.zeros_like(target)
  assert float(losses.negative_snr(silent, silent, mixture)) == pytest.approx(-losses.SNR_MAX_DB, abs=0.1)
  assert float(losses.negative_snr(0.1 * target, silent, mixture)) == pytest.approx(4.0, abs=0.3)
  for prediction, reference in ((silent, silent), (target, target), (0.5 * target, target)):
    grad = jax.grad(lambda p, r=reference: losses.negative_snr(p, r, mixture))(prediction)
    assert np.isfinite(np.asarray(grad)).all()
  # Scale-balanced: a 20 dB quieter example with the same relative error scores the same.
  quiet = 0.1 * target
  assert float(losses.negative_snr(0.1 * prediction, quiet, 0.1 * mixture)) == pytest.approx(
      float(losses.negative_snr(prediction, target, mixture)), abs=1e-3)


def test_snr_terms_follow_their_weights(ci_config):
  audio = jnp.ones((2, 2, 4096, 2))
  targets = jnp.zeros_like(audio)
  mixture = jnp.ones((2, 4096, 2))
  ci_config.loss.weights.selective_snr = 1.0
  terms = losses.reconstruction_terms(audio, targets, ci_config.loss, mixture)
  assert 'selective_snr' in terms and 'complement_snr' not in terms
  with pytest.raises(ValueError, match='selective_snr'):
    losses.reconstruction_terms(audio, targets, ci_config.loss)
  del ci_config.loss.weights['selective_snr']  # a config from before the term: the term is off
  del ci_config.loss.weights['complement_snr']
  assert 'selective_snr' not in losses.reconstruction_terms(audio, targets, ci_config.loss)
