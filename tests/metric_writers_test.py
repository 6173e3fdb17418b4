"""MetricWriter: metrics.jsonl on local disks (append) and on object stores (no append: rewritten whole)."""
import json

from srcvq_jax import metric_writers


def _steps(path):
  return [json.loads(line)['step'] for line in path.read_text().splitlines()]


def test_local_workdir_appends_across_writers(tmp_path):
  for steps in ([1, 2], [3]):  # a second writer is a resumed run
    writer = metric_writers.MetricWriter(str(tmp_path))
    for step in steps:
      writer.write_scalars(step, {'train/loss': 1.0 / step})
    writer.close()
  assert _steps(tmp_path / 'metrics.jsonl') == [1, 2, 3]
  assert any((tmp_path / 'tensorboard').iterdir())


def test_workdir_without_append_keeps_every_line(tmp_path, monkeypatch):
  # What a gs:// workdir goes through (etils.epath, no append, no GCS client installed), on a local folder.
  monkeypatch.setattr(metric_writers, 'is_local', lambda path: False)
  monkeypatch.setattr(metric_writers, '_gcs_client_installed', lambda: False)
  for steps in ([1, 2], [3]):
    writer = metric_writers.MetricWriter(str(tmp_path / 'run'))
    for step in steps:
      writer.write_scalars(step, {'train/loss': 1.0 / step})
    writer.write_text('config', 'text')  # no TensorBoard writer: a no-op, not an error
    writer.flush()
    writer.close()
  assert _steps(tmp_path / 'run' / 'metrics.jsonl') == [1, 2, 3]
  assert not (tmp_path / 'run' / 'tensorboard').exists()
