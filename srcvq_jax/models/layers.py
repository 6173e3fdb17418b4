"""1-D convolution layers in two forms with one parameter layout: matmul forms for XLA:CPU and native convolutions
(`lax.conv_general_dilated`) for accelerators.

Shapes: B batch, T samples/frames, C channels. The strided layers use kernel = 2 x stride, the Demucs choice, with
the padding that maps T samples to exactly T / stride frames and back, so encoder and decoder mirror each other.
Every kernel has a direct convolution's layout, [k, Cin, Cout], whatever the form: a checkpoint trained with one form
runs with the other (tests/models_test.py checks every form against direct convolutions and against each other).
How the forms compare in speed: docs/results.md (benchmarks/train_step.py --candidates).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

_DIMENSIONS = ('NWC', 'WIO', 'NWC')


@dataclasses.dataclass(frozen=True)
class LayerForms:
  """How the layers compute, never what: every choice gives the same function of the same parameters.

  conv: 'matmul' (convolutions as matmuls: XLA:CPU runs those several times faster than its strided
    convolutions) or 'native' (lax.conv_general_dilated: what accelerators' convolution libraries are built for).
  strided, transposed: the matmul form of StridedConv ('auto' | 'blocks' | 'pairs') and of TransposedConv
    ('auto' | 'input' | 'output'); 'auto' picks by shape (see the classes).
  split_gate_max_in_features: GatedDense computes its value and gate halves as two matmuls up to this many input
    features, one matmul above (0: always one).
  weight_gradients: False gives every kernel a zero gradient: a measurement of what the weight gradients cost
    (benchmarks/train_step.py --ablations), never a model to train.
  """
  conv: str = 'matmul'
  strided: str = 'auto'
  transposed: str = 'auto'
  split_gate_max_in_features: int = 32
  weight_gradients: bool = True

  def __post_init__(self):
    for name, value, allowed in (('conv', self.conv, ('matmul', 'native')),
                                 ('strided', self.strided, ('auto', 'blocks', 'pairs')),
                                 ('transposed', self.transposed, ('auto', 'input', 'output'))):
      if value not in allowed:
        raise ValueError(f'LayerForms.{name}={value!r}: expected one of {allowed}')


MATMUL = LayerForms()
# Native convolutions, and GatedDense as one matmul: the CPU-specific splits off.
NATIVE = LayerForms(conv='native', split_gate_max_in_features=0)


def forms_for(conv_impl: str, platform: str | None = None) -> LayerForms:
  """The forms of config.model.conv_impl: 'matmul', 'native', or 'auto' (matmul on CPU, native elsewhere)."""
  if conv_impl not in ('auto', 'native', 'matmul'):  # config_lib.CONV_IMPLS
    raise ValueError(f'model.conv_impl={conv_impl!r}: expected auto, native or matmul')
  if conv_impl == 'auto':
    conv_impl = 'matmul' if (platform or jax.default_backend()) == 'cpu' else 'native'
  return MATMUL if conv_impl == 'matmul' else NATIVE


def _lecun_normal(rngs: nnx.Rngs, fan_in: int, shape) -> jax.Array:
  return jax.random.normal(rngs.params(), shape, jnp.float32) * (1.0 / fan_in) ** 0.5


@jax.custom_vjp
def _dot_without_weight_gradient(x, kernel):
  return jnp.dot(x, kernel, preferred_element_type=jnp.float32)


def _dot_forward(x, kernel):
  return _dot_without_weight_gradient(x, kernel), (x, kernel)


def _dot_backward(residuals, grad):
  x, kernel = residuals
  return jnp.dot(grad, kernel.T.astype(grad.dtype)).astype(x.dtype), jnp.zeros_like(kernel)


_dot_without_weight_gradient.defvjp(_dot_forward, _dot_backward)


def matmul(x: jax.Array, kernel: jax.Array, dtype, forms: LayerForms = MATMUL) -> jax.Array:
  """[..., Cin] @ [Cin, Cout] -> float32 [..., Cout], with the leading axes flattened into one.

  Why flatten: XLA:CPU runs the weight gradient of a dot with several contracted axes (batch and time) 2-3x
  slower than the same product as one 2-D matmul (docs/design.md).
  """
  flat = x.reshape(-1, x.shape[-1]).astype(dtype)
  if forms.weight_gradients:
    y = jnp.dot(flat, kernel.astype(dtype), preferred_element_type=jnp.float32)
  else:
    y = _dot_without_weight_gradient(flat, kernel.astype(dtype))
  return y.reshape(*x.shape[:-1], kernel.shape[-1])


def _convolve(x: jax.Array, kernel: jax.Array, dtype, **conv_args) -> jax.Array:
  """Native form: lax.conv_general_dilated over [B, T, Cin] with a [k, Cin, Cout] kernel, float32 out."""
  return jax.lax.conv_general_dilated(x.astype(dtype), kernel.astype(dtype), dimension_numbers=_DIMENSIONS,
                                      preferred_element_type=jnp.float32, **conv_args)


class Dense(nnx.Module):
  """Per-frame linear map [..., Cin] -> [..., Cout] (a 1x1 convolution), computed in `dtype`."""

  def __init__(self, in_features: int, out_features: int, *, dtype=jnp.float32, forms: LayerForms = MATMUL,
               rngs: nnx.Rngs):
    self.kernel = nnx.Param(_lecun_normal(rngs, in_features, (in_features, out_features)))
    self.bias = nnx.Param(jnp.zeros((out_features,), jnp.float32))
    self.dtype = dtype
    self.forms = forms

  def __call__(self, x: jax.Array) -> jax.Array:
    return matmul(x, self.kernel[...], self.dtype, self.forms) + self.bias[...]


class StridedConv(nnx.Module):
  """Conv1d with kernel 2s and stride s: [B, T, Cin] -> [B, T / s, Cout] (T a multiple of s).

  Equals `lax.conv_general_dilated(x, kernel, (s,), [(s // 2, s - s // 2)])`, the native form. The matmul form is a
  space-to-depth: the padded input is cut into blocks of s samples, one matmul maps every block to the two output
  frames it touches (its half-kernel as "first half" of frame t and as "second half" of frame t - 1), and the two
  halves are added. Same arithmetic as the convolution, no im2col copy (except for the 'pairs' form, below).
  """

  def __init__(self, in_channels: int, out_channels: int, stride: int, *, dtype=jnp.float32,
               forms: LayerForms = MATMUL, rngs: nnx.Rngs):
    self.stride = stride
    self.out_channels = out_channels
    self.kernel = nnx.Param(_lecun_normal(rngs, 2 * stride * in_channels, (2 * stride, in_channels, out_channels)))
    self.bias = nnx.Param(jnp.zeros((out_channels,), jnp.float32))
    self.dtype = dtype
    self.forms = forms

  def __call__(self, x: jax.Array) -> jax.Array:
    batch, length, channels = x.shape
    s, cout = self.stride, self.out_channels
    if self.forms.conv == 'native':
      return _convolve(x, self.kernel[...], self.dtype, window_strides=(s,),
                       padding=[(s // 2, s - s // 2)]) + self.bias[...]
    x = jnp.pad(x, ((0, 0), (s // 2, s - s // 2), (0, 0)))
    blocks = x.reshape(batch, length // s + 1, s * channels)
    form = self.forms.strided
    if form == 'pairs' or (form == 'auto' and s * channels < cout):
      # Few input values per block (the first layer: 4 samples x 2 channels): pairing adjacent blocks
      # ([B, T/s, 2 s Cin], an im2col) moves less data than a [B, T/s + 1, 2 Cout] product.
      pairs = jnp.concatenate([blocks[:, :-1], blocks[:, 1:]], axis=-1)
      return matmul(pairs, self.kernel[...].reshape(2 * s * channels, cout), self.dtype, self.forms) + self.bias[...]
    # [2s, Cin, Cout] -> [s*Cin, 2*Cout]: column block 0 = taps 0..s-1, column block 1 = taps s..2s-1.
    kernel = self.kernel[...].reshape(2, s * channels, cout).transpose(1, 0, 2).reshape(s * channels, 2 * cout)
    y = matmul(blocks, kernel, self.dtype, self.forms)
    return y[:, :-1, :cout] + y[:, 1:, cout:] + self.bias[...]


class TransposedConv(nnx.Module):
  """Transposed conv1d with kernel 2s and stride s: [B, T', Cin] -> [B, T' * s, Cout] (mirror of StridedConv).

  Kernel layout [2s, Cin, Cout]: tap j of frame t lands on output sample t*s + j - s//2. Native form: a convolution
  of the s-dilated input with the reversed kernel. Output block b (s samples) receives taps 0..s-1 of frame b and
  taps s..2s-1 of frame b - 1; the two equal-FLOP matmul forms differ in which moves less data:
    * 'input' (auto where Cin < s * Cout): one matmul of [x[b], x[b-1]] ([B, T'+1, 2 Cin]) with the kernel as
      [2 Cin, s Cout] gives every block directly;
    * 'output' (otherwise): one matmul gives every frame's 2s output samples, and an overlap-add puts the second
      half of frame t - 1 onto the first half of frame t.
  Then s // 2 samples are cropped at the start to undo the encoder's padding.
  """

  def __init__(self, in_channels: int, out_channels: int, stride: int, *, dtype=jnp.float32,
               forms: LayerForms = MATMUL, rngs: nnx.Rngs):
    self.stride = stride
    self.out_channels = out_channels
    self.kernel = nnx.Param(_lecun_normal(rngs, 2 * in_channels, (2 * stride, in_channels, out_channels)))
    self.bias = nnx.Param(jnp.zeros((out_channels,), jnp.float32))
    self.dtype = dtype
    self.forms = forms

  def __call__(self, x: jax.Array) -> jax.Array:
    batch, frames, channels = x.shape
    s, cout = self.stride, self.out_channels
    if self.forms.conv == 'native':
      # Full transposed output y[m] = sum_j x_dilated[m - j] k[j], m in [0, (T' + 1) s); keep m = n + s // 2.
      left = 2 * s - 1 - s // 2
      return _convolve(x, self.kernel[...][::-1], self.dtype, window_strides=(1,),
                       padding=[(left, 3 * s - 2 - left)], lhs_dilation=(s,)) + self.bias[...]
    form = self.forms.transposed
    if form == 'input' or (form == 'auto' and channels < s * cout):
      # [2s, Cin, Cout] -> [2 Cin, s*Cout]: rows 0..Cin-1 hold taps 0..s-1, rows Cin.. taps s..2s-1.
      kernel = self.kernel[...].reshape(2, s, channels, cout).transpose(0, 2, 1, 3).reshape(2 * channels, s * cout)
      pairs = jnp.concatenate([jnp.pad(x, ((0, 0), (0, 1), (0, 0))), jnp.pad(x, ((0, 0), (1, 0), (0, 0)))], axis=-1)
      blocks = matmul(pairs, kernel, self.dtype, self.forms)
    else:
      kernel = self.kernel[...].transpose(1, 0, 2).reshape(channels, 2 * s * cout)
      y = matmul(x, kernel, self.dtype, self.forms).reshape(batch, frames, 2, s * cout)
      pad = ((0, 0), (0, 1), (0, 0))
      blocks = jnp.pad(y[:, :, 0], pad) + jnp.pad(y[:, :, 1], ((0, 0), (1, 0), (0, 0)))  # [B, T'+1, s*Cout]
    out = blocks.reshape(batch, (frames + 1) * s, cout)[:, s // 2:s // 2 + frames * s]
    return out + self.bias[...]


class GatedDense(Dense):
  """Dense to 2 W features, then a gated linear unit: [..., Cin] -> [..., W] (Demucs' 1x1 conv + GLU).

  Where Cin <= forms.split_gate_max_in_features (the layers at full time resolution), the value and gate halves
  are two matmuls: their gradients then need no [..., 2 W] concatenation, a pass over the largest activations of
  the step on XLA:CPU. Same parameters (one [Cin, 2 W] kernel) and results either way.
  """

  def __call__(self, x: jax.Array) -> jax.Array:
    kernel, bias = self.kernel[...], self.bias[...]
    if kernel.shape[0] > self.forms.split_gate_max_in_features:
      return glu(matmul(x, kernel, self.dtype, self.forms) + bias)
    width = kernel.shape[1] // 2
    value = matmul(x, kernel[:, :width], self.dtype, self.forms) + bias[:width]
    gate = matmul(x, kernel[:, width:], self.dtype, self.forms) + bias[width:]
    return value * jax.nn.sigmoid(gate)


def glu(x: jax.Array) -> jax.Array:
  """Gated linear unit over the last axis (Demucs' 1x1 conv + GLU)."""
  a, b = jnp.split(x, 2, axis=-1)
  return a * jax.nn.sigmoid(b)


class DilatedConv(nnx.Module):
  """Conv1d with an odd kernel k, dilation d, stride 1 and 'same' padding: [B, T, Cin] -> [B, T, Cout].

  Native form: `lax.conv_general_dilated(..., rhs_dilation=(d,), padding=[(p, p)])` with p = d (k - 1) / 2.
  Matmul form: one matmul of the k dilated taps side by side ([B, T, k Cin], an im2col: k is small) with the
  kernel as [k Cin, Cout]. Kernel layout [k, Cin, Cout].
  """

  def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int, *, dtype=jnp.float32,
               forms: LayerForms = MATMUL, rngs: nnx.Rngs):
    if kernel_size % 2 != 1:
      raise ValueError(f'kernel_size={kernel_size}: must be odd (symmetric same padding)')
    self.kernel_size, self.dilation = kernel_size, dilation
    self.kernel = nnx.Param(_lecun_normal(rngs, kernel_size * in_channels, (kernel_size, in_channels, out_channels)))
    self.bias = nnx.Param(jnp.zeros((out_channels,), jnp.float32))
    self.dtype = dtype
    self.forms = forms

  @property
  def reach(self) -> int:
    """Frames of context on each side that one output frame depends on."""
    return self.dilation * (self.kernel_size - 1) // 2

  def __call__(self, x: jax.Array) -> jax.Array:
    pad = self.reach
    kernel = self.kernel[...]
    if self.forms.conv == 'native':
      return _convolve(x, kernel, self.dtype, window_strides=(1,), padding=[(pad, pad)],
                       rhs_dilation=(self.dilation,)) + self.bias[...]
    length = x.shape[1]
    padded = jnp.pad(x, ((0, 0), (pad, pad), (0, 0)))
    taps = jnp.concatenate([padded[:, j * self.dilation:j * self.dilation + length]
                            for j in range(self.kernel_size)], axis=-1)
    return matmul(taps, kernel.reshape(-1, kernel.shape[-1]), self.dtype, self.forms) + self.bias[...]


class GELU(nnx.Module):
  """The blocks' default nonlinearity, as a module without parameters (model.activation = 'gelu')."""

  def __call__(self, x: jax.Array) -> jax.Array:
    return jax.nn.gelu(x)


class Snake(nnx.Module):
  """x + sin(alpha x)^2 / alpha, one learned alpha per channel starting at 1 (model.activation = 'snake'): the
  periodic nonlinearity of BigVGAN and DAC, whose authors found it reproduces periodic signals (sustained tones)
  better than ReLU-like ones. [..., W] -> [..., W]."""

  def __init__(self, width: int):
    self.alpha = nnx.Param(jnp.ones((width,), jnp.float32))

  def __call__(self, x: jax.Array) -> jax.Array:
    alpha = self.alpha[...].astype(x.dtype)
    # The epsilon keeps 1 / alpha finite at alpha = 0 (DAC's form; alpha starts at 1 and is not constrained).
    return x + jnp.square(jnp.sin(alpha * x)) / (alpha + 1e-9)


ACTIVATIONS = ('gelu', 'snake')  # = config_lib.ACTIVATIONS (tests/models_test.py checks)


def activation(kind: str, width: int) -> nnx.Module:
  """The nonlinearity of model.activation for `width` channels: GELU (no parameters) or Snake (one per channel)."""
  if kind == 'gelu':
    return GELU()
  if kind == 'snake':
    return Snake(width)
  raise ValueError(f'model.activation={kind!r}: expected one of {ACTIVATIONS}')


class ResidualUnit(nnx.Module):
  """x + Dense(act(DilatedConv(act(x)))): a residual dilated-conv unit at one time resolution (the SEANet /
  DAC / Demucs v3 pattern), [B, T, W] -> [B, T, W]; act is model.activation (GELU by default). The last layer
  starts at zero, so a new unit is the identity and deepens the model without changing what it computes at
  initialization."""

  def __init__(self, width: int, kernel_size: int, dilation: int, *, dtype=jnp.float32, forms: LayerForms = MATMUL,
               activation_kind: str = 'gelu', rngs: nnx.Rngs):
    self.conv = DilatedConv(width, width, kernel_size, dilation, dtype=dtype, forms=forms, rngs=rngs)
    self.out = Dense(width, width, dtype=dtype, forms=forms, rngs=rngs)
    self.out.kernel[...] = jnp.zeros_like(self.out.kernel[...])
    self.act_in = activation(activation_kind, width)
    self.act_mid = activation(activation_kind, width)

  @property
  def reach(self) -> int:
    return self.conv.reach

  def __call__(self, x: jax.Array) -> jax.Array:
    return x + self.out(self.act_mid(self.conv(self.act_in(x))))


def receptive_margin_of_blocks(strides: Sequence[int]) -> int:
  """Samples of context on each side that make a windowed output sample exact, a multiple of the total stride.

  Follows the exact dependency interval of this module's StridedConv / TransposedConv blocks (kernel 2s, stride s, encoder padding
  s // 2 on the left): an output sample of the decoder's transposed conv at level l - 1 depends on the (at most
  two) frames t with t s - s // 2 <= n < t s + 2 s - s // 2, and an encoder frame t on the inputs
  [t s - s // 2, t s + 3 s / 2). The reach of the whole model (decoder up to the top frames, encoder down to the
  input) is maximized over the phase of the sample within a frame. Strides (4, 4, 4, 4): 595 -> 768 samples.
  """
  total = math.prod(strides)
  worst = 0
  for n in range(total):
    first, stop = n, n + 1  # dependency interval [first, stop) of output sample n
    for s in strides:  # decoder, from the output samples up to the top frames
      first, stop = -((2 * s - s // 2 - 1 - first) // s), (stop - 1 + s // 2) // s + 1
    for s in reversed(strides):  # encoder, from the top frames down to the input samples
      first, stop = first * s - s // 2, stop * s + s - s // 2
    worst = max(worst, n - first, stop - n - 1)
  return -(-worst // total) * total


class BiLSTM(nnx.Module):
  """x + Dense([LSTM forward(x), LSTM backward(x)]): a residual bidirectional LSTM over frames, [B, T, W] ->
  [B, T, W] (the sequence bottleneck of EnCodec and Demucs), `hidden` units per direction.

  The input projections of both directions are one matmul over all frames; the scan computes only the recurrent
  [B, hidden] x [hidden, 4 hidden] products. Gates in the order (input, forget, cell, output); the forget bias
  starts at 1 and the output layer at zero, so a new layer is the identity. Unlike the convolutions its reach is
  unbounded: windowed inference is exact only up to what the LSTM forgets over model.lstm_context_frames
  (models.receptive_margin).
  """

  def __init__(self, width: int, hidden: int, *, dtype=jnp.float32, forms: LayerForms = MATMUL, rngs: nnx.Rngs):
    self.hidden = hidden
    # [W, direction x gate x hidden]: one input projection for both directions.
    self.input_kernel = nnx.Param(_lecun_normal(rngs, width, (width, 2 * 4 * hidden)))
    self.recurrent_kernel = nnx.Param(_lecun_normal(rngs, hidden, (2, hidden, 4 * hidden)))
    bias = jnp.zeros((2, 4, hidden), jnp.float32).at[:, 1].set(1.0)
    self.bias = nnx.Param(bias.reshape(2 * 4 * hidden))
    self.out = Dense(2 * hidden, width, dtype=dtype, forms=forms, rngs=rngs)
    self.out.kernel[...] = jnp.zeros_like(self.out.kernel[...])
    self.dtype = dtype
    self.forms = forms

  def __call__(self, x: jax.Array) -> jax.Array:
    batch, frames, _ = x.shape
    hidden = self.hidden
    gates_in = matmul(x, self.input_kernel[...], self.dtype, self.forms) + self.bias[...]
    gates_in = gates_in.reshape(batch, frames, 2, 4 * hidden)
    # Time-major, the backward direction reversed in time: step t of the scan reads frame t and frame T - 1 - t.
    gates_in = jnp.stack([gates_in[:, :, 0], gates_in[:, ::-1, 1]], axis=1).transpose(2, 1, 0, 3)  # [T, 2, B, 4H]
    recurrent = self.recurrent_kernel[...].astype(self.dtype)

    def step(carry, gates_t):
      h, c = carry  # [2, B, hidden] each, float32
      h = h.astype(self.dtype)
      # Two plain dots: XLA:CPU runs them faster than one batched dot over the directions.
      gates = gates_t + jnp.stack([jnp.dot(h[d], recurrent[d], preferred_element_type=jnp.float32)
                                   for d in range(2)])
      i, f, g, o = jnp.split(gates, 4, axis=-1)
      c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
      h = jax.nn.sigmoid(o) * jnp.tanh(c)
      return (h, c), h

    zeros = jnp.zeros((2, batch, hidden), jnp.float32)
    _, states = jax.lax.scan(step, (zeros, zeros), gates_in)  # [T, 2, B, hidden]
    both = jnp.concatenate([states[:, 0], states[::-1, 1]], axis=-1).transpose(1, 0, 2)  # [B, T, 2 hidden]
    return x + self.out(both)


class SourceMasks(nnx.Module):
  """Latent masking: a mixture latent [B, T, W] -> one mask per source, softmax over the sources (the masked
  shares sum to the latent, as separation masks sum to the mixture) -> each source's share mapped by its own
  linear layer to `out_features` outputs: [B, T, S, out_features]."""

  def __init__(self, width: int, num_sources: int, out_features: int, *, dtype=jnp.float32,
               forms: LayerForms = MATMUL, rngs: nnx.Rngs):
    self.num_sources = num_sources
    self.to_masks = Dense(width, num_sources * width, dtype=dtype, forms=forms, rngs=rngs)
    self.kernel = nnx.Param(_lecun_normal(rngs, width, (num_sources, width, out_features)))
    self.bias = nnx.Param(jnp.zeros((num_sources, out_features), jnp.float32))
    self.dtype = dtype

  def masks(self, x: jax.Array) -> jax.Array:
    """[B, T, W] -> [B, T, S, W], summing to 1 over S."""
    logits = self.to_masks(x).reshape(*x.shape[:-1], self.num_sources, x.shape[-1])
    return jax.nn.softmax(logits, axis=-2)

  def __call__(self, x: jax.Array) -> jax.Array:
    shares = self.masks(x) * x[..., None, :]
    # Frames flattened into one axis: the weight gradient then contracts one axis, which XLA:CPU runs fastest.
    flat = shares.reshape(-1, self.num_sources, x.shape[-1]).astype(self.dtype)
    out = jnp.einsum('nsw,swo->nso', flat, self.kernel[...].astype(self.dtype), preferred_element_type=jnp.float32)
    return out.reshape(*x.shape[:-1], self.num_sources, -1) + self.bias[...]
