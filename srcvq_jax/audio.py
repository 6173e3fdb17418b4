"""Audio utilities, NumPy unless said: resampling by any ratio (scipy), channel mapping, and the integer-ratio
decimation of the TFDS pipeline (the anti-alias filter's design in NumPy, the filter-and-keep step in TensorFlow,
inside tf.data; TensorFlow is imported when that is called). Training crops and whole evaluation tracks use the
same decimation filter."""
from __future__ import annotations

import math

import numpy as np


def resample(audio: np.ndarray, from_rate: int, to_rate: int, axis: int = -2) -> np.ndarray:
  """Polyphase resampling (scipy.signal.resample_poly, Kaiser anti-alias filter) by to_rate / from_rate.

  Args:
    audio: float array with time along `axis` (default: [..., T, C]).
    from_rate: samples per second of `audio`.
    to_rate: samples per second wanted.
    axis: the time axis.

  Returns:
    float32 audio with ceil(T * to_rate / from_rate) samples along `axis` (the input itself when the rates match).
  """
  from_rate, to_rate = int(from_rate), int(to_rate)
  if from_rate == to_rate:
    return np.asarray(audio, np.float32)
  from scipy import signal  # pylint: disable=g-import-not-at-top

  g = math.gcd(from_rate, to_rate)
  return signal.resample_poly(np.asarray(audio, np.float32), to_rate // g, from_rate // g,
                              axis=axis).astype(np.float32)


def match_channels(audio: np.ndarray, channels: int) -> np.ndarray:
  """[..., T, C_in] -> [..., T, channels]: mono is duplicated, stereo downmixed to mono by the mean."""
  have = audio.shape[-1]
  if have == channels:
    return audio
  if have == 1:
    return np.repeat(audio, channels, axis=-1)
  if channels == 1:
    return audio.mean(axis=-1, keepdims=True)
  raise ValueError(f'cannot map {have} channels to {channels}')


def lowpass_taps(ratio: int, zero_crossings: int = 32, rolloff: float = 0.9, beta: float = 8.6) -> np.ndarray:
  """Anti-alias filter for decimation by `ratio`: a Kaiser-windowed sinc with unit DC gain.

  The cutoff is rolloff x the output Nyquist frequency; with 32 zero crossings per side the transition band
  (~0.04 x the input rate) ends below the output Nyquist frequency, so aliasing is attenuated by the window's
  ~80 dB stopband.

  Args:
    ratio: input rate / output rate (>= 2).
    zero_crossings: zero crossings of the sinc per side, in output samples (length of the filter).
    rolloff: cutoff as a fraction of the output Nyquist frequency.
    beta: Kaiser window shape (8.6 ~ 80 dB stopband).

  Returns:
    float32 [2 * zero_crossings * ratio + 1] taps, symmetric.
  """
  half = zero_crossings * ratio
  n = np.arange(-half, half + 1)
  cutoff = rolloff / (2.0 * ratio)  # cycles per input sample
  taps = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(2 * half + 1, beta)
  return (taps / taps.sum()).astype(np.float32)


def decimate(audio, taps: np.ndarray, ratio: int):
  """Low-pass filters and keeps every ratio-th sample: [..., L, C] -> [..., (L - len(taps)) // ratio + 1, C].

  All axes but time must be static. The rows go to the channel axis of one strided depthwise convolution ('VALID':
  no edge effects), faster on CPU than a single-channel conv1d over rows in the batch axis. Time is the second
  spatial axis, the first has size 1, and both strides are `ratio`: TensorFlow's Eigen depthwise kernel (the one
  that runs where oneDNN is off, e.g. on CPUs without AVX-512) accepts only equal strides, and a stride on a
  size-1 axis with a height-1 filter keeps its one row, so both kernels compute the same thing.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  rank = audio.shape.rank
  lead, channels = audio.shape[:-2].as_list(), audio.shape[-1]
  rows = int(np.prod(lead, dtype=np.int64)) * channels
  time_first = [rank - 2] + list(range(rank - 2)) + [rank - 1]  # [..., L, C] -> [L, ..., C]
  x = tf.reshape(tf.transpose(audio, time_first), [1, 1, -1, rows])
  kernel = tf.tile(tf.constant(taps)[None, :, None, None], [1, 1, rows, 1])
  y = tf.nn.depthwise_conv2d(x, kernel, strides=[1, ratio, ratio, 1], padding='VALID')
  y = tf.reshape(y, [-1] + lead + [channels])
  return tf.transpose(y, list(range(1, rank - 1)) + [0, rank - 1])
