"""The paper's ablation at the combination (configs/quality/combined.py, then configs/best.py; 3000 steps):
"w/o complement" (the complement loss terms weighted 0)."""
from configs.quality import combined


def get_config():
  config = combined.get_config()
  config.loss.weights.complement_l1 = 0.0
  config.loss.weights.complement_stft = 0.0
  return config
