"""configs/best.py's training (configs/quality/best_lstm_decoder_units.py) with a spectral view of the mixture in
the encoder: log(1 + |STFT|) of each channel, 2048-point window (93 ms, 10.8 Hz bins at 22.05 kHz), hop 128 (one
frame per latent frame), mapped linearly onto the last block's 256-wide latent and added before the BiLSTM.

Why: "other" (alto + tenor on pianos, organs, strings, guitars) alone in comes out of the vocals and bass slots
(docs/results.md, "Where other goes"); its ceiling is lost most on the pianos and string ensembles
(scripts/ceiling_by_render.py). Telling those timbres from a choir in the same register needs the harmonics'
pattern, which the waveform encoder's strided convs (32 channels at the first level) resolve poorly; the STFT gives
it directly, at the cost of one forward FFT per frame (the input takes no gradient) and one matmul.
"""
from configs.quality import best_lstm_decoder_units


def get_config():
  config = best_lstm_decoder_units.get_config()
  config.model.spectral_input_fft = 2048
  return config
