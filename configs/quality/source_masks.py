"""configs/quality/best_no_stft.py (the w/o-STFT combination, 3000 steps) with a latent-masking encoder: the last
latent split into one share per source by masks that sum to 1 over the sources, each share quantized by its source's
codes (model.source_masks). Issue 15's "latent-masking encoder" lever."""
from configs.quality import best_no_stft


def get_config():
  config = best_no_stft.get_config()
  config.model.source_masks = True
  return config
