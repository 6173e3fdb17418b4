"""The train step on an accelerator (GPU): step time, XLA's FLOPs and model FLOP utilization (MFU), vs PyTorch.

For configs/base.py (data.source=synthetic) at several global batch sizes and compute dtypes, on the first device
of the default JAX backend (one chip), measured in one run:
  matmul          8192^3 products under jax.jit: float32 at JAX's default precision (TF32 on NVIDIA tensor cores),
                  float32 at precision=HIGHEST (true float32) and bfloat16: the peaks MFU is measured against
  jax             srcvq_jax.trainer.jit_train_step on a 1-device mesh (the benchmarks.train_step.JaxStep), every
                  (batch, model.dtype, model.conv_impl) combination: native convolutions (what 'auto' picks off the
                  CPU) and the CPU's matmul forms, same params; MFU = FLOPs of the step (XLA:CPU's cost analysis of the float32
                  step: see counted_flops) / step time / the matmul peak of the step's dtype (float32 steps against
                  the default-precision float32 peak)
  torch_eager,    benchmarks/torch_reference.py on the same CUDA device (float32 with TF32 matmuls/convolutions
  torch_compile   allowed, JAX's default precision), same batch, same initial parameters; --no_torch skips them
Each timed sample is `--steps` consecutive steps with one wait at the end (as a training loop runs: dispatch of the
next step overlaps the current one), reported per step; implementations interleave (common.interleaved).

  python -m benchmarks.accelerator_step [--batches 4,64,256] [--dtypes float32,bfloat16] [--conv_impls native,matmul]
                                        [--repeats 10] [--steps 10] [--no_torch] [--no_compile] [--cpu]

On a machine without an accelerator it prints one 'skipped' line (so `make bench` passes over it; the CPU's
comparison is benchmarks/train_step.py), unless --cpu asks to run it on the CPU anyway (a smoke test of the script).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks import common
from srcvq_jax import cli

CONFIG_NAME = 'configs/base.py, data.source=synthetic, 1 device'


def matmul_peaks(n: int, repeats: int) -> dict[str, float]:
  """name -> TFLOP/s (median) of n^3 jitted products on the first device: float32 default/highest, bfloat16."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  device = jax.devices()[0]
  rng = np.random.default_rng(0)  # random operands: zeros run faster than real data on some chips
  a32, b32 = (jax.device_put(rng.standard_normal((n, n), dtype=np.float32), device) for _ in range(2))
  a16, b16 = a32.astype(jnp.bfloat16), b32.astype(jnp.bfloat16)
  default = jax.jit(jnp.matmul)
  highest = jax.jit(lambda x, y: jnp.matmul(x, y, precision=jax.lax.Precision.HIGHEST))
  fns = {'float32': lambda: default(a32, b32), 'float32_highest': lambda: highest(a32, b32),
         'bfloat16': lambda: default(a16, b16)}
  stats = common.interleaved(fns, warmup=2, repeats=repeats, inner=5)
  peaks = {}
  for name, s in stats.items():
    peaks[name] = 2.0 * n**3 / (s['median_ms'] * 1e-3) / 1e12
    common.emit('accelerator_matmul', impl=name, config=f'{n}^3 on {device.device_kind}', stats=s,
                tflops=peaks[name])
  return peaks


def step_config(batch_size: int, dtype: str, conv_impl: str = 'native'):
  from benchmarks import train_step  # pylint: disable=g-import-not-at-top
  config = train_step.base_config()
  config.data.batch_size = batch_size
  config.model.dtype = dtype
  config.model.conv_impl = conv_impl
  return config


def counted_flops(config, batch) -> float | None:
  """FLOPs of one float32 step by XLA:CPU's cost analysis of the same step compiled for the CPU (not run there).

  The GPU backend's cost analysis leaves out what it hands to libraries (cuBLAS GEMMs): on an H200 it gave 13.6
  GFLOP for the batch-4 step that XLA:CPU counts at 19.0 (torch's FlopCounterMode: 18.4), and 72 GFLOP at batch
  64 (16x the work); it also counts a bfloat16 step's casts. The FLOPs of the algorithm do not depend on the device
  or dtype, so every MFU here uses XLA:CPU's count of the float32 step.
  """
  from benchmarks import train_step  # pylint: disable=g-import-not-at-top
  return train_step.JaxStep(config, batch, 1, backend='cpu').flops


def jax_steps(config, batch, steps: int):
  """(fn running `steps` steps then waiting, the JaxStep): the project's compiled step on one device."""
  from benchmarks import train_step  # pylint: disable=g-import-not-at-top
  step = train_step.JaxStep(config, batch, 1)

  def run():
    for _ in range(steps):
      loss = step()
    return loss

  return run, step


