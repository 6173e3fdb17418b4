"""Paper's ablation "w/o comple": base config without the complement reconstruction loss.

  python -m srcvq_jax.train --config=configs/ablation_no_complement.py --workdir=/ckpt/no_complement
"""
from configs import base


def get_config():
  config = base.get_config()
  config.loss.weights.complement_l1 = 0.0
  config.loss.weights.complement_stft = 0.0
  return config
