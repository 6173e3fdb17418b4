"""Reconstruction losses as pure functions, and the config-weighted total.

The paper's terms, each applied to the selective target (sum of present, selected sources) and to the
complement target (present, unselected sources):  L1 on the waveform and L1 on the STFT magnitude (Hann,
n_fft 2048, hop 512; optionally averaged over more resolutions, with a log-magnitude L1 beside it: the quality
levers loss.stft_resolutions and loss.log_magnitude). Terms are named '<selection>_<kind>' ('selective_l1',
'complement_stft', ...); the total is sum(weight * term), so an ablation sets a weight to 0 (and a term of weight 0
is not computed).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from srcvq_jax import spectral

SELECTIONS = ('selective', 'complement')
KINDS = ('l1', 'stft')
# Keeps d|X|/dX finite where a spectrum bin is exactly zero (silent targets are common: absent sources).
_MAGNITUDE_EPS = 1e-8
# Floor of the log-magnitude term: ~-100 dB of a full-scale sinusoid's bin, so silence does not dominate it.
LOG_FLOOR = 1e-5


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


def multi_resolution_stft_l1(prediction: jax.Array, target: jax.Array, loss_config) -> jax.Array:
  """stft_l1 averaged over (loss.n_fft, loss.hop) and loss.stft_resolutions (just the first when those are ())."""
  resolutions = [(loss_config.n_fft, loss_config.hop)] + [tuple(r) for r in loss_config.stft_resolutions]
  log_weight = float(loss_config.log_magnitude)
  terms = [stft_l1(prediction, target, int(n_fft), int(hop), log_weight) for n_fft, hop in resolutions]
  return sum(terms) / len(terms)


def active_selections(weights) -> tuple[str, ...]:
  """Selections with a non-zero weight ('selective', 'complement'), in decoding order."""
  return tuple(s for s in SELECTIONS if any(weights[f'{s}_{k}'] > 0 for k in KINDS))


def reconstruction_terms(audio: jax.Array, targets: jax.Array, loss_config) -> dict[str, jax.Array]:
  """Loss terms of the decoded selections.

  Args:
    audio: [B, M, T, C] decoded audio, one per selection of `active_selections(loss_config.weights)`.
    targets: [B, M, T, C] the matching targets.
    loss_config: config.loss (weights, n_fft, hop).

  Returns:
    {'<selection>_<kind>': scalar} for every term with a non-zero weight.
  """
  weights = loss_config.weights
  terms = {}
  for m, selection in enumerate(active_selections(weights)):
    if weights[f'{selection}_l1'] > 0:
      terms[f'{selection}_l1'] = l1(audio[:, m], targets[:, m])
    if weights[f'{selection}_stft'] > 0:
      terms[f'{selection}_stft'] = multi_resolution_stft_l1(audio[:, m], targets[:, m], loss_config)
  return terms


def weighted_total(terms: dict[str, jax.Array], weights) -> jax.Array:
  """sum(weights[name] * term)."""
  return sum(weights[name] * value for name, value in terms.items())
