"""The paper's ablation at configs/best.py (configs/quality/best_lstm_decoder_units.py, 8000 steps): "w/o
complement", i.e. the paper's proposed loss at that configuration (configs/quality/best_decoder_units_proposed.py)
with the complement terms weighted 0."""
from configs.quality import best_decoder_units_proposed
from configs.quality import best_lstm_no_complement


def get_config():
  return best_lstm_no_complement.without_complement(best_decoder_units_proposed.get_config())
