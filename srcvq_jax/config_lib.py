"""Checks of an experiment config that fail fast, with one clear line, before anything is built."""
from __future__ import annotations

import copy
import math

import ml_collections

from srcvq_jax import errors


DTYPES = ('float32', 'bfloat16')
DECODER_INPUTS = ('concat', 'sum')
# The blocks' nonlinearity (srcvq_jax/models/layers.py activation).
ACTIVATIONS = ('gelu', 'snake')
DATA_SOURCES = ('synthetic', 'tfds')


# Config fields that are tuples in configs/*.py and come back from JSON as lists.
_TUPLE_FIELDS = (('model', 'channels'), ('model', 'strides'), ('data', 'sources'), ('quantizer', 'fsq_levels'),
                 ('quantizer', 'codes_per_source'), ('loss', 'stft_resolutions'))
# Fields added after workdirs and exports were first written, with the value that gives what those were trained
# with: a saved config without one reads as that value (config_from_dict), so old checkpoints restore unchanged.
ADDED_FIELDS = {
    ('data', 'remix_prob'): 1.0,
    ('data', 'speed_semitones'): 0,
    ('model', 'residual_units'): 0,
    ('model', 'decoder_residual_units'): (),
    ('model', 'residual_kernel'): 3,
    ('model', 'conv_impl'): 'auto',
    ('model', 'encoder_lstm_layers'): 0,
    ('model', 'decoder_lstm_layers'): 0,
    ('model', 'lstm_hidden'): 64,
    ('model', 'lstm_context_frames'): 172,
    ('model', 'source_masks'): False,
    ('model', 'activation'): 'gelu',
    ('quantizer', 'kind'): 'gumbel',
    ('quantizer', 'fsq_levels'): (8, 5, 5, 5),
    ('quantizer', 'codes_per_source'): (),
    ('loss', 'stft_resolutions'): (),
    ('loss', 'log_magnitude'): 0.0,
    ('loss', 'complement_absent'): False,
    ('optim', 'schedule'): 'constant',
    ('optim', 'final_lr_fraction'): 0.05,
    ('optim', 'ema_decay'): 0.0,
    ('train', 'sdr_tracks'): 0,
    ('train', 'sdr_seconds'): 8.0,
    ('train', 'microbatches'): 0,
}
QUANTIZER_KINDS = ('gumbel', 'fsq')
# The widest speed shift: up to it the resampling ratios' small fractions stay within 0.6% of 2^(k/12).
MAX_SPEED_SEMITONES = 4
LR_SCHEDULES = ('constant', 'cosine')
# How the layers compute (srcvq_jax/models/layers.py forms_for): 'auto' = matmul forms on CPU, native elsewhere.
CONV_IMPLS = ('auto', 'native', 'matmul')


def total_stride(config) -> int:
  """Samples per latent frame: the product of the encoder's strides."""
  return math.prod(config.model.strides)


def codes_per_source(config) -> tuple[int, ...]:
  """Codes each source uses per frame (quantizer.codes_per_source, or num_codebooks for every source)."""
  counts = tuple(int(c) for c in config.quantizer.codes_per_source)
  return counts or (int(config.quantizer.num_codebooks),) * len(config.data.sources)


def uneven_codes_per_source(config) -> tuple[int, ...] | None:
  """codes_per_source(config) when some source uses fewer than num_codebooks codes, else None."""
  counts = codes_per_source(config)
  return None if min(counts) == int(config.quantizer.num_codebooks) else counts


