"""The training loop every model of the project trains through: loop.run(task, config, workdir).

A Task says what is trained (the model, its jitted-step body, its eval step, its batches, what to do at an
evaluation); the loop owns the rest, the same for each: the mesh, the sharded train state {'params', 'opt_state',
'step'} (params: the model's nnx.Param state as a pure dict; the model's GraphDef is split off once and merged
inside the jitted step, the NNX performance guide's functional loop), with optim.ema_decay > 0 also 'ema_params'
(an exponential moving average of the params, which evaluation and inference then use), Adam, Orbax checkpoints
and resume, metrics (TensorBoard + metrics.jsonl), NaN checks, and SIGTERM save-and-stop. srcvq_jax/trainer.py is
the VQ-VAE's task, srcvq_jax/prior/train.py the bass prior's.

The config keys the loop reads: mesh.*, optim.* (optim.ema_decay optional, 0 = no average), train.{seed,
num_steps, log_every, eval_every, eval_batches, checkpoint_every, keep_checkpoints}.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import json
import os
import signal
import time
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from etils import epath
from flax import nnx

from srcvq_jax import checkpointing
from srcvq_jax import errors
from srcvq_jax import metric_writers
from srcvq_jax import models
from srcvq_jax import sharding
from srcvq_jax import workdir_lock

State = dict[str, Any]
Batch = dict[str, np.ndarray]
EMA_PARAMS = checkpointing.EMA_PARAMS


@dataclasses.dataclass
class Task:
  """What a run trains. The loop calls these; none of them touches checkpoints, the mesh or the writer's files.

  Attributes:
    create_model: seed -> a new nnx.Module (its nnx.Params are the trained state).
    train_step: (state, batch, rng, *, graphdef, tx) -> (new state, metrics): one optimizer step, pure (the loop
      jits it with the state's and the batch's shardings and donates the old state).
    eval_step: (params, batch, *, graphdef) -> (metrics, outputs), pure (jitted by the loop).
    train_batches: start step -> iterator of host-local NumPy batches (a resumed run starts at its step).
    eval_batches: () -> iterator of the eval batches (the same ones at every evaluation).
    on_eval: optional (params, step, scalars, last eval batch, its outputs, writer) -> more scalars (e.g. SDR
      while training, audio clips), called at each evaluation.
    console_keys: the metrics the progress line shows.
  """
  create_model: Callable[[int], nnx.Module]
  train_step: Callable[..., tuple[State, dict[str, jax.Array]]]
  eval_step: Callable[..., tuple[dict[str, jax.Array], Any]]
  train_batches: Callable[[int], Iterator[Batch]]
  eval_batches: Callable[[], Iterator[Batch]]
  on_eval: Callable[..., dict[str, float]] | None = None
  console_keys: tuple[str, ...] = ('train/loss', 'train/steps_per_sec', 'eval/loss')


# --- Optimizer and state -----------------------------------------------------------------------------------------


def learning_rate_schedule(config) -> optax.Schedule:
  """Linear warmup over optim.warmup_steps, then constant or (optim.schedule = 'cosine') a cosine decay to
  optim.final_lr_fraction x the rate at train.num_steps."""
  optim = config.optim
  if optim.schedule == 'cosine':
    return optax.warmup_cosine_decay_schedule(
        0.0, optim.learning_rate, optim.warmup_steps, max(config.train.num_steps, optim.warmup_steps + 1),
        end_value=optim.learning_rate * optim.final_lr_fraction)
  if optim.warmup_steps:
    return optax.linear_schedule(0.0, optim.learning_rate, optim.warmup_steps)
  return optax.constant_schedule(optim.learning_rate)


def create_optimizer(config) -> optax.GradientTransformation:
  """Adam (paper: lr 1e-4), optional global-norm clipping."""
  optim = config.optim
  adam = optax.adam(learning_rate_schedule(config), b1=optim.b1, b2=optim.b2)
  if optim.grad_clip_norm:
    return optax.chain(optax.clip_by_global_norm(optim.grad_clip_norm), adam)
  return adam


def ema_decay(config) -> float:
  """optim.ema_decay: the decay of the params' moving average (0: none kept; configs without the key have none)."""
  return checkpointing.ema_decay(config.to_dict())


