"""The w/o-STFT combination (configs/quality/best_no_stft.py) with the bit budget moved from bass to "other": 4
codes per frame for "other" (alto + tenor, two voices: the source the codec held worst, ceiling 2.4 dB at
configs/best.py's budget), 2 for bass (ceiling 12 dB, the one with room to spare), 3 for vocals and drums. Still
12 codes of 1000 values per frame: the same 20.6 kbit/s raw stream."""
from configs.quality import best_no_stft


def get_config():
  config = best_no_stft.get_config()
  config.quantizer.num_codebooks = 4
  config.quantizer.codes_per_source = (3, 2, 3, 4)  # vocals, bass, drums, other
  return config
