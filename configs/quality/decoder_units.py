"""configs/quality/lstm.py (configs/best.py's family at 3000 steps) with residual dilated units in the decoder
only, at its two lowest frame rates: three units (dilations 1, 3, 9, kernel 3) after the GLU of the 172 and 344
frames/s levels (model.decoder_residual_units = (3, 3, 0, 0)). Why: the decoder's blocks are 1x1 layers and
transposed convs of kernel 2s, so a frame's audio is decoded from its own code and its neighbour's alone; the
evaluate on the training split (docs/results.md) shows no generalization gap, and "other" (sustained, polyphonic
instruments) is the source whose codec ceiling is lowest. The units give the decoder 13 frames (75 ms) of code
context either side at the latent rate, where frames are fewest and cheapest; the earlier residual screen put
them at every level of both halves (2.5x the step time), on the Gumbel reference at 1000 steps."""
from configs.quality import lstm


def get_config():
  config = lstm.get_config()
  config.model.decoder_residual_units = (3, 3, 0, 0)
  return config