def create_train_state(create_model: Callable[[int], nnx.Module], seed: int, mesh, tx, *,
                       ema_decay: float = 0.0) -> tuple[nnx.GraphDef, State]:
  """Builds the train state already sharded: abstract shapes first, then a jitted init with out_shardings.

  ema_decay: > 0 to also keep state['ema_params'], the params' moving average (see with_params_average), starting
    at the initial params.
  """

  def init() -> State:
    _, params = models.split_params(create_model(seed))
    state = {'params': params, 'opt_state': tx.init(params), 'step': jnp.zeros((), jnp.int32)}
    if ema_decay > 0:
      state[EMA_PARAMS] = jax.tree.map(jnp.copy, params)
    return state

  graphdef, _ = models.split_params(nnx.eval_shape(lambda: create_model(seed)))
  abstract_state = jax.eval_shape(init)
  state = jax.jit(init, out_shardings=sharding.state_shardings(mesh, abstract_state))()
  return graphdef, state


def abstract_train_state(create_model: Callable[[int], nnx.Module], seed: int, mesh, tx, *,
                         ema_decay: float = 0.0) -> tuple[nnx.GraphDef, State]:
  """(graphdef, train state as ShapeDtypeStructs with the shardings create_train_state gives on `mesh`).

  Nothing is allocated (restore targets, ahead-of-time compilation). jax.eval_shape of create_train_state keeps
  shapes and dtypes but drops the out_shardings of its jitted init, so they are put back with the same
  sharding.state_shardings that init uses.
  """
  with jax.set_mesh(mesh):
    graphdef, shapes = jax.eval_shape(lambda: create_train_state(create_model, seed, mesh, tx, ema_decay=ema_decay))
  shardings = sharding.state_shardings(mesh, shapes)
  return graphdef, jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), shapes, shardings)


def eval_params(state: State) -> Any:
  """The params evaluation and inference use: the moving average where the state keeps one, else the params."""
  return state.get(EMA_PARAMS, state['params'])


def with_params_average(step_fn, decay: float):
  """step_fn, which maps {'params', 'opt_state', 'step'}, made to carry state['ema_params'] along: after each step
  ema <- d * ema + (1 - d) * params, with d = min(decay, (1 + step) / (10 + step)) so that the first steps' average
  does not hold on to the random init (TensorFlow's ExponentialMovingAverage with num_updates)."""

  def step(state: State, batch, rng):
    average = state[EMA_PARAMS]
    new_state, metrics = step_fn({k: v for k, v in state.items() if k != EMA_PARAMS}, batch, rng)
    count = state['step'].astype(jnp.float32)
    d = jnp.minimum(decay, (1.0 + count) / (10.0 + count))
    new_state[EMA_PARAMS] = jax.tree.map(lambda a, p: (d * a + (1.0 - d) * p).astype(a.dtype), average,
                                         new_state['params'])
    return new_state, metrics

  return step


def jit_train_step(step_fn, mesh, state_shardings, *, ema_decay: float = 0.0) -> Callable:
  """The jitted, sharded train step (state, batch, rng) -> (state, metrics); donates the old state's buffers.

  ema_decay: > 0 where the state keeps 'ema_params' (create_train_state's ema_decay): the step also updates them.
  """
  if (EMA_PARAMS in state_shardings) != (ema_decay > 0):
    raise ValueError(f'ema_decay={ema_decay} but the train state {"has" if EMA_PARAMS in state_shardings else "lacks"}'
                     f' {EMA_PARAMS!r}: build it with the same create_train_state(ema_decay=...)')
  if ema_decay > 0:
    step_fn = with_params_average(step_fn, ema_decay)
  return jax.jit(step_fn, in_shardings=(state_shardings, sharding.batch_sharding(mesh), sharding.replicated(mesh)),
                 out_shardings=(state_shardings, sharding.replicated(mesh)), donate_argnums=0)


def optimizer_metrics(config, step, grads, params, updates) -> dict[str, jax.Array]:
  """The optimizer's metrics every task's step reports."""
  return {'train/lr': learning_rate_schedule(config)(step), 'train/l2_grads': optax.global_norm(grads),
          'train/l2_params': optax.global_norm(params), 'train/l2_updates': optax.global_norm(updates)}


# --- Loop helpers ------------------------------------------------------------------------------------------------


def mean_metrics(history: list[dict[str, jax.Array]]) -> dict[str, float]:
  fetched = jax.device_get(history)
  return {k: float(np.mean([m[k] for m in fetched])) for k in fetched[0]}


def check_finite(scalars: dict[str, float], step: int) -> None:
  bad = sorted(k for k, v in scalars.items() if not np.isfinite(v))
  if bad:
    raise FloatingPointError(f'non-finite metrics at step {step}: {", ".join(bad)} '
                             f'(e.g. {bad[0]}={scalars[bad[0]]}); the last checkpoint is intact: lower '
                             'optim.learning_rate or set optim.grad_clip_norm and resume')


