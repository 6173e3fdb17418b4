"""The bass prior (srcvq_jax/prior): the bass slot's codes from the other sources' codes, trained on the codes of the
VQ-VAE's training tracks (their real mixtures).

  python -m srcvq_jax.prior.train --config=configs/prior.py --vqvae_workdir=runs/best --workdir=runs/prior

Non-autoregressive dilated-conv stack: 6 residual units of width 128, kernel 3, dilations 1, 2, ..., 32
(reach 63 frames on each side: ~0.37 s at configs/best.py's 172 frames/s).
"""
import ml_collections


def get_config():
  config = ml_collections.ConfigDict()
  # The trained VQ-VAE whose codes are modelled (--vqvae_workdir sets it; a training workdir or an export dir).
  config.vqvae_workdir = ''
  # Filled in by the trainer: the fingerprint of the VQ-VAE (srcvq_jax.codes) whose codes the prior learned.
  config.vqvae_fingerprint = ''

  config.prior = ml_collections.ConfigDict()
  config.prior.target = 'bass'
  config.prior.width = 128
  config.prior.num_layers = 6
  config.prior.kernel_size = 3
  config.prior.dilation_cycle = 6  # dilations 1, 2, 4, ..., 2 ** (cycle - 1), then again
  # False: the other sources' codes are withheld (the baseline: what the prior learns without them).
  config.prior.condition = True

  config.data = ml_collections.ConfigDict()
  config.data.train_split = 'train'
  config.data.eval_split = 'validation'
  config.data.segment_frames = 256
  config.data.batch_size = 16
  config.data.seed = 0
  # With a VQ-VAE trained on data.source='synthetic': tracks per split and their length.
  config.data.synthetic_tracks = 4
  config.data.synthetic_seconds = 4.0

  config.optim = ml_collections.ConfigDict()
  config.optim.learning_rate = 1e-3
  config.optim.warmup_steps = 100
  config.optim.schedule = 'cosine'
  config.optim.final_lr_fraction = 0.05
  config.optim.b1 = 0.9
  config.optim.b2 = 0.999
  config.optim.grad_clip_norm = 1.0

  config.train = ml_collections.ConfigDict()
  config.train.seed = 0
  config.train.num_steps = 2000
  config.train.log_every = 50
  config.train.eval_every = 500
  config.train.eval_batches = 8
  config.train.checkpoint_every = 500
  config.train.keep_checkpoints = 2

  config.mesh = ml_collections.ConfigDict()
  config.mesh.data = -1
  config.mesh.fsdp = 1
  return config
