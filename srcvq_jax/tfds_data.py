"""Batches and whole tracks from the TFDS build of data_prep.build (TensorFlow imported lazily, only here).

  * `tfds_batches`: evaluation batches of a split's chunks: the real mixtures cut into consecutive fixed crops, in
    file order, no gain or swap; only the masks are random, from the seed (batch_spec.sample_masks from (seed,
    batch index)). Endless (the same crops cycled), so a caller takes as many batches as it wants. Training
    batches are random-access crops instead (srcvq_jax/crop_store.py), built from `split_chunks`.
  * `load_tracks`: whole tracks (the dataset's 'tracks' config) for evaluation.
Audio: int16 -> float32 / 32768; where the dataset's rate is an integer multiple of data.sample_rate, an anti-alias
low-pass and decimation (audio.lowpass_taps / audio.decimate), the same filter for crops, chunks and tracks.
Batches have the element spec of srcvq_jax/batch_spec.py.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Iterator, Sequence
import zlib

import numpy as np

from srcvq_jax import audio as audio_lib
from srcvq_jax import batch_spec
from srcvq_jax import errors
from srcvq_jax import library_logs

# Builder configs written by data_prep.build: fixed-length chunks (training batches) and whole tracks (evaluation).
CHUNKS_CONFIG = 'chunks'
TRACKS_CONFIG = 'tracks'


def tfds_batches(config, split: str, *, local_batch: int, seed: int, process_index: int,
                 process_count: int) -> Iterator[batch_spec.Batch]:
  """Endless evaluation batches of `split`'s chunks: consecutive fixed crops (see the module docstring).

  Args:
    config: the experiment ConfigDict (config.data.{data_dir, dataset, sources, sample_rate, channels,
      segment_length, presence_prob, select_prob}).
    split: a split of the 'chunks' config ('train', 'validation', 'test').
    local_batch: examples per batch of this process.
    seed: seed of the masks; the same seed gives the same batches.
    process_index: this process; it reads its own 1/process_count of the split's examples.
    process_count: processes reading the split.

  Returns:
    An iterator of dicts with the element spec of batch_spec: mixture [B, T, C], sources [B, S, T, C],
    presence [B, S], select [B, S], float32, B = local_batch, T = data.segment_length, C = data.channels.

  Raises:
    errors.DataError: no dataset at data_dir, a source missing from it, or a sample rate that cannot be converted.
  """
  tf = _import_tf()
  data = config.data
  if local_batch < 1:
    raise errors.DataError(f'local batch {local_batch} must be >= 1')
  builder, info = open_chunks(config, split)
  taps = audio_lib.lowpass_taps(info.ratio) if info.ratio > 1 else None
  # Samples cropped at the dataset's rate: the decimating filter needs (taps - 1) more than ratio * segment.
  crop = data.segment_length * info.ratio + (0 if taps is None else len(taps) - 1)
  options = tf.data.Options()
  options.deterministic = True
  ds = _eval_crops(builder, _process_split(split, process_index, process_count), list(data.sources), crop, options)
  ds = ds.repeat().batch(local_batch, drop_remainder=True)
  prepare = _make_prepare(data, taps, info.ratio)
  ds = ds.enumerate().map(lambda i, audio: (i, prepare(audio)), num_parallel_calls=tf.data.AUTOTUNE,
                          deterministic=True)
  ds = ds.prefetch(tf.data.AUTOTUNE).with_options(options)
  mask_seed = np.random.SeedSequence([seed, process_index, zlib.crc32(split.encode())]).generate_state(1)[0]
  return _as_numpy(ds, data, mask_seed=int(mask_seed))


def open_chunks(config, split: str):
  """(builder, _DatasetInfo) of the 'chunks' build, checked against config.data and holding `split`.

  Raises:
    errors.DataError: no build at data_dir, a missing source or split, an unconvertible rate.
  """
  builder = _open_builder(config, CHUNKS_CONFIG)
  info = _dataset_info(builder, config)
  base_split = split.split('[', 1)[0]
  if base_split not in builder.info.splits:
    raise errors.DataError(f'{builder.data_dir}: no split {base_split!r} (has {sorted(builder.info.splits)})')
  return builder, info


def split_chunks(builder, info, split: str, sources) -> Iterator[tuple[str, np.ndarray]]:
  """Every chunk of `split` in file order as (track name, stems [S, T, 2]): int16 as stored where no resampling is
  needed, else float32 decimated to the model's rate (the pipeline's filter, centred: ceil(T / ratio) samples)."""
  tf = _import_tf()
  sources = list(sources)
  taps = audio_lib.lowpass_taps(info.ratio) if info.ratio > 1 else None
  for example in _as_dataset(builder, split, sources + ['track'], shuffle_files=False):
    audio = tf.stack([example[name] for name in sources])  # int16 [S, T, 2]
    if taps is not None:
      audio = _decimate_centred(tf.cast(audio, tf.float32) / 32768.0, taps, info.ratio)
    yield example['track'].numpy().decode('utf-8'), audio.numpy()


def _decimate_centred(audio, taps: np.ndarray, ratio: int):
  """audio.decimate with the filter centred on each kept sample (half the filter zero-padded on both sides)."""
  tf = _import_tf()
  half = (len(taps) - 1) // 2
  return audio_lib.decimate(tf.pad(audio, [[0, 0], [half, half], [0, 0]]), taps, ratio)


def load_tracks(config, split: str, *, process_index: int = 0,
                process_count: int = 1) -> Iterator[tuple[str, np.ndarray]]:
  """Whole tracks of `split` from the dataset's 'tracks' config, for evaluation (TensorFlow imported here): a
  track stored as consecutive pieces (builds since 1.1.0: protobuf caps one record at 2 GB, ~60 minutes) is
  stitched back before it is decimated, so it equals the track as one piece.

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
  taps = audio_lib.lowpass_taps(info.ratio) if info.ratio > 1 else None
  ds = _as_dataset(builder, split, sources + ['track', 'offset'], shuffle_files=False)
  mono = config.data.channels == 1

  def finish(pieces):
    audio = tf.cast(tf.concat(pieces, axis=1), tf.float32) / 32768.0  # [S, T, 2]
    if mono:
      audio = tf.reduce_mean(audio, axis=-1, keepdims=True)
    if taps is not None:
      audio = _decimate_centred(audio, taps, info.ratio)
    return audio.numpy()

  def tracks():  # A generator of its own, so that the checks above fail at the call, not at the first next().
    for index, (name, pieces) in enumerate(_stitched(ds, sources, builder.data_dir)):
      if index % process_count == process_index:
        yield name, finish(pieces)

  return tracks()


