"""Meshes, shardings and global batches (srcvq_jax/sharding.py), on the 8 fake CPU devices."""
import jax
import ml_collections
import numpy as np
import pytest

from srcvq_jax import errors
from srcvq_jax import sharding


def _mesh_config(data, fsdp):
  return ml_collections.ConfigDict({'data': data, 'fsdp': fsdp})


def test_data_minus_one_fills_the_devices_fsdp_leaves():
  assert jax.device_count() == 8
  mesh = sharding.create_mesh(_mesh_config(-1, 2))
  assert dict(mesh.shape) == {'data': 4, 'fsdp': 2} and sharding.batch_devices(mesh) == 8
  assert dict(sharding.inference_mesh(jax.devices()[:3]).shape) == {'data': 3, 'fsdp': 1}
  with pytest.raises(errors.ConfigError, match=r'mesh.data=3 x mesh.fsdp=2 does not match the 8 devices'):
    sharding.create_mesh(_mesh_config(3, 2))


def test_only_large_params_are_split_over_fsdp_along_their_largest_divisible_axis():
  mesh = sharding.create_mesh(_mesh_config(-1, 2))
  assert sharding.param_sharding(mesh, (64, 3)).spec == jax.sharding.PartitionSpec()  # too small to split
  assert sharding.param_sharding(mesh, (3, 256, 128)).spec == jax.sharding.PartitionSpec(None, 'fsdp', None)
  assert sharding.param_sharding(mesh, (129, 255)).spec == jax.sharding.PartitionSpec()  # no axis divides
  replicated_mesh = sharding.create_mesh(_mesh_config(-1, 1))
  assert sharding.param_sharding(replicated_mesh, (3, 256, 128)).spec == jax.sharding.PartitionSpec()


def test_to_global_splits_the_batch_over_every_device_and_keeps_its_values():
  mesh = sharding.create_mesh(_mesh_config(-1, 2))
  batch = {'x': np.arange(8 * 3, dtype=np.float32).reshape(8, 3)}
  global_batch = sharding.to_global(batch, mesh)
  x = global_batch['x']
  assert x.shape == (8, 3) and len(x.addressable_shards) == 8
  assert {tuple(s.data.shape) for s in x.addressable_shards} == {(1, 3)}
  np.testing.assert_array_equal(np.asarray(x), batch['x'])
