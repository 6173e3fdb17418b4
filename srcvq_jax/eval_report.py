"""The report of an evaluation: the paper-style SDR table and results.md, from the results dict that
srcvq_jax/evaluate.py writes as results.json (so a report can be rendered again from a saved results.json)."""
from __future__ import annotations

import numpy as np


def number_or_na(value, fmt: str = '.2f') -> str:
  return 'n/a' if value is None else format(value, fmt)


def format_table(results: dict) -> str:
  """The paper-style SDR table (markdown) of a results dict."""
  from srcvq_jax import sdr  # pylint: disable=g-import-not-at-top

  rows = {results['row_titles'][row]: {s: (np.nan if v is None else v) for s, v in scores.items()}
          for row, scores in results['sdr'].items()}
  return sdr.format_table(rows, results['sources'])


def format_report(results: dict) -> str:
  """results.md: the table plus the numbers that go with it."""
  data, timing = results['data'], results['timing']
  names = [t['name'] for t in results['tracks']]
  lines = [f'# Evaluation: {results["split"]} split', '',
           f'Checkpoint: `{results["checkpoint"]["path"]}` (step {results["checkpoint"]["step"]}); '
           f'{data["tracks"]} tracks from {data.get("source")} `{data.get("path")}`'
           + (f', first {data["max_seconds"]:g} s each' if data.get('max_seconds') else '') + '.', '',
           f'SDR in dB ({results["protocol"]}):', '', format_table(results), '']
  if any(n.endswith('ChoraleMix') for n in names):
    lines += ['ChoraleMix is Bach chorales with General MIDI timbres rendered offline, far from commercial pop: '
              'these numbers are a smoke-level reproduction, not comparable with MUSDB18 results.', '']
  if data.get('resampled'):
    lines += [f'Tracks at {data["dataset_sample_rates"]} Hz were resampled to the model rate '
              f'{data["model_sample_rate"]} Hz (references too) before scoring.', '']
  recon = results.get('reconstruction_sdr')
  codebook = results['codebook']
  lines += [f'- mixture reconstruction (all slots): {recon:.2f} dB' if recon is not None else
            '- mixture reconstruction (all slots): n/a',
            f'- bitrate: {results["bitrate_kbps"]:.2f} kbit/s raw, {codebook["entropy_kbps"]:.2f} kbit/s at the '
            'codes\' empirical entropy',
            f'- codebook use on the mixtures: perplexity {codebook["perplexity"]:.1f} (mean over sources and '
            f'codebooks), {100 * codebook["used_fraction"]:.0f}% of entries used']
  for source, stats in codebook['per_source'].items():
    lines.append(f'  - {source}: perplexity ' + ', '.join(f'{p:.1f}' for p in stats['perplexity'])
                 + '; used ' + ', '.join(f'{100 * u:.0f}%' for u in stats['used_fraction']))
  awareness = results.get('source_awareness')
  if awareness:
    lines.append('- source awareness: a stem alone in leaks ' + ', '.join(
        f'{s} {number_or_na(awareness["leakage_db"][s], ".1f")}' for s in results['sources'])
                 + ' dB into the other slots (their energy over its own slot\'s; << 0 is source-aware); squared '
                 'correlation of each slot\'s separation with its own reference '
                 f'{number_or_na(awareness["own_correlation"]["avg"], ".3f")} vs the others\' '
                 f'{number_or_na(awareness["other_correlation"]["avg"], ".3f")}')
  found = results.get('analysis')
  if found:
    lines.append(f'- single-source latents ({found["points"]} points of ~1 s): silhouette '
                 f'{number_or_na(found["silhouette"], ".3f")}, k-NN (k=5, folds by track) accuracy '
                 f'{number_or_na(found["knn_accuracy"], ".3f")} over {found["knn_folds"]} folds (chance '
                 f'{number_or_na(found["knn_chance"])})' + ('; t-SNE: `tsne.png`' if found['tsne_png'] else '')
                 + ('' if found['shared_codebooks'] else '; per-source codebooks separate the sources even '
                    'untrained, so compare these only with runs of the same codebook setting'))
  if results.get('museval'):
    m = results['museval']
    lines.append('- museval SDR of the model: ' + ', '.join(
        f'{s} {number_or_na(v)}' for s, v in m['scores']['SDR'].items()) +
                 f'; largest per-window difference to the table: {number_or_na(m["max_abs_sdr_diff_db"], ".2e")} dB')
  lines.append(f'- separation speed: {timing["realtime_factor"]:.1f}x real time ({timing["audio_s"]:.1f} s of audio '
               f'in {timing["separation_s"]:.1f} s, compilation {timing["compile_s"]:.1f} s excluded)')
  lines += ['', '## Per track', '', '| track | ' + ' | '.join(results['sources']) + ' | avg | oracle avg |',
            '|---|' + '---:|' * (len(results['sources']) + 2)]
  for track in results['tracks']:
    model, oracle = track['sdr']['model'], track['sdr']['oracle']
    lines.append(f'| {track["name"]} | ' + ' | '.join(number_or_na(model[s]) for s in results['sources'])
                 + f' | {number_or_na(model["avg"])} | {number_or_na(oracle["avg"])} |')
  return '\n'.join(lines) + '\n'
