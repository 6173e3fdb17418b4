"""Separates audio files into the model's sources.

  python -m srcvq_jax.separate song.wav [more.flac ...] --workdir=/ckpt/run1 [--out=stems/]

--workdir is a training workdir (latest checkpoint) or an export dir. Every input of any length, sample rate and
format that soundfile reads (wav, flac, ogg, mp3 with libsndfile >= 1.1, ...; others through librosa/audioread) is
converted to the model's channels (mono duplicated, or stereo averaged for a mono model) and rate
(scipy.signal.resample_poly), separated whole with the chunked inference of srcvq_jax.inference (a progress bar
over windows on a terminal), and written back at the input's sample rate, length and channel count:

  OUT/<file name without extension>/<source>.wav        (16-bit PCM by default, clipped to [-1, 1])

A bad input (missing, unreadable, empty, more than two channels) prints `error: <file>: <problem>` and the other
files are still separated; the exit status is 1 when any input failed.
"""
from __future__ import annotations

import os
import sys
import time
import warnings

import numpy as np
from absl import app
from absl import flags

from srcvq_jax import cli

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The command line's flags; defined on demand, not at import (other modules define --workdir too)."""
  flags.DEFINE_string('workdir', None, 'Training workdir (latest checkpoint) or export dir.')
  flags.DEFINE_string('out', 'separated', 'Output folder: OUT/<file name>/<source>.wav.')
  flags.DEFINE_enum('subtype', 'PCM_16', ['PCM_16', 'PCM_24', 'FLOAT'], 'Sample format of the wavs.')
  flags.DEFINE_integer('batch_size', None, 'Inference windows per model call.')


MAX_CHANNELS = 2


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


def separate_audio(separator, audio: np.ndarray, rate: int, *, progress: bool = False) -> np.ndarray:
  """Separates [T, C] audio at `rate`; returns the sources float32 [S, T, C] at the same rate, length, channels."""
  from srcvq_jax import inference  # pylint: disable=g-import-not-at-top

  x = inference.match_channels(audio, separator.channels)
  x = inference.resample(x, rate, separator.sample_rate, axis=0)
  stems = separator.separate(x, progress=progress)
  stems = inference.resample(stems, separator.sample_rate, rate, axis=1)
  length = audio.shape[0]
  # Resampling there and back may be a sample off; the output has exactly the input's length.
  stems = stems[:, :length] if stems.shape[1] >= length else np.pad(
      stems, ((0, 0), (0, length - stems.shape[1]), (0, 0)))
  return inference.match_channels(stems, audio.shape[1])


def separate_files(separator, paths, out_dir: str, *, subtype: str = 'PCM_16',
                   progress: bool | None = None) -> list[tuple[str, str]]:
  """Separates every file into OUT/<name>/<source>.wav; bad files are reported, not fatal.

  Args:
    separator: an inference.Separator.
    paths: input files.
    out_dir: output folder (created).
    subtype: soundfile subtype of the outputs.
    progress: tqdm bar over windows (None: only on a terminal).

  Returns:
    [(path, problem)] of the files that failed (empty when all were separated).
  """
  import soundfile  # pylint: disable=g-import-not-at-top

  failures, used = [], set()
  for path in paths:
    try:
      audio, rate = read_audio(path)
    except AudioError as e:
      failures.append((path, str(e)))
      print(f'error: {path}: {e}', file=sys.stderr, flush=True)
      continue
    name = os.path.splitext(os.path.basename(os.path.normpath(path)))[0] or 'audio'
    base, n = name, 1
    while name in used:  # two inputs with the same file name get distinct folders
      n += 1
      name = f'{base}_{n}'
    used.add(name)
    started = time.perf_counter()
    show = sys.stderr.isatty() if progress is None else progress
    stems = separate_audio(separator, audio, rate, progress=show)
    folder = os.path.join(out_dir, name)
    os.makedirs(folder, exist_ok=True)
    for source, stem in zip(separator.sources, stems):
      if subtype != 'FLOAT':  # integer formats would wrap around outside [-1, 1]
        stem = np.clip(stem, -1.0, 1.0)
      soundfile.write(os.path.join(folder, f'{source}.wav'), stem, rate, subtype=subtype)
    seconds = audio.shape[0] / rate
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
  except cli.UserError as e:
    cli.fail(str(e))
  failures = separate_files(separator, paths, FLAGS.out, subtype=FLAGS.subtype)
  if failures:  # each failure already printed its one line
    sys.exit(1)


if __name__ == '__main__':
  cli.relaunch_with_tcmalloc()
  define_flags()
  app.run(main, flags_parser=cli.parse_flags)
