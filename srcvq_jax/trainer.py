"""The VQ-VAE's training: its one jitted train step, its eval step, and train_and_evaluate(config, workdir), which
runs them through the project's training loop (srcvq_jax/loop.py: state, checkpoints, resume, metrics).
"""
from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from srcvq_jax import config_lib
from srcvq_jax import errors
from srcvq_jax import batch_spec
from srcvq_jax import input_pipeline
from srcvq_jax import loop
from srcvq_jax import losses
from srcvq_jax import models
from srcvq_jax import quantizer as quantizer_lib
from srcvq_jax import sharding

State = loop.State
CONSOLE_KEYS = ('train/loss', 'train/tau', 'train/vq/perplexity', 'train/steps_per_sec', 'eval/loss',
                'val_sdr/model/avg', 'val_sdr/oracle/avg')


# --- Schedules and state -----------------------------------------------------------------------------------------


def tau_schedule(config, step):
  """Gumbel temperature: exponential decay tau_start -> tau_end over tau_anneal_steps, then constant."""
  q = config.quantizer
  progress = jnp.minimum(jnp.asarray(step, jnp.float32) / q.tau_anneal_steps, 1.0)
  return q.tau_start * (q.tau_end / q.tau_start) ** progress


def create_train_state(config, mesh, tx) -> tuple[nnx.GraphDef, State]:
  """The VQ-VAE's train state, already sharded (loop.create_train_state)."""
  return loop.create_train_state(functools.partial(models.create, config), config.train.seed, mesh, tx,
                                 ema_decay=loop.ema_decay(config))


def abstract_train_state(config, mesh) -> tuple[nnx.GraphDef, State]:
  """(graphdef, the VQ-VAE's train state as sharded ShapeDtypeStructs) without allocating it (restore targets)."""
  return loop.abstract_train_state(functools.partial(models.create, config), config.train.seed, mesh,
                                   loop.create_optimizer(config), ema_decay=loop.ema_decay(config))


# --- Steps -------------------------------------------------------------------------------------------------------


def selection_masks(batch, weights) -> jax.Array:
  """Masks [B, M, S] of the selections the losses use: selective (present & selected), complement."""
  presence, select = batch[batch_spec.PRESENCE], batch[batch_spec.SELECT]
  masks = {'selective': presence * select, 'complement': batch_spec.complement(presence, select)}
  return jnp.stack([masks[name] for name in losses.active_selections(weights)], axis=1)


def decoded_slots(batch, loss_config) -> jax.Array:
  """Masks [B, M, S] of the slots the decoder sees for each selection: the selection masks, except that with
  loss.complement_absent the complement also takes the absent sources' slots (its target stays the present,
  unselected sources: those slots must decode to nothing)."""
  masks = selection_masks(batch, loss_config.weights)
  selections = losses.active_selections(loss_config.weights)
  if not loss_config.complement_absent or 'complement' not in selections:
    return masks
  absent = 1 - batch[batch_spec.PRESENCE]
  return masks.at[:, selections.index('complement')].add(absent)


def selection_targets(masks: jax.Array, sources: jax.Array) -> jax.Array:
  """What each selection should decode to: masks [B, M, S], sources [B, S, T, C] -> the sums [B, M, T, C]."""
  return jnp.einsum('bms,bstc->bmtc', masks, sources)


