"""Gumbel-softmax quantizer: one module per source, a bank of them made with nnx.vmap over the source axis.

Glossary: B batch, T' latent frames, S sources, H codebooks per source, K entries per codebook, D entry dimension.
Training (paper, Jang et al. 2016): y = softmax((logits + g) / tau), g ~ Gumbel(0, 1); the quantized vector is the
y-weighted sum of the codebook entries (or, with `hard`, the one-hot of argmax y in the forward pass and the soft
gradient: straight-through). Inference: the entry of argmax logits (deterministic). The H entries of a source
are concatenated into its slot vector [H * D].
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx


@dataclasses.dataclass
class QuantizedResult:
  """What the quantizer bank returns (a pytree).

  Attributes:
    vectors: float32 [B, T', S, H * D], the quantized slot vectors (soft or hard).
    codes: int32 [B, T', S, H], argmax entry per codebook; the discrete representation.
    code_probs: float32 [S, H, K], the batch-mean softmax(logits): the code distribution the perplexity is of.
      Kept (rather than the perplexity alone) so that the results of equal parts of a batch combine exactly.
  """
  vectors: jax.Array
  codes: jax.Array
  code_probs: jax.Array

  @property
  def perplexity(self) -> jax.Array:
    """[S, H]: exp(entropy) of the batch-mean code distribution (K = all entries equally likely)."""
    return perplexity_of(self.code_probs)

  @property
  def used_fraction(self) -> jax.Array:
    """[S, H]: fraction of the K entries that are the argmax somewhere in the batch."""
    return used_fraction_of(self.codes, self.code_probs.shape[-1])

jax.tree_util.register_dataclass(QuantizedResult, data_fields=['vectors', 'codes', 'code_probs'], meta_fields=[])


def gumbel_noise(noise_key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
  """Gumbel(0, 1) noise for logits of `shape` [B, T', S, H, K] (what a training pass gives `quantize`).

  One key per source (split), each drawing its [B, T', H, K].
  """
  keys = jax.random.split(noise_key, shape[2])
  per_source = (shape[0], shape[1], *shape[3:])
  return jax.vmap(lambda key: jax.random.gumbel(key, per_source, dtype), out_axes=2)(keys)


class GumbelQuantizer(nnx.Module):
  """H codebooks of K entries of dimension D, for one source."""

  def __init__(self, num_codebooks: int, codebook_size: int, code_dim: int, *, rngs: nnx.Rngs):
    self.codebook = nnx.Param(jax.random.normal(rngs.params(), (num_codebooks, codebook_size, code_dim)))

  def __call__(self, logits: jax.Array, gumbel: jax.Array | None, tau: jax.Array | float,
               hard: bool) -> tuple[jax.Array, jax.Array]:
    """Quantizes one source.

    Args:
      logits: [B, T', H, K].
      gumbel: Gumbel(0, 1) noise like logits; None for inference (argmax, no noise).
      tau: temperature.
      hard: straight-through one-hot in training.

    Returns:
      vectors [B, T', H * D] and codes int32 [B, T', H].
    """
    codebook = self.codebook[...]
    codes = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    if gumbel is None:
      weights = jax.nn.one_hot(codes, logits.shape[-1], dtype=codebook.dtype)
    else:
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


def quantize(bank: GumbelQuantizer, logits: jax.Array, gumbel: jax.Array | None, tau, *, hard: bool,
             shared: bool) -> QuantizedResult:
  """Applies the bank to every source's logits.

  Args:
    bank: from make_bank.
    logits: [B, T', S, H, K].
    gumbel: Gumbel(0, 1) noise like logits (training: gumbel_noise) or None (inference, argmax).
    tau: Gumbel-softmax temperature.
    hard: straight-through hard Gumbel.
    shared: the bank is one quantizer shared by all sources.
  """
  module_axis = None if shared else 0

  @nnx.vmap(in_axes=(module_axis, 2, None if gumbel is None else 2), out_axes=2)
  def per_source(quantizer, source_logits, source_gumbel):
    return quantizer(source_logits, source_gumbel, tau, hard)

  vectors, codes = per_source(bank, logits, gumbel)
  return QuantizedResult(vectors=vectors, codes=codes, code_probs=code_distribution(logits))


def code_distribution(logits: jax.Array) -> jax.Array:
  """The batch-mean softmax of logits [B, T', S, H, K]: [S, H, K]."""
  return jax.nn.softmax(logits.astype(jnp.float32), axis=-1).mean(axis=(0, 1))


def perplexity_of(code_probs: jax.Array) -> jax.Array:
  """exp(entropy) of code distributions [..., K] -> [...]."""
  return jnp.exp(-jnp.sum(code_probs * jnp.log(code_probs + 1e-10), axis=-1))


def used_fraction_of(codes: jax.Array, num_entries: int) -> jax.Array:
  """Fraction of the K entries that are some frame's code: int [B, T', S, H] -> [S, H]."""
  return jax.nn.one_hot(codes, num_entries, dtype=jnp.float32).max(axis=(0, 1)).mean(axis=-1)


def lookup(bank: GumbelQuantizer, codes: jax.Array, *, shared: bool) -> jax.Array:
  """Slot vectors of given codes (for decoding edited or generated codes): int [B, T', S, H] -> [B, T', S, H*D]."""
  codebook = bank.codebook[...]  # [S, H, K, D] or shared [H, K, D]
  if shared:
    codebook = jnp.broadcast_to(codebook, (codes.shape[2],) + codebook.shape)
  num_codebooks = codes.shape[-1]
  vectors = codebook[jnp.arange(codes.shape[2])[:, None], jnp.arange(num_codebooks)[None, :], codes]
  return vectors.reshape(*codes.shape[:3], -1)
