"""Lever: frame rate: total stride 128 instead of 256 (strides 4, 4, 4, 2: 172 frames/s at 22.05 kHz), twice the
codes per second (8.3 kbit/s raw with the reference's 2 x 64 codes per source)."""
from configs.quality import reference


def get_config():
  config = reference.get_config()
  config.model.strides = (4, 4, 4, 2)
  return config
