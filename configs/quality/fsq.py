"""Lever: finite scalar quantization instead of Gumbel: 4 codes per source and frame, each 4 scalars on levels
(8, 5, 5, 5) = 1000 values (13.7 kbit/s raw); no codebooks to learn."""
from configs.quality import reference


def get_config():
  config = reference.get_config()
  config.quantizer.kind = 'fsq'
  config.quantizer.fsq_levels = (8, 5, 5, 5)
  config.quantizer.num_codebooks = 4
  config.quantizer.codebook_size = 1000
  config.quantizer.code_dim = 4
  return config
