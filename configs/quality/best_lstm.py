"""configs/best.py's combination (configs/quality/best_long.py: FSQ 3 codes x 1000 values at 172 frames/s, waveform
L1 x 5, no STFT terms, cosine decay to 5% after 200 warmup steps) with the screening winner of 2026-12-02: a residual
BiLSTM (64 units per direction) after the encoder's last block (configs/quality/lstm.py: +0.34 dB on validation at
3000 steps, mostly bass and drums). 16000 steps: 34.8 min on the 2-core AVX-512 CPU (8.4 steps/s), inside the
issue's 60 minutes with room for a slower machine.

  python -m srcvq_jax.train --config=configs/quality/best_lstm.py --workdir=runs/best_lstm \\
      --config.data.data_dir=data/full/tfds --config.data.dataset=chorale_mix
"""
from configs.quality import best_long


def get_config():
  config = best_long.get_config()
  config.model.encoder_lstm_layers = 1
  config.model.lstm_hidden = 64
  config.train.num_steps = 16_000
  return config
