"""Peak memory and time of `python -m srcvq_jax.separate` on long files (streamed in blocks, srcvq_jax/separate.py).

Writes a stereo 44.1 kHz 16-bit wav of each length in --minutes (tones and noise; the weights decide the output,
not the memory), runs the separate command on it in a child process, and prints one JSON line per length: the
child's peak resident memory (ru_maxrss), its wall time and the real-time factor. The goal (issue 17): the peak
for 60 minutes within 20% of that for 10 minutes.

Usage:
  python -m benchmarks.separate_memory --workdir=runs/best [--minutes 10,60] [--block_seconds 60]
"""

import argparse
import os
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


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--workdir', required=True, help='training workdir or export dir')
  parser.add_argument('--minutes', default='10,60')
  parser.add_argument('--block_seconds', type=float, default=None)
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as folder:
    for minutes in [float(m) for m in args.minutes.split(',')]:
      path = os.path.join(folder, f'long_{minutes:g}min.wav')
      write_long_wav(path, minutes)
      command = [sys.executable, '-m', 'srcvq_jax.separate', path, f'--workdir={args.workdir}',
                 f'--out={os.path.join(folder, "out")}']
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
          sys.exit(f'separate failed on {minutes:g} min: {stderr.read().decode()[-500:]}')
      peak = usage.ru_maxrss  # KiB on Linux
      common.emit('separate_memory', config=args.workdir, units='MiB', minutes=minutes,
                  peak_rss_mib=peak / 1024, wall_s=seconds, realtime_factor=minutes * 60 / seconds,
                  block_seconds=args.block_seconds, **common.environment())
      os.remove(path)


if __name__ == '__main__':
  cli.relaunch_with_tcmalloc()  # the child inherits it (the separate command would relaunch itself anyway)
  main()
