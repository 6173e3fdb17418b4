"""The two levers of 2026-12-07's last screens together, at configs/best.py's budget: the encoder's spectral input
(configs/quality/best_spectral_input.py) and half the selections one source alone
(configs/quality/best_select_one.py). Levers interact; this row says whether their gains add."""
from configs.quality import best_spectral_input


def get_config():
  config = best_spectral_input.get_config()
  config.data.select_one_prob = 0.5
  return config
