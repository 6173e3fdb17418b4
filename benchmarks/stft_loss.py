"""STFT-magnitude L1 loss (n_fft 2048, hop 512, Hann): srcvq_jax's jnp.fft version vs alternatives.

Batch (4, 2, 6 s) of 44.1 kHz audio, prediction and target, loss = mean | |STFT(pred)| - |STFT(target)| | with
no gradient through the target (srcvq_jax.losses.stft_l1). Implementations, timed interleaved (common.py):
  jax_fft        srcvq_jax.losses.stft_l1 (frames -> jnp.fft.rfft), jitted
  jax_fourstep   the same magnitudes from a "four-step" FFT written as two matmuls (n_fft = N1 x N2; a DFT of
                 length N1 over the strided axis, twiddles, a DFT of length N2 over the contiguous axis, only the
                 N2 / 2 + 1 outputs real input needs): ~0.8 MFLOP per frame in GEMMs instead of an FFT call
  jax_dft        one matmul with a precomputed [n_fft, 2 x (n_fft / 2 + 1)] windowed DFT basis (8.4 MFLOP/frame)
                 (both matmul forms were candidates to replace spectral.stft_magnitude; on the 2-core CPU they
                 measured 2.5-3x and 7-10x slower than jnp.fft, so the FFT stays)
  torch_Nt       torch.stft (eager, N intra-op threads), same conventions (center, zero padding, periodic Hann)
  librosa        librosa.stft magnitudes of both signals (NumPy, forward only)
Forward (loss value) and forward+backward (loss and d loss / d prediction) are reported; every implementation's
loss is checked against jax_fft.

  python -m benchmarks.stft_loss [--seconds 6] [--repeats 10]
"""
from __future__ import annotations

import argparse
import functools
import math
import os

import numpy as np

from benchmarks import common
from srcvq_jax import cli

SAMPLE_RATE = 44100


# --- Candidate JAX STFT magnitudes (same signature and output as srcvq_jax.spectral.stft_magnitude) --------------


