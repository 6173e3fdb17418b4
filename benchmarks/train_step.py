"""One training step of configs/base.py (batch 4 x 1 s stereo 44.1 kHz): our jitted step vs PyTorch eager/compile.

Measured side by side in one process, interleaved (common.py; each timed step follows one untimed step of the same
implementation, --settle), on the same synthetic batch and the same initial parameters (ported into
benchmarks/torch_reference.py, whose loss and gradients tests/torch_parity_test.py checks):
  jax             srcvq_jax.trainer.jit_train_step on a 1-device mesh (the first device, whatever XLA_FLAGS
                  says), with the matmul layer forms (model.conv_impl=auto on CPU); jax_native_conv: the same
                  step with native convolutions (model.conv_impl=native, same params); --devices 1,4 adds a
                  4-device mesh where XLA_FLAGS=--xla_force_host_platform_device_count gives that many fake CPU
                  devices (they share the same cores; the batch of 4 must split over the mesh, so not 8)
  torch_eager     torch_reference.TrainStep (foreach Adam), with 1 and 2 intra-op threads (see TorchStep)
  torch_compile   the same with forward + losses under torch.compile (default mode, inductor)
  matmul          float32 2048^3 jax.jit and torch matmuls, interleaved with the steps: the peak that the FLOP
                  utilization is measured against, under the same machine load
Reported: median/min ms per step, ratios, compile times, parameter count, XLA's cost-analysis FLOPs of the step
and FLOP utilization = FLOPs / step time / peak (the best matmul's GFLOP/s of this run); with --ablations, the
step's cost broken down by removing parts (no STFT loss, no complement, no weight gradients, forward only, ...);
with --profile, the XLA ops that take the most time (jax.profiler trace; XLA:CPU's Eigen dots run asynchronously
and are undercounted there: the weight-gradient ablation measures them); with --candidates, the current step vs
each alternative layer form (srcvq_jax/models/layers.py) forced everywhere; with --blocks, each encoder/decoder
block alone, ours vs PyTorch eager, with its share of the matmul peak.

  python -m benchmarks.train_step [--repeats 10] [--no_compile] [--devices 1,4] [--torch_threads 1,2]
                                  [--ablations] [--profile] [--candidates] [--blocks]
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import time

import numpy as np

from benchmarks import common
from srcvq_jax import cli
from srcvq_jax import loop
from srcvq_jax import models

CONFIG_NAME = 'configs/base.py, data.source=synthetic'


def base_config():
  from configs import base  # pylint: disable=g-import-not-at-top
  config = base.get_config()
  config.data.source = 'synthetic'
  return config


def flops_of(compiled) -> float | None:
  """FLOPs of a compiled JAX computation from XLA's cost analysis (None where the backend gives none)."""
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):  # older jax: one dict per computation
    analysis = analysis[0] if analysis else None
  if not analysis or 'flops' not in analysis:
    return None
  return float(analysis['flops'])


class JaxStep:
  """The project's jitted, sharded, donating train step on the first `num_devices` devices of `backend`."""

  def __init__(self, config, batch: dict[str, np.ndarray], num_devices: int = 1, backend: str | None = None,
               forms=None):
    """forms: the layers' forms (srcvq_jax.models.layers.LayerForms); None: config.model.conv_impl's."""
    import functools  # pylint: disable=g-import-not-at-top
    import jax  # pylint: disable=g-import-not-at-top
    from srcvq_jax import sharding  # pylint: disable=g-import-not-at-top
    from srcvq_jax import trainer  # pylint: disable=g-import-not-at-top
    self.mesh = sharding.create_mesh(config.mesh, devices=jax.devices(backend)[:num_devices])
    tx = loop.create_optimizer(config)
    with jax.set_mesh(self.mesh):
      graphdef, self.state = loop.create_train_state(functools.partial(models.create, config, forms=forms),
                                                     config.train.seed, self.mesh, tx,
                                                     ema_decay=loop.ema_decay(config))
      self.initial_params = jax.device_get(self.state['params'])
      step = trainer.jit_train_step(config, graphdef, tx, self.mesh,
                                    jax.tree.map(lambda x: x.sharding, self.state))
      self.batch = sharding.to_global(batch, self.mesh)
      self.rng = jax.random.key(config.train.seed)
      start = time.perf_counter()
      lowered = step.lower(self.state, self.batch, self.rng)
      self.trace_s = time.perf_counter() - start
      start = time.perf_counter()
      self.compiled = lowered.compile()
      self.compile_s = time.perf_counter() - start
    self.flops = flops_of(self.compiled)
    self.microbatches = trainer.microbatch_count(config, self.mesh)
    self.num_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(self.initial_params))

  def __call__(self):
    self.state, metrics = self.compiled(self.state, self.batch, self.rng)
    return metrics['train/loss']


