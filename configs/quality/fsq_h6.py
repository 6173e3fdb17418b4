"""Lever: FSQ capacity: 6 codes per source and frame on levels (8, 5, 5, 5) (20.6 kbit/s raw, under the 24 kbit/s
bound) instead of fsq.py's 4."""
from configs.quality import fsq


def get_config():
  config = fsq.get_config()
  config.quantizer.num_codebooks = 6
  return config
