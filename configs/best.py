"""The best configuration of the quality sweep (docs/results.md, "Quality sweep"): configs/quality/best_lstm.py,
with a shorter BiLSTM context at inference.

configs/small.py's model and training (22.05 kHz, batch 8 of ~1 s, Adam 1e-3) with
  * FSQ codes instead of Gumbel codebooks: 3 codes per source and frame, each 4 scalars on levels (8, 5, 5, 5) =
    1000 values;
  * frame rate 172/s (strides 4, 4, 4, 2);
  * a residual BiLSTM (64 units per direction) after the encoder's last block;
  * the waveform L1 terms weighted 5 and no STFT-magnitude terms (the paper's "w/o STFT", which scored higher);
  * 16000 steps, cosine learning-rate decay to 5% after 200 warmup steps;
  * windowed inference with 43 frames of BiLSTM context per window side (the quality rows used 172: the same SDR).
Raw code stream 20.6 kbit/s for the four sources (172.3 frames/s x 4 sources x 3 codes x log2(1000) bits).

  python -m srcvq_jax.train --config=configs/best.py --workdir=runs/best --config.data.data_dir=data/full/tfds

Budget: 16000 steps (34.8 min of training for seed 0 on the project's 2-core AMD EPYC VM with AVX-512;
docs/results.md). `make demo` trains it for 3000 steps.
"""
from configs import demo


def get_config():
  # The same configuration as make demo's (configs/demo.py holds it, so that it stays when this file moves on).
  return demo.get_config()
