"""One process of tests/multiprocess_test.py: the launcher's code path, plus a dump of this process's parameters.

  PYTHONPATH=. XLA_FLAGS=--xla_force_host_platform_device_count=4 python tests/multiprocess_worker.py \
      --coordinator_address=localhost:PORT --num_processes=2 --process_id=I \
      --config=configs/ci.py --config.data.source=synthetic --workdir=DIR --dump=DIR/process_I.npz

It parses the flags of `python -m srcvq_jax.train` (the module defines them), initializes jax.distributed with
train.initialize_distributed, runs trainer.train_and_evaluate, and then writes the final parameters as this
process sees them (its own addressable copy) and the layout of the run, so the test can compare processes.
"""
from __future__ import annotations

import json

from absl import app
from absl import flags
import numpy as np

from srcvq_jax import cli
from srcvq_jax import train

_DUMP = flags.DEFINE_string('dump', None, 'Where to write this process\'s final parameters (.npz) and layout '
                            '(.json next to it).')


def _local_copy(x) -> np.ndarray:
  """The full value of a replicated global array from this process's first device (no cross-process fetch)."""
  if not x.is_fully_replicated:
    raise ValueError(f'expected replicated parameters, got {x.sharding}')
  return np.asarray(x.addressable_data(0))


def main(argv):
  del argv
  train.initialize_distributed()
  # Imported after jax.distributed.initialize, as the launcher does.
  import jax  # pylint: disable=g-import-not-at-top
  from srcvq_jax import trainer  # pylint: disable=g-import-not-at-top

  state = trainer.train_and_evaluate(train.FLAGS.config, train.FLAGS.workdir)
  flat = {'/'.join(str(k.key) for k in path): _local_copy(leaf)
          for path, leaf in jax.tree_util.tree_leaves_with_path(state['params'])}
  np.savez(_DUMP.value, **flat)
  layout = {
      'process_index': jax.process_index(),
      'process_count': jax.process_count(),
      'local_device_count': jax.local_device_count(),
      'device_count': jax.device_count(),
      'step': int(_local_copy(state['step'])),
  }
  with open(_DUMP.value[:-len('.npz')] + '.json', 'w', encoding='utf-8') as f:
    json.dump(layout, f)
  # Every process leaves together: a process that exits early would tear down the coordinator (process 0).
  jax.distributed.shutdown()


if __name__ == '__main__':
  flags.mark_flags_as_required(['config', 'workdir', 'dump'])
  app.run(main, flags_parser=cli.parse_flags)
