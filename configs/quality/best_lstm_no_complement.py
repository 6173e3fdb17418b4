"""The paper's ablation at the previous configs/best.py (configs/quality/best_lstm.py, 16000 steps): "w/o complement",
i.e. the paper's proposed loss (configs/quality/best_lstm_proposed.py) with the complement terms weighted 0."""
from configs.quality import best_lstm_proposed


def without_complement(config):
  """`config` with the complement loss terms (waveform L1 and STFT) weighted 0."""
  config.loss.weights.complement_l1 = 0.0
  config.loss.weights.complement_stft = 0.0
  return config


def get_config():
  return without_complement(best_lstm_proposed.get_config())
