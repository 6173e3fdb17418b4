"""Two real JAX processes (jax.distributed on localhost, gloo CPU collectives, 4 fake devices each) train together.

The workers (tests/multiprocess_worker.py) run the launcher's path: train.initialize_distributed, then
trainer.train_and_evaluate on the synthetic source, each process feeding its own half of the global batch through
sharding.to_global. Checked here, in one process with 8 fake devices:
  * both processes end with bit-identical parameters;
  * they equal (float tolerance) a single-process run over the same global batches;
  * the checkpoint the two processes wrote restores in one process with the target shardings (flax #5110 warns that
    abstract NNX state can drop shardings; ours is a plain dict, checked anyway), replicated and split.
"""
import json
import os
import re
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from srcvq_jax import loop

from srcvq_jax import checkpointing
from srcvq_jax import input_pipeline
from srcvq_jax import sharding
from srcvq_jax import trainer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_PROCESSES = 2
LOCAL_DEVICES = 4
NUM_STEPS = 3
# Overrides of configs/ci.py for the workers (as --config.* flags) and the single-process reference alike.
OVERRIDES = {
    'data.source': 'synthetic',
    'train.num_steps': NUM_STEPS,
    'train.log_every': NUM_STEPS,
    'train.checkpoint_every': NUM_STEPS,
    'train.eval_every': NUM_STEPS,
}
# Generous: two processes compile the step on a shared 2-core machine.
WORKER_TIMEOUT_S = 900
# Workers and the reference compile with XLA's cheap pipeline (flax's tests do the same): ~2x faster compiles on
# CPU, and the same setting on both sides of the comparison.
FAST_COMPILE = 'jax_disable_most_optimizations'


def _ci_config():
  from configs import ci  # pylint: disable=g-import-not-at-top
  config = ci.get_config()
  for key, value in OVERRIDES.items():
    section, field = key.split('.')
    config[section][field] = value
  return config


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _worker_env() -> dict[str, str]:
  env = dict(os.environ)
  # Replace the parent's 8 fake devices (tests/conftest.py) by LOCAL_DEVICES per process; keep other XLA flags.
  xla_flags = re.sub(r'--xla_force_host_platform_device_count=\d+', '', env.get('XLA_FLAGS', ''))
  env['XLA_FLAGS'] = f'{xla_flags} --xla_force_host_platform_device_count={LOCAL_DEVICES}'.strip()
  env['JAX_PLATFORMS'] = 'cpu'
  env[FAST_COMPILE.upper()] = '1'
  # Cross-process collectives on CPU (gloo is jax 0.10's default; explicit so a changed default cannot hang us).
  env['JAX_CPU_COLLECTIVES_IMPLEMENTATION'] = 'gloo'
  env['PYTHONPATH'] = os.pathsep.join([REPO] + [p for p in [env.get('PYTHONPATH')] if p])
  return env


def _run_workers(workdir: str, dump_dir: str) -> None:
  """Starts the processes, waits for all, and on any failure stops the others and shows the logs."""
  port = _free_port()
  overrides = [f'--config.{k}={v}' for k, v in OVERRIDES.items()]
  procs, logs = [], []
  for i in range(NUM_PROCESSES):
    log = open(os.path.join(dump_dir, f'process_{i}.log'), 'w', encoding='utf-8')
    logs.append(log)
    procs.append(subprocess.Popen(
        [sys.executable, os.path.join(REPO, 'tests', 'multiprocess_worker.py'),
         f'--coordinator_address=localhost:{port}', f'--num_processes={NUM_PROCESSES}', f'--process_id={i}',
         '--config=configs/ci.py', *overrides, f'--workdir={workdir}',
         f'--dump={os.path.join(dump_dir, f"process_{i}.npz")}'],
        cwd=REPO, env=_worker_env(), stdout=log, stderr=subprocess.STDOUT))
  deadline = time.time() + WORKER_TIMEOUT_S
  failed = None
  try:
    while failed is None and any(p.poll() is None for p in procs):
      # A process that died leaves the other waiting on its collectives until a long timeout: stop early.
      failed = next((f'process {i} exited with {p.returncode}' for i, p in enumerate(procs)
                     if p.poll() not in (None, 0)), None)
      if failed is None and time.time() > deadline:
        failed = f'timeout after {WORKER_TIMEOUT_S} s'
      time.sleep(0.5)
    if failed is None:
      failed = next((f'process {i} exited with {p.returncode}' for i, p in enumerate(procs) if p.returncode), None)
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
    for log in logs:
      log.close()
  if failed is not None:
    tails = []
    for i in range(NUM_PROCESSES):
      with open(os.path.join(dump_dir, f'process_{i}.log'), encoding='utf-8') as f:
        tails.append(f'--- process {i} (exit {procs[i].returncode}) ---\n' + f.read()[-3000:])
    pytest.fail(f'multi-process run failed: {failed}\n' + '\n'.join(tails))


def _flat(tree) -> dict[str, np.ndarray]:
  return {'/'.join(str(k.key) for k in path): np.asarray(leaf)
          for path, leaf in jax.tree_util.tree_leaves_with_path(jax.device_get(tree))}