def torch_steps(config, batch, params, steps: int, *, compile: bool):
  """(fn running `steps` torch steps on CUDA then synchronizing, seconds of the first step)."""
  import torch  # pylint: disable=g-import-not-at-top
  from benchmarks import torch_reference  # pylint: disable=g-import-not-at-top
  model = torch_reference.VQVAE(config)
  torch_reference.load_jax_params(model, params)
  model = model.to('cuda')
  train = torch_reference.TrainStep(model, config, compile=compile)
  tensors = torch_reference.batch_to_torch(batch, 'cuda')

  def run():
    for _ in range(steps):
      loss = train(tensors)['loss']
    torch.cuda.synchronize()
    return loss

  start = time.perf_counter()
  train(tensors)
  torch.cuda.synchronize()
  return run, time.perf_counter() - start


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--batches', default='4,64,256', help='comma-separated global batch sizes')
  parser.add_argument('--dtypes', default='float32,bfloat16', help='comma-separated model.dtype values')
  parser.add_argument('--conv_impls', default='native,matmul', help='comma-separated model.conv_impl values')
  parser.add_argument('--repeats', type=int, default=10)
  parser.add_argument('--steps', type=int, default=10, help='steps per timed sample (one wait at the end)')
  parser.add_argument('--matmul_n', type=int, default=0, help='matmul size (0: 8192 on GPU/TPU, 1024 on CPU)')
  parser.add_argument('--no_torch', action='store_true', help='skip PyTorch (also skipped without CUDA)')
  parser.add_argument('--no_compile', action='store_true', help='skip torch.compile')
  parser.add_argument('--cpu', action='store_true', help='run even where the only device is the CPU')
  args = parser.parse_args()

  import jax  # pylint: disable=g-import-not-at-top
  from srcvq_jax import synthetic_data  # pylint: disable=g-import-not-at-top

  device = jax.devices()[0]
  on_cpu = device.platform == 'cpu'
  if on_cpu and not args.cpu:
    common.emit('accelerator_step', impl='summary', config=CONFIG_NAME, units='skipped',
                note='no accelerator (the CPU step is benchmarks/train_step.py; --cpu runs this anyway)')
    return
  peaks = matmul_peaks(args.matmul_n or (1024 if on_cpu else 8192), args.repeats)
  torch = None if args.no_torch else common.torch_or_none()
  if torch is not None and not torch.cuda.is_available():
    torch = None
  if torch is not None:  # the precision JAX uses for float32 by default on NVIDIA GPUs (TF32 tensor cores)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True

  for batch_size in [int(b) for b in args.batches.split(',')]:
    config = step_config(batch_size, 'float32')
    batch = next(synthetic_data.synthetic_batches(config, batch_size, seed=0))
    # One count for every implementation: they all run the same model on the same batch.
    step_flops = counted_flops(config, batch) or 0.0
    fns, extra, params = {}, {}, None
    impls = args.conv_impls.split(',')
    for dtype in args.dtypes.split(','):
      for conv_impl in impls:
        name = f'jax {dtype}' + (f' {conv_impl}' if len(impls) > 1 else '')
        fns[name], step = jax_steps(step_config(batch_size, dtype, conv_impl), batch, args.steps)
        extra[name] = {'peak': dtype, 'compile_s': step.compile_s, 'conv_impl': conv_impl,
                       'backend_cost_analysis_tflop': (step.flops or 0) / 1e12}
        params = step.initial_params
    if torch is not None:
      for compile in (False,) if args.no_compile else (False, True):
        name = f'torch_{"compile" if compile else "eager"} float32 (TF32)'
        fns[name], first = torch_steps(config, batch, params, args.steps, compile=compile)
        extra[name] = {'peak': 'float32', 'first_step_s': first}
    stats = common.interleaved(fns, warmup=2, repeats=args.repeats)
    first = next(iter(fns))  # float32 with the first conv_impl
    reference = stats[first]['median_ms'] if first.startswith('jax float32') else None
    for name, s in stats.items():
      per_step = {k: (v / args.steps if k.endswith('_ms') else v) for k, v in s.items() if k != 'samples_ms'}
      seconds = per_step['median_ms'] * 1e-3
      info = dict(extra[name])
      peak = info.pop('peak')
      common.emit('accelerator_step', impl=name, config=f'{CONFIG_NAME}, batch {batch_size}', stats=per_step,
                  units='ms/step', device=device.device_kind, examples_per_s=batch_size / seconds,
                  tflop_per_step=step_flops / 1e12, mfu=step_flops / seconds / (peaks[peak] * 1e12),
                  mfu_against=f'{peak} matmul',
                  time_vs_first_jax=(s['median_ms'] / reference) if reference else None, **info)
  common.emit('accelerator_step', impl='summary', config=CONFIG_NAME, units='TFLOP/s', device=device.device_kind,
              platform=device.platform, peaks_tflops=peaks, **common.environment())


if __name__ == '__main__':
  cli.relaunch_with_tcmalloc()
  main()
