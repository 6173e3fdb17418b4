"""TFDS builders of MUSDB18 (.stem.mp4), MUSDB18-HQ (wav) and ChoraleMix (MUSDB18-HQ layout): one code path.

  python -m data_prep.build --dataset=musdb18 --musdb_root=/data/musdb18 --data_dir=/data/tfds
  python -m data_prep.build --dataset=chorale_mix --musdb_root=data/chorale_mix --is_wav --data_dir=data/tfds

Tracks are listed and split by `musdb.DB(root, is_wav, subsets, split)`; .stem.mp4 stems are decoded by musdb
(stempeg/ffmpeg), wav stems are read from musdb's paths with soundfile (the same int16 samples, exact, without two
ffmpeg processes per stem). Examples are written by tfds's own writer as sharded TFRecords plus dataset_info.json
under DATA_DIR/<name>/<config>/<version>/.

What is stored, per example:
  vocals, bass, drums, other   int16 [T, 2]  the four stems at the file's rate (44.1 kHz), stereo
  track                        str           the track's name (the remix draws each source from a different one)
  offset                       int64         first sample of the example within its track
  sample_rate                  int32         samples per second of the stems (44100)
The mixture is not stored: a mixture is the sum of the stems (MUSDB18's mixture equals the sum of its stems up to
AAC codec error; MUSDB18-HQ and ChoraleMix exactly), and the training pipeline builds its own mixtures of remixed
sources anyway, so storing it would cost 25% more disk for nothing.

Builder configs:
  chunks (default)  one example per fixed-length chunk of a track (`chunk_seconds`, default 10 s), for training
                    batches. A track that does not end on a chunk boundary gets a last chunk aligned to its end (it
                    overlaps the one before), so every chunk of a track at least one chunk long has full length.
                    A track shorter than one chunk is kept as one shorter example (the pipeline pads its crops);
                    their count is logged.
  tracks            whole tracks for evaluation, as consecutive pieces of <= 60 s in order (`tfds_data.load_tracks`
                    stitches them back; one record must stay below protobuf's 2 GB).

Splits: train / validation / test. test = MUSDB's test subset. validation = the validation subset of MUSDB's train
subset: musdb's official list (`split='valid'`), or, when ROOT/validation_tracks.txt exists (ChoraleMix writes one),
the track names listed there (one per line); train = the rest of the train subset. An empty split is left out with
a warning.

Bad input: every track is checked before tfds starts writing (soundfile.info on each wav of the MUSDB18-HQ layout;
stempeg.Info, i.e. ffprobe, on each .stem.mp4). An unreadable or corrupt file, a sample rate other than 44.1 kHz, a
channel count other than 2, an empty or missing stem, stems of different lengths, a missing/empty root or a
validation list naming unknown tracks raise `DataError` with one line that names the file and the problem (all
problems are logged first). A silent stem is kept (a silent source is a valid training target) and logged.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Iterator, Sequence

from absl import logging
from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from data_prep import musdb_splits
from srcvq_jax.errors import DataError

__all__ = ['DataError', 'Musdb18', 'ChoraleMix', 'BuilderConfig', 'list_tracks', 'chunk_offsets', 'SOURCES']

# Stems stored per example, in the slot order of configs/base.py.
SOURCES = ('vocals', 'bass', 'drums', 'other')
MIXTURE = 'mixture'
SAMPLE_RATE = 44100
CHANNELS = 2
DEFAULT_CHUNK_SECONDS = 10.0
# The 'tracks' config stores a track as consecutive pieces of at most this long (one TFRecord holds < 2 GB: a
# whole 60-minute track of four int16 stereo stems is ~1.6 GB), in order; tfds_data.load_tracks stitches them.
TRACK_PIECE_SECONDS = 60.0
# AAC streams of one .stem.mp4 may differ by encoder padding (at most a frame or two); longer differences are errors.
_STEM_MP4_LENGTH_TOLERANCE = 2048


# --- Listing and checking tracks (no TensorFlow) ---------------------------------------------------------------


def _check_wav_track(track_dir: str) -> tuple[list[str], int]:
  """Checks a MUSDB18-HQ track folder with soundfile.info; returns (problems, samples per stem)."""
  import soundfile as sf  # pylint: disable=g-import-not-at-top

  problems, lengths = [], {}
  missing = [f'{stem}.wav' for stem in (MIXTURE,) + SOURCES
             if not os.path.isfile(os.path.join(track_dir, stem + '.wav'))]
  if missing:
    problems.append(f'{track_dir}: missing stem(s) {", ".join(missing)}')
  for stem in (MIXTURE,) + SOURCES:
    path = os.path.join(track_dir, stem + '.wav')
    if not os.path.isfile(path):
      continue
    try:
      info = sf.info(path)
    except Exception as e:  # pylint: disable=broad-except  (libsndfile raises several types)
      problems.append(f'{path}: cannot read audio ({musdb_splits.first_line(e)})')
      continue
    if info.samplerate != SAMPLE_RATE:
      problems.append(f'{path}: sample rate {info.samplerate} Hz, expected {SAMPLE_RATE} Hz')
    if info.channels != CHANNELS:
      problems.append(f'{path}: {info.channels} channel(s), expected {CHANNELS} (stereo)')
    if info.frames <= 0:
      problems.append(f'{path}: empty (0 samples)')
    lengths[stem + '.wav'] = info.frames
  if len(set(lengths.values())) > 1:
    problems.append(f'{track_dir}: stems differ in length (' +
                    ', '.join(f'{k} {v}' for k, v in lengths.items()) + ' samples)')
  return problems, min(lengths.values(), default=0)


def _check_stem_mp4(path: str) -> tuple[list[str], int]:
  """Checks a MUSDB18 .stem.mp4 with ffprobe (stempeg.Info); returns (problems, samples per stem)."""
  import stempeg  # pylint: disable=g-import-not-at-top

  try:
    info = stempeg.Info(path)
  except Exception as e:  # pylint: disable=broad-except  (ffmpeg.Error carries ffprobe's stderr)
    reason = musdb_splits.first_line(getattr(e, 'stderr', b'').decode(errors='replace') or e)
    return [f'{path}: cannot read audio ({reason})'], 0
  expected = 1 + len(SOURCES)
  if info.nb_audio_streams != expected:
    return [f'{path}: {info.nb_audio_streams} audio stream(s), expected {expected} (mixture, drums, bass, other, '
            'vocals): missing stem'], 0
  problems = []
  rates = {info.sample_rate(i) for i in range(expected)}
  if rates != {SAMPLE_RATE}:
    problems.append(f'{path}: sample rate {sorted(rates)} Hz, expected {SAMPLE_RATE} Hz')
  channels = {info.channels(i) for i in range(expected)}
  if channels != {CHANNELS}:
    problems.append(f'{path}: {sorted(channels)} channel(s), expected {CHANNELS} (stereo)')
  try:
    lengths = [info.samples(i) for i in range(expected)]
  except (KeyError, ValueError):
    lengths = [int(round(info.duration(i) * SAMPLE_RATE)) for i in range(expected)]
  if min(lengths) <= 0:
    problems.append(f'{path}: empty stream (0 samples)')
  elif max(lengths) - min(lengths) > _STEM_MP4_LENGTH_TOLERANCE:
    problems.append(f'{path}: stems differ in length ({lengths} samples)')
  return problems, min(lengths)


def _raise_problems(problems: Sequence[str]) -> None:
  """Logs every problem and raises DataError with the first one (one line)."""
  if not problems:
    return
  for p in problems:
    logging.error('bad input: %s', p)
  more = f' (and {len(problems) - 1} more problem(s), listed in the log)' if len(problems) > 1 else ''
  raise DataError(problems[0] + more)


@dataclasses.dataclass
class Track:
  """One track to write: the musdb track object plus what the up-front check learned about it."""
  name: str
  path: str            # the track's folder (wav layout) or .stem.mp4 file
  num_samples: int     # samples per stem, from the file headers
  musdb_track: Any     # musdb.audio_classes.MultiTrack


def list_tracks(root: str, is_wav: bool) -> dict[str, list[Track]]:
  """Lists and checks every track of a MUSDB18(-HQ)-layout root, split into train / validation / test.

  Args:
    root: the dataset root, with train/ and test/ (MUSDB18: <name>.stem.mp4 files; MUSDB18-HQ or ChoraleMix:
      <name>/{mixture,vocals,bass,drums,other}.wav folders), and optionally validation_tracks.txt.
    is_wav: the MUSDB18-HQ layout instead of .stem.mp4 files.

  Returns:
    {'train': [...], 'validation': [...], 'test': [...]} (empty splits left out), tracks sorted by name.

  Raises:
    DataError: one line naming the first bad file and its problem, before anything is written.
  """
  if not root or not os.path.isdir(root):
    raise DataError(f'{root or "(empty --musdb_root)"}: dataset root does not exist or is not a folder')
  layout = ('track folders <name>/{mixture,vocals,bass,drums,other}.wav (MUSDB18-HQ layout)' if is_wav
            else '<name>.stem.mp4 files (MUSDB18)')

  # Own listing first, so a bad file is named before musdb/ffprobe touch it.
  problems, lengths, found = [], {}, 0
  for subset in ('train', 'test'):
    folder = os.path.join(root, subset)
    if not os.path.isdir(folder):
      continue
    for entry in sorted(os.listdir(folder)):
      path = os.path.join(folder, entry)
      if is_wav and os.path.isdir(path):
        found += 1
        track_problems, n = _check_wav_track(path)
      elif not is_wav and entry.endswith('.stem.mp4'):
        found += 1
        track_problems, n = _check_stem_mp4(path)
      else:
        continue
      problems += track_problems
      lengths[path] = n
  if not found:
    hint = ''
    if not is_wav and any(os.path.isdir(os.path.join(root, s)) and any(
        os.path.isdir(os.path.join(root, s, e)) for e in os.listdir(os.path.join(root, s))) for s in ('train', 'test')):
      hint = '; found track folders: pass --is_wav for the MUSDB18-HQ layout'
    raise DataError(f'{root}: no tracks found under train/ or test/ (expected {layout}){hint}')
  _raise_problems(problems)

  splits = musdb_splits.split_tracks(root, is_wav)

  result = {}
  for split, tracks in splits.items():
    if not tracks:
      logging.warning('%s: no %s tracks; the split is left out', root, split)
      continue
    result[split] = []
    for t in sorted(tracks, key=lambda t: t.name):
      path = os.path.dirname(t.path) if is_wav else t.path
      result[split].append(Track(name=t.name, path=path, num_samples=lengths[path], musdb_track=t))
  if not result:
    raise DataError(f'{root}: no tracks found (expected {layout})')
  return result


def _read_source(source, is_wav: bool) -> np.ndarray:
  """One stem of a musdb track as int16 [T, C]: the wav's samples (soundfile), or the AAC stream (musdb/stempeg)."""
  if is_wav:
    import soundfile as sf  # pylint: disable=g-import-not-at-top

    # musdb would pipe the wav through two ffmpeg/ffprobe processes per stem and return float64; libsndfile reads
    # the same samples exactly, as int16, ~100x faster (musdb still lists the tracks and gives the paths).
    return sf.read(source.path, dtype='int16', always_2d=True)[0]
  audio = np.asarray(source.audio)  # float64 in [-1, 1): ffmpeg's s16le / 32768, so the round trip below is exact
  return np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)


