"""Where the codec ceiling of a source is lost: `evaluate`'s per-track SDR against ChoraleMix's render parameters.

ChoraleMix draws each track's instruments, reverb and levels at random (data_prep/chorale_mix/arrangement.py), and
chorale_mix.json records them. This script joins that record with an `evaluate` results.json and prints, for one
source, the median SDR (codec ceiling by default: the stem alone in, its own slot out) per General MIDI program and
its correlation with the source's reverb wet level and the room's RT60, as a Markdown table.

  python scripts/ceiling_by_render.py --results=runs/best/eval/test/results.json \\
      --render=data/full/chorale_mix/chorale_mix.json --source=other [--row=oracle]
"""
import argparse
import collections
import json
import sys

import numpy as np

# chorale_mix.json's program_names keys that play each source ("other" is the alto and the tenor part).
PARTS = {'vocals': ('vocals',), 'bass': ('bass',), 'other': ('alto', 'tenor'), 'drums': ('drum_kit',)}

parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
parser.add_argument('--results', required=True, help="an `evaluate` results.json (with its 'tracks')")
parser.add_argument('--render', required=True, help="the render's chorale_mix.json")
parser.add_argument('--source', default='other', choices=sorted(PARTS))
parser.add_argument('--row', default='oracle', help="results row: 'oracle' (codec ceiling) or 'model'")


def load(path: str, what: str) -> dict:
  try:
    with open(path, encoding='utf-8') as f:
      return json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    sys.exit(f'{path}: cannot read {what}: {e}')


def table(results: dict, render: dict, source: str, row: str) -> str:
  """Markdown: the per-program medians and the correlations with reverb, for one source and results row."""
  tracks = render.get('tracks', {})
  scored = results.get('tracks') or []
  if not scored:
    raise ValueError("no per-track results ('tracks')")
  missing = [t['name'] for t in scored if t['name'] not in tracks]
  if missing:
    # Renders of another size share track names, so a partial join would silently mix two renders' parameters.
    raise ValueError(f'{len(missing)} of its {len(scored)} tracks are not in the render record '
                     f'(e.g. {missing[:1]}): results of another render?')
  sdr, wet, rt60, programs = [], [], [], []
  for track in scored:
    meta = tracks[track['name']]
    value = track.get('sdr', {}).get(row, {}).get(source)
    if value is None:
      raise ValueError(f'track {track["name"]!r} has no SDR row {row!r} for {source!r}')
    sdr.append(value)
    wet.append(meta['reverb']['wet'][source])
    rt60.append(meta['reverb']['rt60_s'])
    programs.append([meta['program_names'][part] for part in PARTS[source]])
  if len(sdr) < 3:
    raise ValueError(f'{len(sdr)} tracks: too few for a correlation')
  sdr = np.asarray(sdr)
  by_program = collections.defaultdict(list)
  for value, names in zip(sdr, programs):
    for name in set(names):
      by_program[name].append(value)
  lines = [f'{source}, row "{row}", {len(sdr)} tracks: median {np.median(sdr):.2f} dB; correlation with the '
           f'reverb wet level {np.corrcoef(sdr, wet)[0, 1]:+.2f}, with RT60 {np.corrcoef(sdr, rt60)[0, 1]:+.2f}',
           '', '| program (any part of the source) | tracks | median SDR dB |', '|---|---:|---:|']
  for name, values in sorted(by_program.items(), key=lambda kv: np.median(kv[1])):
    lines.append(f'| {name} | {len(values)} | {np.median(values):.2f} |')
  return '\n'.join(lines)


def main(argv=None) -> None:
  args = parser.parse_args(argv)
  results, render = load(args.results, 'evaluate results'), load(args.render, 'the render record')
  try:
    print(table(results, render, args.source, args.row))
  except ValueError as e:
    sys.exit(f'{args.results}: {e}')


if __name__ == '__main__':
  main()
