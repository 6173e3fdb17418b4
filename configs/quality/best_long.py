"""configs/quality/combined.py without the STFT loss terms (the ablation's better row at 3000 steps) trained for the
goal's budget: 18000 steps with a cosine learning-rate decay to 5% (a constant rate suits a short screening run; a long
one ends on the decayed rate)."""
from configs.quality import best_no_stft


def get_config():
  config = best_no_stft.get_config()
  config.optim.schedule = 'cosine'
  config.optim.warmup_steps = 200
  config.optim.final_lr_fraction = 0.05
  config.train.num_steps = 18_000
  config.train.eval_every = 2000
  config.train.checkpoint_every = 2000
  return config
