"""The paper's ablation at configs/best.py (configs/quality/best_lstm.py, 16000 steps): the paper's proposed loss,
i.e. configs/best.py with its STFT-magnitude terms restored at the paper's weight 1 (configs/best.py is the paper's
"w/o STFT" row of this ablation; configs/quality/best_lstm_no_complement.py is "w/o complement")."""
from configs.quality import best_lstm


def get_config():
  config = best_lstm.get_config()
  config.loss.weights.selective_stft = 1.0
  config.loss.weights.complement_stft = 1.0
  return config
