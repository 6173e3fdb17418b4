"""python -m srcvq_jax.export: the export holds exactly the checkpoint's params and decodes identically."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx

from srcvq_jax import errors
from srcvq_jax import models

from srcvq_jax import checkpointing
from srcvq_jax import config_lib
from srcvq_jax import export
from srcvq_jax import inference
from srcvq_jax import batch_spec
from srcvq_jax import synthetic_data
from srcvq_jax import trainer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# XLA's cheap pipeline (as flax's tests use): ~2x faster CPU compiles; exactness here is export vs checkpoint.
FAST_COMPILE = 'jax_disable_most_optimizations'


def _run_export(*args):
  return subprocess.run([sys.executable, '-m', 'srcvq_jax.export', *args], cwd=REPO, capture_output=True,
                        text=True, timeout=300, env={**os.environ, FAST_COMPILE.upper(): '1'})


def _one_error_line(proc) -> str:
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert 'Traceback' not in proc.stderr
  errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
  assert len(errors) == 1, proc.stderr[-2000:]
  return errors[0]


def _encode_decode(graphdef, params, mixture, masks):
  """Inference codes [B, T', S, H] and the decoding of every selection [B, M, T, C]."""

  @jax.jit
  def run(params, mixture, masks):
    model = nnx.merge(graphdef, params)
    quantized = model.encode(mixture)
    return quantized.codes, model.decode(quantized.vectors, masks)

  return jax.device_get(run(params, mixture, masks))


@pytest.mark.slow
def test_export_equals_the_training_checkpoint(ci_config, tmp_path, fast_compile):
  del fast_compile
  workdir, out = str(tmp_path / 'run'), str(tmp_path / 'export')
  ci_config.train.num_steps = 2
  ci_config.train.log_every = 2
  ci_config.train.checkpoint_every = 2
  ci_config.train.eval_every = 2
  state = trainer.train_and_evaluate(ci_config, workdir)

  proc = _run_export(f'--workdir={workdir}', f'--out={out}')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'exported step 2' in proc.stdout
  assert checkpointing.is_export(out)
  # Params only: the optimizer state stays behind.
  assert sorted(os.listdir(out)) == [checkpointing.EXPORT_CONFIG, checkpointing.EXPORT_PARAMS]

  manager = checkpointing.create_manager(workdir, read_only=True)
  trained = checkpointing.restore(manager, 2, state)['params']
  manager.close()
  exported = checkpointing.restore_export_params(out, trained)
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(trained), jax.device_get(exported))

  # The model is rebuilt from the export's own config.json (not the test's config) and gives the same outputs.
  export_config = config_lib.config_from_dict(checkpointing.load_export_config(out))
  # Equal up to JSON's types (tuples come back as lists).
  assert json.loads(export_config.to_json()) == json.loads(ci_config.to_json())
  export_graphdef, _ = models.split_params(nnx.eval_shape(lambda: models.create(export_config)))
  train_graphdef, _ = models.split_params(nnx.eval_shape(lambda: models.create(ci_config)))
  batch = next(synthetic_data.synthetic_batches(ci_config, 2, seed=7))
  masks = np.stack([batch[batch_spec.PRESENCE] * batch[batch_spec.SELECT],
                    batch_spec.complement(batch[batch_spec.PRESENCE], batch[batch_spec.SELECT])], axis=1)
  codes_t, audio_t = _encode_decode(train_graphdef, trained, batch[batch_spec.MIXTURE], masks)
  codes_e, audio_e = _encode_decode(export_graphdef, exported, batch[batch_spec.MIXTURE], masks)
  np.testing.assert_array_equal(codes_t, codes_e)
  np.testing.assert_array_equal(audio_t, audio_e)
  assert audio_e.shape == (2, 2, ci_config.data.segment_length, ci_config.data.channels)
  assert np.abs(audio_e).max() > 0

  # Exporting again over an existing export is allowed (same folder, newer step).
  assert export.export(workdir, out) == 2


@pytest.mark.parametrize('workdir,out,message', [
    ('missing', 'e1', 'does not exist'),
    ('.', 'e2', 'no checkpoints in'),
    ('empty', 'e3', 'no finished checkpoint'),
    ('empty', '.', 'not an export'),
])
def test_export_refuses_with_a_clear_message(tmp_path, workdir, out, message):
  (tmp_path / 'empty' / 'checkpoints').mkdir(parents=True)
  with pytest.raises(errors.UserError, match=message):
    export.export(str(tmp_path / workdir), str(tmp_path / out))
  assert not any((tmp_path / name).exists() for name in ('e1', 'e2', 'e3'))


def test_export_cli_errors_are_one_line(tmp_path):
  line = _one_error_line(_run_export(f'--workdir={tmp_path / "missing"}', f'--out={tmp_path / "out"}'))
  assert 'does not exist' in line
  assert '--workdir is required' in _one_error_line(_run_export(f'--out={tmp_path / "out"}'))


# Checkpoints and exports written by earlier code, with the separation of a fixed input by that code: today's code
# must restore them and give the same codes and audio. ci_workdir_v1 (2 steps) predates residual units, FSQ and the
# config fields added since; ci_fsq_workdir_v2 (tests/fixtures/write_fixture.py) has FSQ, residual units and
# codes_per_source, and an export.
_FIXTURES = os.path.join(REPO, 'tests', 'fixtures')


@pytest.mark.parametrize('path, outputs', [
    ('ci_workdir_v1', 'ci_workdir_v1_outputs.npz'),
    ('ci_fsq_workdir_v2/workdir', 'ci_fsq_workdir_v2/outputs.npz'),
    ('ci_fsq_workdir_v2/export', 'ci_fsq_workdir_v2/outputs.npz'),
])
def test_workdirs_and_exports_of_earlier_code_restore_with_identical_outputs(path, outputs):
  expected = np.load(os.path.join(_FIXTURES, outputs))
  window = int(expected['window']) if 'window' in expected else None
  separator = inference.load(os.path.join(_FIXTURES, path), window=window)
  stems, codes = separator.separate(expected['mixture'], return_codes=True)
  np.testing.assert_array_equal(codes, expected['codes'])
  np.testing.assert_allclose(stems, expected['stems'], rtol=0, atol=1e-6)