class Stopped(Exception):
  """Training stopped on a signal after saving its checkpoint (the command exits 128 + signal, as a shell does, so
  a scheduler can tell it from a finished run)."""

  def __init__(self, signum: int, step: int):
    super().__init__(f'stopped by {signal.Signals(signum).name} at step {step}, checkpoint saved: run the same '
                     'command again to resume')
    self.signum, self.step = signum, step


def run_command(train: Callable[[], Any]) -> None:
  """Runs a training command's `train()`, turning what a user can fix into one line on stderr: a bad config (exit
  2), a user or data error or a NaN (exit 1), and a stop on a signal after saving (exit 128 + the signal)."""
  import sys  # pylint: disable=g-import-not-at-top

  from srcvq_jax import cli  # pylint: disable=g-import-not-at-top
  try:
    train()
  except Stopped as e:
    print(str(e), file=sys.stderr)
    sys.exit(128 + e.signum)
  except errors.ConfigError as e:
    cli.fail(f'bad config: {e}')
  except (errors.UserError, errors.DataError, FloatingPointError) as e:
    cli.fail(str(e), code=1)


class _Preemption:
  """Turns SIGTERM (preemption of a TPU VM/cluster job) and Ctrl-C (SIGINT) into a flag the loop checks: save,
  then stop. A second Ctrl-C interrupts at once (KeyboardInterrupt; the last complete checkpoint stays)."""

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.requested = False
    self.signum = None
    self._previous = {}

  def __enter__(self):
    for signum in self.SIGNALS:
      try:
        self._previous[signum] = signal.signal(signum, self._handle)
      except ValueError:  # not the main thread (e.g. a notebook's worker): no handler
        pass
    return self

  def _handle(self, signum, frame):
    del frame
    if self.requested and signum == signal.SIGINT:
      raise KeyboardInterrupt
    logging.warning('%s received: saving a checkpoint and stopping%s', signal.Signals(signum).name,
                    ' (Ctrl-C again to stop without saving)' if signum == signal.SIGINT else '')
    self.requested = True
    self.signum = signum

  def __exit__(self, *exc):
    for signum, previous in self._previous.items():
      signal.signal(signum, previous)


def evaluate_batches(params, batches, *, jit_eval, mesh, num_batches: int):
  """Mean eval metrics over `num_batches` batches, plus the last batch and its outputs (host arrays)."""
  history, batch, outputs = [], None, None
  for _ in range(num_batches):
    batch = next(batches)
    metrics, outputs = jit_eval(params, sharding.to_global(batch, mesh))
    history.append(metrics)
  return mean_metrics(history), batch, outputs


def config_differences(old, new, prefix: str = '') -> list[str]:
  """'key: old -> new' for every leaf that differs between two config dicts (missing keys shown as absent)."""
  out = []
  for key in sorted(set(old) | set(new)):
    a, b = old.get(key, '<absent>'), new.get(key, '<absent>')
    if isinstance(a, dict) and isinstance(b, dict):
      out += config_differences(a, b, f'{prefix}{key}.')
    elif (list(a) if isinstance(a, (list, tuple)) else a) != (list(b) if isinstance(b, (list, tuple)) else b):
      out.append(f'{prefix}{key}: {a} -> {b}')
  return out


# Config sections a resumed run may change without changing the train state's shapes; but not these fields of
# them, which shape the model's parameters.
_RESUMABLE_SECTIONS = ('train', 'data', 'loss', 'optim', 'mesh')
_SHAPING_FIELDS = ('data.sources', 'data.channels')
# Fields of the other sections that do not shape the parameters (how the layers compute, not what).
_NON_SHAPING_FIELDS = ('model.conv_impl',)


def _check_same_model(manager, config, step: int, error: BaseException) -> None:
  """Raises errors.UserError naming the differing fields when step's checkpoint failed to restore and its config
  differs from `config` outside the sections a run may change on resume (a different model, not a broken file)."""

  try:
    saved = checkpointing.restore_config(manager, step)
  except Exception:  # pylint: disable=broad-except  (its config is unreadable too: a broken step)
    return
  differences = [d for d in config_differences(saved, config.to_dict())
                 if (d.split('.', 1)[0] not in _RESUMABLE_SECTIONS or d.split(':', 1)[0] in _SHAPING_FIELDS)
                 and d.split(':', 1)[0] not in _NON_SHAPING_FIELDS]
  # The params' moving average is part of the train state where optim.ema_decay > 0 (its value may change).
  saved_ema, ema = checkpointing.ema_decay(saved), ema_decay(config)
  if (saved_ema > 0) != (ema > 0):
    differences.append(f'optim.ema_decay: {saved_ema} -> {ema} (the moving average of the params '
                       f'{"is not" if ema > 0 else "is"} in the checkpoint)')
  if differences:
    raise errors.UserError(f'{manager.directory}/{step} was trained with another model; these fields differ from '
                        f'its config (checkpoint -> now): {"; ".join(differences)}. Resume with its values or '
                        'train into a new --workdir') from None


