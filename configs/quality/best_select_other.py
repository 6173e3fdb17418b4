"""configs/quality/best_select_one.py with the single-source draw weighted towards "other"
(`data.select_one_weights = (1, 1, 1, 3)` for vocals, bass, drums, other): when all four are present, "other" is the
source selected alone in half the single-source examples instead of a quarter (a quarter of all examples instead of
an eighth).

Why: "other" is the one source below 0.25 x mixture (codes only) and the slot whose ceiling is lowest; the uniform
single-source selections lifted bass, vocals and drums but left "other" where it was (docs/results.md).
"""
from configs.quality import best_select_one


def get_config():
  config = best_select_one.get_config()
  config.data.select_one_weights = (1.0, 1.0, 1.0, 3.0)
  return config