class TorchStep:
  """torch_reference.TrainStep on the same batch, starting from the JAX parameters, with `threads` intra-op threads.

  The thread count is set before every call, so steps with different counts can be interleaved: on a loaded
  2-core machine, torch's OpenMP barriers with 2 threads can be several times slower than 1 thread (a thread
  that loses its core stalls the others), while on a quiet one 2 threads win; both are timed, and the ratios
  use the faster one.
  """

  def __init__(self, config, batch, params, *, compile: bool, threads: int, model=None):
    import torch  # pylint: disable=g-import-not-at-top
    from benchmarks import torch_reference  # pylint: disable=g-import-not-at-top
    self.threads = threads
    torch.set_num_threads(threads)
    if model is None:
      model = torch_reference.VQVAE(config)
      torch_reference.load_jax_params(model, params)
      self.step = torch_reference.TrainStep(model, config, compile=compile)
    else:  # share another TorchStep's model, optimizer and compiled function (thread count differs)
      self.step = model.step
    self.batch = torch_reference.batch_to_torch(batch)
    start = time.perf_counter()
    self()  # eager: allocator warm-up; compile: tracing + inductor codegen (the first step)
    self.first_step_s = time.perf_counter() - start

  def __call__(self):
    import torch  # pylint: disable=g-import-not-at-top
    torch.set_num_threads(self.threads)
    return self.step(self.batch)['loss']


def torch_flops(config, batch, params) -> float | None:
  """FLOPs of one torch eager step counted by torch.utils.flop_counter (matmuls/convolutions only): a cross-check."""
  torch = common.torch_or_none()
  if torch is None:
    return None
  from torch.utils.flop_counter import FlopCounterMode  # pylint: disable=g-import-not-at-top
  step = TorchStep(config, batch, params, compile=False, threads=1)
  with FlopCounterMode(display=False) as counter:
    step()
  return float(counter.get_total_flops())