def load_stems(track: Track, is_wav: bool) -> dict[str, np.ndarray]:
  """Reads a musdb track's four stems as int16 [T, 2] each (T = the length checked up-front)."""
  stems = {}
  for name in SOURCES:
    source = track.musdb_track.sources.get(name)
    if source is None:
      raise DataError(f'{track.path}: missing stem {name}')
    where = source.path if is_wav else f'{track.path} (stem {name})'
    try:
      audio = _read_source(source, is_wav)
    except Exception as e:  # pylint: disable=broad-except  (stempeg raises Warning / ValueError / ffmpeg.Error)
      raise DataError(f'{where}: cannot decode ({musdb_splits.first_line(e)})') from e
    if audio.ndim != 2 or audio.shape[1] != CHANNELS:
      raise DataError(f'{where}: decoded shape {audio.shape}, expected [samples, {CHANNELS}]')
    # ffmpeg returns fewer samples than the header promises for a truncated file (it does not fail), and an AAC
    # stream a little more (encoder padding): trim the padding, reject the truncation.
    tolerance = 0 if is_wav else _STEM_MP4_LENGTH_TOLERANCE
    if audio.shape[0] < track.num_samples - tolerance:
      raise DataError(f'{where}: decoded {audio.shape[0]} samples, the header says {track.num_samples} '
                      '(truncated or corrupt file)')
    stems[name] = audio
  length = min(min(a.shape[0] for a in stems.values()), track.num_samples)
  return {k: a[:length] for k, a in stems.items()}


