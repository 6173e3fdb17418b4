"""SDR while training: the numbers written at an evaluation equal `evaluate`'s on the same excerpts."""
import json
import os

import numpy as np
import pytest

from srcvq_jax import evaluate
from srcvq_jax import trainer


def test_in_training_sdr_equals_evaluate_on_the_same_excerpts(ci_config, tmp_path):
  workdir = str(tmp_path / 'run')
  ci_config.train.num_steps = ci_config.train.eval_every = ci_config.train.checkpoint_every = 5
  ci_config.train.log_every = 5
  trainer.train_and_evaluate(ci_config, workdir)
  with open(os.path.join(workdir, 'metrics.jsonl'), encoding='utf-8') as f:
    last = [json.loads(line) for line in f][-1]
  assert last['step'] == 5
  sources = list(ci_config.data.sources)
  for row in ('model', 'oracle', 'soft_gap'):
    assert all(f'val_sdr/{row}/{name}' in last for name in sources + ['avg'])
  # The saved step-5 model on the same synthetic validation excerpts, through the evaluate command's code.
  results = evaluate.run(workdir, 'validation', synthetic_tracks=ci_config.train.sdr_tracks,
                         max_seconds=ci_config.train.sdr_seconds, run_analysis=False, out_dir=str(tmp_path / 'ev'))
  for row in ('model', 'oracle'):
    for name in sources + ['avg']:
      assert last[f'val_sdr/{row}/{name}'] == pytest.approx(results['sdr'][row][name], abs=1e-3), (row, name)
  assert np.isfinite(last['val_sdr/soft_gap/avg'])