# --- Test-only fault injection -------------------------------------------------------------------------------

# SRCVQ_TEST_FAULT=kill_after_step:N or kill_in_save:N makes the trainer SIGKILL itself right after step N's
# update (mid-run) or right after step N's async save started (its commit in flight): the deterministic points
# at which tests/reliability_test.py inflicts kill -9. Unset, it costs one dict lookup per step.
TEST_FAULT = 'SRCVQ_TEST_FAULT'


def _test_fault(where: str, step: int) -> None:
  spec = os.environ.get(TEST_FAULT)
  if spec and spec == f'{where}:{step}':
    logging.warning('%s=%s: killing this process (SIGKILL)', TEST_FAULT, spec)
    logging.flush()
    os.kill(os.getpid(), signal.SIGKILL)


# --- A failed write (a full disk) ----------------------------------------------------------------------------


# What a write raises when the file system cannot take it: full, over quota, a file too large, read-only.
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)


class _CheckpointWriteError(Exception):
  """An Orbax save (or the async commit of an earlier one) failed; the cause is chained."""


def _write_checkpoint(write: Callable[[], Any]) -> None:
  """Runs a checkpoint write, turning its failure (raised by Orbax in many types, ValueError for TensorStore's
  RESOURCE_EXHAUSTED) into _CheckpointWriteError so that only checkpoint writes are caught that broadly."""
  try:
    write()
  except Exception as error:  # pylint: disable=broad-except
    raise _CheckpointWriteError(checkpointing.reason(error)) from error


@contextlib.contextmanager
def _stop_on_failed_write(workdir: str, manager, writer, current_step: Callable[[], int]):
  """A failed write (a full disk, a quota, an I/O error: an OSError from the metrics or TensorBoard files, or a
  failed checkpoint save) stops training with one line: what failed, the partial save removed (it is not a
  checkpoint; on a full disk its space is what is needed), the newest intact step to resume from."""
  try:
    yield
  except (OSError, _CheckpointWriteError) as error:
    if isinstance(error, OSError) and error.errno not in _WRITE_ERRNOS:
      raise
    with contextlib.suppress(Exception):  # the same full disk may fail these too; nothing more to save
      manager.wait_until_finished()
    with contextlib.suppress(Exception):
      manager.close()
    with contextlib.suppress(Exception):
      writer.close()
    removed = checkpointing.remove_partial_saves(manager.directory) if jax.process_index() == 0 else []
    with contextlib.suppress(Exception):
      manager.reload()
    intact = manager.latest_step()
    what = str(error) if isinstance(error, _CheckpointWriteError) else checkpointing.reason(error)
    raise errors.UserError(
        f'{workdir}: a write failed at step {current_step()} ({what}); '
        + (f'removed the partial save(s) {", ".join(removed)}; ' if removed else '')
        + (f'checkpoints up to step {intact} are intact: free space (or fix the file system) and run the same '
           f'command again to resume from step {intact}' if intact is not None else
           'no checkpoint was written yet: free space and run the same command again')) from None


# --- The loop ----------------------------------------------------------------------------------------------------


def run(task: Task, config, workdir: str, mesh) -> State:
  """Trains config.train.num_steps steps of `task` (resuming from WORKDIR/checkpoints), evaluating and
  checkpointing; returns the final train state. Process 0 holds the workdir's lock (srcvq_jax/workdir_lock.py)
  for the whole run: a second trainer on the workdir is refused."""
  epath.Path(workdir).mkdir(parents=True, exist_ok=True)  # local or a URL (gs://bucket/run)
  held = workdir_lock.WorkdirLock(workdir) if jax.process_index() == 0 else contextlib.nullcontext()
  with held:
    return _train(task, config, workdir, mesh)