def chunk_offsets(num_samples: int, chunk: int | None) -> list[int]:
  """First samples of the chunks of a track: every `chunk` samples, the last one aligned to the track's end.

  Args:
    num_samples: the track's length.
    chunk: samples per chunk; None = one chunk of the whole track.

  Returns:
    Offsets, ascending; [0] for a track of at most one chunk (that chunk is then shorter).
  """
  if chunk is None or num_samples <= chunk:
    return [0]
  offsets = list(range(0, num_samples - chunk + 1, chunk))
  if offsets[-1] + chunk < num_samples:
    offsets.append(num_samples - chunk)
  return offsets


# --- TFDS builders ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(eq=False)
class BuilderConfig(tfds.core.BuilderConfig):
  """A config of the builders: chunk length in seconds (None = whole tracks)."""
  chunk_seconds: float | None = None


class Musdb18(tfds.core.GeneratorBasedBuilder):
  """MUSDB18 / MUSDB18-HQ as chunks (training) or whole tracks (evaluation); see the module docstring.

  The source root goes in through the constructor (`root=`, `is_wav=`) or, the tfds way, through
  `download_config=tfds.download.DownloadConfig(manual_dir=ROOT)` (then `is_wav` is detected from the layout).
  """

  name = 'musdb18'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Stems int16 stereo, chunks/tracks configs, train/validation/test.'}
  BUILDER_CONFIGS = [
      BuilderConfig(name='chunks', chunk_seconds=DEFAULT_CHUNK_SECONDS,
                    description='One example per fixed-length chunk of a track (training).'),
      BuilderConfig(name='tracks', chunk_seconds=None, version=tfds.core.Version('1.1.0'),
                    release_notes={'1.1.0': f'A track as consecutive pieces of <= {TRACK_PIECE_SECONDS:g} s, in '
                                            'order (was: one example per track, which protobuf caps at 2 GB).'},
                    description='Whole tracks for evaluation, as consecutive pieces in order.'),
  ]
  DEFAULT_CONFIG_NAME = 'chunks'
  # tfds 4.9.10 derives code_path through `importlib_resources`, which it only declares for Python < 3.9
  # (tensorflow/datasets#11212): on 3.11 building fails with ModuleNotFoundError. A plain path sidesteps it.
  code_path = epath.Path(__file__)
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Download MUSDB18 (https://zenodo.org/records/1117372) or MUSDB18-HQ (https://zenodo.org/records/3338373) and
  pass its root (with train/ and test/) as --musdb_root (python -m data_prep.build) or as manual_dir.
  """

  def __init__(self, *, root: str | None = None, is_wav: bool | None = None, chunk_seconds: float | None = None,
               tracks: dict[str, list[Track]] | None = None, **kwargs):
    """Constructor.

    Args:
      root: the dataset root (train/, test/, optional validation_tracks.txt); default: tfds's manual_dir.
      is_wav: MUSDB18-HQ layout (wav folders) instead of .stem.mp4; default: detected from the files.
      chunk_seconds: overrides the config's chunk length (chunks config only); recorded in the metadata.
      tracks: list_tracks(root, is_wav), if the caller already has it (skips listing and checking again).
      **kwargs: DatasetBuilder's (data_dir=, config=, version=, file_format=).
    """
    self._root = root
    self._is_wav = is_wav
    self._chunk_seconds_override = chunk_seconds
    self._tracks = tracks
    super().__init__(**kwargs)

  @property
  def chunk_seconds(self) -> float | None:
    """Seconds per chunk of this build (None = whole tracks)."""
    if self.builder_config.chunk_seconds is None:
      return None
    return self._chunk_seconds_override or self.builder_config.chunk_seconds

  def _info(self) -> tfds.core.DatasetInfo:
    # Raw bytes: int16 would otherwise be widened to an int64 list (4x the disk); the length is inferred on read.
    features = {name: tfds.features.Tensor(shape=(None, CHANNELS), dtype=np.int16,
                                           encoding=tfds.features.Encoding.BYTES) for name in SOURCES}
    features.update(track=tfds.features.Text(), offset=tfds.features.Scalar(dtype=np.int64),
                    sample_rate=tfds.features.Scalar(dtype=np.int32))
    return self.dataset_info_from_configs(
        description=('The four stems (vocals, bass, drums, other) of each track as int16 stereo at 44.1 kHz, with '
                     'the track name, offset and rate; the mixture is their sum and is not stored.'),
        features=tfds.features.FeaturesDict(features),
        homepage='https://sigsep.github.io/datasets/musdb.html',
        # Read by srcvq_jax.input_pipeline: rate/sources without opening an example, and the track names per split
        # (the remix needs the number of distinct tracks).
        metadata=tfds.core.MetadataDict(sample_rate=SAMPLE_RATE, channels=CHANNELS, sources=list(SOURCES)),
        # The pieces of a whole track stay in order (and together) for tfds_data.load_tracks to stitch.
        disable_shuffling=self.builder_config.name == 'tracks',
    )

  def _split_generators(self, dl_manager):
    root = self._root
    if root is None:
      try:
        root = os.fspath(dl_manager.manual_dir)
      except Exception as e:  # pylint: disable=broad-except  (tfds raises AssertionError when unset/missing)
        raise DataError(f'no dataset root: pass root= or manual_dir ({musdb_splits.first_line(e)})') from e
    is_wav = self._is_wav
    if is_wav is None:
      is_wav = not any(f.endswith('.stem.mp4') for s in ('train', 'test') if os.path.isdir(os.path.join(root, s))
                       for f in os.listdir(os.path.join(root, s)))
    splits = self._tracks if self._tracks is not None else list_tracks(root, is_wav)
    chunk = None if self.chunk_seconds is None else int(round(self.chunk_seconds * SAMPLE_RATE))
    if chunk is not None and chunk <= 0:
      raise DataError(f'chunk_seconds={self.chunk_seconds}: must be positive')
    metadata = self.info.metadata
    metadata['chunk_seconds'] = self.chunk_seconds
    metadata['root_layout'] = 'wav' if is_wav else 'stem.mp4'
    metadata['tracks'] = {split: [t.name for t in tracks] for split, tracks in splits.items()}
    total = sum(len(t) for t in splits.values())
    logging.info('%s: %d tracks checked (%s), chunk %s samples', root, total,
                 ', '.join(f'{k} {len(v)}' for k, v in splits.items()), chunk)
    return {split: self._generate_examples(tracks, is_wav, chunk, split) for split, tracks in splits.items()}

  def _generate_examples(self, tracks: Sequence[Track], is_wav: bool, chunk: int | None,
                         split: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yields (key, example) per chunk of each track; logs silent stems and short tracks with counts."""
    silent, short = [], []
    for track in tracks:
      stems = load_stems(track, is_wav)
      length = next(iter(stems.values())).shape[0]
      for name, audio in stems.items():
        if not np.any(audio):
          # Kept: a silent source is still a correct target (zero), and MUSDB18 has real tracks without vocals.
          logging.warning('%s: stem %s is silent (kept)', track.path, name)
          silent.append(f'{track.name}/{name}')
      if chunk is not None and length < chunk:
        short.append(track.name)
      if chunk is None:  # whole tracks, as consecutive pieces
        piece = int(round(TRACK_PIECE_SECONDS * SAMPLE_RATE))
        pieces = [(offset, min(offset + piece, length)) for offset in range(0, max(length, 1), piece)]
      else:
        pieces = [(offset, min(offset + chunk, length)) for offset in chunk_offsets(length, chunk)]
      for offset, end in pieces:
        example = {name: audio[offset:end] for name, audio in stems.items()}
        example.update(track=track.name, offset=offset, sample_rate=SAMPLE_RATE)
        yield f'{track.name}:{offset}', example
    if silent:
      logging.warning('%s: %d silent stem(s) kept: %s', split, len(silent), ', '.join(silent[:10]))
    if short:
      logging.warning('%s: %d track(s) shorter than one chunk (%.1f s), kept as one shorter example: %s', split,
                      len(short), chunk / SAMPLE_RATE, ', '.join(short[:10]))


class ChoraleMix(Musdb18):
  """ChoraleMix (rendered by data_prep.chorale_mix in the MUSDB18-HQ layout): the same builder, its own name."""

  name = 'chorale_mix'
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Render it with data_prep.chorale_mix and pass the output folder as --musdb_root (with --is_wav).
  """


BUILDERS = {cls.name: cls for cls in (Musdb18, ChoraleMix)}
