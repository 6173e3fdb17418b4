"""Tests of the bass prior: model, data, its training through the project's loop, and generate_bass."""
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import soundfile
from flax import nnx

import inference_test  # tests/ is on sys.path
from srcvq_jax import errors
from srcvq_jax import generate_bass
from srcvq_jax import inference
from srcvq_jax import models
from srcvq_jax.prior import data as prior_data
from srcvq_jax.prior import model as prior_model
from srcvq_jax.prior import train as prior_train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _vqvae_config():
  from configs import ci  # pylint: disable=g-import-not-at-top
  config = ci.get_config()
  config.data.source = 'synthetic'
  return config


def _prior_config(vqvae_workdir, **train):
  from configs import prior  # pylint: disable=g-import-not-at-top
  config = prior.get_config()
  config.vqvae_workdir = str(vqvae_workdir)
  config.prior.width, config.prior.num_layers = 32, 2
  config.data.batch_size, config.data.segment_frames = 8, 32
  config.data.synthetic_tracks, config.data.synthetic_seconds = 2, 0.5
  config.optim.warmup_steps = 0
  config.train.update({**dict(num_steps=6, log_every=3, eval_every=3, eval_batches=1, checkpoint_every=3), **train})
  return config


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """(VQ-VAE workdir, prior workdir, prior config) after 6 prior steps on 8 fake devices."""
  root = tmp_path_factory.mktemp('prior')
  inference_test.save_checkpoint(_vqvae_config(), root / 'vqvae')
  config = _prior_config(root / 'vqvae')
  prior_train.train_and_evaluate(config, str(root / 'prior'))
  return root / 'vqvae', root / 'prior', config


def test_model_shapes_reach_and_withheld_context():
  model = prior_model.CodePrior(num_sources=4, num_codebooks=3, codebook_size=10, target=1, width=16,
                                num_layers=3, kernel_size=3, dilation_cycle=2, rngs=nnx.Rngs(params=0))
  codes = jnp.asarray(np.random.default_rng(0).integers(0, 10, (2, 20, 4, 3)), jnp.int32)
  logits = model(codes)
  assert logits.shape == (2, 20, 3, 10) and model.reach() == 1 + 2 + 1
  # The target slot's own codes are not read.
  np.testing.assert_array_equal(model(codes.at[:, :, 1].set(0)), logits)
  withheld = prior_model.CodePrior(num_sources=4, num_codebooks=3, codebook_size=10, target=1, width=16,
                                   num_layers=3, kernel_size=3, dilation_cycle=2, condition=False,
                                   rngs=nnx.Rngs(params=0))
  np.testing.assert_allclose(withheld(codes), withheld(jnp.zeros_like(codes)))


def test_sample_temperature_zero_is_argmax_and_top_k_restricts():
  logits = jnp.asarray(np.random.default_rng(1).normal(size=(50, 3, 10)), jnp.float32)
  np.testing.assert_array_equal(prior_model.sample(logits, jax.random.key(0), temperature=0.0),
                                jnp.argmax(logits, -1))
  drawn = prior_model.sample(logits, jax.random.key(0), temperature=1.0, top_k=2)
  top2 = jnp.argsort(logits, -1)[..., -2:]
  assert bool(jnp.all((drawn[..., None] == top2).any(-1)))


def test_batches_are_a_function_of_the_step():
  tracks = [np.random.default_rng(i).integers(0, 16, (40 + 10 * i, 4, 2)).astype(np.int32) for i in range(3)]
  first = prior_data.batches(tracks, batch_size=4, frames=16, seed=0)
  batches = [next(first)['codes'] for _ in range(5)]
  resumed = next(prior_data.batches(tracks, batch_size=4, frames=16, seed=0, start=3))['codes']
  np.testing.assert_array_equal(resumed, batches[3])
  assert batches[0].shape == (4, 16, 4, 2) and not np.array_equal(batches[0], batches[1])


def _fit(config_prior, codes, steps, lr=3e-3):
  """Adam on the prior's train_step over a fixed batch; returns (model, losses)."""
  vq = _vqvae_config()
  vq.quantizer.num_codebooks, vq.quantizer.codebook_size = codes.shape[-1], int(codes.max()) + 1
  graphdef, params = models.split_params(prior_model.create(config_prior, vq))
  tx = optax.adam(lr)
  state = {'params': params, 'opt_state': tx.init(params), 'step': jnp.zeros((), jnp.int32)}
  cfg = _prior_config('unused')
  step = jax.jit(lambda s, b: prior_train.train_step(s, b, None, graphdef=graphdef, tx=tx, config=cfg))
  losses = []
  for _ in range(steps):
    state, metrics = step(state, {'codes': codes})
    losses.append(float(metrics['train/loss']))
  return nnx.merge(graphdef, state['params']), losses


