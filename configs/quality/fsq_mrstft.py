"""Combination: FSQ (fsq.py) with the multi-resolution + log-magnitude STFT loss (mrstft.py)."""
from configs.quality import fsq


def get_config():
  config = fsq.get_config()
  config.loss.stft_resolutions = ((256, 64), (512, 128), (2048, 512))
  config.loss.log_magnitude = 1.0
  return config
