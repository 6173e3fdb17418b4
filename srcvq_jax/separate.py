"""Separates audio files into the model's sources.

  python -m srcvq_jax.separate song.wav [more.flac ...] --workdir=/ckpt/run1 [--out=stems/]

--workdir is a training workdir (latest checkpoint) or an export dir. Every input of any length, sample rate and
format that soundfile reads (wav, flac, ogg, mp3 with libsndfile >= 1.1, ...; others through librosa/audioread) is
converted to the model's channels (mono duplicated, or stereo averaged for a mono model) and rate
(scipy.signal.resample_poly), separated with the chunked inference of srcvq_jax.inference (a progress bar over
windows on a terminal), and written back at the input's sample rate, length and channel count:

  OUT/<file name without extension>/<source>.wav        (16-bit PCM by default, clipped to [-1, 1])

Files that soundfile reads are streamed: read, separated and written in blocks of --block_seconds, each with
enough context on both sides (the model's receptive margin plus the resampling filters' reach, at frame-aligned
positions) that the output equals separating the whole file at once (to float rounding), so memory does not
grow with the file's length. The wavs are written under temporary names and renamed when complete.

A bad input (missing, unreadable, empty, more than two channels) prints `error: <file>: <problem>` and the other
files are still separated; the exit status is 1 when any input failed.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings

import numpy as np
from absl import app
from absl import flags

from srcvq_jax import audio as audio_lib
from srcvq_jax import cli
from srcvq_jax import errors
from srcvq_jax import postfilter

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The command line's flags; defined on demand, not at import (other modules define --workdir too)."""
  flags.DEFINE_string('workdir', None, 'Training workdir (latest checkpoint) or export dir.')
  flags.DEFINE_string('out', 'separated', 'Output folder: OUT/<file name>/<source>.wav.')
  flags.DEFINE_enum('subtype', 'PCM_16', ['PCM_16', 'PCM_24', 'FLOAT'], 'Sample format of the wavs.')
  flags.DEFINE_integer('batch_size', None, 'Inference windows per model call.')
  flags.DEFINE_float('block_seconds', BLOCK_SECONDS, 'Seconds of audio read, separated and written at a time.')
  flags.DEFINE_string('masked_sources', '', 'Sources whose slot decode is used as a soft mask of the input '
                      "mixture (comma-separated names or 'all'; '' = the codes' decodes alone). A separation "
                      'post-filter: see srcvq_jax/postfilter.py; measured best for configs/best.py: '
                      "'vocals,drums,other' (docs/results.md).")


MAX_CHANNELS = 2
# Seconds per streamed block: long enough that the context around each block costs little, short enough that
# memory stays small (a block's arrays at 44.1 kHz stereo: ~20 MB per copy).
BLOCK_SECONDS = 60.0


class AudioError(Exception):
  """An input that cannot be separated; the message says why (without the file name)."""


def read_audio(path: str) -> tuple[np.ndarray, int]:
  """Reads an audio file as float32 [T, C] and its sample rate.

  soundfile first; librosa (which falls back to audioread/ffmpeg) for formats libsndfile cannot read.

  Raises:
    AudioError: missing file, unreadable, no samples, or more than two channels.
  """
  if not os.path.exists(path):
    raise AudioError('no such file')
  if os.path.isdir(path):
    raise AudioError('is a directory, not an audio file')
  import soundfile  # pylint: disable=g-import-not-at-top

  try:
    audio, rate = soundfile.read(path, dtype='float32', always_2d=True)
  except Exception as first:  # pylint: disable=broad-except  (libsndfile raises several types)
    try:
      import librosa  # pylint: disable=g-import-not-at-top
      with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # librosa warns when it falls back to audioread
        audio, rate = librosa.load(path, sr=None, mono=False, dtype=np.float32)
    except Exception:  # pylint: disable=broad-except
      reason = str(first).splitlines()[0] if str(first) else type(first).__name__
      raise AudioError(f'cannot read audio ({reason})') from None
    audio = audio[:, None] if audio.ndim == 1 else audio.T  # librosa: [C, T] or [T]
  if audio.ndim != 2 or audio.shape[0] == 0:
    raise AudioError('no audio samples (empty file)')
  if audio.shape[1] > MAX_CHANNELS:
    raise AudioError(f'{audio.shape[1]} channels; only mono and stereo are supported')
  if not np.all(np.isfinite(audio)):
    raise AudioError('contains NaN or infinite samples')
  return np.ascontiguousarray(audio, np.float32), int(rate)


