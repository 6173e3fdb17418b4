"""Where training batches come from: `create_batches` picks the source of config.data.source.

  * 'synthetic' (srcvq_jax/synthetic_data.py): NumPy only, four synthetic instruments.
  * 'tfds': the TFRecords of `python -m data_prep.build`: training batches by random access to the split's crops
    (srcvq_jax/crop_store.py: the paper's random remix), evaluation batches as fixed crops (srcvq_jax/tfds_data.py).
Every source yields the element spec of srcvq_jax/batch_spec.py (mixture, sources, presence, select) as NumPy
batches; the trainer makes them global jax.Arrays (sharding.to_global).
"""
from __future__ import annotations

from typing import Iterator

from srcvq_jax import batch_spec
from srcvq_jax import crop_store
from srcvq_jax import synthetic_data
from srcvq_jax import tfds_data


def create_batches(config, split: str, *, seed: int, start_step: int = 0, process_index: int = 0,
                   process_count: int = 1) -> Iterator[batch_spec.Batch]:
  """This process's batches of `split` (local batch = global batch / process count), as NumPy dicts.

  Training batches (synthetic data, or the TFDS build's config.data.train_split) are those of steps start_step,
  start_step + 1, ..., every example a pure function of (seed, split, step, example index): a resumed run passes
  its step and continues the stream of an uninterrupted one exactly. Evaluation batches of a TFDS build are fixed
  crops (tfds_data.tfds_batches), the same for every call with one seed.
  """
  if config.data.batch_size % process_count:
    raise ValueError(f'data.batch_size={config.data.batch_size} is not divisible by the process count '
                     f'{process_count}')
  process = dict(process_index=process_index, process_count=process_count)
  if config.data.source == 'synthetic':
    return synthetic_data.step_batches(config, split, seed=seed, start_step=start_step, **process)
  if config.data.source == 'tfds':
    if split == config.data.train_split:
      return crop_store.training_batches(config, split, seed=seed, start_step=start_step, **process)
    return tfds_data.tfds_batches(config, split, local_batch=config.data.batch_size // process_count, seed=seed,
                                  **process)
  raise ValueError(f"data.source={config.data.source!r}: expected 'synthetic' or 'tfds'")
