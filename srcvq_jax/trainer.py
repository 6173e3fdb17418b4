"""Training and evaluation loop: train_and_evaluate(config, workdir) and the one jitted train step.

The train state is a plain dict pytree {'params', 'opt_state', 'step'} (params: the model's nnx.Param state as a
pure dict). The model's structure (an nnx GraphDef) is split off once; the jitted step merges it with the params,
so nothing walks the object graph in Python per step (the NNX performance guide's functional loop).
"""
from __future__ import annotations

import functools
import json
import signal
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from etils import epath
from flax import nnx

from srcvq_jax import checkpointing
from srcvq_jax import config_lib
from srcvq_jax import input_pipeline
from srcvq_jax import losses
from srcvq_jax import metric_writers
from srcvq_jax import models
from srcvq_jax import quantizer as quantizer_lib
from srcvq_jax import sharding

State = dict[str, Any]
CONSOLE_KEYS = ('train/loss', 'train/tau', 'train/vq/perplexity', 'train/steps_per_sec', 'eval/loss',
                'val_sdr/model/avg', 'val_sdr/oracle/avg')


# --- Model, optimizer, schedules --------------------------------------------------------------------------------


def create_model(config, seed: int = 0) -> nnx.Module:
  """The model named by config.model.name, with parameters from `seed`."""
  return getattr(models, config.model.name)(config, rngs=nnx.Rngs(params=seed))


def tau_schedule(config, step):
  """Gumbel temperature: exponential decay tau_start -> tau_end over tau_anneal_steps, then constant."""
  q = config.quantizer
  progress = jnp.minimum(jnp.asarray(step, jnp.float32) / q.tau_anneal_steps, 1.0)
  return q.tau_start * (q.tau_end / q.tau_start) ** progress


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


def split_model(model: nnx.Module):
  """(graphdef, params as a pure dict)."""
  graphdef, params = nnx.split(model, nnx.Param)
  return graphdef, params.to_pure_dict()


def create_train_state(config, mesh, tx) -> tuple[nnx.GraphDef, State]:
  """Builds the train state already sharded: abstract shapes first, then a jitted init with out_shardings."""
  seed = config.train.seed

  def init() -> State:
    _, params = split_model(create_model(config, seed))
    return {'params': params, 'opt_state': tx.init(params), 'step': jnp.zeros((), jnp.int32)}

  graphdef, _ = split_model(nnx.eval_shape(lambda: create_model(config, seed)))
  abstract_state = jax.eval_shape(init)
  state = jax.jit(init, out_shardings=sharding.state_shardings(mesh, abstract_state))()
  return graphdef, state


def abstract_train_state(config, mesh) -> tuple[nnx.GraphDef, State]:
  """(graphdef, train state as ShapeDtypeStructs with the shardings create_train_state gives on `mesh`).

  Nothing is allocated (restore targets, ahead-of-time compilation). jax.eval_shape of create_train_state keeps
  shapes and dtypes but drops the out_shardings of its jitted init, so they are put back with the same
  sharding.state_shardings that init uses.
  """
  tx = create_optimizer(config)
  with jax.set_mesh(mesh):
    graphdef, shapes = jax.eval_shape(lambda: create_train_state(config, mesh, tx))
  shardings = sharding.state_shardings(mesh, shapes)
  return graphdef, jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), shapes, shardings)


# --- Steps -------------------------------------------------------------------------------------------------------


def selection_masks(batch, weights) -> jax.Array:
  """Masks [B, M, S] of the selections the losses use: selective (present & selected), complement."""
  presence, select = batch[input_pipeline.PRESENCE], batch[input_pipeline.SELECT]
  masks = {'selective': presence * select, 'complement': input_pipeline.complement(presence, select)}
  return jnp.stack([masks[name] for name in losses.active_selections(weights)], axis=1)


def _forward(graphdef, params, batch, config, noise_key, tau, gumbel=None):
  """Loss terms, total and model output of one batch (gumbel: its noise, drawn for it; else from noise_key)."""
  model = nnx.merge(graphdef, params)
  masks = selection_masks(batch, config.loss.weights)
  output = model(batch[input_pipeline.MIXTURE], masks, noise_key=noise_key, tau=tau, gumbel=gumbel)
  targets = jnp.einsum('bms,bstc->bmtc', masks, batch[input_pipeline.SOURCES])
  terms = losses.reconstruction_terms(output.audio, targets, config.loss)
  return losses.weighted_total(terms, config.loss.weights), (terms, output)


