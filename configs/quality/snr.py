"""Lever: the loss. configs/quality/lstm.py (the screening reference of configs/best.py's family, 3000 steps) with its
waveform L1 terms replaced by a thresholded negative SNR in dB (srcvq_jax/losses.py, negative_snr; MixIT's form,
30 dB soft ceiling) on the same selective and complement targets. SDR scores each source by its own error over its
own energy; L1 on amplitudes weights each example by its loudness, so a quiet or hard source ("other", whose
separation stays below 0.25 x mixture) counts less than its share of the metric."""
from configs.quality import lstm


def get_config():
  config = lstm.get_config()
  config.loss.weights.selective_l1 = 0.0
  config.loss.weights.complement_l1 = 0.0
  config.loss.weights.selective_snr = 1.0
  config.loss.weights.complement_snr = 1.0
  return config