def _forward(graphdef, params, batch, config, gumbel, tau):
  """Loss terms, total and model output of one batch (gumbel: its training noise; None: argmax codes)."""
  model = nnx.merge(graphdef, params)
  output = model(batch[batch_spec.MIXTURE], decoded_slots(batch, config.loss), gumbel=gumbel, tau=tau)
  targets = selection_targets(selection_masks(batch, config.loss.weights), batch[batch_spec.SOURCES])
  terms = losses.reconstruction_terms(output.audio, targets, config.loss, batch[batch_spec.MIXTURE])
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
  batch and cut like it; the codebook metrics combine exactly). The model knows nothing of it: it takes its noise
  as an input. On XLA:CPU the parts are independent subgraphs that its runtime executes concurrently, so one
  part's ops that leave a core idle (memory-bound elementwise fusions, weight-gradient dots, per-op dispatch)
  overlap another part's matmuls (docs/results.md: benchmarks/train_step.py --candidates measures it). Auto picks
  one example per part there (at most AUTO_MAX_MICROBATCHES parts), and one part on accelerators.
  """
  per_device = config.data.batch_size // sharding.batch_devices(mesh)
  requested = config.train.microbatches
  if requested == 0:
    if mesh.devices.flat[0].platform != 'cpu':
      return 1
    return max(n for n in range(1, AUTO_MAX_MICROBATCHES + 1) if per_device % n == 0)
  if requested < 0 or per_device % requested:
    raise errors.ConfigError(
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
  # Drawn for the whole batch and cut like it, so that the parts see the noise the whole batch would.
  gumbel = nnx.merge(graphdef, params).training_noise(noise_key, batch[batch_spec.MIXTURE].shape)
  if parts == 1:
    (loss, (terms, output)), grads = grad_fn(params, batch, config, gumbel, tau)
    return loss, terms, output.quantized, grads
  outputs = []
  for index in range(parts):  # unrolled: independent subgraphs, which XLA:CPU runs concurrently
    part = jax.tree.map(functools.partial(_part, index=index, parts=parts), batch)
    part_gumbel = None if gumbel is None else _part(gumbel, index, parts)
    (loss, (terms, output)), grads = grad_fn(params, part, config, part_gumbel, tau)
    outputs.append((loss, terms, output.quantized, grads))
  part_losses, part_terms, part_quantized, part_grads = zip(*outputs)
  return (_mean_trees(part_losses), _mean_trees(part_terms),
          _concatenate_quantized(part_quantized), _mean_trees(part_grads))


def _mean_trees(trees):
  return jax.tree.map(lambda *leaves: sum(leaves) / len(leaves), *trees)


def _concatenate_quantized(parts) -> quantizer_lib.QuantizedResult:
  """The QuantizedResult of the batch made of equal-sized `parts` (their code distributions' mean is the batch's)."""
  return quantizer_lib.QuantizedResult(vectors=jnp.concatenate([p.vectors for p in parts]),
                                       codes=jnp.concatenate([p.codes for p in parts]),
                                       code_probs=sum(p.code_probs for p in parts) / len(parts))


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
      **loop.optimizer_metrics(config, step, grads, params, updates),
      **{f'train/{name.replace("_", "/")}': value for name, value in terms.items()},
      **_codebook_metrics('train', quantized, config.data.sources),
  }
  return {'params': params, 'opt_state': opt_state, 'step': step + 1}, metrics


def eval_step(params, batch, *, graphdef, config) -> tuple[dict[str, jax.Array], jax.Array]:
  """Losses with inference-mode (argmax) codes; also returns the decoded audio [B, M, T, C]."""
  loss, (terms, output) = _forward(graphdef, params, batch, config, gumbel=None, tau=1.0)
  metrics = {'eval/loss': loss, **{f'eval/{name.replace("_", "/")}': v for name, v in terms.items()},
             **_codebook_metrics('eval', output.quantized, config.data.sources)}
  return metrics, output.audio


def jit_train_step(config, graphdef, tx, mesh, state_shardings) -> Callable:
  """The jitted, sharded train step; donates the old state's buffers."""
  step_fn = functools.partial(train_step, graphdef=graphdef, tx=tx, config=config,
                              microbatches=microbatch_count(config, mesh))
  return loop.jit_train_step(step_fn, mesh, state_shardings, ema_decay=loop.ema_decay(config))


# --- Training run ------------------------------------------------------------------------------------------------


def train_and_evaluate(config, workdir: str) -> State:
  """Trains config.train.num_steps steps (resuming from WORKDIR/checkpoints), evaluating and checkpointing.

  Returns:
    The final train state.
  """
  mesh = sharding.create_mesh(config.mesh)
  config_lib.validate(config, num_devices=mesh.devices.size)
  process = dict(process_index=jax.process_index(), process_count=jax.process_count())

  def train_batches(start_step):
    # Every example a function of (seed, step, index): a resumed run continues the uninterrupted run's stream.
    return input_pipeline.create_batches(config, config.data.train_split, seed=config.data.seed,
                                         start_step=start_step, **process)

  def eval_batches():
    # The same batches at every evaluation, so eval metrics are comparable across steps.
    return input_pipeline.create_batches(config, config.data.eval_split, seed=config.data.seed + 1, **process)

  # SDR while training (validation excerpts, argmax codes).
  monitor = None
  if config.train.sdr_tracks:
    from srcvq_jax import sdr_monitor  # pylint: disable=g-import-not-at-top

    graphdef, _ = models.abstract(config)
    monitor = sdr_monitor.SDRMonitor(config, graphdef)

  def on_eval(params, step, scalars, batch, audio, writer):
    _write_eval_audio(writer, step, batch, audio, config)
    if monitor is None:
      return {}
    # (NaN where a source is silent in every window of the excerpts, as evaluate reports it.)
    return monitor.scores(params, float(scalars['train/tau']))

  task = loop.Task(
      create_model=functools.partial(models.create, config),
      train_step=functools.partial(train_step, config=config, microbatches=microbatch_count(config, mesh)),
      eval_step=functools.partial(eval_step, config=config),
      train_batches=train_batches, eval_batches=eval_batches, on_eval=on_eval, console_keys=CONSOLE_KEYS)
  return loop.run(task, config, workdir, mesh)


def _write_eval_audio(writer, step, batch, audio, config) -> None:
  """Listenable TensorBoard clips of the first eval example: input, selective target and reconstruction."""
  if batch is None or jax.process_index() != 0:
    return
  # Row 0 of this process's first shard is its local example 0 (no cross-host gather needed).
  first = np.asarray(audio.addressable_data(0))[0, 0]
  presence, select = batch[batch_spec.PRESENCE][0], batch[batch_spec.SELECT][0]
  target = np.einsum('s,stc->tc', presence * select, batch[batch_spec.SOURCES][0])
  writer.write_audio(step, {'eval/audio/mixture': batch[batch_spec.MIXTURE][0],
                            'eval/audio/selective_target': target,
                            'eval/audio/selective_output': first}, config.data.sample_rate)
