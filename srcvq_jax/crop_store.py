"""Training examples by random access: every example a pure function of (seed, step, example index).

Why: a run resumed from a checkpoint at step N must see exactly the batches an uninterrupted run sees from step N
on (issue 17: a killed-and-resumed run is bit-identical to an uninterrupted one), whatever the process and device
counts. A tf.data pipeline of shuffle buffers would have to checkpoint its buffers (at base shapes ~0.7 GB per
save) or replay every batch since step 0; instead the training split is stored once in a form that allows random
crops, and example g of step t (g in [0, global batch)) is drawn from np.random.default_rng([seed, split, t, g]).
Process p of P computes the examples [p B / P, (p + 1) B / P) of each step: the global batch does not depend on P.

The store: the chunks of the split's TFDS build (data_prep.build's 'chunks' config, read once, in file order),
decimated to data.sample_rate with the pipeline's anti-alias filter (audio.lowpass_taps; exact int16 when no
resampling is needed, rounded to int16 after decimation otherwise), one memory-mapped int16 file per source
[total samples, 2] plus an index of chunks (start, length, track). Its cost: the split once more on local disk at
the model's rate, 4 bytes per sample and source (MUSDB18's 86 training tracks at 44.1 kHz: ~15 GB; the demo's 18
ChoraleMix training tracks of 20 s at 22.05 kHz: ~130 MB), and one pass over the split to build it the first time
(later runs and processes reuse it). It lives next to the TFDS build (DATA_DIR/<dataset>/crop_store/) where that
folder is local and writable, else under $SRCVQ_CACHE_DIR or ~/.cache/srcvq_jax.

An example (remix, the paper's): for each source a random chunk of a track no other source of the example uses
(as long as the split has unused tracks), a random crop of segment_length samples in it, a random gain in
[gain_min, gain_max] and left/right swap, and with data.speed_semitones > 0 a random speed (each source resampled
to play a whole number of semitones higher or lower, and faster or slower with it); without remix, one crop of one
chunk for all sources, at one speed (the track as mixed: its sources in time with each other). data.remix_prob:
the fraction of examples remixed (1 = all). Masks by batch_spec.sample_masks; mixture = sum of the present sources.
"""
from __future__ import annotations

import dataclasses
import fractions
import functools
import hashlib
import json
import os
import shutil
import tempfile
from typing import Iterator

from absl import logging
import numpy as np

from srcvq_jax import batch_spec
from srcvq_jax import errors

STORE_VERSION = 1
_INDEX = 'index.json'
_CHANNELS = 2  # stored as the dataset is (stereo); mono is a downmix at read
# Draws of a chunk whose track another source of the example already uses, before accepting a repeat.
_TRACK_TRIES = 64
# Speed augmentation: the largest denominator of a resampling ratio, and the input samples read on each side of a
# repitched crop (scipy's polyphase filter reaches 10 x max(up, down) / up input samples: ~10 at these ratios).
_SPEED_DENOMINATOR = 20
_SPEED_MARGIN = 64


@dataclasses.dataclass(frozen=True)
class CropStore:
  """A split's chunks at the model's rate, for random crops."""
  audio: tuple[np.ndarray, ...]   # per source: int16 [total samples, 2] (read-only memory maps)
  starts: np.ndarray              # int64 [N]: first sample of chunk n
  lengths: np.ndarray             # int64 [N]: samples of chunk n
  tracks: np.ndarray              # int32 [N]: track of chunk n (an index into track_names)
  track_names: tuple[str, ...]
  path: str

  @property
  def num_tracks(self) -> int:
    return len(self.track_names)


def _store_root(data_dir: str, dataset: str) -> str:
  """Next to the TFDS build when that is a writable local folder, else the user's cache."""
  local = os.path.join(os.path.expanduser(data_dir), dataset)
  if '://' not in data_dir and os.path.isdir(local) and os.access(local, os.W_OK):
    return os.path.join(local, 'crop_store')
  cache = os.environ.get('SRCVQ_CACHE_DIR') or os.path.join(os.path.expanduser('~'), '.cache', 'srcvq_jax')
  return os.path.join(cache, 'crop_store', dataset)


def _key(builder, split: str, sources, sample_rate: int) -> str:
  """A folder name naming what the store holds: the build (its folder, version and dataset_info.json, which a
  rebuild rewrites), the split, sources and rate; a store of another build is never reused."""
  from etils import epath  # pylint: disable=g-import-not-at-top
  info = epath.Path(builder.data_dir) / 'dataset_info.json'
  stamp = [info.read_text(), info.stat().mtime] if info.exists() else []
  what = json.dumps([STORE_VERSION, os.path.abspath(str(builder.data_dir)), str(builder.info.version), split,
                     list(sources), int(sample_rate), stamp])
  return f'{split}-{int(sample_rate)}-{hashlib.sha256(what.encode()).hexdigest()[:16]}'


