"""Lever: straight-through hard Gumbel (one-hot forward, soft gradient): training decodes what inference decodes."""
from configs.quality import reference


def get_config():
  config = reference.get_config()
  config.quantizer.hard = True
  return config