@pytest.fixture(scope='module')
def two_process_run(tmp_path_factory):
  """Runs the workers once for the module: (workdir, [flat params of each process], [layout of each process])."""
  root = tmp_path_factory.mktemp('multiprocess')
  workdir = str(root / 'run')
  _run_workers(workdir, str(root))
  params, layouts = [], []
  for i in range(NUM_PROCESSES):
    with np.load(root / f'process_{i}.npz') as f:
      params.append(dict(f))
    with open(root / f'process_{i}.json', encoding='utf-8') as f:
      layouts.append(json.load(f))
  return workdir, params, layouts


@pytest.mark.slow
def test_processes_share_one_mesh_and_end_with_identical_params(two_process_run):
  _, params, layouts = two_process_run
  assert [l['process_index'] for l in layouts] == list(range(NUM_PROCESSES))
  for layout in layouts:
    assert layout['process_count'] == NUM_PROCESSES
    assert layout['local_device_count'] == LOCAL_DEVICES
    assert layout['device_count'] == NUM_PROCESSES * LOCAL_DEVICES
    assert layout['step'] == NUM_STEPS
  assert params[0].keys() == params[1].keys()
  for key in params[0]:
    np.testing.assert_array_equal(params[0][key], params[1][key], err_msg=key)


@pytest.mark.slow
def test_two_processes_equal_one_process_over_the_same_global_batches(two_process_run, fast_compile):
  del fast_compile
  _, params, _ = two_process_run
  config = _ci_config()
  mesh = sharding.create_mesh(config.mesh)  # this process: 8 devices
  tx = loop.create_optimizer(config)
  with jax.set_mesh(mesh):
    graphdef, state = trainer.create_train_state(config, mesh, tx)
  jit_step = trainer.jit_train_step(config, graphdef, tx, mesh, jax.tree.map(lambda x: x.sharding, state))
  initial = _flat(state['params'])  # a host copy: the step donates the state's buffers
  # The global batch of the two-process run: process i's local batch is rows [i * B/2, (i + 1) * B/2).
  local_batches = [input_pipeline.create_batches(config, config.data.train_split, seed=config.data.seed,
                                                 process_index=i, process_count=NUM_PROCESSES)
                   for i in range(NUM_PROCESSES)]
  rng = jax.random.key(config.train.seed)
  with jax.set_mesh(mesh):
    for _ in range(NUM_STEPS):
      parts = [next(b) for b in local_batches]
      batch = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
      state, _ = jit_step(state, sharding.to_global(batch, mesh), rng)
  reference = _flat(state['params'])
  assert reference.keys() == params[0].keys()
  max_diff = max(float(np.abs(reference[k] - params[0][k]).max()) for k in reference)
  print(f'max |params(2 processes) - params(1 process)| after {NUM_STEPS} steps: {max_diff:.3g}')
  # Only the order of the cross-device sums differs (2 x 4 devices vs 8).
  for key in reference:
    np.testing.assert_allclose(params[0][key], reference[key], rtol=1e-5, atol=1e-6, err_msg=key)
  # The training moved the params well beyond that tolerance (the comparison is not vacuous).
  moved = max(float(np.abs(v - reference[k]).max()) for k, v in initial.items())
  assert moved > 100 * max(max_diff, 1e-6)


def _split_over_all_devices(mesh, x) -> jax.ShapeDtypeStruct:
  """x with its largest axis that the device count divides split over every device (else replicated)."""
  axes = [i for i, size in enumerate(x.shape) if size % mesh.devices.size == 0]
  spec = [None] * len(x.shape)
  if axes:
    spec[max(axes, key=lambda i: x.shape[i])] = sharding.BATCH_AXES
  return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=NamedSharding(mesh, P(*spec)))


@pytest.mark.slow
@pytest.mark.parametrize('layout', ['trainer', 'split'])
def test_checkpoint_of_two_processes_restores_in_one_process_with_target_shardings(two_process_run, layout):
  workdir, params, _ = two_process_run
  config = _ci_config()
  mesh = sharding.create_mesh(config.mesh)
  # 'trainer': the shardings a resumed 1-process run asks for; 'split': every leaf it can be split over the 8
  # devices (the ci model's params are below the fsdp size threshold, so this forces a real resharding).
  _, target = trainer.abstract_train_state(config, mesh)
  if layout == 'split':
    target = jax.tree.map(lambda x: _split_over_all_devices(mesh, x), target)
    assert any(not x.sharding.is_fully_replicated for x in jax.tree.leaves(target))
  manager = checkpointing.create_manager(workdir, read_only=True)
  try:
    assert manager.latest_step() == NUM_STEPS
    restored = checkpointing.restore(manager, NUM_STEPS, target)
  finally:
    manager.close()
  assert jax.tree.structure(restored) == jax.tree.structure(target)
  for got, want in zip(jax.tree.leaves(restored), jax.tree.leaves(target)):
    assert got.sharding == want.sharding, (got.sharding, want.sharding)
  assert int(restored['step']) == NUM_STEPS
  flat = _flat(restored['params'])
  for key in params[0]:
    np.testing.assert_array_equal(flat[key], params[0][key], err_msg=key)