def open_store(config, split: str) -> CropStore:
  """The store of `split` (config.data.{data_dir, dataset, sources, sample_rate}), built on first use.

  Raises:
    errors.DataError: no build, a missing source, an unconvertible rate (as tfds_data), or an empty split.
  """
  from srcvq_jax import tfds_data  # pylint: disable=g-import-not-at-top  (TensorFlow, lazily)

  builder, info = tfds_data.open_chunks(config, split)
  path = os.path.join(_store_root(config.data.data_dir, config.data.dataset),
                      _key(builder, split, config.data.sources, config.data.sample_rate))
  if not os.path.isfile(os.path.join(path, _INDEX)):
    _build(builder, info, split, list(config.data.sources), path)
  return _open(path, len(config.data.sources))


def _build(builder, info, split: str, sources: list[str], path: str) -> None:
  """Writes the store of `split` into a temporary folder, then renames it to `path` (atomic: a concurrent builder of
  the same store, e.g. another process of this host, loses the race harmlessly)."""
  from srcvq_jax import tfds_data  # pylint: disable=g-import-not-at-top

  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=os.path.basename(path) + '.tmp-', dir=os.path.dirname(path))
  logging.info('building the crop store of split %r (once; later runs reuse it): %s', split, path)
  # pylint: disable-next=consider-using-with  (closed in the finally below)
  files = [open(os.path.join(tmp, f'{i}.int16'), 'wb') for i in range(len(sources))]
  starts, lengths, tracks, names = [], [], [], {}
  total = 0
  try:
    for track, stems in tfds_data.split_chunks(builder, info, split, sources):
      if stems.dtype != np.int16:  # decimated: float in [-1, 1)
        stems = np.clip(np.round(stems * 32768.0), -32768, 32767).astype(np.int16)
      for f, stem in zip(files, stems):
        f.write(np.ascontiguousarray(stem, np.int16).tobytes())
      starts.append(total)
      lengths.append(stems.shape[1])
      tracks.append(names.setdefault(track, len(names)))
      total += stems.shape[1]
  finally:
    for f in files:
      f.close()
  if not starts:
    shutil.rmtree(tmp, ignore_errors=True)
    raise errors.DataError(f'{builder.data_dir}: split {split!r} has no examples')
  index = {'version': STORE_VERSION, 'sources': sources, 'total': total, 'starts': starts, 'lengths': lengths,
           'tracks': tracks, 'track_names': sorted(names, key=names.get)}
  with open(os.path.join(tmp, _INDEX), 'w', encoding='utf-8') as f:
    json.dump(index, f)
  try:
    os.rename(tmp, path)
  except OSError:  # another process finished the same store first
    shutil.rmtree(tmp, ignore_errors=True)


def _open(path: str, num_sources: int) -> CropStore:
  with open(os.path.join(path, _INDEX), encoding='utf-8') as f:
    index = json.load(f)
  audio = tuple(np.memmap(os.path.join(path, f'{i}.int16'), np.int16, 'r', shape=(index['total'], _CHANNELS))
                for i in range(num_sources))
  return CropStore(audio=audio, starts=np.asarray(index['starts'], np.int64),
                   lengths=np.asarray(index['lengths'], np.int64), tracks=np.asarray(index['tracks'], np.int32),
                   track_names=tuple(index['track_names']), path=path)


def _crop(store: CropStore, source: int, chunk: int, offset: int, length: int) -> np.ndarray:
  """int16 [length, 2] of a chunk from `offset` (zero-padded where the chunk is shorter)."""
  start = store.starts[chunk] + offset
  available = min(length, int(store.lengths[chunk]) - offset)
  out = np.zeros((length, _CHANNELS), np.int16)
  out[:available] = store.audio[source][start:start + available]
  return out


def speed_ratio(semitones: int) -> fractions.Fraction:
  """How many times faster audio plays `semitones` higher (and faster, as a tape does): 2 ** (semitones / 12) as a
  fraction of small terms (within 0.3%, 4 cents, up to +-3 semitones; 0.6% at +-4) that a polyphase filter
  resamples exactly."""
  return fractions.Fraction(2.0 ** (semitones / 12.0)).limit_denominator(_SPEED_DENOMINATOR)


