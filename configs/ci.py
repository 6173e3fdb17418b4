"""Seconds on a CPU: a tiny model on tiny segments, for tests and smoke runs.

  python -m srcvq_jax.train --config=configs/ci.py --workdir=/tmp/ci --config.data.source=synthetic
"""
from configs import base


def get_config():
  config = base.get_config()
  config.data.sample_rate = 8000
  config.data.segment_length = 4096
  config.data.batch_size = 8
  config.model.channels = (8, 16)
  config.model.strides = (4, 4)
  config.quantizer.codebook_size = 16
  config.quantizer.code_dim = 8
  config.quantizer.tau_anneal_steps = 100
  config.loss.n_fft = 256
  config.loss.hop = 64
  config.optim.learning_rate = 3e-3
  config.train.num_steps = 20
  config.train.log_every = 5
  config.train.checkpoint_every = 10
  config.train.eval_every = 10
  config.train.eval_batches = 1
  config.train.sdr_tracks = 2
  config.train.sdr_seconds = 1.0
  return config
