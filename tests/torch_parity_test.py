"""The PyTorch reference of benchmarks/ computes what our step computes (so its speed comparison is honest).

With the same parameters (ported) and the same batch, the torch model must give the same loss terms and gradients
as srcvq_jax, both in inference mode (argmax codes, no noise) and in training mode with the Gumbel noise fixed to
the noise our quantizer draws; one whole Adam step must land on the same parameters. Skipped without torch (not a
project dependency: `pip install torch==2.13.0` for the benchmarks).
"""
import functools

import jax
import numpy as np
import pytest
from flax import nnx

torch = pytest.importorskip('torch')

from benchmarks import torch_reference  # noqa: E402  (needs torch)
from configs import base  # noqa: E402
from srcvq_jax import batch_spec  # noqa: E402
from srcvq_jax import synthetic_data  # noqa: E402
from srcvq_jax import loop  # noqa: E402
from srcvq_jax import models  # noqa: E402
from srcvq_jax import sharding  # noqa: E402
from srcvq_jax import trainer  # noqa: E402


def _base_short():
  """configs/base.py's model and STFT (n_fft 2048, hop 512) on a short segment and batch 2: seconds to run."""
  config = base.get_config()
  config.data.source = 'synthetic'
  config.data.segment_length = 16 * 256
  config.data.batch_size = 2
  return config


@pytest.fixture(params=['ci', pytest.param('base_short', marks=pytest.mark.slow)])
def config(request, ci_config):
  if request.param == 'ci':
    ci_config.quantizer.tau_start = 0.7  # a tau != 1 checks the temperature too
    return ci_config
  return _base_short()


def _setup(config, seed=0):
  graphdef, params = models.split_params(models.create(config, seed=seed))
  model = torch_reference.VQVAE(config)
  torch_reference.load_jax_params(model, params)
  batch = next(synthetic_data.synthetic_batches(config, config.data.batch_size, seed=seed))
  # Every example with a non-empty selection and complement, so all four loss terms see signal.
  batch['presence'][:] = 1.0
  batch['select'][:] = 0.0
  batch['select'][:, ::2] = 1.0
  batch['mixture'] = batch_spec.mix(batch['sources'], batch['presence'])
  return graphdef, params, model, batch


def _assert_trees_close(ours, reference, rtol):
  """Leaf-wise relative L2 error below rtol.

  Not elementwise: the STFT-magnitude L1 has a kink where |STFT(prediction)| = |STFT(target)|, and float32
  magnitudes of small bins carry ~1e-5 relative error in either framework (both checked against float64), so a bin
  within that distance of the kink can take the other sign of its gradient: one such bin out of ~40k moves a few
  parameter gradients by ~1e-3 relative while the loss agrees to 1e-6.
  """
  flat_ours = dict(jax.tree_util.tree_leaves_with_path(ours))
  flat_ref = dict(jax.tree_util.tree_leaves_with_path(reference))
  assert flat_ours.keys() == flat_ref.keys()
  for path, value in flat_ours.items():
    expected = np.asarray(flat_ref[path], np.float64)
    relative = np.linalg.norm(np.asarray(value, np.float64) - expected) / (np.linalg.norm(expected) or 1.0)
    assert relative < rtol, (jax.tree_util.keystr(path), relative)


def _compare_loss_and_grads(config, train):
  graphdef, params, model, batch = _setup(config)
  noise = nnx.merge(graphdef, params).training_noise(jax.random.key(3), batch['mixture'].shape) if train else None
  tau = float(trainer.tau_schedule(config, 0))

  def loss_fn(p):
    total, (terms, _) = trainer._forward(graphdef, p, batch, config, noise, tau)  # pylint: disable=protected-access
    return total, terms

  (total, terms), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(params)

  step = torch_reference.TrainStep(model, config)
  tb = torch_reference.batch_to_torch(batch)
  gumbel = torch.from_numpy(np.array(noise)) if train else None  # a writable copy: torch.from_numpy shares it
  torch_total, torch_terms, _ = step._loss(tb['mixture'], tb['sources'], tb['presence'], tb['select'],  # pylint: disable=protected-access
                                           torch.tensor(tau), train, gumbel)
  torch_total.backward()
  torch_terms = {k: v.detach() for k, v in torch_terms.items()}

  assert set(terms) == set(torch_terms) == {'selective_l1', 'selective_stft', 'complement_l1', 'complement_stft'}
  for name, value in terms.items():
    assert float(value) == pytest.approx(float(torch_terms[name]), rel=1e-4), name
  assert float(total) == pytest.approx(float(torch_total.detach()), rel=1e-4)
  _assert_trees_close(jax.device_get(grads), torch_reference.grads_as_jax(model), rtol=1e-2)


def test_inference_mode_loss_and_gradients_match(config):
  _compare_loss_and_grads(config, train=False)


def test_fixed_gumbel_noise_loss_and_gradients_match(config):
  _compare_loss_and_grads(config, train=True)


def test_one_adam_step_lands_on_the_same_parameters(ci_config):
  config = ci_config
  config.data.batch_size = 2
  graphdef, _, model, batch = _setup(config)
  mesh = sharding.create_mesh(config.mesh, devices=jax.devices()[:1])
  tx = loop.create_optimizer(config)
  with jax.set_mesh(mesh):
    _, state = trainer.create_train_state(config, mesh, tx)
    torch_reference.load_jax_params(model, jax.device_get(state['params']))
    rng = jax.random.key(5)
    step_fn = jax.jit(functools.partial(trainer.train_step, graphdef=graphdef, tx=tx, config=config))
    new_state, metrics = step_fn(state, batch, rng)

  step = torch_reference.TrainStep(model, config)
  # The noise the step drew: its key for step 0, from the step's own params (training_noise needs only shapes).
  noise = nnx.merge(graphdef, jax.device_get(new_state['params'])).training_noise(jax.random.fold_in(rng, 0),
                                                                                 batch['mixture'].shape)
  torch_metrics = step(torch_reference.batch_to_torch(batch), gumbel=torch.from_numpy(np.array(noise)))
  assert float(metrics['train/loss']) == pytest.approx(float(torch_metrics['loss']), rel=1e-4)
  assert float(metrics['train/vq/perplexity']) == pytest.approx(float(torch_metrics['perplexity']), rel=1e-4)
  # Adam's first step moves every weight by ~lr * sign(grad): compare to a fraction of the learning rate.
  lr = config.optim.learning_rate
  flat_ours = dict(jax.tree_util.tree_leaves_with_path(jax.device_get(new_state['params'])))
  flat_ref = dict(jax.tree_util.tree_leaves_with_path(torch_reference.params_as_jax(model)))
  mismatched = []
  for path, value in flat_ours.items():
    diff = np.abs(np.asarray(value) - flat_ref[path])
    # Weights whose gradient is ~0 may flip the sign of their tiny update: allow a few such entries.
    if (diff > 0.05 * lr).mean() > 0.01:
      mismatched.append((jax.tree_util.keystr(path), float(diff.max())))
  assert not mismatched, mismatched
