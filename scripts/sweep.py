"""Trains each (config, seed) for the same number of steps, scores it, appends a JSON line, renders the table.

  python scripts/sweep.py --configs='configs/quality/*.py' --steps=1500 --seeds=0,1 --data_dir=data/full/tfds

Per (config, seed): `python -m srcvq_jax.train` into RUNS/<config>/<steps>steps[-<overrides hash>]/seed<seed>
(config.train.seed and data.seed set to the seed, num_steps to --steps; an interrupted row resumes), then
`python -m srcvq_jax.evaluate` on --split (validation by default: levers are chosen on validation; only the final
rows are scored on test, once, with --split=test). One JSON line per row goes to --results, with the minutes and
steps/s of training, the CPU (lscpu model, AVX-512 or not), the SDR rows of the evaluation (model, codec ceiling,
silence, 0.25 x mixture), bitrate (raw and at the codes' entropy), separation speed and the in-training
validation SDR curve. A row already in --results (same config file, seed, steps, split and overrides) is skipped,
so a sweep resumes across sessions. Then docs/results.md's sweep section (between its markers) and a PNG of the
curves are rewritten from every row of --results.

--data_dir is a TFDS build of data_prep.build; --synthetic trains and scores on the NumPy synthetic source (for
tests: no dataset needed; the rows are marked synthetic).
"""
from __future__ import annotations

import argparse
import datetime
import glob
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import results_md as results_md_lib  # noqa: E402  (scripts/results_md.py)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_RESULTS = os.path.join('docs', 'sweep', 'results.jsonl')
BEGIN, END = '<!-- sweep:begin (scripts/sweep.py writes this section) -->', '<!-- sweep:end -->'
ROWS = ('model', 'oracle', 'silence', 'mixture_x0.25')


def cpu_info() -> dict:
  """{'model': lscpu's model name, 'avx512': bool, 'cores': n} of this machine."""
  model, flags = platform.processor() or 'unknown', ''
  try:
    text = subprocess.run(['lscpu'], capture_output=True, text=True, check=False).stdout
    for line in text.splitlines():
      key, _, value = line.partition(':')
      if key.strip() == 'Model name':
        model = value.strip()
      elif key.strip() == 'Flags':
        flags = value
  except OSError:
    pass
  return {'model': model, 'avx512': 'avx512f' in flags.split(), 'cores': os.cpu_count()}


def git_commit() -> str | None:
  result = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=REPO, capture_output=True, text=True,
                          check=False)
  return result.stdout.strip() or None


def row_key(row: dict) -> tuple:
  return (row['config'], row['seed'], row['steps'], row['split'], tuple(row.get('overrides', ())),
          bool(row.get('synthetic')))


def read_rows(path: str) -> list[dict]:
  if not os.path.exists(path):
    return []
  rows = []
  with open(path, encoding='utf-8') as f:
    for number, line in enumerate(f, 1):
      if line.strip():
        try:
          rows.append(json.loads(line))
        except json.JSONDecodeError as e:
          raise SystemExit(f'error: {path}:{number}: not a JSON line ({e.msg})') from e
  return rows


def run_name(config_path: str) -> str:
  return os.path.splitext(os.path.relpath(config_path, os.path.join(REPO, 'configs')))[0].replace(os.sep, '_')


def _run(command: list[str], log_path: str) -> float:
  """Runs a command with its output appended to log_path; returns its wall seconds; exits on failure."""
  start = time.time()
  with open(log_path, 'a', encoding='utf-8') as log:
    log.write(f'\n$ {" ".join(command)}\n')
    log.flush()
    result = subprocess.run(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, check=False)
  if result.returncode:
    with open(log_path, encoding='utf-8') as log:
      tail = log.read().strip().splitlines()[-3:]
    raise SystemExit(f'error: {" ".join(command[:4])} ... failed ({result.returncode}); {log_path}: '
                     + ' | '.join(tail))
  return time.time() - start


def training_curve(workdir: str) -> list[dict]:
  """The in-training validation SDR of WORKDIR/metrics.jsonl: [{'step', 'model', 'oracle', 'soft_gap'}]."""
  path = os.path.join(workdir, 'metrics.jsonl')
  curve = []
  if not os.path.exists(path):
    return curve
  with open(path, encoding='utf-8') as f:
    for line in f:
      record = json.loads(line)
      if 'val_sdr/model/avg' in record:
        curve.append({'step': record['step'], 'model': record['val_sdr/model/avg'],
                      'oracle': record.get('val_sdr/oracle/avg'), 'soft_gap': record.get('val_sdr/soft_gap/avg')})
  return curve


