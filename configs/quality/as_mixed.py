"""configs/quality/best_no_stft.py (the w/o-STFT combination, 3000 steps) with half the training examples as mixed
(data.remix_prob = 0.5): their sources come from one track, in time with each other, as in test mixtures; the other
half are the paper's random remixes. Why: the per-slot leakage of the reference showed "other" (alto + tenor) alone
in decoded by the vocals slot nearly as loud as by its own (-0.8 dB); in a remix the voices of unrelated tracks
overlap in register at random, so the encoder can only learn the source from timbre (choir vs strings/organ),
while in a track as mixed the soprano line is the top voice and the others move with it."""
from configs.quality import best_no_stft


def get_config():
  config = best_no_stft.get_config()
  config.data.remix_prob = 0.5
  return config
