"""Lever: two residual dilated-conv units (kernel 3, dilations 1 and 3) after every encoder and decoder block."""
from configs.quality import reference


def get_config():
  config = reference.get_config()
  config.model.residual_units = 2
  return config