def steps_per_second(workdir: str) -> float | None:
  path = os.path.join(workdir, 'metrics.jsonl')
  if not os.path.exists(path):
    return None
  rates = []
  with open(path, encoding='utf-8') as f:
    for line in f:
      record = json.loads(line)
      if 'train/steps_per_sec' in record:
        rates.append(record['train/steps_per_sec'])
  return float(np.median(rates[1:] or rates)) if rates else None


def sweep_one(config_path: str, seed: int, args, cpu: dict) -> dict:
  """Trains and evaluates one (config, seed); returns its row."""
  name = run_name(config_path)
  # One workdir per (config, steps, overrides, seed): a row never resumes another budget's run. The split is not
  # part of it: scoring a finished run on the test split reuses its workdir (training is then a no-op).
  variant = f'{args.steps}steps'
  if args.override:
    variant += '-' + hashlib.sha1(' '.join(args.override).encode()).hexdigest()[:8]
  workdir = os.path.join(args.runs, name, variant, f'seed{seed}')
  os.makedirs(workdir, exist_ok=True)
  log_path = os.path.join(workdir, 'sweep.log')
  python = sys.executable
  data = (['--config.data.source=synthetic'] if args.synthetic else
          [f'--config.data.data_dir={args.data_dir}', f'--config.data.dataset={args.dataset}'])
  overrides = [f'--config.{o}' for o in args.override]
  train = [python, '-m', 'srcvq_jax.train', f'--config={config_path}', f'--workdir={workdir}',
           f'--config.train.num_steps={args.steps}', f'--config.train.seed={seed}', f'--config.data.seed={seed}',
           *data, *overrides]
  print(f'[sweep] {name} seed {seed}: training {args.steps} steps -> {workdir}', flush=True)
  train_s = _run(train, log_path)
  out_dir = os.path.join(workdir, 'eval', args.split)
  evaluate = [python, '-m', 'srcvq_jax.evaluate', f'--workdir={workdir}', f'--split={args.split}',
              f'--out={out_dir}', '--noanalysis']
  if args.max_seconds:
    evaluate.append(f'--max_seconds={args.max_seconds}')
  if args.max_tracks:
    evaluate.append(f'--max_tracks={args.max_tracks}')
  if args.synthetic:
    evaluate.append(f'--synthetic_tracks={args.synthetic_tracks}')
  else:
    evaluate.append(f'--data_dir={args.data_dir}')
  print(f'[sweep] {name} seed {seed}: evaluating on {args.split}', flush=True)
  eval_s = _run(evaluate, log_path)
  with open(os.path.join(out_dir, 'results.json'), encoding='utf-8') as f:
    results = json.load(f)
  with open(os.path.join(workdir, 'config.json'), encoding='utf-8') as f:
    config = json.load(f)
  return {
      'config': os.path.relpath(config_path, REPO), 'seed': seed, 'steps': args.steps, 'split': args.split,
      'overrides': list(args.override), 'synthetic': bool(args.synthetic),
      'workdir': os.path.relpath(workdir, REPO) if not os.path.isabs(args.runs) else workdir,
      'train_minutes': train_s / 60, 'eval_minutes': eval_s / 60, 'steps_per_sec': steps_per_second(workdir),
      'cpu': cpu, 'commit': git_commit(), 'date': datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec='seconds'),
      'sample_rate': config['data']['sample_rate'], 'tracks': results['data']['tracks'],
      'max_seconds': results['data'].get('max_seconds'),
      'sdr': {row: results['sdr'][row] for row in ROWS},
      'bitrate_kbps': results['bitrate_kbps'], 'entropy_kbps': results['codebook'].get('entropy_kbps'),
      'realtime_factor': results['timing']['realtime_factor'],
      'source_awareness': results.get('source_awareness'),
      'curve': training_curve(workdir),
  }


# --- Rendering ---------------------------------------------------------------------------------------------------


def _fmt(values, digits: int = 2) -> str:
  values = [v for v in values if v is not None and math.isfinite(v)]
  if not values:
    return 'n/a'
  mean = float(np.mean(values))
  if len(values) == 1:
    return f'{mean:.{digits}f}'
  return f'{mean:.{digits}f} ± {(max(values) - min(values)) / 2:.{digits}f}'


