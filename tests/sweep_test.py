"""scripts/sweep.py end to end on the ci config with synthetic data: rows, the rendered table, resuming."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_sweep_runs_renders_and_resumes(tmp_path):
  results = tmp_path / 'rows.jsonl'
  markdown = tmp_path / 'results.md'
  markdown.write_text('# Results\n\nkept text\n')
  command = [sys.executable, 'scripts/sweep.py', '--configs=configs/ci.py', '--steps=5', '--seeds=3', '--synthetic',
             f'--runs={tmp_path / "runs"}', f'--results={results}', f'--results_md={markdown}',
             f'--png={tmp_path / "curves.png"}', '--override=train.eval_every=5', '--max_seconds=1.0']
  env = dict(os.environ, XLA_FLAGS='')  # one CPU device, as a user's run
  first = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env, check=False)
  assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
  rows = [json.loads(line) for line in results.read_text().splitlines()]
  assert len(rows) == 1
  row = rows[0]
  assert row['config'] == 'configs/ci.py' and row['seed'] == 3 and row['steps'] == 5 and row['synthetic']
  assert set(row['sdr']) == {'model', 'oracle', 'silence', 'mixture_x0.25'}
  assert row['cpu']['model'] and isinstance(row['cpu']['avx512'], bool)
  assert row['curve'] and row['curve'][-1]['step'] == 5
  assert row['train_minutes'] > 0 and row['bitrate_kbps'] > 0
  text = markdown.read_text()
  assert 'kept text' in text and '| configs/ci.py train.eval_every=5 (synthetic) | 5 | 3 |' in text
  assert (tmp_path / 'curves.png').stat().st_size > 0
  # A second run skips the done row and rewrites the section in place.
  second = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env, check=False)
  assert second.returncode == 0, second.stderr[-2000:]
  assert 'done, skipped' in second.stdout
  assert len(results.read_text().splitlines()) == 1
  assert markdown.read_text().count('sweep:begin') == 1
