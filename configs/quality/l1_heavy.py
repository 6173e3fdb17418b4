"""Lever: loss weights: the waveform L1 terms weighted 5x (SDR scores the waveform; the STFT-magnitude term
ignores phase)."""
from configs.quality import reference


def get_config():
  config = reference.get_config()
  config.loss.weights.selective_l1 = 5.0
  config.loss.weights.complement_l1 = 5.0
  return config
