"""Lever: multi-resolution STFT loss (n_fft 256/512/1024/2048) with a log-magnitude term beside the linear one."""
from configs.quality import reference


def get_config():
  config = reference.get_config()
  config.loss.stft_resolutions = ((256, 64), (512, 128), (2048, 512))
  config.loss.log_magnitude = 1.0
  return config
