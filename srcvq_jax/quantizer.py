"""Gumbel-softmax quantizer: one module per source, a bank of them made with nnx.vmap over the source axis.

Glossary: B batch, T' latent frames, S sources, H codebooks per source, K entries per codebook, D entry dimension.
Training (paper, Jang et al. 2016): y = softmax((logits + g) / tau), g ~ Gumbel(0, 1); the quantized vector is the
y-weighted sum of the codebook entries (or, with `hard`, the one-hot of argmax y in the forward pass and the soft
gradient: straight-through). Inference: the entry of argmax logits (deterministic). The H entries of a source
are concatenated into its slot vector [H * D].
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx


@dataclasses.dataclass
class QuantizedResult:
  """What the quantizer bank returns (a pytree).

  Attributes:
    vectors: float32 [B, T', S, H * D], the quantized slot vectors (soft or hard).
    codes: int32 [B, T', S, H], argmax entry per codebook; the discrete representation.
    perplexity: float32 [S, H], exp(entropy) of the batch-averaged code distribution (K = all entries used).
    used_fraction: float32 [S, H], fraction of the K entries that are the argmax somewhere in the batch.
  """
  vectors: jax.Array
  codes: jax.Array
  perplexity: jax.Array
  used_fraction: jax.Array


jax.tree_util.register_dataclass(QuantizedResult, data_fields=['vectors', 'codes', 'perplexity', 'used_fraction'],
                                 meta_fields=[])


class GumbelQuantizer(nnx.Module):
  """H codebooks of K entries of dimension D, for one source."""

  def __init__(self, num_codebooks: int, codebook_size: int, code_dim: int, *, rngs: nnx.Rngs):
    self.codebook = nnx.Param(jax.random.normal(rngs.params(), (num_codebooks, codebook_size, code_dim)))

  def __call__(self, logits: jax.Array, noise_key: jax.Array | None, tau: jax.Array | float,
               hard: bool) -> tuple[jax.Array, jax.Array]:
    """Quantizes one source.

    Args:
      logits: [B, T', H, K].
      noise_key: PRNG key of the Gumbel noise; None for inference (argmax, no noise).
      tau: temperature.
      hard: straight-through one-hot in training.

    Returns:
      vectors [B, T', H * D] and codes int32 [B, T', H].
    """
    codebook = self.codebook[...]
    codes = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    if noise_key is None:
      weights = jax.nn.one_hot(codes, logits.shape[-1], dtype=codebook.dtype)
    else:
      gumbel = jax.random.gumbel(noise_key, logits.shape, logits.dtype)
      weights = jax.nn.softmax((logits + gumbel) / tau, axis=-1)
      if hard:
        one_hot = jax.nn.one_hot(jnp.argmax(weights, axis=-1), logits.shape[-1], dtype=weights.dtype)
        weights = weights + jax.lax.stop_gradient(one_hot - weights)
    vectors = jnp.einsum('bthk,hkd->bthd', weights, codebook)
    return vectors.reshape(*vectors.shape[:2], -1), codes


def make_bank(num_sources: int, num_codebooks: int, codebook_size: int, code_dim: int, shared: bool, *,
              rngs: nnx.Rngs) -> GumbelQuantizer:
  """Per-source quantizers with independent parameters (leading axis S), or one shared quantizer."""
  if shared:
    return GumbelQuantizer(num_codebooks, codebook_size, code_dim, rngs=rngs)

  @nnx.split_rngs(splits=num_sources)
  @nnx.vmap(in_axes=(0,), out_axes=0, axis_size=num_sources)
  def create(rngs):
    return GumbelQuantizer(num_codebooks, codebook_size, code_dim, rngs=rngs)

  return create(rngs)


def quantize(bank: GumbelQuantizer, logits: jax.Array, noise_key: jax.Array | None, tau, *, hard: bool,
             shared: bool) -> QuantizedResult:
  """Applies the bank to every source's logits.

  Args:
    bank: from make_bank.
    logits: [B, T', S, H, K].
    noise_key: PRNG key (training) or None (inference, argmax).
    tau: Gumbel-softmax temperature.
    hard: straight-through hard Gumbel.
    shared: the bank is one quantizer shared by all sources.
  """
  num_sources = logits.shape[2]
  keys = None if noise_key is None else jax.random.split(noise_key, num_sources)
  module_axis = None if shared else 0

  @nnx.vmap(in_axes=(module_axis, 2, None if keys is None else 0), out_axes=2)
  def per_source(quantizer, source_logits, key):
    return quantizer(source_logits, key, tau, hard)

  vectors, codes = per_source(bank, logits, keys)
  perplexity, used_fraction = codebook_stats(logits, codes)
  return QuantizedResult(vectors=vectors, codes=codes, perplexity=perplexity, used_fraction=used_fraction)


def codebook_stats(logits: jax.Array, codes: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Perplexity of the batch-mean code distribution and used-entry fraction, each [S, H].

  Args:
    logits: [B, T', S, H, K].
    codes: int [B, T', S, H].
  """
  num_entries = logits.shape[-1]
  mean_probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).mean(axis=(0, 1))  # [S, H, K]
  entropy = -jnp.sum(mean_probs * jnp.log(mean_probs + 1e-10), axis=-1)
  used = jax.nn.one_hot(codes, num_entries, dtype=jnp.float32).max(axis=(0, 1))  # [S, H, K]
  return jnp.exp(entropy), used.mean(axis=-1)


def lookup(bank: GumbelQuantizer, codes: jax.Array, *, shared: bool) -> jax.Array:
  """Slot vectors of given codes (for decoding edited or generated codes): int [B, T', S, H] -> [B, T', S, H*D]."""
  codebook = bank.codebook[...]  # [S, H, K, D] or shared [H, K, D]
  if shared:
    codebook = jnp.broadcast_to(codebook, (codes.shape[2],) + codebook.shape)
  num_codebooks = codes.shape[-1]
  vectors = codebook[jnp.arange(codes.shape[2])[:, None], jnp.arange(num_codebooks)[None, :], codes]
  return vectors.reshape(*codes.shape[:3], -1)