def group_rows(rows: list[dict]) -> dict[tuple, list[dict]]:
  groups: dict[tuple, list[dict]] = {}
  for row in rows:
    key = (row['split'], bool(row.get('synthetic')), row['config'], row['steps'], tuple(row.get('overrides', ())))
    groups.setdefault(key, []).append(row)
  return groups


def render_table(rows: list[dict]) -> str:
  """Markdown: one line per (split, config, steps, overrides), the mean ± half the range over its seeds."""
  if not rows:
    return '(no rows yet)\n'
  # A row scored on another split reuses the validation row's finished workdir: its training minutes are those.
  trained = {(r['config'], r['seed'], r['steps'], tuple(r.get('overrides', ()))): r for r in rows
             if r['split'] == 'validation'}
  rows = [dict(r, train_minutes=trained[key]['train_minutes']) if r['split'] != 'validation' and
          (key := (r['config'], r['seed'], r['steps'], tuple(r.get('overrides', ())))) in trained else r
          for r in rows]
  sources = [k for k in rows[0]['sdr']['model'] if k != 'avg']
  lines = []
  for split in sorted({r['split'] for r in rows}, key=lambda s: (s != 'validation', s)):
    header = (['config', 'steps', 'seeds', 'model avg'] + sources + ['ceiling avg', 'silence', '0.25 x mix',
              'leakage dB', 'kbit/s (entropy)', 'train min', 'steps/s', 'x real time'])
    lines += [f'**{split} split** (SDR in dB, BSSEval v4 median over 1 s windows then tracks; mean ± half the '
              'range over seeds; leakage: a stem alone in, the other slots\' energy over its own slot\'s, << 0 = '
              'source-aware)', '', '| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    # The reference first, then the others by name.
    for key, group in sorted(group_rows(rows).items(), key=lambda kv: ('reference' not in kv[0][2], kv[0])):
      if key[0] != split:
        continue
      _, synthetic, config, steps, overrides = key
      label = config + (' ' + ' '.join(overrides) if overrides else '') + (' (synthetic)' if synthetic else '')
      model = lambda field, g=group: [r['sdr']['model'][field] for r in g]  # noqa: E731
      cells = [label, str(steps), ','.join(str(r['seed']) for r in group), _fmt(model('avg'))]
      cells += [_fmt(model(s)) for s in sources]
      cells += [_fmt([r['sdr']['oracle']['avg'] for r in group]),
                _fmt([r['sdr']['silence']['avg'] for r in group]),
                _fmt([r['sdr']['mixture_x0.25']['avg'] for r in group]),
                _fmt([(r.get('source_awareness') or {}).get('leakage_db', {}).get('avg') for r in group], 1),
                f'{group[0]["bitrate_kbps"]:.1f} ({_fmt([r["entropy_kbps"] for r in group], 1)})',
                _fmt([r['train_minutes'] for r in group], 1), _fmt([r['steps_per_sec'] for r in group], 2),
                _fmt([r['realtime_factor'] for r in group], 0)]
      lines.append('| ' + ' | '.join(cells) + ' |')
    lines.append('')
  scored = sorted({f'{r["split"]}: {r["tracks"]} tracks' + (f' x first {r["max_seconds"]:g} s'
                                                             if r.get('max_seconds') else ' (whole)')
                    for r in rows})
  lines.append('Scored on ' + '; '.join(scored) + '. Budget of a row: its steps (batch and segment of its config); '
               '"train min" is the wall time of training, in-training SDR evaluations included.')
  cpus = sorted({f'{r["cpu"]["model"]} ({"AVX-512" if r["cpu"]["avx512"] else "no AVX-512"}, '
                 f'{r["cpu"]["cores"]} cores)' for r in rows})
  lines.append('CPU: ' + '; '.join(cpus) + '. Sample rate of every row: '
               + ', '.join(sorted({f'{r["sample_rate"]} Hz' for r in rows})) + '.')
  return '\n'.join(lines) + '\n'


def plot_curves(rows: list[dict], path: str) -> bool:
  """PNG of the in-training validation SDR (model and codec ceiling) of every validation row."""
  curves = [r for r in rows if r['split'] == 'validation' and r.get('curve')]
  if not curves:
    return False
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharex=True)
  colors = {}
  for row in curves:
    label = os.path.splitext(os.path.basename(row['config']))[0]
    color = colors.setdefault(label, f'C{len(colors) % 10}')
    steps = [p['step'] for p in row['curve']]
    for ax, field in zip(axes, ('model', 'oracle')):
      values = [p[field] if p[field] is not None else np.nan for p in row['curve']]
      first_seed = row['seed'] == min(r['seed'] for r in curves if r['config'] == row['config'])
      # Markers: a row evaluated once (eval_every >= steps) is a single point, which a line alone does not draw.
      ax.plot(steps, values, color=color, label=label if first_seed else None, alpha=0.85, marker='o', markersize=3)
  for ax, title in zip(axes, ('separation (each slot alone from the mixture)', 'codec ceiling (stem in, own slot)')):
    ax.set_title(f'validation SDR while training: {title}', fontsize=9)
    ax.set_xlabel('step')
    ax.set_ylabel('SDR avg (dB)')
    ax.axhline(0.0, color='k', lw=0.5)
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=7)
  fig.tight_layout()
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return True


