"""configs/quality/best_no_stft.py (the w/o-STFT combination, 3000 steps) with a residual BiLSTM (64 units per
direction) after the encoder's last block, at 172 frames/s (EnCodec's sequence bottleneck; Demucs's BiLSTM): every
frame's codes see the whole segment. Issue 15's "LSTM bottleneck" lever, on the encoder only: on XLA:CPU a BiLSTM of
the latent's width (256) cost 6x the step, and one in the decoder (which runs twice the sequences) about 3x the
encoder's (docs/results.md)."""
from configs.quality import best_no_stft


def get_config():
  config = best_no_stft.get_config()
  config.model.encoder_lstm_layers = 1
  config.model.lstm_hidden = 64
  return config
