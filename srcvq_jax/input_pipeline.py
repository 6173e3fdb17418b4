"""Training batches: the paper's random remix of sources, as NumPy batches, then global jax.Arrays.

Element spec of one batch (local to this process; B = global batch / process count, S sources, T samples,
C channels), the same for every source of batches:
  mixture   float32 [B, T, C]      sum over s of presence[b, s] * sources[b, s]
  sources   float32 [B, S, T, C]   each source's signal (after gain/channel swap), present or not
  presence  float32 [B, S]         1 where the source is in the input mixture (at least one per example)
  select    float32 [B, S]         1 where a present source is selected for the selective target
The complement mask is derived, never stored: presence * (1 - select).

Two sources of batches:
  * 'synthetic': NumPy only (no TensorFlow), four synthetic instruments; for tests, benchmarks and smoke runs.
  * 'tfds': TFRecords written by `python -m data_prep.build`; TensorFlow is imported lazily, only there.

The 'tfds' batches (tf.data, deterministic for a seed):
  * training split (split == config.data.train_split): the paper's random remix. Random crops of segment_length
    (plus the resampling filter's margin) are cut from the chunks, all S stems at one offset (a "bundle"), and
    shuffled; S consecutive bundles make S examples by a Latin square (example j takes source s from bundle
    (j + s) mod S), so every example's sources come from S different random chunks and every crop read is used
    once; an example is kept only when its sources come from different tracks (min(S, tracks in the split)
    distinct names), and the examples are shuffled again. Each source: int16 -> float32 / 32768, anti-alias
    low-pass and decimation when the dataset's rate is an integer multiple of data.sample_rate, random gain in
    [gain_min, gain_max], random left/right swap. Endless (files reshuffled every epoch). data.remix=False: the
    bundles are the examples (all sources from the same crop of one chunk).
  * other splits (evaluation): the real mixtures of each chunk, cut into consecutive fixed crops, in file order,
    no gain or swap; only the masks are random, from the seed. Endless too (the same crops cycled), like the
    synthetic source, so a caller takes as many batches as it wants.
  * presence/select masks drawn as sample_masks draws them; mixture = sum of present sources.
  Reading a TFRecord costs its whole chunk, so each chunk read yields several independent random crops
  (data.crops_per_chunk if > 0, else chunk length // crop length), and the shuffle buffers hold
  int16 crops, not chunks (data.shuffle_buffer bundles, then data.shuffle_buffer / S examples). If this process's
  part of the split holds fewer tracks than the remix asks for (tiny dataset, many processes), the requirement
  drops to what the part can give after 256 rejections in a row, instead of stalling.
Whole tracks for evaluation come from `load_tracks` (the dataset's 'tracks' config).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Iterator, Sequence
import zlib

import numpy as np

from srcvq_jax import errors
from srcvq_jax import library_logs

MIXTURE = 'mixture'
SOURCES = 'sources'
PRESENCE = 'presence'
SELECT = 'select'
BATCH_KEYS = (MIXTURE, SOURCES, PRESENCE, SELECT)

Batch = dict[str, np.ndarray]

# Builder configs written by data_prep.build: fixed-length chunks (training batches) and whole tracks (evaluation).
CHUNKS_CONFIG = 'chunks'
TRACKS_CONFIG = 'tracks'




def complement(presence, select):
  """Mask of present but unselected sources, [..., S]. Works on NumPy and JAX arrays."""
  return presence * (1 - select)


def sample_masks(rng: np.random.Generator, batch_size: int, num_sources: int, presence_prob: float,
                 select_prob: float) -> tuple[np.ndarray, np.ndarray]:
  """Random presence (>= 1 source per example) and selection (subset of presence) masks, float32 [B, S] each."""
  presence = rng.random((batch_size, num_sources)) < presence_prob
  # Guarantee one present source: where none is, turn one on at random.
  empty = ~presence.any(axis=1)
  presence[empty, rng.integers(0, num_sources, size=int(empty.sum()))] = True
  select = presence & (rng.random((batch_size, num_sources)) < select_prob)
  return presence.astype(np.float32), select.astype(np.float32)


def mix(sources: np.ndarray, presence: np.ndarray) -> np.ndarray:
  """Mixture of present sources: [B, S, T, C], [B, S] -> [B, T, C]."""
  return np.einsum('bstc,bs->btc', sources, presence).astype(np.float32)


# --- Synthetic source (NumPy only) -----------------------------------------------------------------------------


def _synthetic_source(rng: np.random.Generator, kind: int, length: int, channels: int,
                      sample_rate: int) -> np.ndarray:
  """One synthetic instrument, [T, C]. kind 0..3 ~ vocals (vibrato tone), bass (low saw), drums (noise hits),
  other (chord); beyond 3, a plain random tone. Distinct spectra so the sources are separable."""
  t = np.arange(length) / sample_rate
  if kind == 0:
    f0 = rng.uniform(220, 660)
    phase = 2 * np.pi * f0 * t + rng.uniform(2, 6) * np.sin(2 * np.pi * rng.uniform(4, 7) * t)
    mono = sum(np.sin(k * phase) / k**1.5 for k in range(1, 5))
  elif kind == 1:
    f0 = rng.uniform(41, 110)
    mono = 2 * ((f0 * t + rng.random()) % 1.0) - 1
  elif kind == 2:
    mono = np.zeros(length)
    period = int(sample_rate * rng.uniform(0.12, 0.3))
    decay = np.exp(-np.arange(period) / (0.02 * sample_rate))
    for start in range(int(rng.integers(0, period)), length, period):
      n = min(period, length - start)
      mono[start:start + n] += rng.standard_normal(n) * decay[:n]
  elif kind == 3:
    f0 = rng.uniform(180, 400)
    mono = sum(np.sin(2 * np.pi * f0 * r * t + rng.uniform(0, 2 * np.pi)) for r in (1.0, 1.26, 1.5))
  else:
    mono = np.sin(2 * np.pi * rng.uniform(100, 1000) * t)
  mono = mono / (np.abs(mono).max() + 1e-6)
  pan = rng.uniform(0.3, 0.7, size=channels)
  return (0.25 * mono[:, None] * pan[None, :]).astype(np.float32)


def synthetic_batches(config, batch_size: int, seed: int | Sequence[int]) -> Iterator[Batch]:
  """Endless NumPy batches with the pipeline's element spec; deterministic for a seed.

  Args:
    config: the experiment ConfigDict (uses config.data.{sources, segment_length, channels, sample_rate,
      presence_prob, select_prob}).
    batch_size: examples per batch (this process's local batch).
    seed: seed of all randomness (an int or a sequence of ints, as np.random.default_rng takes).
  """
  data = config.data
  num_sources = len(data.sources)
  rng = np.random.default_rng(seed)
  while True:
    sources = np.stack([
        np.stack([_synthetic_source(rng, s, data.segment_length, data.channels, data.sample_rate)
                  for s in range(num_sources)]) for _ in range(batch_size)])
    presence, select = sample_masks(rng, batch_size, num_sources, data.presence_prob, data.select_prob)
    yield {MIXTURE: mix(sources, presence), SOURCES: sources, PRESENCE: presence, SELECT: select}


def synthetic_tracks(config, split: str, num_tracks: int, seconds: float) -> Iterator[tuple[str, np.ndarray]]:
  """Fixed synthetic "tracks" of a split: (name, stems float32 [S, T, C]), every source present, deterministic.

  The synthetic counterpart of load_tracks (evaluation and the in-training SDR without a dataset); track k of a
  split is the same for every call.
  """
  data = config.data
  length = int(round(seconds * data.sample_rate))
  for k in range(num_tracks):
    rng = np.random.default_rng([zlib.crc32(split.encode()), k])
    stems = np.stack([_synthetic_source(rng, s, length, data.channels, data.sample_rate)
                      for s in range(len(data.sources))])
    yield f'synthetic {split} {k}', stems


# --- Dispatcher ------------------------------------------------------------------------------------------------


def create_batches(config, split: str, *, seed: int, process_index: int = 0,
                   process_count: int = 1) -> Iterator[Batch]:
  """This process's batches of `split` (local batch = global batch / process count), as NumPy dicts."""
  if config.data.batch_size % process_count:
    raise ValueError(f'data.batch_size={config.data.batch_size} is not divisible by the process count '
                     f'{process_count}')
  local_batch = config.data.batch_size // process_count
  if config.data.source == 'synthetic':
    # Different processes and splits draw different examples (crc32: stable across runs, unlike hash()).
    return synthetic_batches(config, local_batch, seed=[seed, process_index, zlib.crc32(split.encode())])
  if config.data.source == 'tfds':
    return tfds_batches(config, split, local_batch=local_batch, seed=seed, process_index=process_index,
                        process_count=process_count)
  raise ValueError(f"data.source={config.data.source!r}: expected 'synthetic' or 'tfds'")


def tfds_batches(config, split: str, *, local_batch: int, seed: int, process_index: int, process_count: int,
                 training: bool | None = None) -> Iterator[Batch]:
  """Endless NumPy batches of `split` from the TFDS dataset written by data_prep.build (TensorFlow imported here).

  Args:
    config: the experiment ConfigDict (config.data.{data_dir, dataset, train_split, sources, sample_rate, channels,
      segment_length, remix, presence_prob, select_prob, gain_min, gain_max, channel_swap, shuffle_buffer}).
    split: a split of the 'chunks' config ('train', 'validation', 'test').
    local_batch: examples per batch of this process.
    seed: seed of every random choice (file order, crops, remix, gains, swaps, masks); the same seed gives the same
      batches.
    process_index: this process; it reads its own 1/process_count of the split's examples.
    process_count: processes reading the split.
    training: random remix/crops/augmentation (default: split == config.data.train_split) or fixed crops.

  Returns:
    An iterator of dicts with the element spec of the module docstring: mixture [B, T, C], sources [B, S, T, C],
    presence [B, S], select [B, S], float32, B = local_batch, T = data.segment_length, C = data.channels.

  Raises:
    errors.DataError: no dataset at data_dir, a source missing from it, or a sample rate that cannot be converted.
  """
  tf = _import_tf()
  data = config.data
  if local_batch < 1:
    raise errors.DataError(f'local batch {local_batch} must be >= 1')
  if training is None:
    training = split == data.train_split
  builder = _open_builder(config, CHUNKS_CONFIG)
  info = _dataset_info(builder, config)
  taps = lowpass_taps(info.ratio) if info.ratio > 1 else None
  # Samples cropped at the dataset's rate: the decimating filter needs (taps - 1) more than ratio * segment.
  crop = data.segment_length * info.ratio + (0 if taps is None else len(taps) - 1)
  base_split = split.split('[', 1)[0]
  if base_split not in builder.info.splits:
    raise errors.DataError(f'{builder.data_dir}: no split {base_split!r} (has {sorted(builder.info.splits)})')
  split_spec = _process_split(split, process_index, process_count)
  # Independent, stable seeds per role (crc32, not hash(): stable across runs).
  keys = iter(np.random.SeedSequence([seed, process_index, zlib.crc32(split.encode())]).generate_state(
      32, dtype=np.uint32).astype(np.int64).tolist())
  options = tf.data.Options()
  options.deterministic = True
  sources = list(data.sources)
  num_sources = len(sources)

  if training:
    # Shuffled "bundles": the S stems of one random crop of one chunk (track name [], audio int16 [S, crop, 2]).
    ds = _training_bundles(builder, split_spec, sources, crop, _crops_per_chunk(config, info, crop), options,
                           data.shuffle_buffer, file_seed=next(keys), crop_seed=next(keys), shuffle_seed=next(keys))
    if data.remix and num_sources > 1:
      # The paper's remix: every source of an example from a different track (as many as the split has).
      tracks_in_split = len(info.tracks.get(base_split, ())) or num_sources
      ds = ds.batch(num_sources, drop_remainder=True).map(_latin_square).unbatch()
      ds = _remix_filter(ds, min(num_sources, tracks_in_split))
      # The S examples of one group hold the same S tracks (in other roles): spread them apart.
      ds = ds.shuffle(max(num_sources, data.shuffle_buffer // num_sources), seed=next(keys),
                      reshuffle_each_iteration=True)
    ds = ds.map(lambda tracks, audio: audio)
  else:
    ds = _eval_crops(builder, split_spec, sources, crop, options).repeat()

  ds = ds.batch(local_batch, drop_remainder=True)
  augment_key = next(keys)
  prepare = _make_prepare(data, taps, info.ratio, training)
  ds = ds.enumerate().map(lambda i, audio: prepare(audio, tf.stack([tf.constant(augment_key, tf.int64), i])),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  ds = ds.prefetch(tf.data.AUTOTUNE).with_options(options)
  return _as_numpy(ds)


def load_tracks(config, split: str, *, process_index: int = 0,
                process_count: int = 1) -> Iterator[tuple[str, np.ndarray]]:
  """Whole tracks of `split` from the dataset's 'tracks' config, for evaluation (TensorFlow imported here).

  Args:
    config: the experiment ConfigDict (config.data.{data_dir, dataset, sources, sample_rate, channels}).
    split: 'train', 'validation' or 'test'.
    process_index: this process; it gets its own 1/process_count of the tracks.
    process_count: processes sharing the split.

  Returns:
    An iterator, in a fixed order, of (track name, stems float32 [S, T, C]) with S = len(data.sources) in that
    order, C = data.channels, at data.sample_rate (decimated with the training pipeline's anti-alias filter, to
    ceil(T_file / ratio) samples). The mixture of a track is stems.sum(0).

  Raises:
    errors.DataError: no 'tracks' build at data_dir, a source missing from it, or an unconvertible sample rate.
  """
  tf = _import_tf()
  builder = _open_builder(config, TRACKS_CONFIG)
  info = _dataset_info(builder, config)
  if split.split('[', 1)[0] not in builder.info.splits:
    raise errors.DataError(f'{builder.data_dir}: no split {split!r} (has {sorted(builder.info.splits)})')
  sources = list(config.data.sources)
  taps = lowpass_taps(info.ratio) if info.ratio > 1 else None
  ds = _as_dataset(builder, _process_split(split, process_index, process_count), sources + ['track'],
                   shuffle_files=False)
  mono = config.data.channels == 1

  def tracks():  # A generator of its own, so that the checks above fail at the call, not at the first next().
    for example in ds:
      audio = tf.cast(tf.stack([example[name] for name in sources]), tf.float32) / 32768.0  # [S, T, 2]
      if mono:
        audio = tf.reduce_mean(audio, axis=-1, keepdims=True)
      if taps is not None:
        # Centre the filter on each kept sample: pad half the filter on both sides.
        half = (len(taps) - 1) // 2
        audio = _decimate(tf.pad(audio, [[0, 0], [half, half], [0, 0]]), taps, info.ratio)
      yield example['track'].numpy().decode('utf-8'), audio.numpy()

  return tracks()


def lowpass_taps(ratio: int, zero_crossings: int = 32, rolloff: float = 0.9, beta: float = 8.6) -> np.ndarray:
  """Anti-alias filter for decimation by `ratio`: a Kaiser-windowed sinc with unit DC gain.

  The cutoff is rolloff x the output Nyquist frequency; with 32 zero crossings per side the transition band
  (~0.04 x the input rate) ends below the output Nyquist frequency, so aliasing is attenuated by the window's
  ~80 dB stopband.

  Args:
    ratio: input rate / output rate (>= 2).
    zero_crossings: zero crossings of the sinc per side, in output samples (length of the filter).
    rolloff: cutoff as a fraction of the output Nyquist frequency.
    beta: Kaiser window shape (8.6 ~ 80 dB stopband).

  Returns:
    float32 [2 * zero_crossings * ratio + 1] taps, symmetric.
  """
  half = zero_crossings * ratio
  n = np.arange(-half, half + 1)
  cutoff = rolloff / (2.0 * ratio)  # cycles per input sample
  taps = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(2 * half + 1, beta)
  return (taps / taps.sum()).astype(np.float32)


# --- TFDS pipeline internals (TensorFlow imported lazily) ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _DatasetInfo:
  """What the pipeline needs from a build's metadata."""
  rate: int                           # samples per second of the stored stems
  ratio: int                          # rate / config.data.sample_rate (1 = no resampling)
  tracks: dict[str, Sequence[str]]    # track names per split
  chunk_samples: int | None           # samples per chunk at `rate` (None: whole tracks or unknown)


def _import_tf():
  """Imports TensorFlow for tf.data only: hides accelerators from it so JAX keeps them."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  try:
    tf.config.set_visible_devices([], 'GPU')
    tf.config.set_visible_devices([], 'TPU')
  except (RuntimeError, ValueError):
    pass  # Already initialized, or no such device type: nothing to hide.
  return tf


def _open_builder(config, builder_config: str):
  """The newest version of DATA_DIR/<dataset>/<builder_config> as a read-only tfds builder."""
  tf = _import_tf()
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  data = config.data
  if not data.data_dir:
    raise errors.DataError('data.data_dir is empty: pass --config.data.data_dir=DIR (the --data_dir of '
                           'data_prep.build)')
  folder = os.path.join(os.path.expanduser(data.data_dir), data.dataset, builder_config)
  versions = []
  if tf.io.gfile.isdir(folder):
    for v in tf.io.gfile.listdir(folder):
      v = v.rstrip('/')
      parts = v.split('.')
      if (len(parts) == 3 and all(p.isdigit() for p in parts) and
          tf.io.gfile.exists(os.path.join(folder, v, 'dataset_info.json'))):
        versions.append(tuple(int(p) for p in parts))
  if not versions:
    raise errors.DataError(f'{folder}: no TFDS build here; run `python -m data_prep.build --dataset={data.dataset} '
                    f'--musdb_root=ROOT [--is_wav] --data_dir={data.data_dir}`')
  return tfds.builder_from_directory(os.path.join(folder, '.'.join(map(str, max(versions)))))


def _dataset_info(builder, config) -> _DatasetInfo:
  """Checks the build against config.data (sources, rate, channels); returns what the pipeline needs."""
  data = config.data
  metadata = builder.info.metadata or {}
  rate = int(metadata.get('sample_rate', 44100))
  stored = [k for k in builder.info.features.keys() if k not in ('track', 'offset', 'sample_rate')]
  missing = [s for s in data.sources if s not in stored]
  if missing:
    raise errors.DataError(f'{builder.data_dir}: data.sources has {missing}, not in the dataset (has {stored})')
  if data.channels not in (1, 2):
    raise errors.DataError(f'data.channels={data.channels}: the dataset is stereo; use 2 (or 1 for a mono downmix)')
  if rate % data.sample_rate:
    raise errors.DataError(f'{builder.data_dir}: dataset rate {rate} Hz is not an integer multiple of data.sample_rate='
                    f'{data.sample_rate} Hz (only integer decimation is supported)')
  tracks = {k: list(v) for k, v in dict(metadata.get('tracks', {})).items()}
  chunk_seconds = metadata.get('chunk_seconds')
  return _DatasetInfo(rate=rate, ratio=rate // data.sample_rate, tracks=tracks,
                      chunk_samples=int(round(chunk_seconds * rate)) if chunk_seconds else None)


def _crops_per_chunk(config, info: _DatasetInfo, crop: int) -> int:
  """Random crops taken per chunk read: data.crops_per_chunk if > 0, else as many as the chunk holds (>= 1)."""
  requested = config.data.crops_per_chunk
  if requested:
    return int(requested)
  if not info.chunk_samples:
    return 1
  return max(1, info.chunk_samples // crop)


def _as_dataset(builder, split, features: Sequence[str], **kwargs):
  """builder.as_dataset decoding only `features` (the other stems stay unparsed)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  # tfds 4.9.10's PartialDecoding reads its own deprecated FeatureConnector.dtype and warns once per call; that is
  # tfds's business, not the user's, so that one message is dropped while the dataset is built.
  with library_logs.messages_dropped('FeatureConnector.dtype` is deprecated'):
    return builder.as_dataset(split=split, decoders=tfds.decode.PartialDecoding({f: True for f in features}),
                              **kwargs)


def _process_split(split: str, process_index: int, process_count: int) -> str:
  """This process's part of `split`: an even 1/process_count of its examples (any number of files)."""
  if process_count == 1:
    return split
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  return tfds.split_for_jax_process(split, process_index=process_index, process_count=process_count)


def _training_bundles(builder, split_spec, names, crop: int, crops_per_chunk: int, options, shuffle_buffer: int, *,
                      file_seed: int, crop_seed: int, shuffle_seed: int):
  """Endless, shuffled (track [], random crop int16 [len(names), crop, 2]) of the given stems, one offset for all.

  Each chunk read gives `crops_per_chunk` independent random crops: a TFRecord is read whole, so using a 10 s chunk
  for one 1 s crop would make the pipeline I/O-bound. The buffer holds crops (not chunks) and separates the crops
  of one chunk.
  """
  tf = _import_tf()
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  read_config = tfds.ReadConfig(options=options, shuffle_seed=file_seed, shuffle_reshuffle_each_iteration=True)
  ds = _as_dataset(builder, split_spec, list(names) + ['track'], shuffle_files=True, read_config=read_config)
  ds = ds.repeat().enumerate()

  def random_crops(index, example):
    audio = _pad_to(tf.stack([example[name] for name in names]), crop)  # [S, T, 2]
    seed = tf.stack([tf.constant(crop_seed, tf.int64), index])
    starts = tf.random.stateless_uniform([crops_per_chunk], seed, minval=0, maxval=tf.shape(audio)[1] - crop + 1,
                                         dtype=tf.int32)
    # [k, S, crop, 2]: a window of `crop` samples at each start.
    windows = starts[:, None] + tf.range(crop)[None, :]
    audio = tf.transpose(tf.gather(audio, windows, axis=1), [1, 0, 2, 3])
    audio.set_shape([crops_per_chunk, len(names), crop, 2])
    return tf.fill([crops_per_chunk], example['track']), audio

  ds = ds.map(random_crops, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).unbatch()
  return ds.shuffle(max(1, shuffle_buffer), seed=shuffle_seed, reshuffle_each_iteration=True)


def _latin_square(tracks, audio):
  """S shuffled bundles -> S remixed examples using every crop once: example j takes source s from bundle (j+s)%S.

  Args:
    tracks: string [S], the track of each bundle.
    audio: int16 [S bundles, S sources, crop, C].

  Returns:
    (tracks [S examples, S sources], audio [S examples, S sources, crop, C]); every example holds all S bundles,
    one source of each, so its sources come from S different chunks (distinct tracks unless two bundles share one).
  """
  tf = _import_tf()
  num = audio.shape[0]
  bundle = (tf.range(num)[:, None] + tf.range(num)[None, :]) % num  # [example, source] -> bundle
  source = tf.broadcast_to(tf.range(num)[None, :], [num, num])
  return tf.gather(tracks, bundle), tf.gather_nd(audio, tf.stack([bundle, source], axis=-1))


def _remix_filter(ds, required: int, patience: int = 256):
  """Keeps the zipped (tracks [S], audio) whose tracks are `required` distinct names (rejection sampling).

  The split's track count (metadata) bounds `required`, but this process reads only its part of the split, which
  can hold fewer tracks (a tiny dataset over many processes): after `patience` rejections in a row the requirement
  drops to the most distinct tracks seen in that run, so the stream never stalls. With more tracks than sources a
  run that long is practically impossible (4 of 5 equally long tracks: all distinct with probability 0.19 per draw;
  0.81^256 ~ 1e-24), so the requirement only drops where it cannot be met.
  """
  tf = _import_tf()

  def step(state, element):
    wanted, rejects, best = state
    tracks, audio = element
    distinct = tf.size(tf.unique(tracks).y)
    ok = distinct >= wanted
    best = tf.maximum(best, distinct)
    give_up = tf.logical_and(tf.logical_not(ok), rejects + 1 >= patience)
    keep = tf.logical_or(ok, tf.logical_and(give_up, distinct >= best))
    wanted = tf.where(give_up, best, wanted)
    rejects = tf.where(keep | give_up, 0, rejects + 1)
    best = tf.where(keep | give_up, 0, best)
    return (wanted, rejects, best), (keep, tracks, audio)

  def kept(keep, tracks, audio):
    del tracks, audio
    return keep

  def drop_flag(keep, tracks, audio):
    del keep
    return tracks, audio

  ds = ds.scan((tf.constant(required), tf.constant(0), tf.constant(0)), step)
  return ds.filter(kept).map(drop_flag)


def _eval_crops(builder, split_spec, names, crop: int, options):
  """Finite int16 [S, crop, 2] crops: each chunk of the split cut into consecutive crops (at least one), in order."""
  tf = _import_tf()
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  ds = _as_dataset(builder, split_spec, list(names), shuffle_files=False, read_config=tfds.ReadConfig(options=options))

  def cut(example):
    audio = _pad_to(tf.stack([example[name] for name in names]), crop)  # [S, T, 2]
    count = tf.shape(audio)[1] // crop
    audio = tf.reshape(audio[:, :count * crop], [len(names), count, crop, 2])
    return tf.transpose(audio, [1, 0, 2, 3])  # [count, S, crop, 2]

  return ds.map(cut, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).unbatch()


def _pad_to(audio, length: int):
  """Zero-pads [n, T, C] at the end to at least `length` samples (chunks of tracks shorter than a crop)."""
  tf = _import_tf()
  return tf.pad(audio, [[0, 0], [0, tf.maximum(length - tf.shape(audio)[1], 0)], [0, 0]])


def _decimate(audio, taps: np.ndarray, ratio: int):
  """Low-pass filters and keeps every ratio-th sample: [..., L, C] -> [..., (L - len(taps)) // ratio + 1, C].

  All axes but time must be static. The rows go to the channel axis of one strided depthwise convolution ('VALID':
  no edge effects), faster on CPU than a single-channel conv1d over rows in the batch axis. Time is the second
  spatial axis, the first has size 1, and both strides are `ratio`: TensorFlow's Eigen depthwise kernel (the one
  that runs where oneDNN is off, e.g. on CPUs without AVX-512) accepts only equal strides, and a stride on a
  size-1 axis with a height-1 filter keeps its one row, so both kernels compute the same thing.
  """
  tf = _import_tf()
  rank = audio.shape.rank
  lead, channels = audio.shape[:-2].as_list(), audio.shape[-1]
  rows = int(np.prod(lead, dtype=np.int64)) * channels
  time_first = [rank - 2] + list(range(rank - 2)) + [rank - 1]  # [..., L, C] -> [L, ..., C]
  x = tf.reshape(tf.transpose(audio, time_first), [1, 1, -1, rows])
  kernel = tf.tile(tf.constant(taps)[None, :, None, None], [1, 1, rows, 1])
  y = tf.nn.depthwise_conv2d(x, kernel, strides=[1, ratio, ratio, 1], padding='VALID')
  y = tf.reshape(y, [-1] + lead + [channels])
  return tf.transpose(y, list(range(1, rank - 1)) + [0, rank - 1])


def _make_prepare(data, taps, ratio: int, training: bool):
  """The batch-level step: int16 [B, S, crop, 2] + seed [2] -> the element spec (float32, masks, mixture)."""
  tf = _import_tf()
  num_sources, length = len(data.sources), data.segment_length

  def prepare(audio, seed):
    seeds = tf.random.experimental.stateless_split(seed, 6)
    batch = tf.shape(audio)[0]
    x = tf.cast(audio, tf.float32) / 32768.0
    if data.channels == 1:
      x = tf.reduce_mean(x, axis=-1, keepdims=True)
    if taps is not None:
      x = _decimate(x, taps, ratio)
    x = tf.ensure_shape(x, [None, num_sources, length, data.channels])
    if training:
      gain = tf.random.stateless_uniform([batch, num_sources, 1, 1], seeds[0], minval=data.gain_min,
                                         maxval=data.gain_max)
      x = x * gain
      if data.channel_swap and data.channels == 2:
        swap = tf.random.stateless_uniform([batch, num_sources, 1, 1], seeds[1]) < 0.5
        x = tf.where(swap, tf.reverse(x, axis=[-1]), x)
    # Masks as sample_masks draws them: Bernoulli presence, one forced on where none is, selection within presence.
    presence = tf.random.stateless_uniform([batch, num_sources], seeds[2]) < data.presence_prob
    forced = tf.one_hot(tf.random.stateless_uniform([batch], seeds[3], maxval=num_sources, dtype=tf.int32),
                        num_sources, on_value=True, off_value=False)
    presence = tf.where(tf.reduce_any(presence, axis=1, keepdims=True), presence, forced)
    select = presence & (tf.random.stateless_uniform([batch, num_sources], seeds[4]) < data.select_prob)
    presence = tf.cast(presence, tf.float32)
    mixture = tf.einsum('bstc,bs->btc', x, presence)
    return {MIXTURE: mixture, SOURCES: x, PRESENCE: presence, SELECT: tf.cast(select, tf.float32)}

  return prepare


def _as_numpy(ds) -> Iterator[Batch]:
  """Iterates a tf.data dataset of batch dicts as NumPy dicts."""
  for batch in ds.as_numpy_iterator():
    yield {key: batch[key] for key in BATCH_KEYS}