def render(rows: list[dict], results_md: str, png: str) -> None:
  """Rewrites the section between BEGIN and END of results_md (appended if absent) and the PNG."""
  has_png = plot_curves(rows, png)
  body = render_table(rows)
  if has_png:
    body += f'\n![validation SDR curves]({os.path.relpath(png, os.path.dirname(results_md))})\n'
  results_md_lib.write_section(results_md, BEGIN, END, body, 'Quality sweep')


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--configs', required=True, help='comma-separated config files or globs')
  parser.add_argument('--steps', type=int, required=True, help='training steps of every row')
  parser.add_argument('--seeds', default='0', help='comma-separated seeds')
  parser.add_argument('--data_dir', default=None, help='TFDS data dir (data_prep.build --data_dir)')
  parser.add_argument('--dataset', default='chorale_mix')
  parser.add_argument('--synthetic', action='store_true', help='synthetic data instead of --data_dir (tests)')
  parser.add_argument('--synthetic_tracks', type=int, default=2, help='with --synthetic: tracks evaluated')
  parser.add_argument('--split', default='validation', help="scored split ('validation'; 'test' for final rows)")
  parser.add_argument('--max_seconds', type=float, default=None, help='score only the first S s of each track')
  parser.add_argument('--max_tracks', type=int, default=None)
  parser.add_argument('--override', action='append', default=[], help='extra config override, e.g. '
                      'train.eval_every=250 (applied to every row and part of its key)')
  parser.add_argument('--runs', default=os.path.join('runs', 'sweep'), help='parent of the workdirs')
  parser.add_argument('--results', default=DEFAULT_RESULTS, help='JSON lines of rows (appended)')
  parser.add_argument('--results_md', default=os.path.join('docs', 'results.md'))
  parser.add_argument('--png', default=os.path.join('docs', 'sweep', 'validation_curves.png'))
  parser.add_argument('--render_only', action='store_true', help='only rewrite the table and the PNG')
  args = parser.parse_args(argv)
  if not args.synthetic and not args.data_dir and not args.render_only:
    parser.error('--data_dir is required (or --synthetic)')
  configs = []
  for pattern in args.configs.split(','):
    found = sorted(p for p in glob.glob(os.path.join(REPO, pattern) if not os.path.isabs(pattern) else pattern)
                   if not os.path.basename(p).startswith('_'))  # not __init__.py
    if not found:
      parser.error(f'--configs: {pattern!r} matches no file')
    configs += found
  seeds = [int(s) for s in args.seeds.split(',') if s.strip()]
  os.makedirs(os.path.dirname(os.path.abspath(args.results)), exist_ok=True)
  cpu = cpu_info()
  if not args.render_only:
    for config_path in configs:
      for seed in seeds:
        key = (os.path.relpath(config_path, REPO), seed, args.steps, args.split, tuple(args.override),
               bool(args.synthetic))
        if any(row_key(r) == key for r in read_rows(args.results)):
          print(f'[sweep] {key[0]} seed {seed} ({args.steps} steps, {args.split}): done, skipped', flush=True)
          continue
        row = sweep_one(config_path, seed, args, cpu)
        with open(args.results, 'a', encoding='utf-8') as f:
          f.write(json.dumps(row) + '\n')
        print(f'[sweep] {row["config"]} seed {seed}: model avg {row["sdr"]["model"]["avg"]:.2f} dB, ceiling '
              f'{row["sdr"]["oracle"]["avg"]:.2f} dB, {row["train_minutes"]:.1f} min', flush=True)
  render(read_rows(args.results), args.results_md, args.png)


if __name__ == '__main__':
  main()