def _stitched(ds, sources, where) -> Iterator[tuple[str, list]]:
  """(track, its pieces int16 [S, T_i, 2] in order) of a 'tracks' build: one piece per track (builds before
  1.1.0) or consecutive pieces of at most data_prep.musdb18.TRACK_PIECE_SECONDS, stored in order (their offsets
  checked to continue each other, so a track is never stitched from a shuffled or incomplete build)."""
  tf = _import_tf()
  name, pieces, expected = None, [], 0
  for example in ds:
    track, offset = example['track'].numpy().decode('utf-8'), int(example['offset'])
    piece = tf.stack([example[s] for s in sources])
    if track != name:
      if name is not None:
        yield name, pieces
      name, pieces, expected = track, [], 0
    if offset != expected:
      raise errors.DataError(f'{where}: track {track!r} has a piece at sample {offset}, expected {expected} '
                             '(an incomplete or reordered tracks build: rebuild it with data_prep.build)')
    pieces.append(piece)
    expected = offset + int(piece.shape[1])
  if name is not None:
    yield name, pieces


# --- Internals --------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _DatasetInfo:
  """What the pipeline needs from a build's metadata."""
  rate: int                           # samples per second of the stored stems
  ratio: int                          # rate / config.data.sample_rate (1 = no resampling)


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
  return _DatasetInfo(rate=rate, ratio=rate // data.sample_rate)


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


def _make_prepare(data, taps, ratio: int):
  """The batch-level step: int16 [B, S, crop, 2] -> float32 sources [B, S, T, C] (masks: _as_numpy)."""
  tf = _import_tf()
  num_sources, length = len(data.sources), data.segment_length

  def prepare(audio):
    x = tf.cast(audio, tf.float32) / 32768.0
    if data.channels == 1:
      x = tf.reduce_mean(x, axis=-1, keepdims=True)
    if taps is not None:
      x = audio_lib.decimate(x, taps, ratio)
    return tf.ensure_shape(x, [None, num_sources, length, data.channels])

  return prepare


def _as_numpy(ds, data, mask_seed: int) -> Iterator[batch_spec.Batch]:
  """Iterates a dataset of (batch index, sources) as NumPy batches, the masks of batch i drawn from
  (mask_seed, i) by batch_spec.sample_masks (the sampler every source of batches uses)."""
  for index, sources in ds.as_numpy_iterator():
    yield batch_spec.with_masks(sources, np.random.default_rng([mask_seed, int(index)]), data)
