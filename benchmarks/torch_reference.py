"""PyTorch implementation of srcvq_jax's VQ-VAE and train step, for speed comparisons and parity tests only.

The same architecture and conventions as srcvq_jax (models/vqvae.py, quantizer.py, losses.py, trainer.py), written
the way a PyTorch user would write it (channels-first [B, C, T], nn.Conv1d / nn.ConvTranspose1d, 1x1 convolutions
for the per-frame linear maps), so the timing comparison is against idiomatic PyTorch:
  * encoder blocks: Conv1d(k=2s, stride s, padding s//2 | s - s//2) -> GELU(tanh) -> 1x1 conv -> GLU, then a 1x1 conv
    to S x H x K logits (jax.nn.gelu defaults to the tanh approximation, so GELU here is approximate='tanh');
  * per-source Gumbel-softmax quantizer: codebooks [S, H, K, D], soft weights softmax((logits + g) / tau), vectors
    the weighted sum of entries; inference (train=False) uses the argmax entry;
  * decoder input: the selected slots concatenated over sources ('concat') or summed ('sum'); every selection of an
    example (selective, complement) decoded in one batched call;
  * decoder blocks: 1x1 conv -> GLU -> ConvTranspose1d(k=2s, stride s, padding s//2) -> GELU (not after the last);
  * losses: waveform L1 and STFT-magnitude L1 (torch.stft, periodic Hann, center=True, constant padding,
    |X| = sqrt(re^2 + im^2 + 1e-8), target magnitude without gradient) for each selection, weighted sum;
  * Adam (optax.adam's defaults: eps 1e-8), tau = tau_start * (tau_end / tau_start) ** min(step / anneal, 1).

`load_jax_params` copies srcvq_jax parameters (the pure dict of models.split_params) into the torch model, and
`grads_as_jax` returns the torch gradients in srcvq_jax's parameter layout; tests/torch_parity_test.py uses both.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# Same epsilon as srcvq_jax.losses._MAGNITUDE_EPS.
MAGNITUDE_EPS = 1e-8


def _same_padding(stride: int) -> tuple[int, int]:
  return stride // 2, stride - stride // 2


class StridedConv(nn.Module):
  """Conv1d, kernel 2s, stride s, padding (s//2, s - s//2): [B, Cin, T] -> [B, Cout, T / s]."""

  def __init__(self, in_channels: int, out_channels: int, stride: int):
    super().__init__()
    left, right = _same_padding(stride)
    self.extra_pad = (0, right - left)  # non-zero only for odd strides (Conv1d pads symmetrically)
    self.conv = nn.Conv1d(in_channels, out_channels, 2 * stride, stride=stride, padding=left)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    if self.extra_pad[1]:
      x = F.pad(x, self.extra_pad)
    return self.conv(x)


class TransposedConv(nn.Module):
  """ConvTranspose1d, kernel 2s, stride s, padding s//2: [B, Cin, T'] -> [B, Cout, T' * s]."""

  def __init__(self, in_channels: int, out_channels: int, stride: int):
    super().__init__()
    self.stride = stride
    self.conv = nn.ConvTranspose1d(in_channels, out_channels, 2 * stride, stride=stride, padding=stride // 2)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    frames = x.shape[-1]
    y = self.conv(x)
    return y[..., :frames * self.stride] if y.shape[-1] != frames * self.stride else y


def _gelu(x: torch.Tensor) -> torch.Tensor:
  return F.gelu(x, approximate='tanh')


class Encoder(nn.Module):
  """[B, C, T] -> logits [B, T', S, H, K]."""

  def __init__(self, in_channels, channels, strides, num_sources, num_codebooks, codebook_size):
    super().__init__()
    self.convs = nn.ModuleList()
    self.mixes = nn.ModuleList()
    previous = in_channels
    for width, stride in zip(channels, strides):
      self.convs.append(StridedConv(previous, width, stride))
      self.mixes.append(nn.Conv1d(width, 2 * width, 1))
      previous = width
    self.logit_shape = (num_sources, num_codebooks, codebook_size)
    self.to_logits = nn.Conv1d(previous, num_sources * num_codebooks * codebook_size, 1)

  def forward(self, audio: torch.Tensor) -> torch.Tensor:
    x = audio
    for conv, mix in zip(self.convs, self.mixes):
      x = F.glu(mix(_gelu(conv(x))), dim=1)
    logits = self.to_logits(x)  # [B, S*H*K, T']
    return logits.transpose(1, 2).reshape(logits.shape[0], logits.shape[2], *self.logit_shape)


class Decoder(nn.Module):
  """Slots [B, F, T'] -> audio [B, C, T]."""

  def __init__(self, slot_features, out_channels, channels, strides):
    super().__init__()
    widths = list(channels)[::-1]
    self.from_slots = nn.Conv1d(slot_features, widths[0], 1)
    self.mixes = nn.ModuleList()
    self.convs = nn.ModuleList()
    targets = widths[1:] + [out_channels]
    for width, target, stride in zip(widths, targets, list(strides)[::-1]):
      self.mixes.append(nn.Conv1d(width, 2 * width, 1))
      self.convs.append(TransposedConv(width, target, stride))

  def forward(self, slots: torch.Tensor) -> torch.Tensor:
    x = self.from_slots(slots)
    last = len(self.convs) - 1
    for i, (mix, conv) in enumerate(zip(self.mixes, self.convs)):
      x = conv(F.glu(mix(x), dim=1))
      if i < last:
        x = _gelu(x)
    return x


class VQVAE(nn.Module):
  """Mixture [B, T, C] and selection masks [B, M, S] -> decoded audio per selection, codes and codebook stats."""

  def __init__(self, config):
    super().__init__()
    data, model, q = config.data, config.model, config.quantizer
    self.num_sources = len(data.sources)
    self.shared_codebooks = bool(q.shared_codebooks)
    self.hard = bool(q.hard)
    self.decoder_input = model.decoder_input
    self.encoder = Encoder(data.channels, model.channels, model.strides, self.num_sources, q.num_codebooks,
                           q.codebook_size)
    shape = (q.num_codebooks, q.codebook_size, q.code_dim)
    if not self.shared_codebooks:
      shape = (self.num_sources,) + shape
    self.codebook = nn.Parameter(torch.randn(shape))
    slot_dim = q.num_codebooks * q.code_dim
    slot_features = slot_dim * (self.num_sources if self.decoder_input == 'concat' else 1)
    self.decoder = Decoder(slot_features, data.channels, model.channels, model.strides)

  def quantize(self, logits: torch.Tensor, tau, train: bool, gumbel: torch.Tensor | None = None):
    """logits [B, T', S, H, K] -> vectors [B, T', S, H*D], codes [B, T', S, H], perplexity and used [S, H]."""
    num_entries = logits.shape[-1]
    codes = logits.argmax(-1)
    if not train:
      weights = F.one_hot(codes, num_entries).to(logits.dtype)
    else:
      if gumbel is None:  # -log(Exp(1)) ~ Gumbel(0, 1), as F.gumbel_softmax draws it
        gumbel = -torch.empty_like(logits).exponential_().log()
      weights = torch.softmax((logits + gumbel) / tau, dim=-1)
      if self.hard:
        one_hot = F.one_hot(weights.argmax(-1), num_entries).to(weights.dtype)
        weights = weights + (one_hot - weights).detach()
    codebook = self.codebook
    if self.shared_codebooks:
      codebook = codebook.expand(self.num_sources, *codebook.shape)
    vectors = torch.einsum('btshk,shkd->btshd', weights, codebook)
    with torch.no_grad():  # codebook statistics (metrics only), as srcvq_jax.quantizer's perplexity_of / used_fraction_of
      mean_probs = torch.softmax(logits, dim=-1).mean(dim=(0, 1))
      perplexity = torch.exp(-(mean_probs * torch.log(mean_probs + 1e-10)).sum(-1))
      used = F.one_hot(codes, num_entries).amax(dim=(0, 1)).float().mean(-1)
    return vectors.flatten(3), codes, perplexity, used

  def forward(self, mixture: torch.Tensor, masks: torch.Tensor, tau=1.0, train: bool = True,
              gumbel: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """mixture [B, T, C], masks [B, M, S] -> {'audio': [B, M, C, T], 'codes', 'perplexity', 'used'}."""
    logits = self.encoder(mixture.transpose(1, 2))
    vectors, codes, perplexity, used = self.quantize(logits, tau, train, gumbel)
    batch, frames, num_sources, slot_dim = vectors.shape
    num_masks = masks.shape[1]
    selected = vectors[:, None] * masks[:, :, None, :, None]  # [B, M, T', S, HD]
    if self.decoder_input == 'concat':
      slots = selected.reshape(batch * num_masks, frames, num_sources * slot_dim)
    else:
      slots = selected.sum(dim=3).reshape(batch * num_masks, frames, slot_dim)
    audio = self.decoder(slots.transpose(1, 2))
    return {'audio': audio.reshape(batch, num_masks, *audio.shape[1:]), 'codes': codes,
            'perplexity': perplexity, 'used': used}


# --- Losses -------------------------------------------------------------------------------------------------------

SELECTIONS = ('selective', 'complement')
KINDS = ('l1', 'stft')


def active_selections(weights) -> tuple[str, ...]:
  return tuple(s for s in SELECTIONS if any(weights[f'{s}_{k}'] > 0 for k in KINDS))


def stft_magnitude(x: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor) -> torch.Tensor:
  """[..., T] -> [..., n_fft // 2 + 1, frames], librosa's conventions (center, zero padding, periodic Hann)."""
  lead = x.shape[:-1]
  spec = torch.stft(x.reshape(-1, x.shape[-1]), n_fft, hop, window=window, center=True, pad_mode='constant',
                    return_complex=True)
  parts = torch.view_as_real(spec)
  magnitude = torch.sqrt(parts.square().sum(-1) + MAGNITUDE_EPS)
  return magnitude.reshape(*lead, *magnitude.shape[-2:])


def stft_l1(prediction: torch.Tensor, target: torch.Tensor, n_fft: int, hop: int,
            window: torch.Tensor) -> torch.Tensor:
  """Mean |(|STFT(prediction)| - |STFT(target)|)| of waveforms [..., C, T]; no gradient through the target."""
  with torch.no_grad():
    target_magnitude = stft_magnitude(target, n_fft, hop, window)
  return (stft_magnitude(prediction, n_fft, hop, window) - target_magnitude).abs().mean()


def selection_masks(presence: torch.Tensor, select: torch.Tensor, weights) -> torch.Tensor:
  masks = {'selective': presence * select, 'complement': presence * (1 - select)}
  return torch.stack([masks[name] for name in active_selections(weights)], dim=1)


# --- Train step ---------------------------------------------------------------------------------------------------


class TrainStep:
  """Loss, backward and Adam update of the torch model; `compile=True` wraps the forward + loss in torch.compile.

  The step computes what srcvq_jax.trainer.train_step computes: loss terms, total, codebook statistics and the
  Adam update (not the global norms of grads/params/updates, which are ~1 ms of metrics).
  """

  def __init__(self, model: VQVAE, config, *, compile: bool = False, fused_adam: bool = False):
    self.model = model
    self.config = config
    optim, loss = config.optim, config.loss
    self.weights = {k: float(v) for k, v in loss.weights.items()}
    # On the model's device (CPU here; CUDA in benchmarks/accelerator_step.py).
    self.window = torch.hann_window(loss.n_fft, periodic=True, device=next(model.parameters()).device)
    kwargs = {'fused': True} if fused_adam else {'foreach': True}
    self.optimizer = torch.optim.Adam(model.parameters(), lr=optim.learning_rate, betas=(optim.b1, optim.b2),
                                      eps=1e-8, **kwargs)
    self.step_count = 0
    self.loss_fn = torch.compile(self._loss) if compile else self._loss

  def tau(self, step: int) -> torch.Tensor:
    q = self.config.quantizer
    progress = min(step / q.tau_anneal_steps, 1.0)
    # A tensor, not a float: torch.compile would otherwise specialize (recompile) on every new value.
    return torch.tensor(q.tau_start * (q.tau_end / q.tau_start) ** progress, dtype=torch.float32)

  def _loss(self, mixture, sources, presence, select, tau, train: bool = True, gumbel=None):
    """Total loss, terms, codebook stats and audio [B, M, C, T] of one batch."""
    masks = selection_masks(presence, select, self.weights)
    out = self.model(mixture, masks, tau=tau, train=train, gumbel=gumbel)
    targets = torch.einsum('bms,bstc->bmct', masks, sources)
    audio = out['audio']
    n_fft, hop = self.config.loss.n_fft, self.config.loss.hop
    terms = {}
    for m, selection in enumerate(active_selections(self.weights)):
      if self.weights[f'{selection}_l1'] > 0:
        terms[f'{selection}_l1'] = (audio[:, m] - targets[:, m]).abs().mean()
      if self.weights[f'{selection}_stft'] > 0:
        terms[f'{selection}_stft'] = stft_l1(audio[:, m], targets[:, m], n_fft, hop, self.window)
    total = sum(self.weights[name] * value for name, value in terms.items())
    return total, terms, out

  def __call__(self, batch: dict[str, torch.Tensor], gumbel: torch.Tensor | None = None) -> dict[str, Any]:
    """One optimizer step on a batch of torch tensors (keys of srcvq_jax.input_pipeline); returns the metrics."""
    self.optimizer.zero_grad(set_to_none=True)
    loss, terms, out = self.loss_fn(batch['mixture'], batch['sources'], batch['presence'], batch['select'],
                                    self.tau(self.step_count), True, gumbel)
    loss.backward()
    self.optimizer.step()
    self.step_count += 1
    return {'loss': loss.detach(), **{k: v.detach() for k, v in terms.items()},
            'perplexity': out['perplexity'].mean(), 'used': out['used'].mean()}


def batch_to_torch(batch: dict[str, np.ndarray], device: str = 'cpu') -> dict[str, torch.Tensor]:
  """NumPy batch (srcvq_jax.input_pipeline element spec) -> torch tensors (on the CPU: sharing its memory)."""
  return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)).to(device) for k, v in batch.items()}


