"""The paper's model on one 8-core TPU host (v2-8, v3-8, v5e-8): global batch 64 = 8 per core, bfloat16 compute.

  python -m srcvq_jax.train --config=configs/tpu.py --workdir=/ckpt/tpu_run \
      --config.data.data_dir=/data/tfds

Same model, losses and optimizer as base.py; only the batch, the compute dtype and the logging/evaluation/checkpoint
intervals change. tests/aot_test.py compiles this config's train step for 8 devices without allocating it: on
XLA:CPU ~0.95 GiB per device (v2 cores have 8 GiB, v3/v5e 16 GiB) and ~48 GFLOP per device per step. With
another device count keep 8 examples per device: --config.data.batch_size=<8 x devices> (batch_size must divide by
the device count). notebooks/colab_tpu.ipynb runs this config on a Colab TPU.
"""
from configs import base


def get_config():
  config = base.get_config()
  # Global batch over the 8 cores: 8 examples (~1 s each) per core.
  config.data.batch_size = 64
  # bfloat16 matmuls/convolutions (the MXU's input type); params, Adam moments and losses stay float32.
  config.model.dtype = 'bfloat16'
  # Every log fetches metrics to the host (a sync that stalls the device's queue of steps): log less often than
  # base.py; evaluate and checkpoint at a similar wall-clock interval.
  config.train.log_every = 200
  config.train.eval_every = 5_000
  config.train.checkpoint_every = 5_000
  return config
