"""SDR and speed of a BiLSTM model's windowed inference for several amounts of LSTM context per window side.

A BiLSTM's reach is the whole input, so `Separator` gives each inference window model.lstm_context_frames frames
of context on each side (models.receptive_margin) and the windows overlap by that much: inference costs about
(window + 2 x context) / window times the convolutional model's. This measures what a shorter context costs in SDR
and buys in speed, on the same trained params: for each context, the SDR of separation and of the codec ceiling
(evaluate.score_track: BSSEval v4, median over 1 s windows, then the median over tracks), how far
its separated stems are from the widest context's (energy of the difference over the stems', in dB), and the
real-time factor of `separate` (wall time after a warm-up call that compiles). One JSON line per context.

  python scripts/lstm_context.py --workdir=runs/demo --data_dir=data/tfds --contexts=172,86,43,16 \
      --split=test --max_tracks=11 --max_seconds=10
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from srcvq_jax import cli  # noqa: E402
from srcvq_jax import evaluate  # noqa: E402
from srcvq_jax import inference  # noqa: E402
from srcvq_jax import models  # noqa: E402


def difference_db(estimate: np.ndarray, reference: np.ndarray) -> float:
  """10 log10(|estimate - reference|^2 / |reference|^2): how far one inference's output is from another's."""
  return float(10 * np.log10(np.sum((estimate - reference) ** 2) / max(float(np.sum(reference ** 2)), 1e-20)
                             + 1e-20))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--workdir', required=True, help='training workdir or export of a model with a BiLSTM')
  parser.add_argument('--data_dir', required=True, help='TFDS data dir of the tracks build (data_prep.build)')
  parser.add_argument('--contexts', default='172,86,43,16', help='frames of context per window side, widest first')
  parser.add_argument('--split', default='test')
  parser.add_argument('--max_tracks', type=int, default=11)
  parser.add_argument('--max_seconds', type=float, default=10.0)
  args = parser.parse_args()

  base = inference.load(args.workdir)
  config = copy.deepcopy(base.config)
  if not (int(config.model.encoder_lstm_layers) or int(config.model.decoder_lstm_layers)):
    raise SystemExit(f'{args.workdir}: the model has no BiLSTM; its windowed inference is exact at any context')
  config.data.data_dir = args.data_dir
  _, tracks = evaluate.tfds_tracks(config, args.split, max_tracks=args.max_tracks, max_seconds=args.max_seconds)
  tracks = list(tracks)
  contexts = [int(c) for c in args.contexts.split(',') if c]
  reference_stems = None
  for context in contexts:
    config.model.lstm_context_frames = context
    separator = inference.Separator(base.config, base.graphdef, base.params,
                                    margin=models.receptive_margin(config))
    separator.separate(tracks[0][2])  # compiles
    rows, stems_out, seconds, wall = [], [], 0.0, 0.0
    for _, stems, mixture, rate in tracks:
      start = time.perf_counter()
      estimate = separator.separate(mixture)
      wall += time.perf_counter() - start
      seconds += mixture.shape[0] / rate
      stems_out.append(estimate)
      rows.append(evaluate.score_track(separator, stems, mixture, estimate=estimate))  # the estimate just timed
    widest = reference_stems is None
    if widest:
      reference_stems = stems_out
    sdr = {row: {k: round(v, 3) for k, v in evaluate._row_dict(  # pylint: disable=protected-access
        np.nanmedian([r[row] for r in rows], axis=0), separator.sources).items()} for row in ('model', 'oracle')}
    print(json.dumps({
        'name': 'lstm_context', 'workdir': args.workdir, 'split': args.split, 'tracks': len(tracks),
        'seconds_per_track': args.max_seconds, 'context_frames': context, 'margin_samples': separator.margin,
        'window_samples': separator.window,
        'sdr_model': sdr['model'], 'sdr_oracle': sdr['oracle'],
        'difference_from_widest_db': None if widest else round(float(np.mean(
            [difference_db(e, r) for e, r in zip(stems_out, reference_stems)])), 1),
        'realtime_factor': round(seconds / wall, 1),
    }), flush=True)


if __name__ == '__main__':
  cli.relaunch_with_tcmalloc()
  main()
