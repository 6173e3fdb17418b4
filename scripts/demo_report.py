"""Writes WORKDIR/report.md: the training curve (from metrics.jsonl) and the evaluation table (eval/<split>).

  python scripts/demo_report.py runs/demo [--split=test]

`make demo` runs it last; docs/results.md quotes its output.
"""
import argparse
import json
import os


def training_curve(workdir: str, points: int = 8) -> str:
  with open(os.path.join(workdir, 'metrics.jsonl'), encoding='utf-8') as f:
    rows = [json.loads(line) for line in f]
  if not rows:
    return '(no metrics)\n'
  keys = ['train/loss', 'train/selective/l1', 'train/selective/stft', 'train/complement/l1',
          'train/complement/stft', 'train/tau', 'train/vq/perplexity', 'eval/loss', 'val_sdr/model/avg',
          'val_sdr/oracle/avg', 'train/steps_per_sec']
  keys = [k for k in keys if any(k in r for r in rows)]
  # The in-training SDR is written at evaluations only: pick among those rows when there are any.
  with_sdr = [r for r in rows if 'val_sdr/model/avg' in r]
  rows = with_sdr if len(with_sdr) >= 2 else rows
  count = min(points, len(rows))
  picked = [rows[round(i * (len(rows) - 1) / max(count - 1, 1))] for i in range(count)]
  lines = ['| step | ' + ' | '.join(k.replace('train/', '') for k in keys) + ' |',
           '|---|' + '---|' * len(keys)]
  for r in picked:
    lines.append(f'| {r["step"]} | ' + ' | '.join(f'{r[k]:.4g}' if k in r else '' for k in keys) + ' |')
  return '\n'.join(lines) + '\n'


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('workdir')
  parser.add_argument('--split', default='test')
  args = parser.parse_args()
  parts = ['# Demo report\n', f'Run: `{args.workdir}`\n', '## Training curve (metrics.jsonl, interval means)\n',
           training_curve(args.workdir)]
  table = os.path.join(args.workdir, 'eval', args.split, 'results.md')
  if os.path.exists(table):
    with open(table, encoding='utf-8') as f:
      parts += [f'## Evaluation ({args.split} split)\n', f.read()]
  report = '\n'.join(parts)
  with open(os.path.join(args.workdir, 'report.md'), 'w', encoding='utf-8') as f:
    f.write(report)
  print(report)


if __name__ == '__main__':
  main()