def separate_audio(separator, audio: np.ndarray, rate: int, *, progress: bool = False, first: int = 0) -> np.ndarray:
  """Separates [T, C] audio at `rate`; returns the sources float32 [S, T, C] at the same rate, length, channels.

  first: the audio's first sample in the whole file (a streamed block's; a multiple of block_geometry's unit).
  """

  x = audio_lib.match_channels(audio, separator.channels)
  x = audio_lib.resample(x, rate, separator.sample_rate, axis=0)
  stems = separator.separate(x, progress=progress, offset=first * separator.sample_rate // int(rate))
  stems = audio_lib.resample(stems, separator.sample_rate, rate, axis=1)
  length = audio.shape[0]
  # Resampling there and back may be a sample off; the output has exactly the input's length.
  stems = stems[:, :length] if stems.shape[1] >= length else np.pad(
      stems, ((0, 0), (0, length - stems.shape[1]), (0, 0)))
  return audio_lib.match_channels(stems, audio.shape[1])


def block_geometry(separator, rate: int) -> tuple[int, int]:
  """(unit, context) in samples at `rate` for streamed separation.

  unit: block starts are multiples of it, so that each block starts on a latent frame at the model's rate (the
    strided encoder is not shift-invariant) and on an exact sample of both resamplings.
  context: samples read on each side of a block and dropped after separation (a multiple of unit): the model's
    receptive margin, plus the reach of the anti-alias filter of resample_poly each way (10 * max(up, down) taps
    each side at the upsampled rate, scipy's default), so that every kept sample equals the whole file's.
  With the mixture post-filter on (separator.masked_sources), the context adds its frames' reach
  (srcvq_jax/postfilter.py).
  """
  import math  # pylint: disable=g-import-not-at-top
  g = math.gcd(int(rate), separator.sample_rate)
  up, down = separator.sample_rate // g, int(rate) // g
  unit = down * separator.stride
  margin = separator.margin
  if any(separator.masked_sources):  # the reach of the mixture post-filter's frames
    margin += postfilter.CONTEXT_SAMPLES
  if up == down:
    reach = 0
  else:
    reach = -(-10 * max(up, down) // up) + 1  # input samples, each of the two resamplings
  needed = -(-margin * down // up) + 2 * reach
  return unit, -(-needed // unit) * unit


def _fit_subtype(stem: np.ndarray, subtype: str) -> np.ndarray:
  """Integer formats would wrap around outside [-1, 1]: clipped for them, float kept as it is."""
  return stem if subtype == 'FLOAT' else np.clip(stem, -1.0, 1.0)


def _open_stream(path: str):
  """soundfile.SoundFile of `path`, or None when libsndfile cannot read it (librosa's whole-file read then)."""
  import soundfile  # pylint: disable=g-import-not-at-top
  try:
    return soundfile.SoundFile(path)
  except Exception:  # pylint: disable=broad-except  (libsndfile raises several types)
    return None


def separate_stream(separator, stream, folder: str, *, subtype: str, block_seconds: float = BLOCK_SECONDS,
                    progress: bool = False) -> float:
  """Separates an open soundfile.SoundFile block by block into FOLDER/<source>.wav; returns its seconds.

  Raises:
    AudioError: no samples, more than two channels, or a NaN/infinite sample (no output is left behind).
  """
  import soundfile  # pylint: disable=g-import-not-at-top

  rate, channels, total = int(stream.samplerate), int(stream.channels), int(stream.frames)
  if total <= 0:
    raise AudioError('no audio samples (empty file)')
  if channels > MAX_CHANNELS:
    raise AudioError(f'{channels} channels; only mono and stereo are supported')
  unit, context = block_geometry(separator, rate)
  block = max(unit, int(round(block_seconds * rate / unit)) * unit)
  os.makedirs(folder, exist_ok=True)
  finals = [os.path.join(folder, f'{source}.wav') for source in separator.sources]
  partials = [f'{final}.partial' for final in finals]
  outputs = [soundfile.SoundFile(p, 'w', rate, channels, subtype, format='WAV') for p in partials]
  try:
    for start in range(0, total, block):
      end = min(start + block, total)
      first, last = max(0, start - context), min(total, end + context)
      stream.seek(first)
      audio = stream.read(last - first, dtype='float32', always_2d=True)
      if audio.shape[0] != last - first:
        raise AudioError(f'could read only {first + audio.shape[0]} of {total} samples')
      if not np.all(np.isfinite(audio)):
        raise AudioError(f'contains NaN or infinite samples (in {first / rate:.1f}..{last / rate:.1f} s)')
      stems = separate_audio(separator, audio, rate, progress=progress, first=first)[:, start - first:end - first]
      for output, stem in zip(outputs, stems):
        output.write(_fit_subtype(stem, subtype))
  except BaseException:
    for output, partial in zip(outputs, partials):
      output.close()
      os.remove(partial)
    raise
  for output, partial, final in zip(outputs, partials, finals):
    output.close()
    os.replace(partial, final)
  return total / rate


def separate_files(separator, paths, out_dir: str, *, subtype: str = 'PCM_16',
                   progress: bool | None = None, block_seconds: float = BLOCK_SECONDS) -> list[tuple[str, str]]:
  """Separates every file into OUT/<name>/<source>.wav; bad files are reported, not fatal.

  Args:
    separator: an inference.Separator.
    paths: input files.
    out_dir: output folder (created).
    subtype: soundfile subtype of the outputs.
    progress: tqdm bar over windows (None: only on a terminal).
    block_seconds: streamed block length (files soundfile reads; others are read whole).

  Returns:
    [(path, problem)] of the files that failed (empty when all were separated).
  """
  import soundfile  # pylint: disable=g-import-not-at-top

  failures, used = [], set()
  for path in paths:
    if not os.path.exists(path) or os.path.isdir(path):
      stream = None
    else:
      stream = _open_stream(path)
    name = os.path.splitext(os.path.basename(os.path.normpath(path)))[0] or 'audio'
    base, n = name, 1
    while name in used:  # two inputs with the same file name get distinct folders
      n += 1
      name = f'{base}_{n}'
    folder = os.path.join(out_dir, name)
    started = time.perf_counter()
    show = sys.stderr.isatty() if progress is None else progress
    try:
      if stream is not None:
        with stream:
          seconds = separate_stream(separator, stream, folder, subtype=subtype, block_seconds=block_seconds,
                                    progress=show)
      else:
        audio, rate = read_audio(path)
        stems = separate_audio(separator, audio, rate, progress=show)
        os.makedirs(folder, exist_ok=True)
        for source, stem in zip(separator.sources, stems):
          soundfile.write(os.path.join(folder, f'{source}.wav'), _fit_subtype(stem, subtype), rate, subtype=subtype)
        seconds = audio.shape[0] / rate
    except AudioError as e:
      failures.append((path, str(e)))
      print(f'error: {path}: {e}', file=sys.stderr, flush=True)
      with contextlib.suppress(OSError):
        os.rmdir(folder)  # only when empty: nothing of this input was written
      continue
    used.add(name)
    print(f'{path} -> {folder}/ ({seconds:.1f} s of audio in {time.perf_counter() - started:.1f} s)', flush=True)
  return failures


def main(argv):
  paths = argv[1:]
  if not paths:
    cli.fail('no input files: python -m srcvq_jax.separate song.wav [...] --workdir=DIR [--out=DIR]')
  if not FLAGS.workdir:
    cli.fail('--workdir is required')
  if os.path.exists(FLAGS.out) and not os.path.isdir(FLAGS.out):
    cli.fail(f'--out={FLAGS.out} is a file: pass a folder (created if missing)')
  from srcvq_jax import inference  # pylint: disable=g-import-not-at-top

  try:
    separator = inference.load(FLAGS.workdir, batch_size=FLAGS.batch_size)
  except errors.UserError as e:
    cli.fail(str(e))
  if FLAGS.block_seconds <= 0:
    cli.fail(f'--block_seconds={FLAGS.block_seconds} must be positive')
  try:
    separator.masked_sources = postfilter.parse_sources(FLAGS.masked_sources, separator.sources)
  except ValueError as e:
    cli.fail(f'--masked_sources: {e}')
  failures = separate_files(separator, paths, FLAGS.out, subtype=FLAGS.subtype, block_seconds=FLAGS.block_seconds)
  if failures:  # each failure already printed its one line
    sys.exit(1)


if __name__ == '__main__':
  cli.relaunch_with_tcmalloc()
  define_flags()
  app.run(main, flags_parser=cli.parse_flags)
