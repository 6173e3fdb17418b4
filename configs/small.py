"""Trains visibly in minutes on 2 CPU cores: 22.05 kHz, batch 8 of ~1 s, Adam 1e-3, tau annealed 1 -> 0.3.

  python -m srcvq_jax.train --config=configs/small.py --workdir=runs/small \
      --config.data.data_dir=data/tfds

~7 steps/s on 2 CPU cores with tcmalloc (docs/results.md).
"""
from configs import base


def get_config():
  config = base.get_config()
  config.data.sample_rate = 22050
  config.data.segment_length = 86 * 256  # ~1.0 s at 22.05 kHz
  config.data.batch_size = 8
  config.loss.n_fft = 1024
  config.optim.learning_rate = 1e-3
  config.quantizer.tau_end = 0.3
  config.quantizer.tau_anneal_steps = 4_000
  config.train.num_steps = 4_000
  config.train.log_every = 50
  config.train.checkpoint_every = 500
  config.train.eval_every = 500
  return config
