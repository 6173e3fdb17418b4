"""The paper's ablation at configs/best.py (configs/quality/best_lstm_decoder_units.py, 8000 steps): "w/o
complement", i.e. the paper's proposed loss at that configuration (configs/quality/best_decoder_units_proposed.py)
with the complement terms weighted 0."""
from configs import ablation_no_complement
from configs.quality import best_decoder_units_proposed


def get_config():
  return ablation_no_complement.without_complement(best_decoder_units_proposed.get_config())
