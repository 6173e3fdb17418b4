"""Lever: learning-rate warmup (200 steps) then cosine decay to 5% over the run, instead of a constant rate."""
from configs.quality import reference


def get_config():
  config = reference.get_config()
  config.optim.warmup_steps = 200
  config.optim.schedule = 'cosine'
  return config
