"""Ahead-of-time compile of configs/tpu.py's train step for 8 devices: memory per device and FLOPs, no state allocated.

The step is lowered from ShapeDtypeStructs carrying the shardings the trainer uses (trainer.abstract_train_state), so
the check costs a compile, not the model's memory. The 8 devices are fake CPU devices (tests/conftest.py): the
numbers are XLA:CPU's, a stand-in for a TPU host's (TPU fusion and layouts differ; the order of magnitude holds).
Run with -s to see the report.
"""
import functools
import time

import jax
import numpy as np
import pytest

from srcvq_jax import loop

from srcvq_jax import config_lib
from srcvq_jax import batch_spec
from srcvq_jax import sharding
from srcvq_jax import trainer

# HBM of the smallest 8-device TPU host's core (v2: 8 GiB per core); v3/v5e have 16 GiB.
DEVICE_MEMORY_BOUND = 8 * 2**30


def _tpu_config(fsdp: int):
  from configs import tpu  # pylint: disable=g-import-not-at-top
  config = tpu.get_config()
  config.data.data_dir = 'unused'  # only shapes are needed
  config.mesh.fsdp = fsdp
  return config


def abstract_batch(config, mesh) -> dict[str, jax.ShapeDtypeStruct]:
  """The global batch of the input pipeline's element spec, as ShapeDtypeStructs split over the batch axes."""
  data = config.data
  batch, sources, length, channels = data.batch_size, len(data.sources), data.segment_length, data.channels
  shapes = {
      batch_spec.MIXTURE: (batch, length, channels),
      batch_spec.SOURCES: (batch, sources, length, channels),
      batch_spec.PRESENCE: (batch, sources),
      batch_spec.SELECT: (batch, sources),
  }
  batch_sharding = sharding.batch_sharding(mesh)
  return {k: jax.ShapeDtypeStruct(s, np.float32, sharding=batch_sharding) for k, s in shapes.items()}


@functools.cache
def compile_train_step(fsdp: int):
  """configs/tpu.py's compiled train step on all devices with mesh.fsdp=`fsdp`, the seconds lowering + compiling
  took, and the abstract state (cached: each variant compiles once per test session)."""
  config = _tpu_config(fsdp)
  mesh = sharding.create_mesh(config.mesh)
  config_lib.validate(config, num_devices=mesh.devices.size)
  graphdef, state = trainer.abstract_train_state(config, mesh)
  state_shardings = jax.tree.map(lambda x: x.sharding, state)
  jit_step = trainer.jit_train_step(config, graphdef, loop.create_optimizer(config), mesh, state_shardings)
  rng = jax.ShapeDtypeStruct((), jax.eval_shape(lambda: jax.random.key(0)).dtype,
                             sharding=sharding.replicated(mesh))
  start = time.time()
  with jax.set_mesh(mesh):
    compiled = jit_step.lower(state, abstract_batch(config, mesh), rng).compile()
  return compiled, time.time() - start, state


def _report(name, compiled, seconds) -> dict[str, float]:
  mem = compiled.memory_analysis()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost  # older jax: one dict per module
  # Live at once: inputs + outputs + temporaries, less the outputs that reuse donated inputs.
  total = mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes - mem.alias_size_in_bytes
  report = {'compile_s': seconds, 'argument_mib': mem.argument_size_in_bytes / 2**20,
            'output_mib': mem.output_size_in_bytes / 2**20, 'alias_mib': mem.alias_size_in_bytes / 2**20,
            'temp_mib': mem.temp_size_in_bytes / 2**20, 'total_mib': total / 2**20,
            'gflops': cost.get('flops', float('nan')) / 1e9}
  print(f'{name}: ' + ', '.join(f'{k} {v:.1f}' for k, v in report.items()))
  return report


def _flatten(d, prefix=''):
  return {k2: v2 for k, v in d.items()
          for k2, v2 in (_flatten(v, f'{prefix}{k}.').items() if isinstance(v, dict) else [(prefix + k, v)])}


def test_tpu_config_is_base_with_a_few_overrides():
  from configs import base  # pylint: disable=g-import-not-at-top
  config = _tpu_config(fsdp=1)
  config_lib.validate(config, num_devices=8)
  reference = base.get_config()
  reference.data.data_dir = 'unused'
  changed = {k for k, v in _flatten(config.to_dict()).items() if _flatten(reference.to_dict())[k] != v}
  assert changed == {'data.batch_size', 'model.dtype', 'train.log_every', 'train.eval_every',
                     'train.checkpoint_every'}
  assert config.data.batch_size // 8 == 8


@pytest.mark.slow
def test_tpu_config_train_step_compiles_for_8_devices_within_memory():
  assert jax.device_count() == 8
  config = _tpu_config(fsdp=1)
  compiled, seconds, state = compile_train_step(1)
  report = _report('configs/tpu.py, mesh data=8', compiled, seconds)
  num_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state['params']))
  print(f'parameters: {num_params}, per-device batch: {config.data.batch_size // 8}')
  assert 0 < report['total_mib'] * 2**20 < DEVICE_MEMORY_BOUND
  # The donated state is reused for the new state (otherwise memory doubles).
  assert report['alias_mib'] > 0
  # Per device at least the convolutions' multiply-adds of its 8 examples: > 1 GFLOP for ~1 s of stereo audio.
  assert report['gflops'] > 1


@pytest.mark.slow
def test_tpu_config_compiles_with_fsdp_2():
  base_compiled, _, _ = compile_train_step(1)
  compiled, seconds, state = compile_train_step(2)
  report = _report('configs/tpu.py, mesh data=4 x fsdp=2', compiled, seconds)
  assert report['total_mib'] * 2**20 < DEVICE_MEMORY_BOUND
  sharded = [x for x in jax.tree.leaves(state) if x.sharding.spec != jax.sharding.PartitionSpec()]
  assert sharded, 'fsdp=2 should shard the largest params and their Adam moments'
  # Each device holds half of the sharded params and moments: fewer argument bytes than the replicated layout.
  assert compiled.memory_analysis().argument_size_in_bytes < base_compiled.memory_analysis().argument_size_in_bytes
