"""The paper's ablation at the previous configs/best.py (configs/quality/best_lstm.py, 16000 steps): the paper's
proposed loss, i.e. that configuration with its STFT-magnitude terms restored at the paper's weights (configs/base.py's;
configs/quality/best_lstm.py is the paper's "w/o STFT" row of this ablation; configs/quality/best_lstm_no_complement.py
is "w/o complement"). The same ablation at today's configs/best.py: configs/quality/best_decoder_units_proposed.py."""
from configs import base
from configs.quality import best_lstm


def with_paper_stft(config):
  """`config` with the selective and complement STFT-magnitude terms at the paper's weights (configs/base.py)."""
  paper = base.get_config().loss.weights
  config.loss.weights.selective_stft = paper.selective_stft
  config.loss.weights.complement_stft = paper.complement_stft
  return config


def get_config():
  return with_paper_stft(best_lstm.get_config())