def _codebook_metrics(prefix: str, quantized, source_names) -> dict[str, jax.Array]:
  metrics = {f'{prefix}/vq/perplexity': quantized.perplexity.mean(),
             f'{prefix}/vq/used_frac': quantized.used_fraction.mean()}
  for i, name in enumerate(source_names):
    metrics[f'{prefix}/vq/perplexity/{name}'] = quantized.perplexity[i].mean()
    metrics[f'{prefix}/vq/used_frac/{name}'] = quantized.used_fraction[i].mean()
  return metrics


# Most parts `train.microbatches = 0` (auto) cuts a device's batch into on XLA:CPU. Each part is its own copy of
# the forward and backward pass in the one program, so compile time grows with the count.
AUTO_MAX_MICROBATCHES = 4


def microbatch_count(config, mesh) -> int:
  """Equal parts the train step cuts each device's batch into (train.microbatches; 0 = auto).

  The parts' losses and gradients are averaged inside the one jitted step: the same update as the whole batch,
  up to float rounding (every loss term is a mean over equal-sized parts; the Gumbel noise is drawn for the whole
  batch and cut like it; the codebook metrics combine exactly). On XLA:CPU the parts are independent subgraphs
  that its runtime executes concurrently, so one part's ops that leave a core idle (memory-bound or unpartitioned
  elementwise fusions, Eigen weight-gradient dots, per-op dispatch) overlap another part's matmuls: the base train
  step on 2 cores is ~8% faster with 4 parts than with 1 (docs/design.md). Auto picks one example per part
  there (at most AUTO_MAX_MICROBATCHES parts), and one part on accelerators, which a batch of 4 already leaves
  idle.
  """
  per_device = config.data.batch_size // sharding.batch_devices(mesh)
  requested = config.train.get('microbatches', 0)
  if requested == 0:
    if mesh.devices.flat[0].platform != 'cpu':
      return 1
    return max(n for n in range(1, AUTO_MAX_MICROBATCHES + 1) if per_device % n == 0)
  if requested < 0 or per_device % requested:
    raise config_lib.ConfigError(
        f'train.microbatches={requested} must divide the {per_device} examples per device '
        f'(data.batch_size={config.data.batch_size} over {sharding.batch_devices(mesh)} devices); 0 = auto')
  return requested


