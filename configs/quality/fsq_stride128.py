"""Combination: FSQ at frame rate 172/s (strides 4, 4, 4, 2): 3 codes per source and frame on levels (8, 5, 5, 5)
(20.6 kbit/s raw, the same as fsq_h6.py at 86 frames/s)."""
from configs.quality import fsq


def get_config():
  config = fsq.get_config()
  config.model.strides = (4, 4, 4, 2)
  config.quantizer.num_codebooks = 3
  return config
