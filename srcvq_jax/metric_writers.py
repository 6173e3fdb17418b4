"""Metrics out: TensorBoard event files (tensorboardX, no TensorFlow), a JSON line per write, a console line.

Only process 0 writes files; every process may call the methods. Keys use slashes ('train/loss').
Events are written in the calling thread (tensorboardX's EventsWriter, not its SummaryWriter): a failed write (a
full disk) raises here, where the loop can stop with one line. SummaryWriter writes from a thread of its own,
which dies on an OSError; its bounded queue then fills and the training loop blocks forever on the next scalar.
The workdir may be local or a URL that etils.epath opens (gs://bucket/run on a TPU VM): object stores cannot
append, so there metrics.jsonl is rewritten whole at each write (a 300k-step run logs ~3k lines), and
TensorBoard events need `google-cloud-storage` (tensorboardX's GCS writer); without it only metrics.jsonl is
written, with a warning.
"""
from __future__ import annotations

import importlib.util
import json
import os
import time

import numpy as np
from absl import logging
from etils import epath

from srcvq_jax.checkpointing import is_local  # a module-level name: tests patch it to act as a URL


def _gcs_client_installed() -> bool:
  try:
    return importlib.util.find_spec('google.cloud.storage') is not None
  except ModuleNotFoundError:  # no google.cloud namespace at all
    return False


class MetricWriter:
  """Writes scalars/audio to WORKDIR/tensorboard and WORKDIR/metrics.jsonl (process 0 only)."""

  def __init__(self, workdir: str, *, enabled: bool = True):
    self._enabled = enabled
    self._summary = None
    self._jsonl = None
    self._remote_lines = None  # metrics.jsonl lines, kept in memory for a workdir that cannot append
    if enabled:
      directory = epath.Path(workdir)
      directory.mkdir(parents=True, exist_ok=True)
      self._jsonl_path = directory / 'metrics.jsonl'
      if is_local(workdir):
        self._jsonl = self._jsonl_path.open('a', encoding='utf-8')
      else:
        self._remote_lines = self._jsonl_path.read_text().splitlines() if self._jsonl_path.exists() else []
      if is_local(workdir) or _gcs_client_installed():
        from tensorboardX import event_file_writer  # pylint: disable=g-import-not-at-top
        events_dir = str(directory / 'tensorboard')
        if is_local(workdir):
          os.makedirs(events_dir, exist_ok=True)
        self._summary = event_file_writer.EventsWriter(os.path.join(events_dir, 'events'))
      else:
        logging.warning('no TensorBoard events for %s: tensorboardX writes gs:// only with google-cloud-storage '
                        '(pip install google-cloud-storage); metrics.jsonl is written', workdir)

  def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
    if not self._enabled:
      return
    scalars = {k: float(v) for k, v in scalars.items()}
    if self._summary is not None:
      from tensorboardX import summary  # pylint: disable=g-import-not-at-top
      for key, value in scalars.items():
        self._add(summary.scalar(key, value), step, flush=False)
      self._summary.flush()
    line = json.dumps({'step': int(step), 'time': time.time(), **scalars})
    if self._remote_lines is None:
      self._jsonl.write(line + '\n')
      self._jsonl.flush()
    else:
      self._remote_lines.append(line)
      self._jsonl_path.write_text('\n'.join(self._remote_lines) + '\n')

  def write_audio(self, step: int, clips: dict[str, np.ndarray], sample_rate: int) -> None:
    """clips: name -> [T, C] float waveform in [-1, 1]."""
    if not self._enabled or self._summary is None:
      return
    from tensorboardX import summary  # pylint: disable=g-import-not-at-top
    for name, clip in clips.items():
      clip = np.clip(np.asarray(clip, np.float32), -1, 1)
      self._add(summary.audio(name, clip.mean(axis=-1) if clip.ndim == 2 else clip, sample_rate=sample_rate),
                step)

  def write_text(self, name: str, text: str, step: int = 0) -> None:
    if self._enabled and self._summary is not None:
      from tensorboardX import summary  # pylint: disable=g-import-not-at-top
      self._add(summary.text(name, text), step)

  def _add(self, summary_proto, step: int, *, flush: bool = True) -> None:
    from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
    self._summary.write_event(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary_proto))
    if flush:
      self._summary.flush()

  def flush(self) -> None:
    if self._enabled and self._summary is not None:
      self._summary.flush()

  def close(self) -> None:
    if self._enabled:
      if self._summary is not None:
        self._summary.close()
      if self._jsonl is not None:
        self._jsonl.close()
      self._enabled = False


def format_console(step: int, num_steps: int, scalars: dict[str, float], keys) -> str:
  """One console line: 'step 100/4000 (2.5%) | loss 0.123 | ...' with the chosen keys."""
  parts = [f'step {step}/{num_steps} ({100.0 * step / max(num_steps, 1):.1f}%)']
  for key in keys:
    if key in scalars:
      parts.append(f'{key.removeprefix("train/")} {scalars[key]:.4g}')
  return ' | '.join(parts)

