"""Quality sweep reference: configs/small.py (the demo's model: 22.05 kHz, 2 x 64 Gumbel codes per source) as is.

Every lever of configs/quality/ changes one thing of this config; scripts/sweep.py trains each for the same steps.
"""
from configs import small


def get_config():
  return small.get_config()
