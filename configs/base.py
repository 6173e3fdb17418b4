"""The paper's setting: MUSDB18 at 44.1 kHz stereo, 4 sources, Adam 1e-4, selective + complement L1 + STFT losses.

  python -m srcvq_jax.train --config=configs/base.py --workdir=/ckpt/run1 \
      --config.data.data_dir=/data/tfds

Expected: a TPU/GPU run (the paper trains for days); one step takes ~0.15 s on a 2-core CPU and ~2 ms on an H200
(docs/results.md).
Every other config imports this one and overrides a few fields.
"""
import ml_collections

SOURCES = ('vocals', 'bass', 'drums', 'other')


def get_config():
  config = ml_collections.ConfigDict()

  # --- Data --------------------------------------------------------------------------------------------------------
  config.data = data = ml_collections.ConfigDict()
  # Where the batches come from: 'tfds' (TFRecords written by `python -m data_prep.build`) or 'synthetic' (NumPy,
  # no TensorFlow needed; same element spec).
  data.source = 'tfds'
  # TFDS dataset name (data_prep builders: 'musdb18', 'chorale_mix') and its directory (--data_dir of the build).
  data.dataset = 'musdb18'
  data.data_dir = ''
  # Split names of the TFDS dataset.
  data.train_split = 'train'
  data.eval_split = 'validation'
  # Samples per second of the model's audio; the pipeline resamples when the dataset's rate differs (integer ratio).
  data.sample_rate = 44100
  # Audio channels (stereo).
  data.channels = 2
  # Source names, in slot order of the latent code.
  data.sources = SOURCES
  # Samples per training segment (must be a multiple of the model's total stride and of loss.hop): ~1.0 s.
  data.segment_length = 172 * 256
  # Global batch size (all devices of all hosts); must divide by the number of devices on the data axis.
  data.batch_size = 4
  # Paper's random remix: each source of an example comes from a different random track.
  data.remix = True
  # With remix: the fraction of examples remixed; the others keep one track's sources in time with each other, as
  # test mixtures are (a quality lever; 1.0 = the paper's, every example remixed).
  data.remix_prob = 1.0
  # Probability that a source is present in the input mixture (at least one always is).
  data.presence_prob = 0.75
  # Probability that a present source is selected for the selective target (the rest is the complement).
  data.select_prob = 0.5
  # Share of examples whose selection is one present source instead (drawn by select_one_weights): the target is
  # then that source alone, what `separate` decodes a slot to. 0 = the paper's subsets only.
  data.select_one_prob = 0.0
  # Weights of that one source among the present ones, one per data.sources entry; () = uniform.
  data.select_one_weights = ()
  # Random gain per source, uniform in [gain_min, gain_max] (linear), and random left/right swap.
  data.gain_min = 0.25
  data.gain_max = 1.25
  data.channel_swap = True
  # Speed augmentation (Demucs's repitch): each source resampled to play k semitones higher and k/12 octaves
  # faster, k a whole number drawn uniformly from [-speed_semitones, speed_semitones] (one k for all sources when
  # they stay in time); 0 = off, the paper's.
  data.speed_semitones = 0
  # Seed of all data randomness: training example g of step t is a function of (seed, split, t, g), so a resumed run
  # continues the stream exactly (srcvq_jax/crop_store.py).
  data.seed = 0

  # --- Model -------------------------------------------------------------------------------------------------------
  config.model = model = ml_collections.ConfigDict()
  # Class in srcvq_jax.models.
  model.name = 'VQVAE'
  # Encoder channels per strided block (the decoder mirrors them).
  model.channels = (32, 64, 128, 256)
  # Stride of each block (kernel = 2 x stride); total stride = product (256 -> 172 frames/s at 44.1 kHz).
  model.strides = (4, 4, 4, 4)
  # How the decoder sees the selected slots: 'concat' (decoder knows which slot is which source) or 'sum'
  # (latent additivity, as in SD-Codec).
  model.decoder_input = 'concat'
  # Compute dtype of convolutions/matmuls ('float32' or 'bfloat16'); params stay float32.
  model.dtype = 'float32'
  # Residual dilated-conv units after every encoder and decoder block (dilations 1, 3, 9, ...; kernel
  # residual_kernel): 0 = the paper's plain blocks.
  model.residual_units = 0
  model.residual_kernel = 3
  # The decoder's units per level instead, latent side (lowest frame rate) first, e.g. (3, 3, 0, 0): context for
  # the decoder where frames are few and cheap; () = model.residual_units at every decoder level.
  model.decoder_residual_units = ()
  # Stacked residual BiLSTMs at the lowest frame rate, after the encoder's blocks and before the decoder's (the
  # sequence bottleneck of EnCodec / Demucs): 0 = the paper's convolutional model. Windowed inference gives each
  # window lstm_context_frames frames of context on each side (an LSTM's reach is unbounded: windowed output then
  # equals whole-track output only up to what the LSTM forgets over that span).
  model.encoder_lstm_layers = 0
  model.decoder_lstm_layers = 0
  model.lstm_hidden = 64  # units per direction
  model.lstm_context_frames = 172
  # Latent masking: the encoder's last latent split into one share per source by masks that sum to 1 over the
  # sources, each share mapped to its source's codes by its own layer (False: one linear map of the whole latent).
  model.source_masks = False
  # A spectral view of the mixture for the encoder: log(1 + |STFT|) of each channel with this window (hop = the
  # total stride, one frame per latent frame), mapped linearly onto the last block's latent and added to it
  # (before the BiLSTMs): frequency resolution the strided convs only approximate. 0 = none, the paper's encoder.
  model.spectral_input_fft = 0
  # The blocks' nonlinearity: 'gelu', or 'snake' (x + sin^2(alpha x) / alpha with a learned alpha per channel, the
  # periodic activation of BigVGAN / DAC; adds one parameter per channel of every activation).
  model.activation = 'gelu'
  # How convolutions compute (never what: the params are the same): 'matmul' (matmul forms, fast on XLA:CPU),
  # 'native' (lax.conv_general_dilated, for GPUs/TPUs) or 'auto' (matmul on CPU, native elsewhere).
  model.conv_impl = 'auto'

  # --- Quantizer ---------------------------------------------------------------------------------------------------
  config.quantizer = q = ml_collections.ConfigDict()
  # 'gumbel' (the paper's Gumbel-softmax codebooks) or 'fsq' (finite scalar quantization, srcvq_jax/fsq.py: each
  # code is code_dim = len(fsq_levels) scalars rounded to fsq_levels values each; codebook_size = their product).
  q.kind = 'gumbel'
  q.fsq_levels = (8, 5, 5, 5)
  # Codebooks per source (H), entries per codebook (K), and dimension of one entry (D).
  q.num_codebooks = 2
  q.codebook_size = 64
  q.code_dim = 64
  # Codes each source uses per frame, one count per source (each <= num_codebooks): a source may take more of
  # the bit budget than another (FSQ only). () = num_codebooks for every source. The codes keep the shape
  # [T', S, H = num_codebooks]; a source's unused positions are always code 0 and decode as zero vectors.
  q.codes_per_source = ()
  # One set of codebooks shared by all sources instead of one per source.
  q.shared_codebooks = False
  # Gumbel-softmax temperature: exponential decay from tau_start to tau_end over tau_anneal_steps steps.
  q.tau_start = 1.0
  q.tau_end = 0.5
  q.tau_anneal_steps = 100_000
  # Straight-through hard Gumbel (one-hot forward, soft gradient) instead of the paper's soft weighted sum.
  q.hard = False

  # --- Loss --------------------------------------------------------------------------------------------------------
  config.loss = loss = ml_collections.ConfigDict()
  # Weight of each term; an ablation sets a weight to 0. '*_snr' (a thresholded negative SNR in dB, srcvq_jax/losses.py)
  # is a quality lever, off in the paper's setting.
  loss.weights = ml_collections.ConfigDict(dict(
      selective_l1=1.0, selective_stft=1.0, complement_l1=1.0, complement_stft=1.0,
      selective_snr=0.0, complement_snr=0.0))
  # STFT of the spectral loss (Hann window), in samples.
  loss.n_fft = 2048
  loss.hop = 512
  # More (n_fft, hop) pairs for a multi-resolution STFT term: the '*_stft' terms are then the mean over
  # (n_fft, hop) and these. () = the paper's single resolution.
  loss.stft_resolutions = ()
  # Weight of an L1 on log(|STFT| + 1e-5) inside each '*_stft' term, beside the linear-magnitude L1 (0 = off):
  # quiet partials (a voice's harmonics) count as much as loud ones.
  loss.log_magnitude = 0.0
  # The complement decode also takes the slots of the sources absent from the input mixture (its target is
  # unchanged: the present, unselected sources), so a slot whose source is absent learns to decode nothing. False:
  # the paper's, where an absent source's slot is never decoded in training and may carry another source.
  loss.complement_absent = False

  # --- Optimizer ---------------------------------------------------------------------------------------------------
  config.optim = optim = ml_collections.ConfigDict()
  # Adam learning rate (constant after warmup), betas; global-norm gradient clipping (0 = off).
  optim.learning_rate = 1e-4
  optim.warmup_steps = 0
  # After the warmup: 'constant', or 'cosine' decay to final_lr_fraction x learning_rate at train.num_steps.
  optim.schedule = 'constant'
  optim.final_lr_fraction = 0.05
  optim.b1 = 0.9
  optim.b2 = 0.999
  optim.grad_clip_norm = 0.0
  # Decay of an exponential moving average of the params kept beside them (0 = none). With one, evaluation, the
  # in-training SDR, `separate`, `export` and every other reader of a checkpoint use the average instead of the
  # last step's params (as Demucs does); the training step itself is unchanged.
  optim.ema_decay = 0.0

  # --- Training loop -----------------------------------------------------------------------------------------------
  config.train = train = ml_collections.ConfigDict()
  # Optimizer steps in total (the run resumes up to this number).
  train.num_steps = 300_000
  # Steps between console/TensorBoard metric writes, checkpoints and evaluations.
  train.log_every = 100
  train.checkpoint_every = 2_000
  train.eval_every = 2_000
  # Checkpoints kept (latest N).
  train.keep_checkpoints = 3
  # Batches of the eval split per evaluation.
  train.eval_batches = 8
  # SDR while training (srcvq_jax/sdr_monitor.py), at every evaluation: the first sdr_tracks tracks of the eval
  # split, their first sdr_seconds seconds, argmax codes (0 tracks = off).
  train.sdr_tracks = 4
  train.sdr_seconds = 8.0
  # Seed of parameters and Gumbel noise.
  train.seed = 0
  # Equal parts the step computes each device's batch in, averaging their gradients (the same update as the whole
  # batch). 0 = auto: one example per part (at most 4 parts) on CPU, where independent parts run concurrently and
  # the step is faster; 1 part on accelerators. The parts are unrolled in one program: a speed setting, not a
  # memory bound like sequential gradient accumulation. See trainer.microbatch_count.
  train.microbatches = 0

  # --- Mesh --------------------------------------------------------------------------------------------------------
  config.mesh = mesh = ml_collections.ConfigDict()
  # Devices on the data axis (-1 = all devices not used by other axes) and on the fsdp axis (params sharded).
  mesh.data = -1
  mesh.fsdp = 1
  return config
