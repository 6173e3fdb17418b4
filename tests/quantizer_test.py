"""Gumbel quantizer bank: independence per source, eval determinism, hard/soft, stats, lookup."""
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from srcvq_jax import quantizer as quantizer_lib

S, H, K, D = 4, 2, 8, 3


def _bank(shared=False):
  return quantizer_lib.make_bank(S, H, K, D, shared, rngs=nnx.Rngs(0))


def _noise(seed, logits):
  return quantizer_lib.gumbel_noise(jax.random.key(seed), logits.shape)


def test_bank_has_independent_codebooks_per_source():
  bank = _bank()
  assert bank.codebook.shape == (S, H, K, D)
  assert not np.allclose(bank.codebook[0], bank.codebook[1])


def test_changing_one_sources_codebook_changes_only_that_sources_output():
  bank = _bank()
  logits = jax.random.normal(jax.random.key(0), (2, 5, S, H, K))
  before = quantizer_lib.quantize(bank, logits, _noise(1, logits), 1.0, hard=False, shared=False).vectors
  bank.codebook[...] = bank.codebook[...].at[2].add(1.0)
  after = quantizer_lib.quantize(bank, logits, _noise(1, logits), 1.0, hard=False, shared=False).vectors
  changed = [not np.allclose(before[:, :, s], after[:, :, s]) for s in range(S)]
  assert changed == [False, False, True, False]


def test_eval_quantization_is_one_hot_and_deterministic():
  bank = _bank()
  logits = jax.random.normal(jax.random.key(0), (2, 5, S, H, K))
  a = quantizer_lib.quantize(bank, logits, None, 1.0, hard=False, shared=False)
  b = quantizer_lib.quantize(bank, logits, None, 1.0, hard=False, shared=False)
  np.testing.assert_array_equal(a.vectors, b.vectors)
  np.testing.assert_array_equal(a.codes, jnp.argmax(logits, -1))
  # The vector of each source/codebook is exactly one codebook entry: the argmax one.
  np.testing.assert_allclose(a.vectors, quantizer_lib.lookup(bank, a.codes, shared=False), rtol=0, atol=0)


def test_training_quantization_is_a_soft_mixture_of_entries():
  bank = _bank()
  logits = jnp.zeros((1, 1, S, H, K))
  soft = quantizer_lib.quantize(bank, logits, _noise(3, logits), 1e4, hard=False, shared=False)
  # Very high temperature: near-uniform weights, the mean of the entries.
  mean_entries = bank.codebook[...].mean(axis=2).reshape(S, H * D)
  np.testing.assert_allclose(soft.vectors[0, 0], mean_entries, atol=1e-2)
  hard = quantizer_lib.quantize(bank, logits, _noise(3, logits), 1.0, hard=True, shared=False)
  entries = quantizer_lib.lookup(bank, jnp.argmax(jax.random.gumbel(
      jax.random.split(jax.random.key(3), S)[0], (1, 1, H, K)), -1)[:, :, None], shared=False)
  np.testing.assert_allclose(hard.vectors[0, 0, 0], entries[0, 0, 0], rtol=1e-5, atol=1e-6)


def test_hard_gumbel_passes_soft_gradients():
  graphdef, state = nnx.split(_bank())
  state = state.to_pure_dict()
  logits = jax.random.normal(jax.random.key(0), (1, 3, S, H, K))

  weights = jax.random.normal(jax.random.key(2), (1, 3, S, H * D))

  def total(l, hard):  # the module is merged inside the trace, as in the train step
    return (quantizer_lib.quantize(nnx.merge(graphdef, state), l, _noise(1, l), 1.0, hard=hard,
                                   shared=False).vectors * weights).sum()

  grad = jax.grad(total)(logits, True)
  assert np.abs(np.asarray(grad)).sum() > 0
  # Straight-through: the gradient is the soft Gumbel-softmax's, while the forward pass is one codebook entry per
  # codebook (the argmax of logits + the same noise), not the soft mixture.
  np.testing.assert_allclose(grad, jax.grad(total)(logits, False), rtol=1e-5, atol=1e-7)
  bank = nnx.merge(graphdef, state)
  hard = quantizer_lib.quantize(bank, logits, _noise(1, logits), 1.0, hard=True, shared=False)
  noise = quantizer_lib.gumbel_noise(jax.random.key(1), logits.shape)
  codes = jnp.argmax(logits + noise, axis=-1).astype(jnp.int32)
  np.testing.assert_allclose(hard.vectors, quantizer_lib.lookup(bank, codes, shared=False), atol=1e-6)


def test_shared_codebooks():
  bank = _bank(shared=True)
  assert bank.codebook.shape == (H, K, D)
  logits = jax.random.normal(jax.random.key(0), (2, 5, S, H, K))
  out = quantizer_lib.quantize(bank, logits, None, 1.0, hard=False, shared=True)
  np.testing.assert_allclose(out.vectors, quantizer_lib.lookup(bank, out.codes, shared=True))


def test_perplexity_and_used_fraction():
  uniform = jnp.zeros((1, 4, S, H, K))
  codes = jnp.broadcast_to(jnp.arange(4)[None, :, None, None], (1, 4, S, H))
  perplexity = quantizer_lib.perplexity_of(quantizer_lib.code_distribution(uniform))
  used = quantizer_lib.used_fraction_of(codes, K)
  np.testing.assert_allclose(perplexity, K, rtol=1e-4)
  np.testing.assert_allclose(used, 4 / K)
  peaked = jax.nn.one_hot(jnp.zeros((1, 4, S, H), jnp.int32), K) * 100.0
  perplexity = quantizer_lib.perplexity_of(quantizer_lib.code_distribution(peaked))
  np.testing.assert_allclose(perplexity, 1.0, rtol=1e-3)


def test_gumbel_noise_is_drawn_per_source():
  """One key per source: a source's noise does not depend on how many sources there are after it."""
  noise = quantizer_lib.gumbel_noise(jax.random.key(1), (2, 5, S, H, K))
  assert noise.shape == (2, 5, S, H, K)
  first = jax.random.gumbel(jax.random.split(jax.random.key(1), S)[0], (2, 5, H, K))
  np.testing.assert_array_equal(noise[:, :, 0], first)
  assert not np.allclose(noise[:, :, 0], noise[:, :, 1])
