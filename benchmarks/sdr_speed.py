"""Speed and agreement of srcvq_jax.sdr against museval on one 4-source track.

Renders a 60 s, 4-source stereo 44.1 kHz track with FluidSynth (or reads the
first track with vocals/bass/drums/other .wav stems under --musdb_root),
degrades it into estimates (leakage + low-passed noise) and times the MUSDB18
SDR (v4, 1 s windows, 1 s hop) of both implementations. Prints one JSON line
per measurement and a final summary line with the speedup and the largest
per-window difference in dB.

Usage:
  python -m benchmarks.sdr_speed [--seconds 60] [--musdb_root DIR]
"""

import argparse
import json
import os
import pathlib
import time

import numpy as np
from scipy import signal

from srcvq_jax import cli
from srcvq_jax import sdr

SR = 44100
# Debian/Ubuntu fluid-soundfont-gm location; override with --soundfont.
DEFAULT_SOUNDFONT = os.environ.get('SRCVQ_SOUNDFONT',
                                   '/usr/share/sounds/sf2/FluidR3_GM.sf2')


def render_stem(soundfont, program, notes, duration_s, bank=0, channel=0):
  """Renders notes with FluidSynth.

  Args:
    soundfont: path to a General MIDI .sf2.
    program: GM program number.
    notes: list of (on_s, off_s, key, velocity).
    duration_s: output duration in seconds.
    bank: soundfont bank (128 = percussion).
    channel: MIDI channel (9 = percussion).

  Returns:
    [n_samples, 2] float64 stereo audio.
  """
  import fluidsynth  # pylint: disable=g-import-not-at-top  (optional dep)
  synth = fluidsynth.Synth(samplerate=float(SR))
  try:
    sfid = synth.sfload(soundfont)
    synth.program_select(channel, sfid, bank, program)
    events = sorted([(on, 1, k, v) for on, _, k, v in notes] +
                    [(off, 0, k, 0) for _, off, k, _ in notes])
    chunks, pos = [], 0
    for when, is_on, key, vel in events:
      n = int(when * SR) - pos
      if n > 0:
        chunks.append(synth.get_samples(n))
        pos += n
      if is_on:
        synth.noteon(channel, key, vel)
      else:
        synth.noteoff(channel, key)
    chunks.append(synth.get_samples(int(duration_s * SR) - pos))
  finally:
    synth.delete()
  return np.concatenate(chunks).reshape(-1, 2).astype(np.float64) / 32768.0


def render_track(soundfont, seconds):
  """Renders [4, seconds * SR, 2] vocals/bass/drums/other-like stems."""
  bars = np.arange(0.0, seconds - 1.0, 2.0)  # one 2 s bar per chord
  roots = [0, 5, 7, 3]
  lead, bass, drums, other = [], [], [], []
  for i, t in enumerate(bars):
    r = roots[i % 4]
    lead += [(t + 0.5 * k, t + 0.5 * k + 0.4, 67 + r + (0, 2, 4, 7)[k], 100)
             for k in range(4)]
    bass += [(t, t + 0.9, 36 + r, 110), (t + 1.0, t + 1.9, 43 + r, 110)]
    drums += [(t + 0.25 * k, t + 0.25 * k + 0.1, (36, 42, 38, 42)[k % 4], 110)
              for k in range(8)]
    other += [(t, t + 1.9, 60 + r + d, 80) for d in (0, 4, 7)]
  return np.stack([
      render_stem(soundfont, 53, lead, seconds),
      render_stem(soundfont, 33, bass, seconds),
      render_stem(soundfont, 0, drums, seconds, bank=128, channel=9),
      render_stem(soundfont, 0, other, seconds),
  ])


def load_track(musdb_root, seconds):
  """Reads the first folder under musdb_root holding the four stem .wav files.

  Returns:
    ([4, n_samples, n_channels] audio, track folder name).
  """
  import soundfile  # pylint: disable=g-import-not-at-top  (optional dep)
  for vocals in sorted(pathlib.Path(musdb_root).rglob('vocals.wav')):
    folder = vocals.parent
    paths = [folder / f'{s}.wav' for s in sdr.MUSDB_SOURCES]
    if all(p.exists() for p in paths):
      stems = []
      for p in paths:
        audio, rate = soundfile.read(str(p), always_2d=True,
                                     frames=int(seconds * SR))
        if rate != SR:
          raise ValueError(f'{p}: expected {SR} Hz, got {rate}')
        stems.append(audio)
      n = min(len(a) for a in stems)
      return np.stack([a[:n] for a in stems]), folder.name
  raise FileNotFoundError(f'no folder with {sdr.MUSDB_SOURCES} .wav stems '
                          f'under {musdb_root}')


def degrade(refs, seed=0):
  """Estimates = references + leakage of the others + low-passed noise."""
  rng = np.random.default_rng(seed)
  b, a = signal.butter(4, 3000 / (SR / 2))
  est = refs.copy()
  n_src = refs.shape[0]
  for j in range(n_src):
    for k in range(n_src):
      if k != j:
        est[j] += 0.08 * (1 + (j + k) % 3) * refs[k]
    est[j] += 0.004 * (j + 1) * signal.lfilter(
        b, a, rng.standard_normal(refs[j].shape), axis=0)
  return est


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--seconds', type=float, default=60.0)
  parser.add_argument('--musdb_root', default=None,
                      help='ChoraleMix/MUSDB-style folder of .wav stems.')
  parser.add_argument('--soundfont', default=DEFAULT_SOUNDFONT)
  parser.add_argument('--repeats', type=int, default=5,
                      help='timing repeats for srcvq_jax (best is kept).')
  args = parser.parse_args()

  if args.musdb_root:
    refs, source = load_track(args.musdb_root, args.seconds)
  else:
    refs, source = render_track(args.soundfont, args.seconds), 'fluidsynth'
  est = degrade(refs)
  audio_seconds = refs.shape[1] / SR
  common = dict(name='sdr_speed', audio_seconds=round(audio_seconds, 3),
                n_sources=refs.shape[0], n_channels=refs.shape[2],
                track=source)

  times = []
  for _ in range(args.repeats):
    t0 = time.perf_counter()
    ours = sdr.sdr_per_window(refs, est)
    times.append(time.perf_counter() - t0)
  print(json.dumps(dict(common, impl='srcvq_jax', seconds=min(times),
                        repeats=args.repeats)), flush=True)

  import museval  # pylint: disable=g-import-not-at-top  (slow import)
  t0 = time.perf_counter()
  ref_sdr = museval.evaluate(refs, est, win=SR, hop=SR, mode='v4')[0]
  museval_s = time.perf_counter() - t0
  print(json.dumps(dict(common, impl='museval', seconds=museval_s)),
        flush=True)

  both = np.isfinite(ours) & np.isfinite(ref_sdr)
  print(json.dumps(dict(
      common, impl='summary', speedup=museval_s / min(times),
      max_abs_db_diff=float(np.max(np.abs(ours[both] - ref_sdr[both]))),
      nan_pattern_equal=bool(np.array_equal(np.isnan(ours),
                                            np.isnan(ref_sdr))),
      n_windows=int(ours.shape[1]),
      track_sdr=dict(zip(sdr.MUSDB_SOURCES,
                         np.round(sdr.median_over_windows(ours), 3).tolist())),
  )))


if __name__ == '__main__':
  cli.relaunch_with_tcmalloc()
  main()
