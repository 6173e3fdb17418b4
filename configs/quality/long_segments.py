"""The w/o-STFT combination (configs/quality/best_no_stft.py) trained on 2 s segments, batch 4 instead of ~1 s,
batch 8: the same audio (and compute) per step, twice the context per example, for the sustained two-voice
"other" (pads, reeds, organs) that the codec holds worst."""
from configs.quality import best_no_stft


def get_config():
  config = best_no_stft.get_config()
  config.data.segment_length = 2 * config.data.segment_length
  config.data.batch_size = config.data.batch_size // 2
  return config