# --- Parameter port -----------------------------------------------------------------------------------------------


def _param_map(model: VQVAE):
  """[(path in srcvq_jax's params dict, torch parameter, jax -> torch array fn, torch -> jax array fn)]."""
  dense_kernel = (lambda k: k.T[:, :, None], lambda w: w[:, :, 0].T)   # [Cin, Cout] <-> [Cout, Cin, 1]
  conv_kernel = (lambda k: k.transpose(2, 1, 0), lambda w: w.transpose(2, 1, 0))  # [2s, Cin, Cout] <-> [Cout, Cin, 2s]
  tconv_kernel = (lambda k: k.transpose(1, 2, 0), lambda w: w.transpose(2, 0, 1))  # <-> [Cin, Cout, 2s]
  same = (lambda x: x, lambda x: x)
  entries = []

  def add(path, module, kernel_fns):
    entries.append((path + ('kernel',), module.weight, *kernel_fns))
    entries.append((path + ('bias',), module.bias, *same))

  enc, dec = model.encoder, model.decoder
  for i, (conv, mix) in enumerate(zip(enc.convs, enc.mixes)):
    add(('encoder', 'convs', i), conv.conv, conv_kernel)
    add(('encoder', 'mixes', i), mix, dense_kernel)
  add(('encoder', 'to_logits'), enc.to_logits, dense_kernel)
  add(('decoder', 'from_slots'), dec.from_slots, dense_kernel)
  for i, (mix, conv) in enumerate(zip(dec.mixes, dec.convs)):
    add(('decoder', 'mixes', i), mix, dense_kernel)
    add(('decoder', 'convs', i), conv.conv, tconv_kernel)
  entries.append((('quantizers', 'codebook'), model.codebook, *same))
  return entries