def _speed_read_length(length: int, ratio: fractions.Fraction) -> int:
  """Input samples a repitched crop of `length` output samples reads: a lead of whole filter periods, length x
  ratio, and a tail margin (the polyphase filter's half-length is ~10 input samples at these ratios)."""
  return _speed_lead(ratio) + -(-length * ratio.numerator // ratio.denominator) + _SPEED_MARGIN


def _speed_lead(ratio: fractions.Fraction) -> int:
  """Input samples read before the crop: a multiple of ratio.numerator (so it maps to whole output samples) of at
  least _SPEED_MARGIN, so that the crop's first samples are filtered from real input, not the filter's zero pad."""
  return ratio.numerator * -(-_SPEED_MARGIN // ratio.numerator)


@functools.lru_cache(maxsize=None)
def _resampling_filter(up: int, down: int) -> np.ndarray:
  """scipy.signal.resample_poly's own default filter for (up, down) in float32 (the crop's dtype), designed once
  instead of at every call (the design costs more than the filtering of a crop)."""
  from scipy import signal  # pylint: disable=g-import-not-at-top
  max_rate = max(up, down)
  taps = signal.firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=('kaiser', 5.0)).astype(np.float32)
  taps.flags.writeable = False  # shared by every call
  return taps


def _repitched_crop(store: CropStore, source: int, chunk: int, offset: int, length: int,
                    ratio: fractions.Fraction) -> np.ndarray:
  """float32 [length, 2] (int16 scale) read from `offset` of the chunk and played `ratio` times faster (resampled
  by ratio.denominator / ratio.numerator with scipy's polyphase anti-alias filter)."""
  from scipy import signal  # pylint: disable=g-import-not-at-top  (only when the augmentation is on)
  raw = _crop(store, source, chunk, offset, _speed_read_length(length, ratio)).astype(np.float32)
  up, down = ratio.denominator, ratio.numerator
  out = signal.resample_poly(raw, up, down, axis=0, window=_resampling_filter(up, down))
  skip = _speed_lead(ratio) * ratio.denominator // ratio.numerator
  return out[skip:skip + length]


def example(store: CropStore, data, rng: np.random.Generator) -> np.ndarray:
  """One training example's sources, float32 [S, segment_length, C], drawn from rng (see the module docstring)."""
  num_sources, length = len(data.sources), int(data.segment_length)
  num_chunks = len(store.starts)
  max_semitones = int(data.speed_semitones)

  # (The draw for remix_prob is made only when it is below 1, so the paper's always-remix stream is unchanged.)
  remix = data.remix and num_sources > 1 and (float(data.remix_prob) >= 1 or rng.random() < float(data.remix_prob))
  # Speed (pitch and tempo together, Demucs's repitch by resampling): whole semitones in [-max, max], one per
  # source when remixed, one for all when the sources stay in time. (Drawn only when on: streams stay unchanged.)
  if max_semitones > 0:
    shifts = rng.integers(-max_semitones, max_semitones + 1, size=num_sources if remix else 1)
    ratios = [speed_ratio(int(k)) if k else None for k in np.broadcast_to(shifts, (num_sources,))]
  else:
    ratios = [None] * num_sources

  def read_length(ratio):
    return length if ratio is None else _speed_read_length(length, ratio)

  def random_offset(chunk, ratio):
    return int(rng.integers(0, max(int(store.lengths[chunk]) - read_length(ratio), 0) + 1))

  if remix:
    chunks, used = [], set()
    for _ in range(num_sources):
      for _ in range(_TRACK_TRIES):
        chunk = int(rng.integers(num_chunks))
        if store.tracks[chunk] not in used or len(used) >= store.num_tracks:
          break
      used.add(int(store.tracks[chunk]))
      chunks.append(chunk)
    offsets = [random_offset(c, r) for c, r in zip(chunks, ratios)]
  else:
    chunk = int(rng.integers(num_chunks))
    chunks, offsets = [chunk] * num_sources, [random_offset(chunk, ratios[0])] * num_sources
  crops = []
  for s, (c, o, r) in enumerate(zip(chunks, offsets, ratios)):
    crops.append(_crop(store, s, c, o, length) if r is None else _repitched_crop(store, s, c, o, length, r))
  x = np.stack(crops).astype(np.float32) / 32768.0
  if data.channels == 1:
    x = x.mean(axis=-1, keepdims=True)
  gain = rng.uniform(data.gain_min, data.gain_max, size=(num_sources, 1, 1)).astype(np.float32)
  x = x * gain
  if data.channel_swap and data.channels == 2:
    swap = rng.random(num_sources) < 0.5
    x[swap] = x[swap, :, ::-1]
  return x


def training_batches(config, split: str, *, seed: int, start_step: int, process_index: int = 0,
                     process_count: int = 1) -> Iterator[batch_spec.Batch]:
  """This process's training batches of steps start_step, start_step + 1, ... (batch_spec.step_batches: every
  example a function of (seed, split, step, example index)), crops from the store of `split`."""
  store = open_store(config, split)
  return batch_spec.step_batches(lambda rng: example(store, config.data, rng), config.data, split, seed=seed,
                                 start_step=start_step, process_index=process_index, process_count=process_count)
