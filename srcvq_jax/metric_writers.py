"""Metrics out: TensorBoard event files (tensorboardX, no TensorFlow), a JSON line per write, a console line.

Only process 0 writes files; every process may call the methods. Keys use slashes ('train/loss').
"""
from __future__ import annotations

import json
import os
import time

import numpy as np
from absl import logging


class MetricWriter:
  """Writes scalars/audio to WORKDIR/tensorboard and WORKDIR/metrics.jsonl (process 0 only)."""

  def __init__(self, workdir: str, *, enabled: bool = True):
    self._enabled = enabled
    self._summary = None
    self._jsonl = None
    if enabled:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      os.makedirs(workdir, exist_ok=True)
      self._summary = SummaryWriter(os.path.join(workdir, 'tensorboard'))
      self._jsonl = open(os.path.join(workdir, 'metrics.jsonl'), 'a', encoding='utf-8')

  def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
    if not self._enabled:
      return
    scalars = {k: float(v) for k, v in scalars.items()}
    for key, value in scalars.items():
      self._summary.add_scalar(key, value, step)
    self._jsonl.write(json.dumps({'step': int(step), 'time': time.time(), **scalars}) + '\n')
    self._jsonl.flush()

  def write_audio(self, step: int, clips: dict[str, np.ndarray], sample_rate: int) -> None:
    """clips: name -> [T, C] float waveform in [-1, 1]."""
    if not self._enabled:
      return
    for name, clip in clips.items():
      clip = np.clip(np.asarray(clip, np.float32), -1, 1)
      self._summary.add_audio(name, clip.mean(axis=-1) if clip.ndim == 2 else clip, step,
                              sample_rate=sample_rate)

  def write_text(self, name: str, text: str, step: int = 0) -> None:
    if self._enabled:
      self._summary.add_text(name, text, step)

  def flush(self) -> None:
    if self._enabled:
      self._summary.flush()

  def close(self) -> None:
    if self._enabled:
      self._summary.close()
      self._jsonl.close()
      self._enabled = False


def format_console(step: int, num_steps: int, scalars: dict[str, float], keys) -> str:
  """One console line: 'step 100/4000 (2.5%) | loss 0.123 | ...' with the chosen keys."""
  parts = [f'step {step}/{num_steps} ({100.0 * step / max(num_steps, 1):.1f}%)']
  for key in keys:
    if key in scalars:
      parts.append(f'{key.removeprefix("train/")} {scalars[key]:.4g}')
  return ' | '.join(parts)


def log(message: str) -> None:
  logging.info('%s', message)
