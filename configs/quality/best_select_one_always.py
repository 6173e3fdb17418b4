"""configs/quality/best_select_one.py with every example's selective target one present source alone
(`data.select_one_prob = 1.0` instead of 0.5): whether more single-source targets help "other", the slot that fails
alone. Selective targets are then always one source and complement targets all present sources but that one:
the paper's other subsets are no longer drawn.
"""
from configs.quality import best_select_one


def get_config():
  config = best_select_one.get_config()
  config.data.select_one_prob = 1.0
  return config
