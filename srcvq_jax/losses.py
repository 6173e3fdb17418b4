"""Reconstruction losses as pure functions, and the config-weighted total.

The paper's terms, each applied to the selective target (sum of present, selected sources) and to the
complement target (present, unselected sources):  L1 on the waveform and L1 on the STFT magnitude (Hann,
n_fft 2048, hop 512; optionally averaged over more resolutions, with a log-magnitude L1 beside it: the quality
levers loss.stft_resolutions and loss.log_magnitude). Beside them, a quality lever the paper does not have: a
thresholded negative SNR in dB (the separation literature's scale-balanced objective, MixIT's form; SDR scores each
source by its own error-to-energy ratio, which an L1 on amplitudes weights by loudness instead). Terms are named '<selection>_<kind>' ('selective_l1',
'complement_stft', ...); the total is sum(weight * term), so an ablation sets a weight to 0 (and a term of weight 0
is not computed).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from srcvq_jax import spectral

SELECTIONS = ('selective', 'complement')
KINDS = ('l1', 'stft', 'snr')
# Keeps d|X|/dX finite where a spectrum bin is exactly zero (silent targets are common: absent sources).
_MAGNITUDE_EPS = 1e-8
# Floor of the log-magnitude term: ~-100 dB of a full-scale sinusoid's bin, so silence does not dominate it.
LOG_FLOOR = 1e-5
# The SNR term's soft ceiling (MixIT's tau = 10^(-SNR_max / 10)): an estimate already 30 dB above its error gains
# little more, and a silent target's energy is floored at 30 dB below its input mixture's instead of 0 (-inf dB).
SNR_MAX_DB = 30.0


def l1(prediction: jax.Array, target: jax.Array) -> jax.Array:
  """Mean absolute error of waveforms [..., T, C]."""
  return jnp.mean(jnp.abs(prediction - target))


def stft_l1(prediction: jax.Array, target: jax.Array, n_fft: int, hop: int, log_weight: float = 0.0) -> jax.Array:
  """Mean absolute error of STFT magnitudes of waveforms [..., T, C] (each channel transformed), plus log_weight x
  that of their logs (log(|X| + LOG_FLOOR)) when log_weight > 0."""
  def magnitude(x):
    return spectral.stft_magnitude(jnp.swapaxes(x, -1, -2), n_fft, hop, eps=_MAGNITUDE_EPS)
  predicted, reference = magnitude(prediction), magnitude(jax.lax.stop_gradient(target))
  loss = jnp.mean(jnp.abs(predicted - reference))
  if log_weight > 0:
    loss = loss + log_weight * jnp.mean(jnp.abs(jnp.log(predicted + LOG_FLOOR) - jnp.log(reference + LOG_FLOOR)))
  return loss


def negative_snr(prediction: jax.Array, target: jax.Array, mixture: jax.Array) -> jax.Array:
  """Mean over the batch of 10 log10((|e|^2 + tau r) / r), r = |s|^2 + tau |x|^2, e = prediction - target, s = target,
  x = the input mixture, energies per example over time and channels of [B, T, C], tau = 10^(-SNR_MAX_DB / 10).

  Minus the SNR in dB, bounded below by -SNR_MAX_DB (a perfect estimate); for a silent target, the estimate's energy
  in dB relative to SNR_MAX_DB below the mixture's (r's floor). r is a constant of the parameters: it only makes
  the value read as an SNR.
  """
  tau = 10.0 ** (-SNR_MAX_DB / 10.0)
  target = jax.lax.stop_gradient(target)
  def energy(x):
    return jnp.sum(jnp.square(x), axis=(-2, -1))
  reference = energy(target) + tau * energy(jax.lax.stop_gradient(mixture)) + _MAGNITUDE_EPS
  return jnp.mean(10.0 * jnp.log10((energy(prediction - target) + tau * reference) / reference))


def multi_resolution_stft_l1(prediction: jax.Array, target: jax.Array, loss_config) -> jax.Array:
  """stft_l1 averaged over (loss.n_fft, loss.hop) and loss.stft_resolutions (just the first when those are ())."""
  resolutions = [(loss_config.n_fft, loss_config.hop)] + [tuple(r) for r in loss_config.stft_resolutions]
  log_weight = float(loss_config.log_magnitude)
  terms = [stft_l1(prediction, target, int(n_fft), int(hop), log_weight) for n_fft, hop in resolutions]
  return sum(terms) / len(terms)


def weight(weights, name: str) -> float:
  """weights[name], 0 for a term the config does not name (configs older than the term)."""
  return float(weights.get(name, 0.0))


def active_selections(weights) -> tuple[str, ...]:
  """Selections with a non-zero weight ('selective', 'complement'), in decoding order."""
  return tuple(s for s in SELECTIONS if any(weight(weights, f'{s}_{k}') > 0 for k in KINDS))


def reconstruction_terms(audio: jax.Array, targets: jax.Array, loss_config,
                         mixture: jax.Array | None = None) -> dict[str, jax.Array]:
  """Loss terms of the decoded selections.

  Args:
    audio: [B, M, T, C] decoded audio, one per selection of `active_selections(loss_config.weights)`.
    targets: [B, M, T, C] the matching targets.
    loss_config: config.loss (weights, n_fft, hop).
    mixture: [B, T, C] the input mixture; needed by the '*_snr' terms only (their floor for silent targets).

  Returns:
    {'<selection>_<kind>': scalar} for every term with a non-zero weight.
  """
  weights = loss_config.weights
  terms = {}
  for m, selection in enumerate(active_selections(weights)):
    if weight(weights, f'{selection}_l1') > 0:
      terms[f'{selection}_l1'] = l1(audio[:, m], targets[:, m])
    if weight(weights, f'{selection}_stft') > 0:
      terms[f'{selection}_stft'] = multi_resolution_stft_l1(audio[:, m], targets[:, m], loss_config)
    if weight(weights, f'{selection}_snr') > 0:
      if mixture is None:
        raise ValueError(f'loss.weights.{selection}_snr > 0 needs the input mixture')
      terms[f'{selection}_snr'] = negative_snr(audio[:, m], targets[:, m], mixture)
  return terms


def weighted_total(terms: dict[str, jax.Array], weights) -> jax.Array:
  """sum(weights[name] * term)."""
  return sum(weights[name] * value for name, value in terms.items())
