"""The paper's ablation at the previous configs/best.py (configs/quality/best_lstm.py, 16000 steps): "w/o complement",
i.e. the paper's proposed loss (configs/quality/best_lstm_proposed.py) with the complement terms weighted 0."""
from configs import ablation_no_complement
from configs.quality import best_lstm_proposed


def get_config():
  return ablation_no_complement.without_complement(best_lstm_proposed.get_config())
