"""The params' moving average (optim.ema_decay): its update rule, training unchanged by it, and every reader of a
checkpoint (evaluation, inference, resume) using it; a resume that would drop or invent it is refused."""
import os

import jax
import numpy as np
import pytest

from srcvq_jax import checkpointing
from srcvq_jax import errors
from srcvq_jax import inference
from srcvq_jax import loop
from srcvq_jax import sharding
from srcvq_jax import synthetic_data
from srcvq_jax import trainer


def _steps(config, steps):
  """The params after each of `steps` steps on one fixed batch, and the final state."""
  mesh = sharding.create_mesh(config.mesh, devices=jax.devices()[:1])
  tx = loop.create_optimizer(config)
  batch = next(synthetic_data.synthetic_batches(config, config.data.batch_size, seed=0))
  with jax.set_mesh(mesh):
    graphdef, state = trainer.create_train_state(config, mesh, tx)
    history = [jax.device_get(state['params'])]
    step = trainer.jit_train_step(config, graphdef, tx, mesh, jax.tree.map(lambda x: x.sharding, state))
    for _ in range(steps):
      state, _ = step(state, sharding.to_global(batch, mesh), jax.random.key(0))
      history.append(jax.device_get(state['params']))
  return history, jax.device_get(state)


def test_average_follows_its_rule_and_leaves_training_unchanged(ci_config):
  plain, plain_state = _steps(ci_config, 3)
  assert loop.EMA_PARAMS not in plain_state
  ci_config.optim.ema_decay = 0.5
  history, state = _steps(ci_config, 3)
  # The params themselves do not depend on whether an average is kept.
  for a, b in zip(plain, history):
    jax.tree.map(np.testing.assert_array_equal, a, b)
  expected = history[0]
  for count, params in enumerate(history[1:]):
    d = min(0.5, (1 + count) / (10 + count))
    expected = jax.tree.map(lambda e, p, d=d: d * e + (1 - d) * p, expected, params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), state[loop.EMA_PARAMS],
               expected)
  # ...and it is not the params (the test could not pass with the plain params in its place).
  differences = jax.tree.map(lambda a, b: float(np.abs(a - b).max()), state[loop.EMA_PARAMS], state['params'])
  assert max(jax.tree.leaves(differences)) > 0


def test_step_and_state_must_agree(ci_config):
  mesh = sharding.create_mesh(ci_config.mesh, devices=jax.devices()[:1])
  tx = loop.create_optimizer(ci_config)
  with jax.set_mesh(mesh):
    graphdef, state = trainer.create_train_state(ci_config, mesh, tx)
  ci_config.optim.ema_decay = 0.9
  with pytest.raises(ValueError, match="lacks 'ema_params'"):
    trainer.jit_train_step(ci_config, graphdef, tx, mesh, jax.tree.map(lambda x: x.sharding, state))


def test_checkpoint_readers_use_the_average_and_resume_keeps_it(ci_config, tmp_path):
  workdir = str(tmp_path / 'ema')
  ci_config.optim.ema_decay = 0.9
  ci_config.train.num_steps = ci_config.train.checkpoint_every = ci_config.train.log_every = 4
  ci_config.train.eval_every = 4
  state = jax.device_get(trainer.train_and_evaluate(ci_config, workdir))
  separator = inference.load(workdir)
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(separator.params), state[loop.EMA_PARAMS])

  # Resuming continues the average (it is in the checkpoint) exactly as an uninterrupted run does.
  ci_config.train.num_steps = 6
  resumed = jax.device_get(trainer.train_and_evaluate(ci_config, workdir))
  uninterrupted = jax.device_get(trainer.train_and_evaluate(ci_config, str(tmp_path / 'uninterrupted')))
  jax.tree.map(np.testing.assert_array_equal, resumed, uninterrupted)

  # A config without the average cannot resume the workdir: one clear error, the checkpoints left in place.
  ci_config.optim.ema_decay = 0.0
  ci_config.train.num_steps = 8
  with pytest.raises(errors.UserError, match='optim.ema_decay: 0.9 -> 0.0'):
    trainer.train_and_evaluate(ci_config, workdir)
  assert sorted(os.listdir(os.path.join(workdir, checkpointing.CHECKPOINT_DIR))) == ['4', '6']


def test_a_workdir_without_the_average_refuses_one(ci_config, tmp_path):
  workdir = str(tmp_path / 'plain')
  ci_config.train.num_steps = ci_config.train.checkpoint_every = ci_config.train.log_every = 2
  ci_config.train.eval_every = 2
  trainer.train_and_evaluate(ci_config, workdir)
  ci_config.optim.ema_decay = 0.99
  ci_config.train.num_steps = 4
  with pytest.raises(errors.UserError, match='optim.ema_decay: 0.0 -> 0.99'):
    trainer.train_and_evaluate(ci_config, workdir)
  assert sorted(os.listdir(os.path.join(workdir, checkpointing.CHECKPOINT_DIR))) == ['2']
