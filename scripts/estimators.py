"""SDR of separation estimators built from the mixture's codes alone, on one trained model.

`Separator.separate` estimates source i by decoding slot i alone. The codes allow others, since the model is trained
so that any subset of slots decodes to the sum of those sources (the selective and complement losses):
  * slot:        decode({i})                                   (what `separate` and `evaluate` use)
  * difference:  decode(all) - decode(all but i)               (source i as what muting it removes)
  * consistent:  decode({i}) + (decode(all) - sum_j decode({j})) / S
                 (the slots' estimates made to sum to the decoded mixture, the residual shared equally)
  * mean:        (slot + difference) / 2
Every one of these decodes codes only (no mixture at decode time), so each is open to the codes' users
(compression, editing). One more reads the mixture as well, as a separation post-filter (Open-Unmix and Demucs
offer its like), and is reported apart from the codes-only ones:
  * slot_masked: the mixture's STFT under the soft masks |slot i|^p / sum_j |slot j|^p (postfilter.POWER, the
                 slots' magnitude spectra; --mask_variants adds other windows and powers), inverted: the
                 estimate keeps the mixture's phase and only the slots' share of each bin
                 (srcvq_jax/postfilter.py: what `separate --masked_sources` and `evaluate --masked_sources` do;
                 a source's row here is its row with that source masked, whichever others are).
For each, the SDR of every source (evaluate.track_windows: BSSEval v4, median over 1 s windows, then the
median over tracks) beside the baselines, and the decodes it costs. One JSON line per estimator.

  python scripts/estimators.py --workdir=runs/best --data_dir=data/full/tfds --split=validation \
      --max_tracks=13 --max_seconds=10
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from srcvq_jax import cli  # noqa: E402
from srcvq_jax import evaluate  # noqa: E402
from srcvq_jax import inference  # noqa: E402
from srcvq_jax import postfilter  # noqa: E402
from srcvq_jax import sdr  # noqa: E402

# What each estimator decodes: the S slots alone ('singles'), all slots ('mixture'), all but one ('complements').
DECODED = {'slot': ('singles',), 'difference': ('mixture', 'complements'), 'consistent': ('singles', 'mixture'),
           'mean': ('singles', 'mixture', 'complements')}
# Estimators that also read the input mixture (not open to code-only users): name -> the codes-only estimate masked.
MIXTURE_MASKED = {'slot_masked': 'slot'}


def decodes_per_window(estimator: str, num_sources: int) -> int:
  return sum(1 if part == 'mixture' else num_sources for part in DECODED[estimator])


def selection_masks(num_sources: int) -> np.ndarray:
  """[2S + 1, S]: every slot alone, all slots, every slot but one."""
  eye = np.eye(num_sources, dtype=np.float32)
  return np.concatenate([eye, np.ones((1, num_sources), np.float32), 1 - eye])


def estimates(decoded: np.ndarray, num_sources: int) -> dict[str, np.ndarray]:
  """The estimators' [S, T, C] from the decodes [2S + 1, T, C] of `selection_masks`."""
  singles, everything, complements = (decoded[:num_sources], decoded[num_sources],
                                      decoded[num_sources + 1:])
  difference = everything[None] - complements
  return {
      'slot': singles,
      'difference': difference,
      'consistent': singles + (everything - singles.sum(axis=0))[None] / num_sources,
      'mean': 0.5 * (singles + difference),
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--workdir', required=True, help='training workdir or export')
  parser.add_argument('--data_dir', required=True, help='TFDS data dir of the tracks build (data_prep.build)')
  parser.add_argument('--split', default='validation')
  parser.add_argument('--max_tracks', type=int, default=13)
  parser.add_argument('--max_seconds', type=float, default=10.0)
  parser.add_argument('--mask_variants', default='',
                      help='more slot_masked rows: comma-separated n_fft:power pairs, e.g. 1024:2,4096:2,2048:1 '
                      '(the default row is postfilter.N_FFT:postfilter.POWER, hop n_fft / 4)')
  args = parser.parse_args()
  variants = {}
  for item in filter(None, (x.strip() for x in args.mask_variants.split(','))):
    n_fft, power = item.split(':')
    variants[f'slot_masked_fft{int(n_fft)}_p{float(power):g}'] = (int(n_fft), float(power))
  mixture_masked = {**MIXTURE_MASKED, **{name: 'slot' for name in variants}}

  separator = inference.load(args.workdir)
  config = copy.deepcopy(separator.config)
  config.data.data_dir = args.data_dir
  _, tracks = evaluate.tfds_tracks(config, args.split, max_tracks=args.max_tracks, max_seconds=args.max_seconds)
  num_sources = separator.num_sources
  masks = selection_masks(num_sources)
  baseline_rows = ('mixture_x0.25', 'silence')
  scores = {name: [] for name in (*DECODED, *mixture_masked, *baseline_rows)}  # per track: [S] medians over windows
  for _, stems, mixture, _ in tracks:
    rate = separator.sample_rate
    baselines = evaluate.track_windows(stems, mixture, rate)
    for row in baseline_rows:
      scores[row].append(sdr.median_over_windows(baselines[row]))
    found = estimates(separator.apply(mixture, masks), num_sources)
    for name, of in mixture_masked.items():
      n_fft, power = variants.get(name, (postfilter.N_FFT, postfilter.POWER))
      found[name] = postfilter.mask_with_mixture(found[of], mixture, (True,) * num_sources, n_fft=n_fft,
                                                 hop=n_fft // 4, power=power)
    for name, estimate in found.items():
      scores[name].append(sdr.median_over_windows(sdr.sdr_per_window(stems, estimate, rate)))

  def table_row(name):  # median over tracks, as evaluate's table; NaN (a source silent everywhere) -> null
    row = evaluate._row_dict(sdr.aggregate_tracks(scores[name]), separator.sources)  # pylint: disable=protected-access
    return evaluate._json_safe({k: round(v, 3) for k, v in row.items()})  # pylint: disable=protected-access

  for name in (*DECODED, *mixture_masked):
    print(json.dumps({
        'name': 'estimators', 'workdir': args.workdir, 'split': args.split, 'tracks': len(scores[name]),
        'seconds_per_track': args.max_seconds, 'estimator': name, 'reads_mixture': name in mixture_masked,
        'decodes_per_window': decodes_per_window(mixture_masked.get(name, name), num_sources),
        'sdr': table_row(name), 'baselines': {row: table_row(row) for row in baseline_rows},
    }), flush=True)


if __name__ == '__main__':
  cli.relaunch_with_tcmalloc()
  main()
