"""configs/quality/lstm.py (configs/best.py's family at the 3000-step screening budget) with Snake activations
(`model.activation = 'snake'`: x + sin^2(alpha x) / alpha, a learned alpha per channel, after every strided and
transposed conv of encoder and decoder but the output's) instead of GELU. Why: "other" (sustained organ, strings,
keys) is the source the codec reproduces worst (ceiling ~2.3 dB against bass's 12); DAC and BigVGAN chose Snake for
its bias towards periodic signals."""
from configs.quality import lstm


def get_config():
  config = lstm.get_config()
  config.model.activation = 'snake'
  return config
