"""Mesh, named shardings and host-local -> global batches: every sharding decision of the project lives here.

Mesh axes: 'data' (batch split, params replicated) and 'fsdp' (batch split too, and large params sharded along
one axis). `mesh.data = -1` fills the devices the fsdp axis leaves. The jitted step takes these shardings as
in/out shardings (GSPMD partitions it); the step's code is the same from 1 to N devices and hosts.
"""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from srcvq_jax import errors


DATA_AXIS = 'data'
FSDP_AXIS = 'fsdp'
# The batch is split over both axes (FSDP also splits the batch).
BATCH_AXES = (DATA_AXIS, FSDP_AXIS)
# Params smaller than this stay replicated under fsdp: sharding them costs more communication than it saves.
_MIN_FSDP_PARAM_SIZE = 2**14


def create_mesh(mesh_config, devices=None) -> Mesh:
  """Mesh ('data', 'fsdp') over `devices` (default: all devices of all processes), shaped by config.mesh."""
  return _make_mesh(mesh_config.data, mesh_config.fsdp, devices)


def _make_mesh(data: int, fsdp: int, devices=None) -> Mesh:
  devices = list(jax.devices() if devices is None else devices)
  requested = data
  data = data if data != -1 else len(devices) // fsdp
  if data * fsdp != len(devices):
    raise errors.ConfigError(f'mesh.data={requested} x mesh.fsdp={fsdp} does not match the '
                                 f'{len(devices)} devices')
  # Auto axes: GSPMD propagates shardings through the step; no sharding annotations inside the model.
  return jax.make_mesh((data, fsdp), (DATA_AXIS, FSDP_AXIS), axis_types=(AxisType.Auto, AxisType.Auto),
                       devices=devices)


def inference_mesh(devices) -> Mesh:
  """A mesh over `devices` with all of them on the batch axis: inputs split over them, params
  replicated (the training mesh with every device on 'data')."""
  return _make_mesh(-1, 1, devices)


def batch_devices(mesh: Mesh) -> int:
  """Devices the batch is split over (data x fsdp)."""
  return int(np.prod([mesh.shape[axis] for axis in BATCH_AXES]))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over data x fsdp."""
  return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def param_sharding(mesh: Mesh, shape) -> NamedSharding:
  """Replicated, or under fsdp > 1 the largest axis that the fsdp size divides is split over 'fsdp'."""
  fsdp = mesh.shape[FSDP_AXIS]
  if fsdp == 1 or int(np.prod(shape)) < _MIN_FSDP_PARAM_SIZE:
    return replicated(mesh)
  candidates = [i for i, size in enumerate(shape) if size % fsdp == 0]
  if not candidates:
    return replicated(mesh)
  axis = max(candidates, key=lambda i: shape[i])
  spec = [None] * len(shape)
  spec[axis] = FSDP_AXIS
  return NamedSharding(mesh, P(*spec))


def state_shardings(mesh: Mesh, abstract_state):
  """Shardings of a train state pytree (params, optimizer moments shaped like them, scalars replicated)."""
  return jax.tree.map(lambda x: param_sharding(mesh, x.shape), abstract_state)


def to_global(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """This process's NumPy batch -> global jax.Arrays split over the batch axes (multi-host safe)."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}
