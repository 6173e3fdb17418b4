"""Listen and look: short test excerpts per source (estimate and reference) as small Ogg Vorbis files, and a
spectrogram PNG of one excerpt.

  python scripts/samples.py --workdir=runs/sweep/best/seed0 --data_dir=data/full/tfds --out=docs/samples

Takes the first --tracks tracks of --split, the --seconds seconds starting at --offset of each; writes
OUT/<track>/<source>_{estimate,reference}.ogg, OUT/<track>/mixture.ogg, OUT/spectrogram.png (reference vs
estimate per source, first track) and OUT/README.md listing the files with the excerpt's SDR per source.
"""
from __future__ import annotations

import argparse
import os
import re

import numpy as np
import soundfile as sf


def _slug(name: str) -> str:
  return re.sub(r'[^A-Za-z0-9._-]+', '_', name).strip('_')


def spectrogram_png(path: str, references: np.ndarray, estimates: np.ndarray, sources, rate: int, title: str):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  from scipy import signal  # pylint: disable=g-import-not-at-top

  fig, axes = plt.subplots(len(sources), 2, figsize=(8, 1.6 * len(sources)), sharex=True, sharey=True)
  for i, name in enumerate(sources):
    for j, (label, audio) in enumerate((('reference', references[i]), ('estimate', estimates[i]))):
      f, t, z = signal.stft(audio.mean(-1), fs=rate, nperseg=1024, noverlap=768)
      axes[i, j].pcolormesh(t, f, 20 * np.log10(np.abs(z) + 1e-6), vmin=-100, vmax=-20, shading='auto', rasterized=True)
      axes[i, j].set_title(f'{name} {label}', fontsize=8)
      axes[i, j].set_ylim(0, min(8000, rate / 2))
  for ax in axes[-1]:
    ax.set_xlabel('s')
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=72)
  plt.close(fig)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--data_dir', required=True)
  parser.add_argument('--split', default='test')
  parser.add_argument('--tracks', type=int, default=2)
  parser.add_argument('--offset', type=float, default=10.0)
  parser.add_argument('--seconds', type=float, default=5.0)
  parser.add_argument('--out', default=os.path.join('docs', 'samples'))
  args = parser.parse_args(argv)

  from srcvq_jax import evaluate  # pylint: disable=g-import-not-at-top
  from srcvq_jax import inference  # pylint: disable=g-import-not-at-top
  from srcvq_jax import sdr  # pylint: disable=g-import-not-at-top

  separator = inference.load(args.workdir)
  config = separator.config
  config.data.data_dir = args.data_dir
  rate = separator.sample_rate
  _, tracks = evaluate.tfds_tracks(config, args.split, max_tracks=args.tracks)
  os.makedirs(args.out, exist_ok=True)
  lines = [f'# Listening samples: `{args.workdir}` (step {separator.step}), {args.split} split', '',
           f'{args.seconds:g} s from {args.offset:g} s of the first {args.tracks} tracks, at the model\'s {rate} Hz; '
           'Ogg Vorbis. "estimate" = the source\'s slot decoded alone from the mixture\'s argmax codes.', '']
  for index, (name, stems, mixture, _) in enumerate(tracks):
    start, stop = int(args.offset * rate), int((args.offset + args.seconds) * rate)
    # Separate the whole track (the excerpt's edges then see their real context), then cut.
    estimates = separator.separate(mixture)[:, start:stop]
    stems, mixture = stems[:, start:stop], mixture[start:stop]
    folder = os.path.join(args.out, _slug(name))
    os.makedirs(folder, exist_ok=True)
    scores = sdr.median_over_windows(sdr.sdr_per_window(stems, estimates, rate))
    sf.write(os.path.join(folder, 'mixture.ogg'), mixture, rate, format='OGG', subtype='VORBIS')
    cells = []
    for i, source in enumerate(separator.sources):
      for label, audio in (('estimate', estimates[i]), ('reference', stems[i])):
        sf.write(os.path.join(folder, f'{source}_{label}.ogg'), np.clip(audio, -1, 1), rate, format='OGG',
                 subtype='VORBIS')
      cells.append(f'{source}: [estimate]({_slug(name)}/{source}_estimate.ogg) / '
                   f'[reference]({_slug(name)}/{source}_reference.ogg) ({scores[i]:.2f} dB)')
    lines.append(f'- **{name}** ([mixture]({_slug(name)}/mixture.ogg)): ' + '; '.join(cells))
    if index == 0:
      spectrogram_png(os.path.join(args.out, 'spectrogram.png'), stems, estimates, separator.sources, rate,
                      f'{name}, {args.seconds:g} s: reference (left) vs estimate (right)')
  lines += ['', '![spectrogram](spectrogram.png)', '']
  with open(os.path.join(args.out, 'README.md'), 'w', encoding='utf-8') as f:
    f.write('\n'.join(lines))
  print(f'wrote {args.out}')


if __name__ == '__main__':
  main()
