"""The combination of the quality sweep's screening winners (docs/results.md, "Quality sweep"; it was
configs/best.py until the longer run configs/quality/best_long.py beat it): configs/small.py's model and
training (22.05 kHz, batch 8 of ~1 s, Adam 1e-3) with the three levers that beat the reference's seed spread at
1000 steps, combined:
  * FSQ instead of Gumbel codebooks (configs/quality/fsq.py): 3 codes per source and frame, each 4 scalars on
    levels (8, 5, 5, 5) = 1000 values;
  * frame rate 172/s instead of 86/s (strides 4, 4, 4, 2; configs/quality/stride128.py);
  * the waveform L1 terms weighted 5 (configs/quality/l1_heavy.py).
Raw code stream 20.6 kbit/s for the four sources (172.3 frames/s x 4 sources x 3 codes x log2(1000) bits).

  python -m srcvq_jax.train --config=configs/quality/combined.py --workdir=runs/combined \
      --config.data.data_dir=data/full/tfds --config.data.dataset=chorale_mix

Budget of the reported rows: 3000 steps (docs/results.md gives the minutes on the named CPU).
"""
from configs import small


def get_config():
  config = small.get_config()
  config.model.strides = (4, 4, 4, 2)
  q = config.quantizer
  q.kind = 'fsq'
  q.fsq_levels = (8, 5, 5, 5)
  q.num_codebooks = 3
  q.codebook_size = 1000
  q.code_dim = 4
  config.loss.weights.selective_l1 = 5.0
  config.loss.weights.complement_l1 = 5.0
  config.train.num_steps = 3000
  return config
