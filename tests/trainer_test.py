"""The jitted step on 1 vs 8 devices, learning on a fixed batch, end-to-end training, resume, config errors."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from srcvq_jax import errors
from srcvq_jax import loop

from srcvq_jax import checkpointing
from srcvq_jax import synthetic_data
from srcvq_jax import sharding
from srcvq_jax import trainer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _setup(config, devices):
  mesh = sharding.create_mesh(config.mesh, devices=devices)
  tx = loop.create_optimizer(config)
  with jax.set_mesh(mesh):
    graphdef, state = trainer.create_train_state(config, mesh, tx)
  step = trainer.jit_train_step(config, graphdef, tx, mesh, jax.tree.map(lambda x: x.sharding, state))
  return mesh, state, step


def test_step_on_8_devices_equals_1_device(ci_config):
  assert jax.device_count() == 8
  batch = next(synthetic_data.synthetic_batches(ci_config, ci_config.data.batch_size, seed=0))
  results = []
  for devices in (jax.devices()[:1], jax.devices()):
    mesh, state, step = _setup(ci_config, devices)
    with jax.set_mesh(mesh):
      for _ in range(2):
        state, metrics = step(state, sharding.to_global(batch, mesh), jax.random.key(0))
    results.append((jax.device_get(metrics), jax.device_get(state['params'])))
  (metrics_1, params_1), (metrics_8, params_8) = results
  np.testing.assert_allclose(metrics_1['train/loss'], metrics_8['train/loss'], rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), params_1, params_8)


@pytest.mark.slow
def test_microbatches_give_the_same_step(ci_config):
  """Cutting the batch into parts (also on a 2-device mesh) gives the loss, metrics and update of the whole batch."""
  batch = next(synthetic_data.synthetic_batches(ci_config, ci_config.data.batch_size, seed=0))
  results = {}
  for num_devices, parts in ((1, 1), (1, 4), (2, 2), (2, 4)):
    ci_config.train.microbatches = parts
    mesh, state, step = _setup(ci_config, jax.devices()[:num_devices])
    with jax.set_mesh(mesh):
      state, metrics = step(state, sharding.to_global(batch, mesh), jax.random.key(0))
    results[num_devices, parts] = jax.device_get((metrics, state['params']))
  metrics_1, params_1 = results[1, 1]
  for key, (metrics, params) in results.items():
    for name in ('train/loss', 'train/selective/stft', 'train/vq/perplexity', 'train/vq/used_frac/bass',
                 'train/l2_grads'):
      np.testing.assert_allclose(metrics[name], metrics_1[name], rtol=2e-5, err_msg=f'{key}: {name}')
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), params, params_1)


def test_microbatch_count(ci_config):
  ci_config.data.batch_size = 12
  mesh = sharding.create_mesh(ci_config.mesh, devices=jax.devices()[:2])
  assert trainer.microbatch_count(ci_config, mesh) == 3  # auto on CPU: 6 per device, at most 4 parts
  ci_config.train.microbatches = 6
  assert trainer.microbatch_count(ci_config, mesh) == 6
  ci_config.train.microbatches = 4
  with pytest.raises(errors.ConfigError, match='train.microbatches=4 must divide the 6 examples per device'):
    trainer.microbatch_count(ci_config, mesh)


@pytest.mark.slow
def test_fsdp_mesh_gives_the_same_step(ci_config):
  batch = next(synthetic_data.synthetic_batches(ci_config, ci_config.data.batch_size, seed=0))
  losses = []
  for fsdp in (1, 2):
    ci_config.mesh.fsdp = fsdp
    mesh, state, step = _setup(ci_config, jax.devices())
    with jax.set_mesh(mesh):
      state, metrics = step(state, sharding.to_global(batch, mesh), jax.random.key(0))
    losses.append(float(metrics['train/loss']))
  assert losses[0] == pytest.approx(losses[1], rel=1e-5)


def _train_on_a_fixed_batch(config, devices, steps):
  """(losses, last metrics) of `steps` steps on one synthetic batch."""
  batch = next(synthetic_data.synthetic_batches(config, config.data.batch_size, seed=0))
  mesh, state, step = _setup(config, devices)
  losses = []
  with jax.set_mesh(mesh):
    global_batch = sharding.to_global(batch, mesh)
    for _ in range(steps):
      state, metrics = step(state, global_batch, jax.random.key(0))
      losses.append(float(metrics['train/loss']))
  return losses, metrics


def test_training_on_a_fixed_batch_lowers_the_loss(ci_config):
  losses, _ = _train_on_a_fixed_batch(ci_config, jax.devices(), 40)
  assert np.isfinite(losses).all()
  assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:3]), losses


def test_train_and_evaluate_writes_metrics_and_checkpoints_and_resumes(ci_config, tmp_path):
  workdir = str(tmp_path / 'run')
  ci_config.train.num_steps = 10
  ci_config.train.checkpoint_every = 5
  ci_config.train.log_every = 5
  ci_config.train.eval_every = 5
  first = trainer.train_and_evaluate(ci_config, workdir)
  assert int(first['step']) == 10
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['10', '5']
  assert os.path.exists(os.path.join(workdir, 'config.json'))
  assert os.listdir(os.path.join(workdir, 'tensorboard'))

  # The saved step-10 parameters equal the in-memory ones exactly.
  manager = checkpointing.create_manager(workdir, read_only=True)
  saved = checkpointing.restore(manager, 10, first)
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(first), jax.device_get(saved))
  assert checkpointing.restore_config(manager, 10)['train']['num_steps'] == 10
  manager.close()

  # Same command with more steps: continues at step 11, never redoes steps 1..10.
  ci_config.train.num_steps = 15
  second = trainer.train_and_evaluate(ci_config, workdir)
  assert int(second['step']) == 15
  with open(os.path.join(workdir, 'metrics.jsonl'), encoding='utf-8') as f:
    steps = [json.loads(line)['step'] for line in f]
  assert steps == [5, 10, 15]
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['10', '15', '5']

  # ...and ends exactly where an uninterrupted 15-step run ends: same batches (a function of the step), same noise,
  # restored optimizer state; bit for bit on CPU.
  uninterrupted = trainer.train_and_evaluate(ci_config, str(tmp_path / 'uninterrupted'))
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(second), jax.device_get(uninterrupted))


def test_non_finite_loss_stops_with_a_clear_error(ci_config, tmp_path, fault_report):
  ci_config.optim.learning_rate = 1e30
  ci_config.train.num_steps = 10
  ci_config.train.log_every = 2
  with pytest.raises(FloatingPointError, match='non-finite') as error:
    trainer.train_and_evaluate(ci_config, str(tmp_path / 'nan'))
  checkpoints = os.path.join(str(tmp_path / 'nan'), 'checkpoints')
  saved = sorted(os.listdir(checkpoints)) if os.path.isdir(checkpoints) else []
  assert '\n' not in str(error.value) and not [s for s in saved if int(s) >= 10]
  fault_report('NaN in training', 'learning rate 1e30',
               f'stops with one line, "{str(error.value)[:160]}", before any save of a non-finite state '
               f'(checkpoints: {", ".join(saved) or "none"})', 'up to one save interval')


@pytest.mark.parametrize('override,message', [
    ('--config.data.bogus=3', 'invalid config override --config.data.bogus=3'),
    ('--config.data.batch_size=abc', 'batch_size=abc'),
    ('--config.model.strides=(3,4)', 'bad config: data.segment_length=4096 is not a multiple'),
])
def test_cli_reports_bad_config_in_one_line(tmp_path, override, message):
  proc = subprocess.run(
      [sys.executable, '-m', 'srcvq_jax.train', '--config=configs/ci.py', f'--workdir={tmp_path}',
       '--config.data.source=synthetic', override], cwd=REPO, capture_output=True, text=True, timeout=300,
      env={**os.environ, 'XLA_FLAGS': '--xla_force_host_platform_device_count=8'})
  assert proc.returncode == 2
  errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
  assert len(errors) == 1 and message in errors[0], proc.stderr[-2000:]
  assert 'Traceback' not in proc.stderr


def test_cosine_schedule_warms_up_then_decays_to_the_final_fraction(ci_config):
  ci_config.optim.schedule = 'cosine'
  ci_config.optim.warmup_steps = 10
  ci_config.train.num_steps = 110
  schedule = loop.learning_rate_schedule(ci_config)
  peak = ci_config.optim.learning_rate
  assert float(schedule(0)) == 0.0
  assert float(schedule(10)) == pytest.approx(peak)
  assert float(schedule(60)) == pytest.approx(peak * (1 + ci_config.optim.final_lr_fraction) / 2, rel=1e-4)
  assert float(schedule(110)) == pytest.approx(peak * ci_config.optim.final_lr_fraction, rel=1e-4)


@pytest.mark.parametrize('microbatches', [1, pytest.param(2, marks=pytest.mark.slow)])
def test_fsq_residual_model_trains_on_a_fixed_batch(ci_config, microbatches):
  ci_config.quantizer.kind, ci_config.quantizer.fsq_levels = 'fsq', (5, 3)
  ci_config.quantizer.code_dim, ci_config.quantizer.codebook_size = 2, 15
  ci_config.model.residual_units = 1
  ci_config.loss.stft_resolutions = ((128, 32),)
  ci_config.loss.log_magnitude = 1.0
  ci_config.train.microbatches = microbatches
  losses, metrics = _train_on_a_fixed_batch(ci_config, jax.devices()[:1], 15)
  assert np.isfinite(losses).all() and np.mean(losses[-3:]) < np.mean(losses[:3]), losses
  assert 1.0 <= float(metrics['train/vq/perplexity']) <= 15.0


def test_best_config_trains_a_few_steps(tmp_path):
  from configs import best  # pylint: disable=g-import-not-at-top
  config = best.get_config()
  config.data.source = 'synthetic'
  config.train.num_steps = config.train.log_every = config.train.eval_every = 2
  config.train.checkpoint_every = 2
  config.train.eval_batches = 1
  config.train.sdr_tracks = 1
  config.train.sdr_seconds = 1.0
  state = trainer.train_and_evaluate(config, str(tmp_path / 'best'))
  assert int(state['step']) == 2
  with open(tmp_path / 'best' / 'metrics.jsonl', encoding='utf-8') as f:
    last = json.loads(f.readlines()[-1])
  assert np.isfinite(last['train/loss']) and 'val_sdr/model/avg' in last
