"""Paper's ablation "w/o comple": base config without the complement reconstruction loss.

  python -m srcvq_jax.train --config=configs/ablation_no_complement.py --workdir=/ckpt/no_complement

`without_complement` is the ablation's one edit, shared by the same ablation at other configurations
(configs/quality/best_lstm_no_complement.py, configs/quality/best_decoder_units_no_complement.py).
"""
from configs import base


def without_complement(config):
  """`config` with the complement loss terms (waveform L1 and STFT) weighted 0."""
  config.loss.weights.complement_l1 = 0.0
  config.loss.weights.complement_stft = 0.0
  return config


def get_config():
  return without_complement(base.get_config())