def run_ablations(args, batch):
  """Step time with parts removed (each variant its own jitted step), interleaved: where the time goes."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from srcvq_jax import spectral  # pylint: disable=g-import-not-at-top
  from srcvq_jax import trainer  # pylint: disable=g-import-not-at-top

  def with_weights(**weights):
    config = base_config()
    for name, value in weights.items():
      config.loss.weights[name] = value
    return config

  variants = {
      'full step': base_config(),
      'no STFT loss': with_weights(selective_stft=0.0, complement_stft=0.0),
      'no complement (1 decode)': with_weights(complement_l1=0.0, complement_stft=0.0),
      'L1 only, 1 decode': with_weights(complement_l1=0.0, complement_stft=0.0, selective_stft=0.0),
  }
  fns, flops = {}, {}
  for name, config in variants.items():
    step = JaxStep(config, batch, 1)
    fns[name], flops[name] = step, step.flops
  # The weight gradients (x^T dy of every layers.matmul) left out: what they cost in the step. XLA:CPU runs them
  # as Eigen dots, asynchronously, so a trace's op events show only part of their time (--profile).
  from srcvq_jax.models import layers  # pylint: disable=g-import-not-at-top
  config = base_config()
  forms = dataclasses.replace(layers.forms_for(config.model.conv_impl), weight_gradients=False)
  step = JaxStep(config, batch, 1, forms=forms)
  fns['no weight-gradient matmuls'], flops['no weight-gradient matmuls'] = step, step.flops

  # Forward only (loss value, no gradient, no Adam) and the loss with eval-mode (argmax) codes.
  config = base_config()
  full = JaxStep(config, batch, 1)
  from flax import nnx  # pylint: disable=g-import-not-at-top
  graphdef, _ = models.split_params(nnx.eval_shape(lambda: models.create(config)))
  params = full.state['params']

  def forward(params, batch, key):
    return trainer._forward(graphdef, params, batch, config, key, 1.0)[0]  # pylint: disable=protected-access

  with jax.set_mesh(full.mesh):
    fwd = jax.jit(forward).lower(params, full.batch, full.rng).compile()
    grad = jax.jit(jax.grad(forward)).lower(params, full.batch, full.rng).compile()
  fns['forward only (loss)'] = lambda: fwd(params, full.batch, full.rng)
  fns['forward+backward (no Adam)'] = lambda: grad(params, full.batch, full.rng)
  flops['forward only (loss)'], flops['forward+backward (no Adam)'] = flops_of(fwd), flops_of(grad)

  # The STFT magnitudes of the step alone: 2 selections x (prediction + target) of [B, C, T], forward+backward.
  n_fft, hop = config.loss.n_fft, config.loss.hop
  audio = jnp.asarray(np.random.default_rng(0).standard_normal((2 * config.data.batch_size, 2,
                                                                 config.data.segment_length)), jnp.float32)

  def stft_part(x):
    target = jax.lax.stop_gradient(x[::-1])
    diff = spectral.stft_magnitude(x, n_fft, hop, 1e-8) - spectral.stft_magnitude(target, n_fft, hop, 1e-8)
    return jnp.mean(jnp.abs(diff))

  stft_grad = jax.jit(jax.grad(stft_part))
  fns['STFT-L1 of the step alone (fwd+bwd)'] = lambda: stft_grad(audio)

  stats = common.interleaved(fns, warmup=2, repeats=args.repeats)
  full_ms = stats['full step']['median_ms']
  for name, s in stats.items():
    common.emit('train_step_ablation', impl=name, config=CONFIG_NAME + ', 1-device mesh', stats=s,
                share_of_full_step=s['median_ms'] / full_ms, xla_gflop=(flops.get(name) or 0) / 1e9)


# --- Blocks: each encoder/decoder block alone, ours vs PyTorch eager ------------------------------------------------


def run_blocks(args, batch):
  """Every encoder and decoder block alone, forward + backward, ours vs PyTorch eager (2 threads), interleaved.

  Same weights (ported), same shapes as inside the step (encoder: the batch; decoder: batch x selections), the loss
  sum(block(x) * r) with a fixed random r; the first encoder block, like the step, needs no input gradient. Each
  timed sample follows one untimed call of the same block (common.interleaved's settle). Prints
  one line per block with both times, the ratio and the GFLOP/s (XLA's cost analysis of our block) against the
  2048^3 matmul peak measured in the same loop: which blocks the step's ratio comes from, and how close to the
  peak each already is.
  """
  del batch
  torch = common.torch_or_none()
  if torch is None:
    common.emit('train_step_block', config=CONFIG_NAME, units='skipped', note='torch is not installed')
    return
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import torch.nn.functional as F  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from benchmarks import torch_reference  # pylint: disable=g-import-not-at-top
  from srcvq_jax import losses  # pylint: disable=g-import-not-at-top

  config = base_config()
  model = models.create(config)
  reference = torch_reference.VQVAE(config)
  torch_reference.load_jax_params(reference, models.split_params(model)[1])
  torch.set_num_threads(2)
  rng = np.random.default_rng(0)
  sequences = {'encoder': config.data.batch_size,
               'decoder': config.data.batch_size * len(losses.active_selections(config.loss.weights))}
  strides = list(config.model.strides)

  blocks = []  # (name, jax modules, torch modules, input shape, output shape, kind)
  length, channels = config.data.segment_length, config.data.channels
  for i, width in enumerate(config.model.channels):
    blocks.append((f'encoder {i}: {length} x {channels} -> {length // strides[i]} x {width}',
                   (model.encoder.convs[i], model.encoder.mixes[i]),
                   (reference.encoder.convs[i], reference.encoder.mixes[i]),
                   (sequences['encoder'], length, channels), (sequences['encoder'], length // strides[i], width),
                   'first' if i == 0 else 'encoder'))
    length, channels = length // strides[i], width
  widths = list(config.model.channels)[::-1]
  targets = widths[1:] + [config.data.channels]
  for i, (width, target, stride) in enumerate(zip(widths, targets, strides[::-1])):
    blocks.append((f'decoder {i}: {length} x {width} -> {length * stride} x {target}',
                   (model.decoder.mixes[i], model.decoder.convs[i]),
                   (reference.decoder.mixes[i], reference.decoder.convs[i]),
                   (sequences['decoder'], length, width), (sequences['decoder'], length * stride, target),
                   'last' if i == len(widths) - 1 else 'decoder'))
    length *= stride

  def jax_block(modules, kind, x, r):
    graphdef, params = nnx.split(modules)

    def loss(params, x):
      first, second = nnx.merge(graphdef, params)
      if kind in ('first', 'encoder'):  # strided conv -> GELU -> 1x1 conv + GLU
        y = second(jax.nn.gelu(first(x)))
      else:  # 1x1 conv + GLU -> transposed conv (-> GELU but after the output layer)
        y = second(first(x))
        y = y if kind == 'last' else jax.nn.gelu(y)
      return jnp.sum(y * r)

    grad = jax.jit(jax.grad(loss, argnums=0 if kind == 'first' else (0, 1)))
    compiled = grad.lower(params, x).compile()
    return (lambda: compiled(params, x)), flops_of(compiled)

  def torch_block(modules, kind, x, r):
    first, second = modules
    x = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 2, 1))).requires_grad_(kind != 'first')
    r = torch.from_numpy(np.ascontiguousarray(r.transpose(0, 2, 1)))
    parameters = list(first.parameters()) + list(second.parameters())

    def step():
      torch.set_num_threads(2)
      for p in parameters:
        p.grad = None
      x.grad = None
      if kind in ('first', 'encoder'):
        y = F.glu(second(torch_reference._gelu(first(x))), dim=1)  # pylint: disable=protected-access
      else:
        y = second(F.glu(first(x), dim=1))
        y = y if kind == 'last' else torch_reference._gelu(y)  # pylint: disable=protected-access
      (y * r).sum().backward()
      return y.detach()

    return step

  fns, flops = {}, {}
  for name, jax_modules, torch_modules, in_shape, out_shape, kind in blocks:
    x = rng.standard_normal(in_shape, dtype=np.float32)
    r = rng.standard_normal(out_shape, dtype=np.float32)
    fns[f'jax {name}'], flops[name] = jax_block(jax_modules, kind, jnp.asarray(x), jnp.asarray(r))
    fns[f'torch {name}'] = torch_block(torch_modules, kind, x, r)
  n = 2048
  a, b = (jnp.asarray(rng.standard_normal((n, n), dtype=np.float32)) for _ in range(2))
  jit_matmul = jax.jit(lambda x, y: x @ y)
  fns['matmul_jax'] = lambda: jit_matmul(a, b)
  # Blocks take 5-40 ms: one settling call before each timed sample (see common.interleaved).
  stats = common.interleaved(fns, warmup=2, repeats=args.repeats, inner=2, settle=1)
  peak = 2.0 * n**3 / (stats['matmul_jax']['median_ms'] * 1e-3) / 1e9
  totals = {'jax': 0.0, 'torch': 0.0}
  for name, *_ in blocks:
    ours, theirs = stats[f'jax {name}'], stats[f'torch {name}']
    totals['jax'] += ours['median_ms']
    totals['torch'] += theirs['median_ms']
    gflop = (flops[name] or 0) / 1e9
    common.emit('train_step_block', impl=name, config=CONFIG_NAME + ', forward+backward', units='ms',
                jax_ms=ours['median_ms'], torch_eager_ms=theirs['median_ms'],
                speedup_vs_torch_eager=theirs['median_ms'] / ours['median_ms'], gflop=gflop,
                jax_peak_fraction=gflop / (ours['median_ms'] * 1e-3) / peak,
                torch_peak_fraction=gflop / (theirs['median_ms'] * 1e-3) / peak)
  common.emit('train_step_block', impl='all blocks', config=CONFIG_NAME + ', forward+backward', units='ms',
              jax_ms=totals['jax'], torch_eager_ms=totals['torch'],
              speedup_vs_torch_eager=totals['torch'] / totals['jax'], peak_gflops=peak)


# --- Candidates: the layer forms srcvq_jax/models/layers.py chooses between, each forced everywhere ----------------

# name -> the layers.LayerForms field values that force one form everywhere (on top of the matmul forms); the
# matmul forms choose per layer by shape.
CANDIDATES = {
    'native convolutions (model.conv_impl=native)': None,
    'GatedDense: one matmul + split everywhere': dict(split_gate_max_in_features=0),
    'GatedDense: value/gate matmuls everywhere': dict(split_gate_max_in_features=1 << 30),
    'StridedConv: block product everywhere': dict(strided='blocks'),
    'TransposedConv: output side everywhere': dict(transposed='output'),
    'TransposedConv: input side everywhere': dict(transposed='input'),
}


def run_candidates(args, batch):
  """The matmul forms (what model.conv_impl=auto picks on CPU) vs native convolutions, vs each matmul form forced
  everywhere, and vs the batch in one part, interleaved (same params, same batch).

  Every form computes the same function (tests/models_test.py); only speed differs. speedup > 1 means the
  candidate is faster than the current choice.
  """
  from srcvq_jax.models import layers  # pylint: disable=g-import-not-at-top
  steps = {'current step': JaxStep(base_config(), batch, 1, forms=layers.MATMUL)}
  whole = base_config()
  whole.train.microbatches = 1
  steps['whole batch in one part (train.microbatches=1)'] = JaxStep(whole, batch, 1, forms=layers.MATMUL)
  for name, fields in CANDIDATES.items():
    forms = layers.NATIVE if fields is None else dataclasses.replace(layers.MATMUL, **fields)
    steps[name] = JaxStep(base_config(), batch, 1, forms=forms)
  losses = {name: float(step()) for name, step in steps.items()}  # first step: same params, same batch
  stats = common.interleaved(steps, warmup=2, repeats=args.repeats)
  base = stats['current step']['median_ms']
  for name, s in stats.items():
    common.emit('train_step_candidate', impl=name, config=CONFIG_NAME + ', 1-device mesh', stats=s,
                speedup=base / s['median_ms'], first_loss=losses[name],
                loss_rel_diff=abs(losses[name] - losses['current step']) / abs(losses['current step']))


# --- Profile: XLA ops of the step by time -----------------------------------------------------------------------


def run_profile(args, batch, top: int = 25):
  """Traces a few steps with jax.profiler and prints the XLA:CPU ops (thunks) that take the most time per step."""
  import collections  # pylint: disable=g-import-not-at-top
  import glob  # pylint: disable=g-import-not-at-top
  import gzip  # pylint: disable=g-import-not-at-top
  import json  # pylint: disable=g-import-not-at-top
  import re  # pylint: disable=g-import-not-at-top
  import tempfile  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top

  step = JaxStep(base_config(), batch, 1)
  for _ in range(2):
    jax.block_until_ready(step())
  shapes, kinds = {}, {}
  for line in step.compiled.as_text().splitlines():
    match = re.match(r'\s*(?:ROOT )?%?([\w.\-]+) = (\S+) ', line)
    if match:
      shapes[match.group(1)] = match.group(2)
      op = re.search(r'op_name="([^"]*)"', line)
      kinds[match.group(1)] = op.group(1).rsplit('/', 1)[-1] if op else ''
  steps = max(3, args.repeats // 2)
  with tempfile.TemporaryDirectory() as directory:
    with jax.profiler.trace(directory, create_perfetto_trace=True):
      for _ in range(steps):
        jax.block_until_ready(step())
    trace_file = sorted(glob.glob(os.path.join(directory, '**', '*.json.gz'), recursive=True))[-1]
    with gzip.open(trace_file) as f:
      trace = json.load(f)
  events = trace['traceEvents'] if isinstance(trace, dict) else trace
  per_op = collections.Counter()
  for event in events:
    name = event.get('name', '')
    # Python frames ('$...') and executor bookkeeping enclose the ops: skip them.
    if event.get('ph') == 'X' and name in shapes:
      per_op[name] += event.get('dur', 0) / 1e3 / steps
  total = sum(per_op.values())
  by_kind = collections.Counter()
  for name, ms in per_op.items():
    by_kind[re.sub(r'\.\d+$', '', name)] += ms
  config = CONFIG_NAME + ', 1-device mesh'
  common.emit('train_step_profile', impl='total of XLA ops', config=config, units='ms/step', ms=total,
              note='sum over ops; ops can overlap, so it can exceed the step time')
  for kind, ms in by_kind.most_common(12):
    # XLA:CPU's Eigen dots (the weight gradients) hand their work to the thread pool and return: their op events
    # cover only part of it (the rest shows as idle time); --ablations' 'no weight-gradient matmuls' measures it.
    note = {'note': 'asynchronous Eigen dots: undercounted'} if kind == 'dot' else {}
    common.emit('train_step_profile', impl=f'kind {kind}', config=config, units='ms/step', ms=ms,
                share=ms / total, **note)
  for name, ms in per_op.most_common(top):
    common.emit('train_step_profile', impl=name, config=config, units='ms/step', ms=ms, share=ms / total,
                shape=shapes.get(name, ''), jax_op=kinds.get(name, ''))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--repeats', type=int, default=10)
  parser.add_argument('--warmup', type=int, default=3)
  parser.add_argument('--settle', type=int, default=1,
                      help='untimed calls of an implementation before each of its timed steps (0: pure interleaving)')
  parser.add_argument('--devices', default='1', help='comma-separated mesh sizes to time (e.g. 1,8)')
  parser.add_argument('--no_compile', action='store_true', help='skip torch.compile (its first step takes ~30 s)')
  parser.add_argument('--torch_threads', default='1,2', help='comma-separated torch intra-op thread counts')
  parser.add_argument('--ablations', action='store_true', help='also time the step with parts removed')
  parser.add_argument('--candidates', action='store_true', help='also time the alternative layer forms')
  parser.add_argument('--profile', action='store_true', help='also print the XLA ops that take the most time')
  parser.add_argument('--blocks', action='store_true', help='also time each block alone, ours vs PyTorch eager')
  args = parser.parse_args()

  import jax  # pylint: disable=g-import-not-at-top
  from srcvq_jax import synthetic_data  # pylint: disable=g-import-not-at-top

  config = base_config()
  batch = next(synthetic_data.synthetic_batches(config, config.data.batch_size, seed=0))
  visible = jax.device_count()
  fns, jax_steps = {}, {}
  for count in sorted({1} | {int(c) for c in args.devices.split(',')}):  # 1 always: the ratios use it
    if count > visible or config.data.batch_size % count:
      reason = (f'only {visible} devices visible (XLA_FLAGS=--xla_force_host_platform_device_count=N)'
                if count > visible else f'batch {config.data.batch_size} does not split over {count} devices')
      common.emit('train_step', impl=f'jax_{count}dev', config=CONFIG_NAME, units='skipped', note=reason)
      continue
    step = JaxStep(config, batch, count)
    jax_steps[count] = step
    fns['jax' if count == 1 else f'jax_{count}dev'] = step
  first = jax_steps[min(jax_steps)]
  # The same step with native convolutions (model.conv_impl=native, what 'auto' picks on GPUs/TPUs), same params.
  from srcvq_jax.models import layers  # pylint: disable=g-import-not-at-top
  native = JaxStep(config, batch, 1, forms=layers.NATIVE)
  fns['jax_native_conv'] = native

  torch = common.torch_or_none()
  first_step_s = {}
  if torch is not None:
    thread_counts = [int(t) for t in args.torch_threads.split(',')]
    for kind in ('eager', 'compile'):
      if kind == 'compile' and args.no_compile:
        continue
      shared = None
      for threads in thread_counts:
        name = f'torch_{kind}_{threads}t'
        fns[name] = TorchStep(config, batch, first.initial_params, compile=kind == 'compile', threads=threads,
                              model=shared)
        first_step_s[name] = fns[name].first_step_s
        shared = shared or fns[name]

  # The peak, interleaved with the steps so that it sees the same machine load.
  rng = np.random.default_rng(0)
  n = 2048
  a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
  ja, jb = jax.device_put(a, jax.devices()[0]), jax.device_put(b, jax.devices()[0])
  jit_matmul = jax.jit(lambda x, y: x @ y)
  fns['matmul_jax'] = lambda: jit_matmul(ja, jb)
  if torch is not None:
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    threads = os.cpu_count() or 1
    fns['matmul_torch'] = lambda: (torch.set_num_threads(threads), ta @ tb)[1]

  # Each timed step follows one untimed step of the same implementation, as in a training loop (common.interleaved's
  # settle): the first step after the other framework ran pays its cold caches and spinning threads.
  stats = common.interleaved(fns, warmup=args.warmup, repeats=args.repeats, settle=args.settle)
  peaks = {k: 2.0 * n**3 / (s['median_ms'] * 1e-3) / 1e9 for k, s in stats.items() if k.startswith('matmul')}
  peak_impl = max(peaks, key=peaks.get)
  peak = peaks[peak_impl]
  for impl, value in peaks.items():
    common.emit('train_step', impl=impl, config=f'float32 {n}^3 (peak reference)', stats=stats[impl],
                gflops=value)

  step_flops = first.flops
  torch_counted = torch_flops(config, batch, first.initial_params) if torch is not None else None
  jax_ms = stats['jax']['median_ms']
  for impl, s in stats.items():
    if impl.startswith('matmul'):
      continue
    extra = {}
    if step_flops:
      extra['gflop_per_step'] = step_flops / 1e9
      extra['gflops'] = step_flops / (s['median_ms'] * 1e-3) / 1e9
      extra['peak_fraction'] = extra['gflops'] / peak
    extra['speedup_of_jax'] = s['median_ms'] / jax_ms  # > 1: our step is faster than this one
    if impl.startswith('jax'):
      step = native if impl == 'jax_native_conv' else jax_steps[1 if impl == 'jax' else int(impl.split('_')[1][:-3])]
      extra.update(mesh_devices=len(step.mesh.devices.flat), visible_devices=visible,
                   microbatches=step.microbatches, trace_s=step.trace_s, compile_s=step.compile_s)
    else:
      extra['first_step_s'] = first_step_s[impl]
    common.emit('train_step', impl=impl, config=CONFIG_NAME, stats=s, units='ms/step', **extra)

  summary = {
      'jax_ms': jax_ms,
      'params': first.num_params,
      'xla_gflop_per_step': (step_flops or 0) / 1e9,
      'torch_counted_gflop_per_step': (torch_counted or 0) / 1e9,
      'peak_gflops': peak, 'peak_impl': peak_impl,
      'jax_peak_fraction': (step_flops / (jax_ms * 1e-3) / 1e9 / peak) if step_flops else None,
      'jax_compile_s': first.compile_s, 'jax_trace_s': first.trace_s, 'jax_microbatches': first.microbatches,
      'jax_native_conv_ms': stats['jax_native_conv']['median_ms'],
      'matmul_forms_speedup_vs_native_conv': stats['jax_native_conv']['median_ms'] / jax_ms,
  }
  for kind in ('torch_eager', 'torch_compile'):
    timed = {k: s for k, s in stats.items() if k.startswith(kind + '_')}
    if timed:
      best = min(timed, key=lambda k: timed[k]['median_ms'])  # the faster thread count
      summary[f'{kind}_ms'] = timed[best]['median_ms']
      summary[f'{kind}_best_threads'] = int(best.rsplit('_', 1)[1][:-1])
      summary[f'speedup_vs_{kind}'] = timed[best]['median_ms'] / jax_ms
      summary[f'{kind}_first_step_s'] = max(first_step_s[k] for k in timed)
  common.emit('train_step', impl='summary', config=CONFIG_NAME + ', 1-device mesh', units='ms/step', **summary,
              **common.environment())

  if args.ablations:
    run_ablations(args, batch)
  if args.candidates:
    run_candidates(args, batch)
  if args.blocks:
    run_blocks(args, batch)
  if args.profile:
    run_profile(args, batch)


if __name__ == '__main__':
  cli.relaunch_with_tcmalloc()
  main()
