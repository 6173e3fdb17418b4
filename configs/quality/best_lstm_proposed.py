"""The paper's ablation at configs/best.py (configs/quality/best_lstm.py, 16000 steps): the paper's proposed loss,
i.e. configs/best.py with its STFT-magnitude terms restored at the paper's weights (configs/base.py's; configs/best.py
is the paper's "w/o STFT" row of this ablation; configs/quality/best_lstm_no_complement.py is "w/o complement")."""
from configs import base
from configs.quality import best_lstm


def get_config():
  config = best_lstm.get_config()
  paper = base.get_config().loss.weights
  config.loss.weights.selective_stft = paper.selective_stft
  config.loss.weights.complement_stft = paper.complement_stft
  return config
