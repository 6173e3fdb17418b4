"""Paper's ablation "w/o STFT": base config with the spectral loss terms weighted 0.

  python -m srcvq_jax.train --config=configs/ablation_no_stft.py --workdir=/ckpt/no_stft
"""
from configs import base


def get_config():
  config = base.get_config()
  config.loss.weights.selective_stft = 0.0
  config.loss.weights.complement_stft = 0.0
  return config
