"""The source-aware VQ-VAE: waveform encoder -> per-source Gumbel quantizers -> decoder of selected slots.

Glossary: B batch, T samples, C audio channels, T' = T / total stride latent frames, S sources, H codebooks per
source, K entries per codebook, D entry dimension, M selections decoded per example (e.g. selective and
complement). No U-Net skip connections: everything the decoder knows passes through the codes.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from srcvq_jax import config_lib
from srcvq_jax import fsq
from srcvq_jax import quantizer as quantizer_lib
from srcvq_jax import spectral
from srcvq_jax.models import layers


@dataclasses.dataclass
class ModelOutput:
  """audio: float32 [B, M, T, C], one decoded mixture per selection mask; quantized: the QuantizedResult."""
  audio: jax.Array
  quantized: quantizer_lib.QuantizedResult


jax.tree_util.register_dataclass(ModelOutput, data_fields=['audio', 'quantized'], meta_fields=[])


def _residual_units(width: int, count: int, kernel_size: int, *, dtype, forms, activation_kind, rngs) -> nnx.List:
  """`count` ResidualUnits at one resolution, dilations 1, 3, 9, ... (each unit sees 3x further than the last)."""
  return nnx.List([layers.ResidualUnit(width, kernel_size, 3**i, dtype=dtype, forms=forms,
                                       activation_kind=activation_kind, rngs=rngs) for i in range(count)])


def spectral_features(audio: jax.Array, n_fft: int, hop: int) -> jax.Array:
  """log(1 + |STFT|) of every channel, one frame per latent frame: [B, T, C] -> [B, T / hop, C * (n_fft / 2 + 1)].

  Centred frames (spectral.stft): frame t is centred on sample t * hop, the first sample of latent frame t's span.
  The input is data, so no gradient flows through the transform: it costs one forward FFT per frame.
  """
  magnitude = spectral.stft_magnitude(jnp.swapaxes(audio, 1, 2).astype(jnp.float32), n_fft, hop)  # [B, C, F', bins]
  frames = audio.shape[1] // hop
  magnitude = jnp.swapaxes(magnitude[:, :, :frames], 1, 2)  # [B, T', C, bins]
  return jnp.log1p(magnitude).reshape(*magnitude.shape[:2], -1)


def _lstms(width: int, count: int, hidden: int, *, dtype, forms, rngs) -> nnx.List:
  """`count` stacked residual BiLSTMs at the lowest frame rate (model.encoder_lstm_layers / decoder_lstm_layers)."""
  return nnx.List([layers.BiLSTM(width, hidden, dtype=dtype, forms=forms, rngs=rngs) for _ in range(count)])


class Encoder(nnx.Module):
  """Demucs-like blocks (strided conv k=2s -> GELU or Snake -> 1x1 conv -> GLU [-> residual dilated units]) [+ a
  linear map of the mixture's log-magnitude spectrum, one STFT frame per latent frame] [-> residual BiLSTMs], then per-frame outputs [B, T', S, H, out]: out = K logits (Gumbel) or d scalars (FSQ), one
  linear map of the latent (to_logits) or, with model.source_masks, one per source of its masked share of it."""

  def __init__(self, in_channels: int, channels, strides, num_sources: int, num_codebooks: int,
               outputs_per_code: int, *, residual_units: int = 0, residual_kernel: int = 3, lstm_layers: int = 0,
               lstm_hidden: int = 64, source_masks: bool = False, spectral_fft: int = 0,
               activation_kind: str = 'gelu', dtype, forms: layers.LayerForms = layers.MATMUL, rngs: nnx.Rngs):
    """spectral_fft: window of the spectral input (model.spectral_input_fft); 0: none, the paper's encoder."""
    self.convs = nnx.List()
    self.activations = nnx.List()
    self.mixes = nnx.List()
    self.residuals = nnx.List()
    previous = in_channels
    for width, stride in zip(channels, strides):
      self.convs.append(layers.StridedConv(previous, width, stride, dtype=dtype, forms=forms, rngs=rngs))
      self.activations.append(layers.activation(activation_kind, width))
      self.mixes.append(layers.GatedDense(width, 2 * width, dtype=dtype, forms=forms, rngs=rngs))
      self.residuals.append(_residual_units(width, residual_units, residual_kernel, dtype=dtype, forms=forms,
                                            activation_kind=activation_kind, rngs=rngs))
      previous = width
    self.spectral_fft = int(spectral_fft)
    # (Only when set: the params of models without it keep their earlier layout.)
    self.from_spectrum = (layers.Dense(in_channels * (self.spectral_fft // 2 + 1), previous, dtype=dtype,
                                       forms=forms, rngs=rngs) if self.spectral_fft else None)
    self.lstms = _lstms(previous, lstm_layers, lstm_hidden, dtype=dtype, forms=forms, rngs=rngs)
    self.logit_shape = (num_sources, num_codebooks, outputs_per_code)
    self.source_masks = (layers.SourceMasks(previous, num_sources, num_codebooks * outputs_per_code, dtype=dtype,
                                            forms=forms, rngs=rngs) if source_masks else None)
    if not source_masks:  # (only then: the params of models without masks keep their earlier layout)
      self.to_logits = layers.Dense(previous, num_sources * num_codebooks * outputs_per_code, dtype=dtype,
                                    forms=forms, rngs=rngs)

  @property
  def total_stride(self) -> int:
    """Samples per latent frame."""
    return math.prod(conv.stride for conv in self.convs)

  def __call__(self, audio: jax.Array) -> jax.Array:
    x = audio
    for conv, act, mix, units in zip(self.convs, self.activations, self.mixes, self.residuals):
      x = mix(act(conv(x)))
      for unit in units:
        x = unit(x)
    if self.from_spectrum is not None:
      x = x + self.from_spectrum(spectral_features(audio, self.spectral_fft, self.total_stride))
    for lstm in self.lstms:
      x = lstm(x)
    if self.source_masks is not None:
      logits = self.source_masks(x)
    else:
      logits = self.to_logits(x)
    return logits.reshape(*logits.shape[:2], *self.logit_shape)


class Decoder(nnx.Module):
  """Mirror of the encoder: slots -> 1x1 conv [-> residual BiLSTMs] -> blocks (1x1 conv -> GLU [-> residual
  dilated units] -> transposed conv -> GELU or Snake, but for the last) -> audio."""

  def __init__(self, slot_features: int, out_channels: int, channels, strides, *,
               residual_units: int | Sequence[int] = 0, residual_kernel: int = 3, lstm_layers: int = 0,
               lstm_hidden: int = 64, activation_kind: str = 'gelu', dtype, forms: layers.LayerForms = layers.MATMUL,
               rngs: nnx.Rngs):
    """residual_units: units after every level's GLU, or one count per level (latent side first)."""
    widths = list(channels)[::-1]
    units_per_level = decoder_units_per_level(residual_units, len(widths))
    self.from_slots = layers.Dense(slot_features, widths[0], dtype=dtype, forms=forms, rngs=rngs)
    self.lstms = _lstms(widths[0], lstm_layers, lstm_hidden, dtype=dtype, forms=forms, rngs=rngs)
    self.mixes = nnx.List()
    self.residuals = nnx.List()
    self.convs = nnx.List()
    targets = widths[1:] + [out_channels]
    for width, target, stride, units in zip(widths, targets, list(strides)[::-1], units_per_level):
      self.mixes.append(layers.GatedDense(width, 2 * width, dtype=dtype, forms=forms, rngs=rngs))
      self.residuals.append(_residual_units(width, units, residual_kernel, dtype=dtype, forms=forms,
                                            activation_kind=activation_kind, rngs=rngs))
      self.convs.append(layers.TransposedConv(width, target, stride, dtype=dtype, forms=forms, rngs=rngs))
    # After every transposed conv but the last: the output layer is linear (audio is signed and unbounded).
    self.activations = nnx.List([layers.activation(activation_kind, target) for target in targets[:-1]])

  def __call__(self, slots: jax.Array) -> jax.Array:
    return self.upsample(self.from_slots(slots))

  def upsample(self, x: jax.Array) -> jax.Array:
    """Everything after the first 1x1 layer: [B, T', width] -> [B, T, C]."""
    for lstm in self.lstms:
      x = lstm(x)
    for i, (mix, units, conv) in enumerate(zip(self.mixes, self.residuals, self.convs)):
      x = mix(x)
      for unit in units:
        x = unit(x)
      x = conv(x)
      if i < len(self.activations):
        x = self.activations[i](x)
    return x


def decoder_units_per_level(residual_units: int | Sequence[int], levels: int) -> tuple[int, ...]:
  """The decoder's residual units per level, latent side first: a count per level, or one count for all."""
  if isinstance(residual_units, int):
    return (residual_units,) * levels
  return tuple(int(u) for u in residual_units)


def decoder_residual_units(model_config) -> tuple[int, ...]:
  """model.decoder_residual_units, or model.residual_units at every level where that is ()."""
  units = tuple(model_config.get('decoder_residual_units', ()))
  return units or (int(model_config.residual_units),) * len(model_config.strides)


def receptive_margin(model_config) -> int:
  """Samples of context on each side that make a windowed output sample exact, a multiple of the total stride.

  The strided blocks' exact reach (layers.receptive_margin_of_blocks), plus each level's residual units: a unit
  of dilation d at a level of P samples per frame reaches d (k - 1) / 2 frames further on each side, in the
  encoder and in the decoder (model.decoder_residual_units where set); one more frame per unit covers the
  rounding of frame positions. The spectral input (model.spectral_input_fft) reads half its window either side.
  With BiLSTMs (whose reach is the whole input) it adds model.lstm_context_frames
  frames: the context they get, not their reach.
  """
  strides = tuple(model_config.strides)
  margin = layers.receptive_margin_of_blocks(strides)
  units, kernel = int(model_config.residual_units), int(model_config.residual_kernel)
  # Level l of the encoder (samples per frame: the product of strides[:l + 1]) is level L - 1 - l of the decoder.
  decoder_units = decoder_residual_units(model_config)[::-1]
  per_frame = 1
  extra = 0
  for level, stride in enumerate(strides):
    per_frame *= stride
    for count in (units, decoder_units[level]):
      extra += sum((3**i * (kernel - 1) // 2 + 1) * per_frame for i in range(count))
  total = math.prod(strides)
  # The spectral input's frame t reads n_fft / 2 samples either side of sample t * total.
  extra += int(model_config.get('spectral_input_fft', 0)) // 2
  if int(model_config.encoder_lstm_layers) or int(model_config.decoder_lstm_layers):
    # An LSTM's reach is unbounded: the margin is the context it is trusted to have forgotten beyond.
    extra += int(model_config.lstm_context_frames) * total
  return margin + -(-extra // total) * total


class VQVAE(nnx.Module):
  """Mixture -> codes [B, T', S, H] -> any selection of sources' mixture.

  forms: how the layers compute (layers.LayerForms; default: those of config.model.conv_impl on this platform).
  They are not parameters: a checkpoint restores into a model of any forms and computes the same function.
  """

  def __init__(self, config, *, rngs: nnx.Rngs, forms: layers.LayerForms | None = None):
    data, model, q = config.data, config.model, config.quantizer
    dtype = jnp.dtype(model.dtype)
    if forms is None:
      forms = layers.forms_for(model.conv_impl)
    self.num_sources = len(data.sources)
    self.shared_codebooks = bool(q.shared_codebooks)
    self.hard = bool(q.hard)
    self.decoder_input = model.decoder_input
    # 'gumbel' (the paper's) or 'fsq' (srcvq_jax/fsq.py: no codebooks; the encoder gives d scalars per code).
    self.quantizer_kind = q.kind
    self.fsq_levels = tuple(q.fsq_levels)
    # Codes each source uses (quantizer.codes_per_source); None when all are. A plain tuple: static, not a param.
    self.codes_per_source = config_lib.uneven_codes_per_source(config)
    residual = dict(residual_kernel=int(model.residual_kernel), lstm_hidden=int(model.lstm_hidden),
                    activation_kind=model.activation, forms=forms)
    outputs_per_code = len(self.fsq_levels) if self.quantizer_kind == 'fsq' else q.codebook_size
    self.encoder = Encoder(data.channels, model.channels, model.strides, self.num_sources, q.num_codebooks,
                           outputs_per_code, **residual, residual_units=int(model.residual_units),
                           lstm_layers=int(model.encoder_lstm_layers),
                           source_masks=bool(model.source_masks),
                           spectral_fft=int(model.get('spectral_input_fft', 0)), dtype=dtype, rngs=rngs)
    if self.quantizer_kind == 'fsq':
      self.quantizers = None
    else:
      self.quantizers = quantizer_lib.make_bank(self.num_sources, q.num_codebooks, q.codebook_size, q.code_dim,
                                                self.shared_codebooks, rngs=rngs)
    slot_dim = q.num_codebooks * q.code_dim
    slot_features = slot_dim * (self.num_sources if self.decoder_input == 'concat' else 1)
    self.decoder = Decoder(slot_features, data.channels, model.channels, model.strides, **residual,
                           residual_units=decoder_residual_units(model),
                           lstm_layers=int(model.decoder_lstm_layers), dtype=dtype, rngs=rngs)

  def _used_codes(self):
    if self.codes_per_source is None:
      return None
    return fsq.used_codes(self.codes_per_source, self.encoder.logit_shape[1])

  def training_noise(self, noise_key: jax.Array, mixture_shape) -> jax.Array | None:
    """The Gumbel noise [B, T', S, H, K] a training pass on a mixture of [B, T, C] takes (None for FSQ, which
    quantizes deterministically). Drawn outside encode so that a caller can cut one batch's noise like the batch."""
    if self.quantizer_kind == 'fsq':
      return None
    frames = mixture_shape[1] // self.encoder.total_stride
    return quantizer_lib.gumbel_noise(noise_key, (mixture_shape[0], frames, *self.encoder.logit_shape))

  def encode(self, mixture: jax.Array, *, gumbel: jax.Array | None = None, tau=1.0) -> quantizer_lib.QuantizedResult:
    """[B, T, C] -> QuantizedResult. gumbel: training noise (training_noise), or None for inference (argmax codes).
    (FSQ ignores it: training quantizes as inference does.)"""
    logits = self.encoder(mixture)
    if self.quantizer_kind == 'fsq':
      return fsq.quantize(logits, self.fsq_levels, self._used_codes())
    return quantizer_lib.quantize(self.quantizers, logits, gumbel, tau, hard=self.hard,
                                  shared=self.shared_codebooks)

  def lookup(self, codes: jax.Array) -> jax.Array:
    """Slot vectors of integer codes: [B, T', S, H] -> [B, T', S, H * D]."""
    if self.quantizer_kind == 'fsq':
      return fsq.lookup(codes, self.fsq_levels, self._used_codes())
    return quantizer_lib.lookup(self.quantizers, codes, shared=self.shared_codebooks)

  def decode(self, vectors: jax.Array, masks: jax.Array) -> jax.Array:
    """Decodes each selection: vectors [B, T', S, H*D], masks [B, M, S] (1 = slot used) -> audio [B, M, T, C].

    masks may also be per frame, [B, M, T', S] (e.g. a slot edited out for some frames, srcvq_jax/codes.py); a
    mask constant over frames gives the same audio as its [B, M, S] form. The M selections of an example run as
    one batched decoder call ([B*M, ...]).
    """
    batch, frames, num_sources, slot_dim = vectors.shape
    num_masks = masks.shape[1]
    # The first decoder layer is linear in the (masked) slots, so each source's slot is projected once and the M
    # selections are masked sums of those projections: one [S x HD -> width] matmul instead of M (separation
    # decodes M = S selections, training M = 2). Same result as projecting each masked concatenation/sum.
    layer = self.decoder.from_slots
    kernel = layer.kernel[...]
    if self.decoder_input == 'concat':
      kernel = kernel.reshape(num_sources, slot_dim, -1)  # rows of the concatenation, grouped by source
      spec = 'btsd,sdw->btsw'
    else:
      spec = 'btsd,dw->btsw'
    # (No preferred_element_type: XLA:CPU has no batched bf16 x bf16 -> f32 dot; cast the result instead.)
    projected = jnp.einsum(spec, vectors.astype(layer.dtype), kernel.astype(layer.dtype)).astype(jnp.float32)
    mask_spec = 'bmts' if masks.ndim == 4 else 'bms'
    hidden = jnp.einsum(f'btsw,{mask_spec}->bmtw', projected, masks.astype(projected.dtype)) + layer.bias[...]
    audio = self.decoder.upsample(hidden.reshape(batch * num_masks, frames, -1))
    return audio.reshape(batch, num_masks, *audio.shape[1:])

  def decode_codes(self, codes: jax.Array, masks: jax.Array) -> jax.Array:
    """Decodes integer codes [B, T', S, H] (e.g. edited or generated) under masks [B, M, S] or [B, M, T', S]."""
    return self.decode(self.lookup(codes), masks)

  def __call__(self, mixture: jax.Array, masks: jax.Array, *, gumbel: jax.Array | None = None,
               tau=1.0) -> ModelOutput:
    """Encodes the mixture once and decodes every selection: [B, T, C], [B, M, S] -> ModelOutput."""
    quantized = self.encode(mixture, gumbel=gumbel, tau=tau)
    return ModelOutput(audio=self.decode(quantized.vectors, masks), quantized=quantized)