def validate(config, num_devices: int | None = None) -> None:
  """Raises ConfigError naming the first bad field.

  Args:
    config: the experiment ConfigDict.
    num_devices: devices on the batch axes of the mesh (data x fsdp); checked against the batch size when given.
  """
  data, model, q, loss, optim, train = (config.data, config.model, config.quantizer, config.loss, config.optim,
                                        config.train)

  def require(ok, message):
    if not ok:
      raise errors.ConfigError(message)

  require(data.source in DATA_SOURCES, f'data.source={data.source!r}: expected one of {DATA_SOURCES}')
  require(data.source != 'tfds' or data.data_dir,
          'data.data_dir is empty: pass --config.data.data_dir=DIR (the --data_dir of data_prep.build) or '
          '--config.data.source=synthetic')
  for section, field in _TUPLE_FIELDS:
    value = config[section].get(field)
    commas = [v for v in (value or ()) if isinstance(v, str) and ',' in v]
    require(not commas, f'{section}.{field}={tuple(value)}: {commas[0]!r} looks like a list written as one string; '
            f"pass a tuple, e.g. --config.{section}.{field}=\"('vocals', 'bass')\"" if commas else '')
  require(len(data.sources) >= 1 and len(set(data.sources)) == len(data.sources),
          f'data.sources={tuple(data.sources)}: need at least one source and unique names')
  require(data.sample_rate > 0, f'data.sample_rate={data.sample_rate} must be positive')
  require(data.channels >= 1, f'data.channels={data.channels} must be >= 1')
  require(data.batch_size >= 1, f'data.batch_size={data.batch_size} must be >= 1')
  if num_devices is not None:
    require(data.batch_size % num_devices == 0,
            f'data.batch_size={data.batch_size} is not divisible by the {num_devices} devices of the mesh')
  require(0 < data.presence_prob <= 1, f'data.presence_prob={data.presence_prob} must be in (0, 1]')
  require(0 <= data.select_prob <= 1, f'data.select_prob={data.select_prob} must be in [0, 1]')
  select_one = data.get('select_one_prob', 0.0)
  require(0 <= select_one <= 1, f'data.select_one_prob={select_one} must be in [0, 1]')
  weights = tuple(data.get('select_one_weights', ()))
  require(not weights or (len(weights) == len(data.sources) and all(w > 0 for w in weights)),
          f'data.select_one_weights={weights} must be empty (uniform) or one positive weight per source of '
          f'data.sources={tuple(data.sources)}')
  require(0 <= data.gain_min <= data.gain_max, f'need 0 <= data.gain_min <= data.gain_max, got '
          f'{data.gain_min}, {data.gain_max}')
  require(0 <= data.speed_semitones <= MAX_SPEED_SEMITONES,
          f'data.speed_semitones={data.speed_semitones} must be in [0, {MAX_SPEED_SEMITONES}]')

  require(len(model.channels) == len(model.strides) >= 1,
          f'model.channels={tuple(model.channels)} and model.strides={tuple(model.strides)} need equal, '
          'non-zero lengths')
  require(all(s >= 1 for s in model.strides), f'model.strides={tuple(model.strides)} must be >= 1')
  require(all(c >= 1 for c in model.channels), f'model.channels={tuple(model.channels)} must be >= 1')
  require(model.conv_impl in CONV_IMPLS, f'model.conv_impl={model.conv_impl!r}: expected one of {CONV_IMPLS}')
  stride = total_stride(config)
  require(data.segment_length % stride == 0,
          f'data.segment_length={data.segment_length} is not a multiple of the total stride {stride} '
          f'(product of model.strides={tuple(model.strides)})')
  require(model.dtype in DTYPES, f'model.dtype={model.dtype!r}: expected one of {DTYPES}')
  require(model.decoder_input in DECODER_INPUTS,
          f'model.decoder_input={model.decoder_input!r}: expected one of {DECODER_INPUTS}')
  require(model.activation in ACTIVATIONS,
          f'model.activation={model.activation!r}: expected one of {ACTIVATIONS}')
  spectral_fft = model.get('spectral_input_fft', 0)
  require(spectral_fft == 0 or spectral_fft >= 2,
          f'model.spectral_input_fft={spectral_fft}: expected 0 (none) or a window of >= 2 samples')

  require(q.num_codebooks >= 1, f'quantizer.num_codebooks={q.num_codebooks} must be >= 1')
  require(q.codebook_size >= 2, f'quantizer.codebook_size={q.codebook_size} must be >= 2')
  require(q.code_dim >= 1, f'quantizer.code_dim={q.code_dim} must be >= 1')
  require(0 < q.tau_end <= q.tau_start,
          f'need 0 < quantizer.tau_end <= quantizer.tau_start, got {q.tau_end}, {q.tau_start}')
  require(q.tau_anneal_steps >= 1, f'quantizer.tau_anneal_steps={q.tau_anneal_steps} must be >= 1')
  require(q.kind in QUANTIZER_KINDS, f'quantizer.kind={q.kind!r}: expected one of {QUANTIZER_KINDS}')
  if q.kind == 'fsq':
    levels = tuple(q.fsq_levels)
    require(len(levels) >= 1 and all(int(v) >= 2 for v in levels),
            f'quantizer.fsq_levels={levels}: need at least one level count, each >= 2')
    require(q.code_dim == len(levels) and q.codebook_size == math.prod(levels),
            f'quantizer.kind=fsq: code_dim={q.code_dim} and codebook_size={q.codebook_size} must be '
            f'len(fsq_levels)={len(levels)} and prod(fsq_levels)={math.prod(levels)}')
  counts = tuple(q.codes_per_source)
  if counts:
    require(q.kind == 'fsq', f'quantizer.codes_per_source={counts} needs quantizer.kind=fsq')
    require(len(counts) == len(data.sources),
            f'quantizer.codes_per_source={counts}: need one count per source ({len(data.sources)} sources)')
    require(all(1 <= int(c) <= q.num_codebooks for c in counts) and max(counts) == q.num_codebooks,
            f'quantizer.codes_per_source={counts}: each count must be in 1..num_codebooks={q.num_codebooks}, '
            'the largest equal to it')
  require(model.residual_units >= 0, f'model.residual_units={model.residual_units} must be >= 0')
  decoder_units = tuple(model.decoder_residual_units)
  require(not decoder_units or (len(decoder_units) == len(model.strides) and min(decoder_units) >= 0),
          f'model.decoder_residual_units={decoder_units}: need one count >= 0 per level ({len(model.strides)}), '
          'or () for model.residual_units everywhere')
  require(model.residual_kernel >= 1 and model.residual_kernel % 2 == 1,
          f'model.residual_kernel={model.residual_kernel} must be odd and >= 1')

  for name, weight in loss.weights.items():
    require(weight >= 0, f'loss.weights.{name}={weight} must be >= 0')
  require(any(w > 0 for w in loss.weights.values()), 'loss.weights: every weight is 0, nothing to train')
  require(0 < loss.hop <= loss.n_fft, f'need 0 < loss.hop <= loss.n_fft, got {loss.hop}, {loss.n_fft}')
  require(loss.n_fft <= data.segment_length,
          f'loss.n_fft={loss.n_fft} is longer than data.segment_length={data.segment_length}')
  for pair in loss.stft_resolutions:
    require(len(pair) == 2 and 0 < pair[1] <= pair[0] <= data.segment_length,
            f'loss.stft_resolutions has {tuple(pair)}: need (n_fft, hop) with 0 < hop <= n_fft <= '
            f'data.segment_length={data.segment_length}')
  require(loss.log_magnitude >= 0, f'loss.log_magnitude={loss.log_magnitude} must be >= 0')
  require(optim.schedule in LR_SCHEDULES, f'optim.schedule={optim.schedule!r}: expected one of {LR_SCHEDULES}')
  require(0 <= optim.final_lr_fraction <= 1, f'optim.final_lr_fraction={optim.final_lr_fraction} must be in [0, 1]')
  require(train.sdr_tracks >= 0 and train.sdr_seconds > 0,
          f'train.sdr_tracks={train.sdr_tracks} must be >= 0 and train.sdr_seconds={train.sdr_seconds} > 0')

  require(optim.learning_rate > 0, f'optim.learning_rate={optim.learning_rate} must be positive')
  require(optim.warmup_steps >= 0, f'optim.warmup_steps={optim.warmup_steps} must be >= 0')
  require(optim.grad_clip_norm >= 0, f'optim.grad_clip_norm={optim.grad_clip_norm} must be >= 0')
  require(0 <= optim.ema_decay < 1, f'optim.ema_decay={optim.ema_decay} must be in [0, 1) (0 = no moving average)')
  require(train.num_steps >= 0, f'train.num_steps={train.num_steps} must be >= 0')
  for name in ('log_every', 'checkpoint_every', 'eval_every', 'keep_checkpoints'):
    require(train[name] >= 1, f'train.{name}={train[name]} must be >= 1')
  require(train.microbatches >= 0, f'train.microbatches={train.microbatches} must be >= 0 (0 = auto)')
  require(config.mesh.data == -1 or config.mesh.data >= 1, f'mesh.data={config.mesh.data}: -1 or >= 1')
  require(config.mesh.fsdp >= 1, f'mesh.fsdp={config.mesh.fsdp} must be >= 1')


def config_from_dict(config_dict: dict) -> ml_collections.ConfigDict:
  """The experiment ConfigDict from its JSON form (checkpoint or export), lists back to tuples where configs use
  tuples."""
  config_dict = copy.deepcopy(config_dict)
  for (group, field), value in ADDED_FIELDS.items():
    if group in config_dict:
      config_dict[group].setdefault(field, value)
  # Converted before the ConfigDict exists: its type checks would keep a list field a list.
  for group, field in _TUPLE_FIELDS:
    if field in config_dict.get(group, {}):
      config_dict[group][field] = tuple(tuple(v) if isinstance(v, list) else v for v in config_dict[group][field])
  return ml_collections.ConfigDict(config_dict)
