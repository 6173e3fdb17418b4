"""configs/quality/best_no_stft.py (the w/o-STFT combination, 3000 steps) with a residual BiLSTM at the lowest frame
rate of the encoder and of the decoder (EnCodec's sequence bottleneck; Demucs's BiLSTM): each frame's codes see the
whole segment, and so does the decoder's synthesis of every frame. Issue 15's "LSTM bottleneck" lever."""
from configs.quality import best_no_stft


def get_config():
  config = best_no_stft.get_config()
  config.model.encoder_lstm_layers = 1
  config.model.decoder_lstm_layers = 1
  return config
