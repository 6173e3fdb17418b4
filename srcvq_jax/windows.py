"""Windowed inference's plan: where the fixed-size windows of a track lie and how their outputs are weighted.

Full tracks of any length run in fixed-size windows, batched (one compiled shape per window length and batch):

  window k:  |<- margin ->|<- fade ->|<---------- 1 ---------->|<- fade ->|<- margin ->|
  weight:          0        sin^2 up                               cos^2 down     0
  hop = window - 2 * margin - fade, so the ramps of neighbouring windows overlap exactly and sum to 1.

The first window starts at sample 0 and the last one ends at the track end (padded only to a multiple of the
model's stride), and neither fades at that true edge. The model is local: every output sample depends on the input
within its receptive field (convolutions, per-frame quantizer and 1x1 layers), and `margin` covers that field, so
every sample with a non-zero weight is exactly what one model call on the whole track gives, and the cross-fade
averages equal values. Chunked inference therefore equals one-shot inference up to float rounding, for any length
and any window size (tests/inference_test.py checks it); the window size is a speed/memory knob only. The
cross-fade only matters for a future non-local model (e.g. with attention), where it hides window seams.
A track no longer than one window runs as one call of its own (stride-padded) length.
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np


@dataclasses.dataclass(frozen=True)
class WindowPlan:
  """Where the windows of one track lie and how their outputs are weighted.

  Attributes:
    length: padded track length in samples (a multiple of the stride; >= the true length).
    window: samples per window (== length when the track fits in one window).
    starts: int [n] first sample of each window (multiples of the stride).
    margin: samples at a cut window edge whose output is discarded (weight 0).
    fade: samples of the cross-fade ramp after the margin.
    stride: the model's total stride.
  """
  length: int
  window: int
  starts: np.ndarray
  margin: int
  fade: int
  stride: int

  @property
  def num_windows(self) -> int:
    return len(self.starts)

  def _raw_weight(self, k: int) -> np.ndarray:
    """Weight of window k before normalization: zeros over the margins, sin^2 ramps, ones (no ramp at true edges)."""
    weight = np.ones(self.window, np.float32)
    ramp = np.sin(0.5 * np.pi * (np.arange(self.fade) + 0.5) / self.fade).astype(np.float32) ** 2
    if self.starts[k] > 0:
      weight[:self.margin] = 0.0
      weight[self.margin:self.margin + self.fade] = ramp
    if self.starts[k] + self.window < self.length:
      weight[self.window - self.margin:] = 0.0
      weight[self.window - self.margin - self.fade:self.window - self.margin] = ramp[::-1]
    return weight

  @functools.cached_property
  def _total_weight(self) -> np.ndarray:
    total = np.zeros(self.length, np.float32)
    for k, start in enumerate(self.starts):
      total[start:start + self.window] += self._raw_weight(k)
    return total

  def weight(self, k: int) -> np.ndarray:
    """float32 [window] overlap-add weight of window k; over all windows they sum to 1 at every sample."""
    start = self.starts[k]
    raw = self._raw_weight(k)
    total = self._total_weight[start:start + self.window]
    return np.divide(raw, total, out=np.zeros_like(raw), where=raw > 0)

  def owned_frames(self, k: int) -> tuple[int, int]:
    """Global frames [first, last) whose codes window k provides: split halfway through each cross-fade."""

    def boundary(j):  # between window j - 1 and window j, in frames
      if j == 0:
        return 0
      if j == self.num_windows:
        return self.length // self.stride
      exact_from = self.starts[j] + self.margin                    # window j is exact from here ...
      exact_until = self.starts[j - 1] + self.window - self.margin  # ... and window j - 1 until here
      return (exact_from + exact_until) // 2 // self.stride

    return boundary(k), boundary(k + 1)


def plan_windows(num_samples: int, window: int, margin: int, fade: int, stride: int) -> WindowPlan:
  """Windows covering `num_samples` samples (see the module docstring).

  Args:
    num_samples: track length (>= 1).
    window: samples per window; a multiple of `stride` with window - 2 * margin - fade >= stride.
    margin: receptive-field margin in samples (multiple of `stride`).
    fade: cross-fade length in samples (multiple of `stride`, >= 1).
    stride: the model's total stride.

  Returns:
    The WindowPlan.
  """
  length = max(-(-num_samples // stride), 1) * stride
  if length <= window:
    return WindowPlan(length, length, np.zeros(1, np.int64), margin, fade, stride)
  hop = window - 2 * margin - fade
  if hop < stride or window % stride or margin % stride or fade % stride:
    raise ValueError(f'window {window}, margin {margin}, fade {fade}: need multiples of the stride {stride} and '
                     'window - 2 * margin - fade >= stride')
  starts = list(range(0, length - window, hop))
  starts.append(length - window)  # the last window ends at the (padded) track end
  return WindowPlan(length, window, np.asarray(starts, np.int64), margin, fade, stride)