def _split(n_fft: int) -> tuple[int, int]:
  """n_fft = n1 x n2 with n1 <= n2 as close as possible (n1 * n2 == n_fft)."""
  n1 = 2 ** int(math.log2(n_fft) // 2) if n_fft & (n_fft - 1) == 0 else 1
  while n_fft % n1:
    n1 //= 2
  return n1, n_fft // n1


@functools.lru_cache(maxsize=None)
def _fourstep_constants(n_fft: int):
  """Stage-1 basis [N1, 2 N1] (window folded in per row, see below), twiddles [N1, N2] (re, im), stage-2 basis."""
  n1, n2 = _split(n_fft)
  k1 = np.arange(n1)
  # Stage 1: DFT of length N1 over n1 for index n = N2 n1 + n2 (the strided axis), all k1.
  angle1 = -2 * np.pi * np.outer(np.arange(n1), k1) / n1  # [n1, k1]
  basis1 = np.concatenate([np.cos(angle1), np.sin(angle1)], axis=1)  # [N1, 2 N1]
  # Twiddles e^{-2 pi i n2 k1 / N}, laid out [k1, n2].
  angle_t = -2 * np.pi * np.outer(k1, np.arange(n2)) / n_fft
  # Stage 2: DFT of length N2 over n2 for k2 in 0..N2/2 (k = k1 + N1 k2 <= n_fft / 2 needs no more).
  half = n2 // 2 + 1
  angle2 = -2 * np.pi * np.outer(np.arange(n2), np.arange(half)) / n2  # [n2, k2]
  cos2, sin2 = np.cos(angle2), np.sin(angle2)
  # Complex product (a + ib)(c + id) as one real matmul: [re | im] @ [[c, d], [-d, c]].
  basis2 = np.block([[cos2, sin2], [-sin2, cos2]])  # [2 N2, 2 half]
  return (n1, n2, basis1.astype(np.float32), np.cos(angle_t).astype(np.float32),
          np.sin(angle_t).astype(np.float32), basis2.astype(np.float32))


def fourstep_stft_magnitude(x, n_fft: int, hop: int, eps: float = 0.0):
  """|STFT| [..., T] -> [..., frames, n_fft // 2 + 1] via two GEMMs (power-of-two n_fft); = spectral.stft_magnitude."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from srcvq_jax import spectral  # pylint: disable=g-import-not-at-top
  n1, n2, basis1, cos_t, sin_t, basis2 = _fourstep_constants(n_fft)
  frames = spectral.frame(x, n_fft, hop) * spectral.hann_window(n_fft)  # [..., F, N]
  lead = frames.shape[:-1]
  grid = frames.reshape(*lead, n1, n2)  # [..., n1, n2], n = N2 n1 + n2
  stage1 = jnp.einsum('...ab,ak->...kb', grid, basis1)  # [..., 2 N1 (re k1 | im k1), N2]
  re, im = stage1[..., :n1, :], stage1[..., n1:, :]
  tw_re = re * cos_t - im * sin_t
  tw_im = re * sin_t + im * cos_t
  stage2 = jnp.concatenate([tw_re, tw_im], axis=-1) @ basis2  # [..., k1, 2 half]
  half = n2 // 2 + 1
  power = stage2[..., :half] ** 2 + stage2[..., half:] ** 2  # [..., k1, k2]
  # k = k1 + N1 k2: [k2, k1] flattened is the natural bin order; k2 = N2 / 2 is only needed for k1 = 0 (Nyquist).
  ordered = jnp.swapaxes(power[..., :half - 1], -1, -2).reshape(*lead, n1 * (half - 1))
  power = jnp.concatenate([ordered, power[..., 0, half - 1:]], axis=-1)
  return jnp.sqrt(power + eps)


@functools.lru_cache(maxsize=None)
def _dft_basis(n_fft: int) -> np.ndarray:
  from srcvq_jax import spectral  # pylint: disable=g-import-not-at-top
  angle = -2 * np.pi * np.outer(np.arange(n_fft), np.arange(n_fft // 2 + 1)) / n_fft
  window = spectral.hann_window(n_fft)[:, None]
  return np.concatenate([window * np.cos(angle), window * np.sin(angle)], axis=1).astype(np.float32)


def dft_stft_magnitude(x, n_fft: int, hop: int, eps: float = 0.0):
  """|STFT| via one matmul with the windowed DFT basis [n_fft, 2 (n_fft / 2 + 1)]."""
  from srcvq_jax import spectral  # pylint: disable=g-import-not-at-top
  spec = spectral.frame(x, n_fft, hop) @ _dft_basis(n_fft)
  bins = n_fft // 2 + 1
  return (spec[..., :bins] ** 2 + spec[..., bins:] ** 2 + eps) ** 0.5


def jax_stft_l1(magnitude_fn):
  """losses.stft_l1 with `magnitude_fn` in place of spectral.stft_magnitude: [..., T, C] waveforms."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from srcvq_jax import losses  # pylint: disable=g-import-not-at-top

  def loss(prediction, target, n_fft, hop):
    def magnitude(x):
      return magnitude_fn(jnp.swapaxes(x, -1, -2), n_fft, hop, eps=losses._MAGNITUDE_EPS)  # pylint: disable=protected-access
    return jnp.mean(jnp.abs(magnitude(prediction) - magnitude(jax.lax.stop_gradient(target))))
  return loss


# --- Benchmark ----------------------------------------------------------------------------------------------------


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--seconds', type=float, default=6.0)
  parser.add_argument('--batch', type=int, default=4)
  parser.add_argument('--n_fft', type=int, default=2048)
  parser.add_argument('--hop', type=int, default=512)
  parser.add_argument('--repeats', type=int, default=10)
  parser.add_argument('--skip', default='', help='comma-separated implementations to leave out')
  args = parser.parse_args()

  import jax  # pylint: disable=g-import-not-at-top
  from srcvq_jax import losses  # pylint: disable=g-import-not-at-top

  length = int(args.seconds * SAMPLE_RATE)
  n_fft, hop = args.n_fft, args.hop
  rng = np.random.default_rng(0)
  # [B, C, T] signals; the JAX loss takes the model's [B, T, C] layout.
  target = (0.1 * rng.standard_normal((args.batch, 2, length))).astype(np.float32)
  prediction = (target + 0.05 * rng.standard_normal(target.shape)).astype(np.float32)
  device = jax.devices()[0]
  jp, jt = (jax.device_put(np.ascontiguousarray(a.transpose(0, 2, 1)), device) for a in (prediction, target))
  config = f'batch ({args.batch}, 2, {args.seconds:g} s), n_fft {n_fft}, hop {hop}'
  skip = set(filter(None, args.skip.split(',')))

  jax_losses = {'jax_fft': functools.partial(losses.stft_l1, n_fft=n_fft, hop=hop),
                'jax_fourstep': functools.partial(jax_stft_l1(fourstep_stft_magnitude), n_fft=n_fft, hop=hop),
                'jax_dft': functools.partial(jax_stft_l1(dft_stft_magnitude), n_fft=n_fft, hop=hop)}
  forward, backward, values = {}, {}, {}
  for name, fn in jax_losses.items():
    if name in skip:
      continue
    fwd = jax.jit(fn)
    both = jax.jit(jax.value_and_grad(fn))
    forward[name] = functools.partial(fwd, jp, jt)
    backward[name] = functools.partial(both, jp, jt)
    values[name] = float(fwd(jp, jt))

  torch = common.torch_or_none()
  if torch is not None and 'torch' not in skip:
    from benchmarks import torch_reference  # pylint: disable=g-import-not-at-top
    window = torch.hann_window(n_fft, periodic=True)
    tt = torch.from_numpy(target)

    def torch_forward():
      with torch.no_grad():
        return torch_reference.stft_l1(torch.from_numpy(prediction), tt, n_fft, hop, window)

    def torch_backward():
      tp = torch.from_numpy(prediction).requires_grad_()
      loss = torch_reference.stft_l1(tp, tt, n_fft, hop, window)
      loss.backward()
      return loss.detach(), tp.grad

    def with_threads(fn, threads):
      # Interleaved thread counts (see train_step.TorchStep: on a loaded machine 1 thread can beat 2).
      def call():
        torch.set_num_threads(threads)
        return fn()
      return call

    for threads in sorted({1, os.cpu_count() or 1}):
      name = f'torch_{threads}t'
      forward[name], backward[name] = with_threads(torch_forward, threads), with_threads(torch_backward, threads)
      values[name] = float(torch_forward())

  if 'librosa' not in skip:
    import librosa  # pylint: disable=g-import-not-at-top

    def librosa_forward():
      def magnitude(x):
        spec = librosa.stft(x, n_fft=n_fft, hop_length=hop, window='hann', center=True, pad_mode='constant')
        return np.sqrt(spec.real**2 + spec.imag**2 + 1e-8)
      return float(np.mean(np.abs(magnitude(prediction) - magnitude(target))))

    forward['librosa'] = librosa_forward
    values['librosa'] = librosa_forward()

  reference = values.get('jax_fft')
  for mode, fns in (('forward', forward), ('forward+backward', backward)):
    stats = common.interleaved(fns, warmup=2, repeats=args.repeats)
    base = stats.get('jax_fft', {}).get('median_ms')
    for name, s in stats.items():
      extra = {'loss': values[name]}
      if reference is not None:
        extra['loss_rel_diff_vs_jax_fft'] = abs(values[name] - reference) / abs(reference)
      if base:
        extra['speedup_vs_jax_fft'] = base / s['median_ms']
      common.emit('stft_loss', impl=f'{name} {mode}', config=config, stats=s, **extra)
  # Gradient agreement of the JAX candidates with jnp.fft (same loss => same gradient up to float32 rounding).
  grads = {name: np.asarray(fn()[1]) for name, fn in backward.items() if name.startswith('jax')}
  if 'jax_fft' in grads:
    ref = grads['jax_fft']
    for name, g in grads.items():
      if name != 'jax_fft':
        common.emit('stft_loss', impl=f'{name} gradient check', config=config, units='relative L2',
                    grad_rel_l2_vs_jax_fft=float(np.linalg.norm(g - ref) / np.linalg.norm(ref)))


if __name__ == '__main__':
  cli.relaunch_with_tcmalloc()
  main()
