"""Lever: capacity of the Gumbel codes: 4 codebooks x 256 entries per source (11 kbit/s raw vs 4.1)."""
from configs.quality import reference


def get_config():
  config = reference.get_config()
  config.quantizer.num_codebooks = 4
  config.quantizer.codebook_size = 256
  config.quantizer.code_dim = 32
  return config
