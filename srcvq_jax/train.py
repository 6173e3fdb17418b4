"""Launcher: python -m srcvq_jax.train --config=configs/base.py --workdir=DIR [--config.x.y=value ...]

Thin on purpose: flags, optional multi-host initialization, then trainer.train_and_evaluate.
"""
from __future__ import annotations

import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from srcvq_jax import cli
from srcvq_jax import library_logs

FLAGS = flags.FLAGS
_CONFIG = config_flags.DEFINE_config_file('config', None, 'Experiment config file (configs/*.py).',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Run directory: checkpoints, metrics, config. Resumed if it exists.')
_COORDINATOR = flags.DEFINE_string('coordinator_address', None,
                                   'host:port of process 0 for multi-process runs (or the usual cluster env).')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None, 'Processes of a multi-process run.')
_PROCESS_ID = flags.DEFINE_integer('process_id', None, 'Index of this process in a multi-process run.')


def initialize_distributed() -> None:
  """jax.distributed.initialize() when several processes are configured by flags or cluster environment."""
  import jax  # pylint: disable=g-import-not-at-top
  if _COORDINATOR.value or (_NUM_PROCESSES.value or 1) > 1:
    jax.distributed.initialize(coordinator_address=_COORDINATOR.value, num_processes=_NUM_PROCESSES.value,
                               process_id=_PROCESS_ID.value)
  elif any(k in os.environ for k in ('TPU_WORKER_HOSTNAMES', 'SLURM_NTASKS', 'OMPI_COMM_WORLD_SIZE')):
    # Cloud TPU pods, SLURM and Open MPI: JAX finds the coordinator itself.
    jax.distributed.initialize()


def main(argv):
  if len(argv) > 1:
    cli.fail(f'unexpected arguments: {" ".join(argv[1:])}')
  if _WORKDIR.value is None:
    cli.fail('--workdir is required')
  library_logs.quiet_library_info()
  logging.info('memory allocator: %s (cli.relaunch_with_tcmalloc)', cli.allocator())
  # TensorFlow (tf.data only) must not grab accelerator memory that JAX needs.
  if 'tensorflow' in sys.modules or _CONFIG.value.data.source == 'tfds':
    try:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      tf.config.set_visible_devices([], 'GPU')
    except ImportError:
      pass
  initialize_distributed()
  from srcvq_jax import loop, trainer  # pylint: disable=g-import-not-at-top
  loop.run_command(lambda: trainer.train_and_evaluate(_CONFIG.value, _WORKDIR.value))


if __name__ == '__main__':
  cli.relaunch_with_tcmalloc()
  flags.mark_flags_as_required(['config'])
  app.run(main, flags_parser=cli.parse_flags)
