"""Peak memory and time of `python -m srcvq_jax.separate` / `evaluate` on long inputs (both stream in blocks).

--command=separate (default): writes a stereo 44.1 kHz 16-bit wav of each length in --minutes (tones and noise; the
weights decide the output, not the memory) and separates it. --command=evaluate: writes a one-track MUSDB18-HQ
layout (test/<track>/{vocals,bass,drums,other,mixture}.wav of that length, the mixture the stems' sum) and
evaluates it with --musdb_root (every row, source awareness and latents included). Each runs in a child process;
one JSON line per length: the child's peak resident memory (ru_maxrss), its wall time and the real-time factor.
The goal (issue 17): the peak for 60 minutes within 20% of that for 10 minutes.

Usage:
  python -m benchmarks.separate_memory --workdir=runs/best [--minutes 10,60] [--block_seconds 60]
                                       [--command separate|evaluate]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks import common
from srcvq_jax import cli

RATE = 44100


def write_long_wav(path: str, minutes: float) -> None:
  """Writes a stereo 16-bit wav block by block (the benchmark itself must not hold the whole file)."""
  import soundfile  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  block = 60 * RATE
  total = int(minutes * 60 * RATE)
  with soundfile.SoundFile(path, 'w', RATE, 2, 'PCM_16') as f:
    for start in range(0, total, block):
      t = (start + np.arange(min(block, total - start))) / RATE
      tone = 0.2 * np.sin(2 * np.pi * 110 * t) + 0.1 * np.sin(2 * np.pi * 440 * t)
      f.write((tone[:, None] + 0.02 * rng.normal(size=(len(t), 2))).astype(np.float32))


def write_long_track(root: str, minutes: float) -> None:
  """A MUSDB18-HQ-layout root with one test track of `minutes`: four stems and their sum, written block by block."""
  import soundfile  # pylint: disable=g-import-not-at-top
  folder = os.path.join(root, 'test', 'Long - Track')
  os.makedirs(folder)
  rng = np.random.default_rng(0)
  block = 60 * RATE
  total = int(minutes * 60 * RATE)
  names = ('vocals', 'bass', 'drums', 'other', 'mixture')
  files = {n: soundfile.SoundFile(os.path.join(folder, f'{n}.wav'), 'w', RATE, 2, 'PCM_16') for n in names}
  try:
    for start in range(0, total, block):
      t = (start + np.arange(min(block, total - start))) / RATE
      stems = [0.1 * np.sin(2 * np.pi * f * t)[:, None] + 0.01 * rng.normal(size=(len(t), 2))
               for f in (440.0, 55.0, 0.0, 220.0)]
      stems[2] = 0.05 * rng.normal(size=(len(t), 2)) * (np.sin(2 * np.pi * 2 * t)[:, None] > 0.9)
      for name, stem in zip(names, stems + [sum(stems)]):
        files[name].write(stem.astype(np.float32))
  finally:
    for f in files.values():
      f.close()


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--workdir', required=True, help='training workdir or export dir')
  parser.add_argument('--minutes', default='10,60')
  parser.add_argument('--block_seconds', type=float, default=None)
  parser.add_argument('--command', choices=('separate', 'evaluate'), default='separate')
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as folder:
    for minutes in [float(m) for m in args.minutes.split(',')]:
      if args.command == 'separate':
        path = os.path.join(folder, f'long_{minutes:g}min.wav')
        write_long_wav(path, minutes)
        command = [sys.executable, '-m', 'srcvq_jax.separate', path, f'--workdir={args.workdir}',
                   f'--out={os.path.join(folder, "out")}']
      else:
        path = os.path.join(folder, f'root_{minutes:g}min')
        write_long_track(path, minutes)
        command = [sys.executable, '-m', 'srcvq_jax.evaluate', f'--workdir={args.workdir}', f'--musdb_root={path}',
                   '--split=test', f'--out={os.path.join(folder, "eval")}']
      if args.block_seconds:
        command.append(f'--block_seconds={args.block_seconds}')
      started = time.perf_counter()
      with tempfile.TemporaryFile() as stderr:
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage (RUSAGE_CHILDREN would be the max)
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        if child.returncode:
          stderr.seek(0)
          sys.exit(f'{args.command} failed on {minutes:g} min: {stderr.read().decode()[-500:]}')
      peak = usage.ru_maxrss  # KiB on Linux
      common.emit('separate_memory', impl=args.command, config=args.workdir, units='MiB', minutes=minutes,
                  peak_rss_mib=peak / 1024, wall_s=seconds, realtime_factor=minutes * 60 / seconds,
                  block_seconds=args.block_seconds, **common.environment())
      if os.path.isdir(path):
        shutil.rmtree(path)
      else:
        os.remove(path)


if __name__ == '__main__':
  cli.relaunch_with_tcmalloc()  # the child inherits it (the separate command would relaunch itself anyway)
  main()
