"""A prior over one source's codes given the other sources' codes (the paper's bass generation).

Glossary as in models/vqvae.py: B batch, F frames, S sources, H codebooks per source, K codes per codebook.

  context codes [B, F, S, H] (the target slot ignored)
    -> embeddings summed over the other sources' (s, h)          [B, F, W]
    -> Dense, `layers` residual dilated-conv units (dilations 1, 2, 4, ... cycling; models/layers.py's)
    -> Dense to H x K logits                                       [B, F, H, K]

Non-autoregressive: every frame's H codes are predicted at once and independently given the context (its receptive
field: reach() frames on each side), so sampling a whole song is one call. With `condition` off the context is
withheld (the same network sees no codes): the baseline that shows how much the other sources tell about the
target.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from srcvq_jax.models import layers


class CodePrior(nnx.Module):
  """p(codes of slot `target` | codes of the other slots), one categorical per frame and codebook."""

  def __init__(self, *, num_sources: int, num_codebooks: int, codebook_size: int, target: int, width: int,
               num_layers: int, kernel_size: int, dilation_cycle: int, condition: bool = True,
               dtype=jnp.float32, rngs: nnx.Rngs):
    if not 0 <= target < num_sources:
      raise ValueError(f'target slot {target} not in 0..{num_sources - 1}')
    self.num_sources, self.num_codebooks, self.codebook_size = num_sources, num_codebooks, codebook_size
    self.target, self.condition = target, bool(condition)
    self.context_slots = tuple(s for s in range(num_sources) if s != target)
    # One table for every (context slot, codebook, code): row (i * H + h) * K + code.
    rows = max(len(self.context_slots), 1) * num_codebooks * codebook_size
    self.embed = nnx.Param(jax.random.normal(rngs.params(), (rows, width), jnp.float32) * width ** -0.5)
    self.inp = layers.Dense(width, width, dtype=dtype, rngs=rngs)
    self.units = nnx.List([layers.ResidualUnit(width, kernel_size, 2 ** (i % dilation_cycle), dtype=dtype,
                                               rngs=rngs) for i in range(num_layers)])
    self.out = layers.Dense(width, num_codebooks * codebook_size, dtype=dtype, rngs=rngs)

  def reach(self) -> int:
    """Frames of context on each side one prediction depends on."""
    return sum(unit.reach for unit in self.units)

  def __call__(self, codes: jax.Array) -> jax.Array:
    """codes int [B, F, S, H] (the target slot's are not read) -> logits float32 [B, F, H, K]."""
    batch, frames = codes.shape[:2]
    h, k = self.num_codebooks, self.codebook_size
    context = codes[:, :, jnp.array(self.context_slots)]  # [B, F, S - 1, H]
    offsets = (jnp.arange(len(self.context_slots))[:, None] * h + jnp.arange(h)[None, :]) * k
    embedded = jnp.take(self.embed[...], context + offsets, axis=0).sum(axis=(2, 3))  # [B, F, W]
    if not self.condition:
      embedded = jnp.zeros_like(embedded)
    x = self.inp(embedded)
    for unit in self.units:
      x = unit(x)
    logits = self.out(jax.nn.gelu(x))
    return logits.reshape(batch, frames, h, k)


def create(prior_config, vqvae_config, seed: int = 0) -> CodePrior:
  """The prior of configs/prior.py's `prior` section for the codes of a VQ-VAE of `vqvae_config`."""
  sources = tuple(vqvae_config.data.sources)
  if prior_config.target not in sources:
    raise ValueError(f'prior.target={prior_config.target!r} is not a source of the VQ-VAE ({", ".join(sources)})')
  return CodePrior(num_sources=len(sources), num_codebooks=int(vqvae_config.quantizer.num_codebooks),
                   codebook_size=int(vqvae_config.quantizer.codebook_size), target=sources.index(prior_config.target),
                   width=int(prior_config.width), num_layers=int(prior_config.num_layers),
                   kernel_size=int(prior_config.kernel_size), dilation_cycle=int(prior_config.dilation_cycle),
                   condition=bool(prior_config.condition), rngs=nnx.Rngs(params=seed))


def sample(logits: jax.Array, key: jax.Array, *, temperature: float = 1.0, top_k: int = 0) -> jax.Array:
  """Codes int32 [..., H] drawn from logits [..., H, K]: at `temperature` (0: argmax), from the top_k most likely
  codes only (0: all)."""
  if temperature <= 0:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  logits = logits / temperature
  if top_k and top_k < logits.shape[-1]:
    kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
    logits = jnp.where(logits < kth, -jnp.inf, logits)
  return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)