def _part(x: jax.Array, index: int, parts: int) -> jax.Array:
  """Examples index, index + parts, ... of x's batch axis: with the batch split over devices in contiguous
  blocks whose size `parts` divides, every device keeps its own examples (no resharding)."""
  return x.reshape(x.shape[0] // parts, parts, *x.shape[1:])[:, index]


def _loss_and_grads(graphdef, params, batch, config, noise_key, tau, parts: int):
  """(loss, terms, quantized, grads) of the batch, computed as `parts` microbatches (see microbatch_count)."""
  grad_fn = jax.value_and_grad(functools.partial(_forward, graphdef), has_aux=True)
  if parts == 1:
    (loss, (terms, output)), grads = grad_fn(params, batch, config, noise_key, tau)
    return loss, terms, output.quantized, grads
  mixture = batch[input_pipeline.MIXTURE]
  q = config.quantizer
  gumbel = None
  if q.kind == 'gumbel':  # FSQ draws no noise
    logits_shape = (mixture.shape[0], mixture.shape[1] // config_lib.total_stride(config),
                    len(config.data.sources), q.num_codebooks, q.codebook_size)
    gumbel = quantizer_lib.gumbel_noise(noise_key, logits_shape)
  outputs = []
  for index in range(parts):  # unrolled: independent subgraphs, which XLA:CPU runs concurrently
    part = jax.tree.map(functools.partial(_part, index=index, parts=parts), batch)
    part_gumbel = None if gumbel is None else _part(gumbel, index, parts)
    (loss, (terms, output)), grads = grad_fn(params, part, config, None, tau, part_gumbel)
    outputs.append((loss, terms, output.quantized, grads))
  part_losses, part_terms, part_quantized, part_grads = zip(*outputs)
  return (_mean_trees(part_losses), _mean_trees(part_terms),
          quantizer_lib.QuantizedResult.concatenate(part_quantized), _mean_trees(part_grads))


def _mean_trees(trees):
  return jax.tree.map(lambda *leaves: sum(leaves) / len(leaves), *trees)


def train_step(state: State, batch, rng, *, graphdef, tx, config,
               microbatches: int = 1) -> tuple[State, dict[str, jax.Array]]:
  """One optimizer step: encoder once, quantizer bank, decoder for every selection, losses, Adam.

  microbatches: equal parts the batch is computed in (same update; see microbatch_count).
  """
  step = state['step']
  noise_key = jax.random.fold_in(rng, step)
  tau = tau_schedule(config, step)
  loss, terms, quantized, grads = _loss_and_grads(graphdef, state['params'], batch, config, noise_key, tau,
                                                  microbatches)
  updates, opt_state = tx.update(grads, state['opt_state'], state['params'])
  params = optax.apply_updates(state['params'], updates)
  metrics = {
      'train/loss': loss,
      'train/tau': tau,
      'train/lr': learning_rate_schedule(config)(step),
      'train/l2_grads': optax.global_norm(grads),
      'train/l2_params': optax.global_norm(params),
      'train/l2_updates': optax.global_norm(updates),
      **{f'train/{name.replace("_", "/")}': value for name, value in terms.items()},
      **_codebook_metrics('train', quantized, config.data.sources),
  }
  return {'params': params, 'opt_state': opt_state, 'step': step + 1}, metrics


def eval_step(params, batch, *, graphdef, config) -> tuple[dict[str, jax.Array], jax.Array]:
  """Losses with inference-mode (argmax) codes; also returns the decoded audio [B, M, T, C]."""
  loss, (terms, output) = _forward(graphdef, params, batch, config, None, 1.0)
  metrics = {'eval/loss': loss, **{f'eval/{name.replace("_", "/")}': v for name, v in terms.items()},
             **_codebook_metrics('eval', output.quantized, config.data.sources)}
  return metrics, output.audio


def jit_train_step(config, graphdef, tx, mesh, state_shardings) -> Callable:
  """The jitted, sharded train step; donates the old state's buffers."""
  step_fn = functools.partial(train_step, graphdef=graphdef, tx=tx, config=config,
                              microbatches=microbatch_count(config, mesh))
  batch_sh = sharding.batch_sharding(mesh)
  return jax.jit(step_fn, in_shardings=(state_shardings, batch_sh, sharding.replicated(mesh)),
                 out_shardings=(state_shardings, sharding.replicated(mesh)), donate_argnums=0)


# --- Loop helpers ------------------------------------------------------------------------------------------------


def _mean_metrics(history: list[dict[str, jax.Array]]) -> dict[str, float]:
  fetched = jax.device_get(history)
  return {k: float(np.mean([m[k] for m in fetched])) for k in fetched[0]}


def _check_finite(scalars: dict[str, float], step: int) -> None:
  bad = sorted(k for k, v in scalars.items() if not np.isfinite(v))
  if bad:
    raise FloatingPointError(f'non-finite metrics at step {step}: {", ".join(bad)} '
                             f'(e.g. {bad[0]}={scalars[bad[0]]}); the last checkpoint is intact: lower '
                             'optim.learning_rate or set optim.grad_clip_norm and resume')


class _Preemption:
  """Turns SIGTERM (preemption of a TPU VM/cluster job) into a flag the loop checks: save, then stop."""

  def __init__(self):
    self.requested = False
    self._previous = None

  def __enter__(self):
    try:
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # not the main thread (e.g. a notebook's worker): no handler
      self._previous = None
    return self

  def _handle(self, signum, frame):
    del signum, frame
    logging.warning('SIGTERM received: saving a checkpoint and stopping')
    self.requested = True

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def evaluate_batches(params, batches, *, jit_eval, mesh, num_batches: int):
  """Mean eval metrics over `num_batches` batches, plus the last batch and its decoded audio (host arrays)."""
  history, batch, audio = [], None, None
  for _ in range(num_batches):
    batch = next(batches)
    metrics, audio = jit_eval(params, sharding.to_global(batch, mesh))
    history.append(metrics)
  return _mean_metrics(history), batch, audio


# --- Main loop ---------------------------------------------------------------------------------------------------


def train_and_evaluate(config, workdir: str) -> State:
  """Trains config.train.num_steps steps (resuming from WORKDIR/checkpoints), evaluating and checkpointing.

  Returns:
    The final train state.
  """
  # --- Setup ---
  mesh = sharding.create_mesh(config.mesh)
  config_lib.validate(config, num_devices=mesh.devices.size)
  is_main = jax.process_index() == 0
  epath.Path(workdir).mkdir(parents=True, exist_ok=True)  # local or a URL (gs://bucket/run)
  if is_main:
    (epath.Path(workdir) / 'config.json').write_text(config.to_json_best_effort(indent=2))
  writer = metric_writers.MetricWriter(workdir, enabled=is_main)
  logging.info('devices: %d (%s), processes: %d, mesh: %s', jax.device_count(), jax.devices()[0].platform,
               jax.process_count(), dict(mesh.shape))

  # --- Model, optimizer, state ---
  tx = create_optimizer(config)
  with jax.set_mesh(mesh):
    graphdef, state = create_train_state(config, mesh, tx)
  state_shardings = jax.tree.map(lambda x: x.sharding, state)
  num_params = sum(x.size for x in jax.tree.leaves(state['params']))
  logging.info('parameters: %d', num_params)

  # --- Checkpoint: always resume from the latest step of the workdir ---
  manager = checkpointing.create_manager(workdir, keep=config.train.keep_checkpoints)
  latest = manager.latest_step()
  if latest is not None:
    state = checkpointing.restore(manager, latest, state)
    logging.info('resumed from %s at step %d', manager.directory, latest)
  start_step = int(jax.device_get(state['step']))
  if start_step == 0 and is_main:
    writer.write_text('config', '```\n' + json.dumps(config.to_dict(), indent=2, default=str) + '\n```')

  # --- Data ---
  # The data seed moves with the start step so a resumed run does not replay the first run's batches.
  train_batches = input_pipeline.create_batches(
      config, config.data.train_split, seed=config.data.seed + start_step,
      process_index=jax.process_index(), process_count=jax.process_count())

  def eval_batches():
    # The same batches at every evaluation, so eval metrics are comparable across steps.
    return input_pipeline.create_batches(config, config.data.eval_split, seed=config.data.seed + 1,
                                         process_index=jax.process_index(), process_count=jax.process_count())

  # --- SDR while training (validation excerpts, argmax codes) ---
  monitor = None
  if config.train.sdr_tracks:
    from srcvq_jax import sdr_monitor  # pylint: disable=g-import-not-at-top

    monitor = sdr_monitor.SDRMonitor(config, graphdef)

  # --- Compiled steps ---
  jit_step = jit_train_step(config, graphdef, tx, mesh, state_shardings)
  jit_eval = jax.jit(functools.partial(eval_step, graphdef=graphdef, config=config),
                     in_shardings=(state_shardings['params'], sharding.batch_sharding(mesh)))
  rng = jax.random.key(config.train.seed)

  # --- Loop ---
  num_steps = config.train.num_steps
  history: list[dict[str, jax.Array]] = []
  last_log_time, last_log_step = time.time(), start_step
  with _Preemption() as preemption, jax.set_mesh(mesh):
    step = start_step
    while step < num_steps:
      batch = sharding.to_global(next(train_batches), mesh)
      state, metrics = jit_step(state, batch, rng)
      history.append(metrics)
      step += 1
      if step == start_step + 1:
        logging.info('first step done (includes compilation): %.1f s', time.time() - last_log_time)
      is_last = step == num_steps or preemption.requested
      if step % config.train.log_every == 0 or step % config.train.checkpoint_every == 0 or is_last:
        scalars = _mean_metrics(history)
        history = []
        _check_finite(scalars, step)
        scalars['train/steps_per_sec'] = (step - last_log_step) / max(time.time() - last_log_time, 1e-9)
        if step % config.train.eval_every == 0 or is_last:
          eval_scalars, eval_batch, eval_audio = evaluate_batches(
              state['params'], eval_batches(), jit_eval=jit_eval, mesh=mesh, num_batches=config.train.eval_batches)
          _check_finite(eval_scalars, step)
          scalars.update(eval_scalars)
          _write_eval_audio(writer, step, eval_batch, eval_audio, config)
          if monitor is not None:
            # (NaN where a source is silent in every window of the excerpts, as evaluate reports it.)
            scalars.update(monitor.scores(state['params'], float(scalars['train/tau'])))
        writer.write_scalars(step, scalars)
        remaining = (num_steps - step) / max(scalars['train/steps_per_sec'], 1e-9)
        logging.info('%s | eta %.0f s', metric_writers.format_console(step, num_steps, scalars, CONSOLE_KEYS),
                     remaining)
        # Evaluation time is not training time: the next interval's steps/s starts here.
        last_log_time, last_log_step = time.time(), step
      if step % config.train.checkpoint_every == 0 or is_last:
        checkpointing.save(manager, step, state, config.to_dict())
      if preemption.requested:
        break
  manager.wait_until_finished()
  manager.close()
  writer.close()
  return state


def _write_eval_audio(writer, step, batch, audio, config) -> None:
  """Listenable TensorBoard clips of the first eval example: input, selective target and reconstruction."""
  if batch is None or jax.process_index() != 0:
    return
  # Row 0 of this process's first shard is its local example 0 (no cross-host gather needed).
  first = np.asarray(audio.addressable_data(0))[0, 0]
  presence, select = batch[input_pipeline.PRESENCE][0], batch[input_pipeline.SELECT][0]
  target = np.einsum('s,stc->tc', presence * select, batch[input_pipeline.SOURCES][0])
  writer.write_audio(step, {'eval/audio/mixture': batch[input_pipeline.MIXTURE][0],
                            'eval/audio/selective_target': target,
                            'eval/audio/selective_output': first}, config.data.sample_rate)
