"""The best configuration of the quality sweep (docs/results.md, "Quality sweep"):
configs/quality/best_select_one.py (configs/quality/best_lstm_decoder_units.py with half the selective targets one
source alone), with a shorter BiLSTM context at inference.

configs/small.py's model and training (22.05 kHz, batch 8 of ~1 s, Adam 1e-3) with
  * FSQ codes instead of Gumbel codebooks: 3 codes per source and frame, each 4 scalars on levels (8, 5, 5, 5) =
    1000 values;
  * frame rate 172/s (strides 4, 4, 4, 2);
  * a residual BiLSTM (64 units per direction) after the encoder's last block;
  * three residual dilated units (dilations 1, 3, 9) in the decoder's two lowest-rate levels, none in the encoder
    (`model.decoder_residual_units = (3, 3, 0, 0)`);
  * half the examples' selective target one present source alone (`data.select_one_prob = 0.5`; validation 3.37 ±
    0.06 against 3.25 ± 0.04 without, test 3.52 ± 0.04 against 3.44 ± 0.00, no step cost);
  * the waveform L1 terms weighted 5 and no STFT-magnitude terms (the paper's "w/o STFT", which scored higher);
  * 8000 steps, cosine learning-rate decay to 5% after 200 warmup steps (the decoder's units halve the step rate:
    8000 steps take what configs/quality/best_lstm.py's 16000 took, and score higher);
  * windowed inference with 43 frames of BiLSTM context per window side (the quality rows used 172: the same SDR).
Raw code stream 20.6 kbit/s for the four sources (172.3 frames/s x 4 sources x 3 codes x log2(1000) bits).

  python -m srcvq_jax.train --config=configs/best.py --workdir=runs/best \\
      --config.data.data_dir=data/full/tfds --config.data.dataset=chorale_mix

Budget: 8000 steps (22 min of training on the 2-core AMD EPYC VM with AVX-512 of 2026-12-07, 44-59 min on the
slower VMs of earlier sessions; docs/results.md).
`make demo` trains configs/demo.py (configs/quality/best_lstm.py's model, which is faster per step) for 3000 steps.
"""
from configs.quality import best_select_one


def get_config():
  config = best_select_one.get_config()
  # Windowed inference gives the BiLSTM 43 frames (0.25 s) of context per window side instead of 172: the same SDR
  # at a higher speed (scripts/lstm_context.py, docs/results.md). Inference only: training is unchanged.
  config.model.lstm_context_frames = 43
  return config