def test_loss_falls_on_a_fixed_batch_and_uses_the_conditioning():
  """Bass codes that are a function of the vocals' codes: the trained prior predicts them, and its NLL rises
  when the conditioning comes from other examples (shuffled along the batch)."""
  rng = np.random.default_rng(0)
  codes = rng.integers(0, 8, (16, 24, 4, 2)).astype(np.int32)
  codes[:, :, 1] = (codes[:, :, 0] * 3 + 1) % 8  # bass = f(vocals)
  config = _prior_config('unused').prior
  config.width, config.num_layers = 32, 2
  model, losses = _fit(config, jnp.asarray(codes), 150)
  assert losses[-1] < 0.5 * losses[0], losses[::25]
  shuffled = codes.copy()
  shuffled[:, :, [0, 2, 3]] = codes[np.roll(np.arange(16), 1)][:, :, [0, 2, 3]]
  nll = lambda c: float(prior_train.nll_and_accuracy(model, jnp.asarray(c))[0].mean())
  assert nll(shuffled) > nll(codes) + 1.0, (nll(codes), nll(shuffled))


def test_training_runs_sharded_checkpoints_and_resumes(trained):
  vqvae, workdir, config = trained
  steps = [json.loads(line)['step'] for line in open(workdir / 'metrics.jsonl')]
  assert steps[-1] == 6 and os.path.isdir(workdir / 'checkpoints' / '6')
  assert os.path.isfile(workdir / 'codes' / 'train.npz')
  assert jax.device_count() == 8
  saved = json.loads(open(workdir / 'config.json').read())
  assert saved['vqvae_fingerprint'] and saved['vqvae_workdir'] == str(vqvae)
  longer = _prior_config(vqvae, num_steps=9)
  prior_train.train_and_evaluate(longer, str(workdir))
  steps = [json.loads(line)['step'] for line in open(workdir / 'metrics.jsonl')]
  assert steps[-2:] == [6, 9]  # resumed at 6, not from scratch


def test_generate_bass_is_deterministic_and_keeps_the_length(trained):
  vqvae, workdir, _ = trained
  separator = inference.load(str(vqvae), window=inference_test.WINDOW)
  _, model = generate_bass.load_prior(str(workdir), separator)
  audio = np.random.default_rng(0).normal(scale=0.2, size=(5000, 1)).astype(np.float32)
  one = generate_bass.generate(separator, model, audio, 11025, seed=3)
  two = generate_bass.generate(separator, model, audio, 11025, seed=3)
  other = generate_bass.generate(separator, model, audio, 11025, seed=4)
  for name in ('bass', 'mixture', 'hybrid'):
    assert one[name].shape == (5000, 1)
    np.testing.assert_array_equal(one[name], two[name])
  assert not np.array_equal(one['codes'].codes[:, 1], other['codes'].codes[:, 1])
  np.testing.assert_array_equal(one['codes'].codes[:, [0, 2, 3]], other['codes'].codes[:, [0, 2, 3]])


def test_generate_bass_refuses_another_vqvae(trained, tmp_path):
  vqvae, workdir, _ = trained
  config = _vqvae_config()
  graphdef, state = inference_test.random_state(config, seed=1)
  other = inference.Separator(config, graphdef, state['params'], path='other-model')
  with pytest.raises(errors.UserError, match='learned the codes of model .* other-model is model'):
    generate_bass.load_prior(str(workdir), other)
  with pytest.raises(errors.UserError, match='no checkpoints'):
    generate_bass.load_prior(str(tmp_path), other)


def test_generate_bass_command(trained, tmp_path):
  vqvae, workdir, _ = trained
  soundfile.write(str(tmp_path / 'song.wav'), np.random.default_rng(0).normal(scale=0.2, size=(3000, 2)), 8000)
  command = [sys.executable, '-m', 'srcvq_jax.generate_bass', str(tmp_path / 'song.wav'), f'--workdir={vqvae}',
             f'--prior_workdir={workdir}', f'--out={tmp_path / "out"}', '--seed=1', '--temperature=0.8']
  env = dict(os.environ, SRCVQ_TCMALLOC='0')
  done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  for name in ('bass', 'mixture', 'hybrid'):
    audio, rate = soundfile.read(str(tmp_path / 'out' / f'{name}.wav'), always_2d=True)
    assert rate == 8000 and audio.shape == (3000, 2)
  assert os.path.isfile(tmp_path / 'out' / 'codes.npz')
  bad = subprocess.run(command[:3] + [str(tmp_path / 'missing.wav')] + command[4:], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=300)
  assert bad.returncode != 0 and bad.stderr.strip().splitlines() == [
      f'error: {tmp_path / "missing.wav"}: no such file']
