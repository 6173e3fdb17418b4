"""The paper's ablation at configs/best.py: "w/o STFT" (the spectral loss terms weighted 0)."""
from configs import best


def get_config():
  config = best.get_config()
  config.loss.weights.selective_stft = 0.0
  config.loss.weights.complement_stft = 0.0
  return config