def _train(task: Task, config, workdir: str, mesh) -> State:
  is_main = jax.process_index() == 0
  logging.info('devices: %d (%s), processes: %d, mesh: %s', jax.device_count(), jax.devices()[0].platform,
               jax.process_count(), dict(mesh.shape))

  # --- Model, optimizer, state ---
  tx = create_optimizer(config)
  with jax.set_mesh(mesh):
    graphdef, state = create_train_state(task.create_model, config.train.seed, mesh, tx,
                                         ema_decay=ema_decay(config))
  state_shardings = jax.tree.map(lambda x: x.sharding, state)
  logging.info('parameters: %d', sum(x.size for x in jax.tree.leaves(state['params'])))

  # --- Checkpoint: resume from the newest step of the workdir that restores ---
  manager = checkpointing.create_manager(workdir, keep=config.train.keep_checkpoints)
  restored, latest = checkpointing.restore_latest(
      manager, lambda step: checkpointing.restore(manager, step, state), move_bad=is_main,
      check=functools.partial(_check_same_model, manager, config))
  if latest is not None:
    state = restored
    logging.info('resumed from %s at step %d', manager.directory, latest)
  start_step = int(jax.device_get(state['step']))
  if start_step >= config.train.num_steps:
    logging.warning('the workdir is at step %d, train.num_steps=%d: nothing to train (raise train.num_steps to '
                    'train on)', start_step, config.train.num_steps)
  # Written only once the checkpoint restored: a rejected config leaves the workdir as it was.
  if is_main:
    (epath.Path(workdir) / 'config.json').write_text(config.to_json_best_effort(indent=2))
  writer = metric_writers.MetricWriter(workdir, enabled=is_main)
  if start_step == 0 and is_main:
    writer.write_text('config', '```\n' + json.dumps(config.to_dict(), indent=2, default=str) + '\n```')
  train_batches = task.train_batches(start_step)

  # --- Compiled steps ---
  jit_step = jit_train_step(functools.partial(task.train_step, graphdef=graphdef, tx=tx), mesh, state_shardings,
                            ema_decay=ema_decay(config))
  jit_eval = jax.jit(functools.partial(task.eval_step, graphdef=graphdef),
                     in_shardings=(state_shardings['params'], sharding.batch_sharding(mesh)))
  rng = jax.random.key(config.train.seed)

  # --- Loop ---
  num_steps = config.train.num_steps
  history: list[dict[str, jax.Array]] = []
  last_log_time, last_log_step = time.time(), start_step
  step = start_step
  with _Preemption() as preemption, jax.set_mesh(mesh), _stop_on_failed_write(workdir, manager, writer,
                                                                             lambda: step):
    while step < num_steps:
      batch = sharding.to_global(next(train_batches), mesh)
      state, metrics = jit_step(state, batch, rng)
      history.append(metrics)
      step += 1
      if TEST_FAULT in os.environ:
        jax.block_until_ready(state)
        _test_fault('kill_after_step', step)
      if step == start_step + 1:
        logging.info('first step done (includes compilation): %.1f s', time.time() - last_log_time)
      is_last = step == num_steps or preemption.requested
      if step % config.train.log_every == 0 or step % config.train.checkpoint_every == 0 or is_last:
        scalars = mean_metrics(history)
        history = []
        check_finite(scalars, step)
        scalars['train/steps_per_sec'] = (step - last_log_step) / max(time.time() - last_log_time, 1e-9)
        if step % config.train.eval_every == 0 or is_last:
          eval_scalars, eval_batch, eval_outputs = evaluate_batches(
              eval_params(state), task.eval_batches(), jit_eval=jit_eval, mesh=mesh,
              num_batches=config.train.eval_batches)
          check_finite(eval_scalars, step)
          scalars.update(eval_scalars)
          if task.on_eval is not None:
            scalars.update(task.on_eval(eval_params(state), step, scalars, eval_batch, eval_outputs, writer))
        writer.write_scalars(step, scalars)
        remaining = (num_steps - step) / max(scalars['train/steps_per_sec'], 1e-9)
        logging.info('%s | eta %.0f s', metric_writers.format_console(step, num_steps, scalars, task.console_keys),
                     remaining)
        # Evaluation time is not training time: the next interval's steps/s starts here.
        last_log_time, last_log_step = time.time(), step
      if step % config.train.checkpoint_every == 0 or is_last:
        _write_checkpoint(lambda: checkpointing.save(manager, step, state, config.to_dict()))
        _test_fault('kill_in_save', step)
      if preemption.requested:
        break
    _write_checkpoint(manager.wait_until_finished)
    manager.close()
    writer.close()
  if preemption.requested:
    raise Stopped(preemption.signum, step)
  return state
