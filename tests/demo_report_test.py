"""scripts/demo_report.py's training curve picks distinct, evenly spaced rows."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'scripts'))
import demo_report  # noqa: E402  (scripts/demo_report.py)


def write_metrics(workdir, steps, sdr_steps):
  with open(os.path.join(workdir, 'metrics.jsonl'), 'w', encoding='utf-8') as f:
    for step in steps:
      row = {'step': step, 'train/loss': 1.0 / step}
      if step in sdr_steps:
        row['val_sdr/model/avg'] = step / 1000
      f.write(json.dumps(row) + '\n')


def curve_steps(table: str) -> list[int]:
  return [int(line.split('|')[1]) for line in table.splitlines()[2:]]


def test_two_evaluations_give_two_rows_not_one_twice(tmp_path):
  write_metrics(str(tmp_path), range(50, 3001, 50), {2000, 3000})
  assert curve_steps(demo_report.training_curve(str(tmp_path))) == [2000, 3000]


def test_many_rows_are_sampled_evenly_first_and_last_included(tmp_path):
  write_metrics(str(tmp_path), range(50, 3001, 50), set())
  steps = curve_steps(demo_report.training_curve(str(tmp_path), points=4))
  assert steps[0] == 50 and steps[-1] == 3000 and len(set(steps)) == 4
