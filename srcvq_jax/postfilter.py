"""An optional separation post-filter that reads the input mixture: the slots' estimates as soft spectral masks.

The codes alone decode each source (`Separator.separate`); that is what compression, editing and the prior use.
For separation only, a user who has the mixture can do better on some sources by keeping the mixture's own bins
and phase and taking from the slots only each bin's share: the masks |slot i| / sum_j |slot j| (the slots'
magnitude spectra; Open-Unmix and Demucs offer the like, with power spectra, as a Wiener post-filter). On
validation, magnitudes beat power spectra and a 4096-sample window beat 2048 (docs/results.md, "Post-filter on
configs/best.py").
The masks of the S slots sum to 1, so masking every source splits the mixture exactly; a source not named keeps its slot's decode. Which sources gain is
measured on validation (scripts/estimators.py, docs/results.md), not assumed.

Exactness of streamed separation: a sample's masked value depends on the STFT frames covering it, i.e. on
CONTEXT_SAMPLES of audio either side, and on where the frames fall: a block passes its first sample's position in
the track (`offset`), and its frames are laid on the track's grid (centres at multiples of the hop).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

N_FFT = 4096  # ~186 ms at 22.05 kHz, the model's rate
HOP = 1024
POWER = 1.0  # masks from the slots' magnitude spectra (2 would be Wiener's power ratio)
# Samples at the model's rate either side of a sample that its masked value depends on: the frames whose window
# covers the sample, and those frames' own reach.
CONTEXT_SAMPLES = N_FFT
_EPS = 1e-10


def parse_sources(spec: str | Sequence[str] | None, sources: Sequence[str]) -> tuple[bool, ...]:
  """Which slots to mask, from 'vocals,other' / 'all' / '' (none) or a sequence of names.

  Raises:
    ValueError: a name that is not one of `sources` (the message lists them).
  """
  if spec is None:
    return (False,) * len(sources)
  if isinstance(spec, str):
    names = [name.strip() for name in spec.split(',') if name.strip()]
  else:
    names = list(spec)
  if names == ['all']:
    return (True,) * len(sources)
  unknown = [name for name in names if name not in sources]
  if unknown:
    raise ValueError(f'masked sources {",".join(unknown)}: not a source of this model '
                     f'(expected "all" or names from {",".join(sources)})')
  return tuple(source in names for source in sources)


def mask_with_mixture(estimates: np.ndarray, mixture: np.ndarray, masked: Sequence[bool], *, offset: int = 0,
                      n_fft: int = N_FFT, hop: int = HOP, power: float = POWER) -> np.ndarray:
  """The slots' estimates [S, T, C] with the `masked` ones replaced by the mixture [T, C] under their soft masks.

  Masks are computed from all S estimates (each bin's energy shared in proportion to the slots'), so masking every
  source returns estimates that sum to the mixture (up to the STFT's round trip). `offset`: the position of the
  arrays' first sample in the whole track (a streamed block's), so that the frames fall where the track's do.
  power: the masks are |slot i|^power / sum_j |slot j|^power (1: magnitudes; 2: power spectra, Wiener's ratio).
  """
  from scipy import signal  # pylint: disable=g-import-not-at-top

  masked = np.asarray(masked, bool)
  if not masked.any():
    return estimates
  num_samples = mixture.shape[0]
  # Zeros in front put the frame centres on the track's multiples of the hop; they are cropped off at the end.
  lead = int(offset) % hop
  estimates_in = np.pad(estimates, ((0, 0), (lead, 0), (0, 0)))
  mixture = np.pad(mixture, ((lead, 0), (0, 0)))
  def stft(x):  # [..., T] -> [..., F, frames]
    return signal.stft(x, nperseg=n_fft, noverlap=n_fft - hop, boundary='zeros', padded=True)[2]
  sources_spec = stft(np.moveaxis(estimates_in, 1, -1).astype(np.float64))  # [S, C, F, frames]
  mixture_spec = stft(mixture.T.astype(np.float64))  # [C, F, frames]
  weight = np.abs(sources_spec) ** power
  # The small floor splits a bin every slot leaves silent equally instead of dividing 0 by 0.
  masks = (weight[masked] + _EPS / len(weight)) / (weight.sum(axis=0, keepdims=True) + _EPS)
  filtered = signal.istft(masks * mixture_spec[None], nperseg=n_fft, noverlap=n_fft - hop, boundary=True)[1]
  filtered = filtered[..., lead:lead + num_samples]
  filtered = np.pad(filtered, [(0, 0)] * (filtered.ndim - 1) + [(0, num_samples - filtered.shape[-1])])
  out = np.array(estimates, np.float32, copy=True)
  out[masked] = np.moveaxis(filtered, -1, 1)
  return out