def _get(tree, path):
  for key in path:
    tree = tree[key]
  return tree


def load_jax_params(model: VQVAE, params) -> None:
  """Copies srcvq_jax parameters (models.split_params's pure dict, JAX or NumPy leaves) into the torch model."""
  entries = _param_map(model)
  if len(entries) != len(list(model.parameters())):
    raise ValueError('parameter map does not cover the torch model')
  with torch.no_grad():
    for path, param, to_torch, _ in entries:
      value = np.array(to_torch(np.asarray(_get(params, path), np.float32)), dtype=np.float32, order='C')
      if value.shape != tuple(param.shape):
        raise ValueError(f'{"/".join(map(str, path))}: shape {value.shape} != torch {tuple(param.shape)}')
      param.copy_(torch.from_numpy(value))


def _as_jax_tree(model: VQVAE, pick) -> dict:
  tree: dict = {}
  for path, param, _, to_jax in _param_map(model):
    node = tree
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = np.ascontiguousarray(to_jax(pick(param).detach().numpy()))
  return tree


def grads_as_jax(model: VQVAE) -> dict:
  """The torch .grad of every parameter, in srcvq_jax's params layout (NumPy)."""
  return _as_jax_tree(model, lambda p: p.grad if p.grad is not None else torch.zeros_like(p))


def params_as_jax(model: VQVAE) -> dict:
  """The torch parameters in srcvq_jax's params layout (NumPy)."""
  return _as_jax_tree(model, lambda p: p)
