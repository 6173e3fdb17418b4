"""Inference: load a trained model, encode music to codes, decode any selection of sources, separate full tracks.

  separator = inference.load('/ckpt/run1')   # a training workdir (its latest checkpoint) or an export dir
  stems = separator.separate(mixture)        # float32 [T, C] at separator.sample_rate -> [S, T, C]
  codes = separator.encode(mixture)          # -> int32 [T', S, H], the discrete representation
  audio = separator.decode(codes, mask)      # mask [S] (1 = slot used) -> [T' * stride, C]

Glossary as in models/vqvae.py: T samples, C channels, T' = ceil(T / stride) frames, S sources, H codebooks,
M selections (masks) decoded per input, N inputs processed together.

Full tracks of any length run in fixed-size windows (srcvq_jax/windows.py), batched (one compiled shape per window
length and batch); the model is local and each window's margin covers its receptive field, so chunked inference
equals one-shot inference up to float rounding (tests/inference_test.py checks it).
"""
from __future__ import annotations

import functools

import jax
import numpy as np
from etils import epath
from flax import nnx

from srcvq_jax import checkpointing
from srcvq_jax import config_lib
from srcvq_jax import errors
from srcvq_jax import library_logs
from srcvq_jax import models
from srcvq_jax import postfilter as postfilter_lib
from srcvq_jax import sharding
from srcvq_jax import windows as windows_lib

# Default window: this many training segments (rounded up to the stride): long enough that the margins and
# cross-fade cost little, short enough to stay in the CPU caches (docs/results.md, separation_speed --windows).
DEFAULT_WINDOW_SEGMENTS = 1.5
# Windows per model call: on a CPU one window at a time keeps the working set in cache (docs/results.md,
# separation_speed); accelerators want bigger batches.
DEFAULT_CPU_BATCH_SIZE = 1
DEFAULT_ACCELERATOR_BATCH_PER_DEVICE = 8


# --- Jitted model functions (graphdef static, params an argument) ------------------------------------------------


def _separate_windows(graphdef, params, windows, masks):
  """[B, W, C], [B, M, S] -> (audio [B, M, W, C], codes [B, W / stride, S, H]), argmax codes."""
  model = nnx.merge(graphdef, params)
  quantized = model.encode(windows)
  return model.decode(quantized.vectors, masks), quantized.codes


def _encode_windows(graphdef, params, windows):
  return nnx.merge(graphdef, params).encode(windows).codes


def _decode_windows(graphdef, params, codes, masks):
  return nnx.merge(graphdef, params).decode_codes(codes, masks)


def _lookup(graphdef, params, codes):
  model = nnx.merge(graphdef, params)
  return model.lookup(codes)


# --- Separator ---------------------------------------------------------------------------------------------------


class Separator:
  """A loaded model plus jitted, chunked inference functions (host NumPy in, host NumPy out).

  Attributes:
    config: the experiment ConfigDict the model was trained with.
    sources: source names in slot order.
    sample_rate: the model's samples per second; inputs must be at this rate.
    channels: the model's audio channels.
    stride: samples per latent frame.
    window: samples per inference window; margin: samples of context discarded at cut window edges.
    batch_size: windows per model call (rounded up to a multiple of the devices).
    step: training step of the checkpoint (None for an export without one); path: where it was loaded from.
    masked_sources: [S] bools: the sources `separate` returns through the mixture post-filter
      (srcvq_jax/postfilter.py) instead of their slot's decode; all False (the default) = the codes alone.
  """

  def __init__(self, config, graphdef, params, *, step: int | None = None, path: str | None = None,
               window: int | None = None, batch_size: int | None = None, margin: int | None = None,
               devices=None):
    self.config = config
    self.sources = tuple(config.data.sources)
    self.num_sources = len(self.sources)
    self.sample_rate = int(config.data.sample_rate)
    self.channels = int(config.data.channels)
    self.stride = config_lib.total_stride(config)
    self.num_codebooks = int(config.quantizer.num_codebooks)
    self.codes_per_source = config_lib.codes_per_source(config)  # codes each source uses of the H per frame
    self.codebook_size = int(config.quantizer.codebook_size)
    self.step, self.path = step, path
    self.masked_sources = (False,) * self.num_sources
    self.margin = models.receptive_margin(config) if margin is None else int(margin)
    self.fade = self.margin
    if window is None:
      window = int(DEFAULT_WINDOW_SEGMENTS * int(config.data.segment_length))
      # Wide margins (an LSTM's context) would leave the default window a hop of one frame (thousands of windows
      # per track): the default window keeps at least half its length as the exact core that each window adds.
      window = max(window, 2 * self.margin + self.fade + window // 2)
    # Round up to the stride and to the shortest window that still advances.
    minimum = 2 * self.margin + self.fade + self.stride
    self.window = max(-(-int(window) // self.stride) * self.stride, minimum)
    # On CPU one device already uses every core (XLA's thread pool); fake CPU devices would only split them.
    if devices is None:
      devices = jax.local_devices()
      devices = devices[:1] if devices[0].platform == 'cpu' else devices
    if batch_size is None:
      batch_size = (DEFAULT_CPU_BATCH_SIZE if devices[0].platform == 'cpu'
                    else DEFAULT_ACCELERATOR_BATCH_PER_DEVICE * len(devices))
    self.batch_size = int(batch_size)
    self.mesh = sharding.inference_mesh(devices)
    self._batch_sharding = sharding.batch_sharding(self.mesh)
    self.graphdef = graphdef
    self.set_params(params)
    self._jit_separate = jax.jit(functools.partial(_separate_windows, graphdef))
    self._jit_encode = jax.jit(functools.partial(_encode_windows, graphdef))
    self._jit_decode = jax.jit(functools.partial(_decode_windows, graphdef))
    self._jit_lookup = jax.jit(functools.partial(_lookup, graphdef))

  # --- Public API ---

  def set_params(self, params) -> None:
    """Replaces the model's params (same structure), e.g. a training run's current ones (sdr_monitor)."""
    self.params = jax.device_put(params, sharding.replicated(self.mesh))

  @property
  def frames_per_second(self) -> float:
    return self.sample_rate / self.stride

  def apply(self, mixture: np.ndarray, masks: np.ndarray, *, return_codes: bool = False, progress: bool = False):
    """Decodes selections of a track's slots.

    Args:
      mixture: float [T, C] at sample_rate.
      masks: [M, S] (1 = slot used) or [S].
      return_codes: also return the mixture's codes.
      progress: tqdm progress bar over windows.

    Returns:
      float32 [M, T, C] (or [T, C] for masks [S]); with return_codes also int32 codes [T', S, H].
    """
    mixture = self._check_audio(mixture, 2)
    masks = np.asarray(masks, np.float32)
    single = masks.ndim == 1
    masks = masks[None] if single else masks
    audio, codes = self._run('separate', mixture[None], masks[None], progress=progress)
    audio = audio[0, 0] if single else audio[0]
    return (audio, codes[0]) if return_codes else audio

  def separate(self, mixture: np.ndarray, *, return_codes: bool = False, progress: bool = False, offset: int = 0):
    """Every source alone: [T, C] -> [S, T, C] (slot i only decodes source i, or masks the mixture for the
    masked_sources; offset: the mixture's first sample in its track, for those); optionally codes [T', S, H]."""
    stems, codes = self.apply(mixture, np.eye(self.num_sources, dtype=np.float32), return_codes=True,
                              progress=progress)
    stems = self.postfilter(stems, mixture, offset=offset)
    return (stems, codes) if return_codes else stems

  def postfilter(self, stems: np.ndarray, mixture: np.ndarray, *, offset: int = 0) -> np.ndarray:
    """The slots' decodes [S, T, C] of `mixture` [T, C] with masked_sources through the mixture post-filter
    (offset: the mixture's first sample in its track; postfilter.mask_with_mixture)."""
    return postfilter_lib.mask_with_mixture(stems, np.asarray(mixture, np.float32), self.masked_sources,
                                            offset=offset)

  def reconstruct(self, mixture: np.ndarray, *, progress: bool = False) -> np.ndarray:
    """All slots: [T, C] -> the reconstructed mixture [T, C]."""
    return self.apply(mixture, np.ones(self.num_sources, np.float32), progress=progress)

  def oracle(self, stems: np.ndarray, *, return_codes: bool = False, progress: bool = False):
    """Codec ceiling: each ground-truth stem encoded alone and decoded with only its own slot selected.

    Args:
      stems: float [S, T, C], in slot order.
      return_codes: also return the codes of every stem input.
      progress: tqdm progress bar over windows.

    Returns:
      float32 [S, T, C]; with return_codes also int32 [S, T', S, H] (input i's codes of all slots).
    """
    stems = self._check_audio(stems, 3)
    if stems.shape[0] != self.num_sources:
      raise ValueError(f'expected {self.num_sources} stems, got {stems.shape[0]}')
    masks = np.eye(self.num_sources, dtype=np.float32)[:, None, :]  # [N=S, M=1, S]
    audio, codes = self._run('separate', stems, masks, progress=progress)
    return (audio[:, 0], codes) if return_codes else audio[:, 0]

  def encode(self, mixture: np.ndarray, *, progress: bool = False) -> np.ndarray:
    """Argmax codes: [T, C] -> int32 [T', S, H], or [B, T, C] -> [B, T', S, H] (T' = ceil(T / stride))."""
    mixture = np.asarray(mixture)
    single = mixture.ndim == 2
    batch = self._check_audio(mixture[None] if single else mixture, 3)
    _, codes = self._run('encode', batch, None, progress=progress)
    return codes[0] if single else codes

  def decode(self, codes: np.ndarray, masks: np.ndarray, *, progress: bool = False) -> np.ndarray:
    """Decodes (possibly edited) codes under selection masks.

    Args:
      codes: int [T', S, H] or [B, T', S, H].
      masks: [S] or [M, S] (1 = slot used), or per frame [M, T', S] (a slot used in some frames only).
      progress: tqdm progress bar over windows.

    Returns:
      float32 [(B,) (M,) T' * stride, C]: the batch axis when codes have one, the mask axis when masks have one.
    """
    codes = np.asarray(codes, np.int32)
    single = codes.ndim == 3
    codes = codes[None] if single else codes
    if codes.ndim != 4 or codes.shape[2:] != (self.num_sources, self.num_codebooks):
      raise ValueError(f'codes of shape {codes.shape}: expected [(B,) T\', {self.num_sources}, '
                       f'{self.num_codebooks}]')
    masks = np.asarray(masks, np.float32)
    one_mask = masks.ndim == 1
    masks = masks[None] if one_mask else masks  # [M, S] or [M, T', S]
    if masks.shape[-1] != self.num_sources or masks.ndim > 3 or (
        masks.ndim == 3 and masks.shape[1] != codes.shape[1]):
      raise ValueError(f'masks of shape {masks.shape}: expected [{self.num_sources}], [M, {self.num_sources}] or '
                       f'[M, {codes.shape[1]} frames, {self.num_sources}]')
    masks = np.broadcast_to(masks[None], (codes.shape[0],) + masks.shape)
    audio, _ = self._run('decode', codes, masks, progress=progress)
    audio = audio[:, 0] if one_mask else audio
    return audio[0] if single else audio

  def slot_vectors(self, codes: np.ndarray) -> np.ndarray:
    """Codebook vectors of codes: int [..., T', S, H] -> float32 [..., T', S, H * D]."""
    codes = np.asarray(codes, np.int32)
    flat = codes.reshape((-1,) + codes.shape[-3:])
    vectors = np.asarray(self._jit_lookup(self.params, flat))
    return vectors.reshape(codes.shape[:-1] + vectors.shape[-1:])

  def plan(self, num_samples: int) -> windows_lib.WindowPlan:
    """The window plan of a track of `num_samples` samples."""
    return windows_lib.plan_windows(num_samples, self.window, self.margin, self.fade, self.stride)

  def warm_up(self, num_samples: int, *, num_masks: int | None = None, oracle: bool = False) -> None:
    """Compiles what apply() with `num_masks` masks (and oracle()) runs for tracks of `num_samples` samples.

    Tracks longer than one window all share one compiled shape, so a short stand-in of `batch_size` windows is
    enough (for timing without compilation).
    """
    if self.plan(num_samples).num_windows > 1:
      hop = self.window - 2 * self.margin - self.fade
      num_samples = min(num_samples, self.window + (self.batch_size - 1) * hop + self.stride)
    zeros = np.zeros((num_samples, self.channels), np.float32)
    self.apply(zeros, np.ones((num_masks or self.num_sources, self.num_sources), np.float32))
    if oracle:
      self.oracle(np.zeros((self.num_sources,) + zeros.shape, np.float32))

  # --- Internals ---

  def _check_audio(self, audio: np.ndarray, ndim: int) -> np.ndarray:
    audio = np.asarray(audio, np.float32)
    if audio.ndim != ndim or audio.shape[-1] != self.channels or audio.shape[-2] == 0:
      raise ValueError(f'audio of shape {audio.shape}: expected {ndim} axes, time second to last with at least '
                       f'one sample and {self.channels} channels last (see audio.match_channels)')
    return audio

  def _run(self, kind: str, inputs: np.ndarray, masks: np.ndarray | None, *,
           progress: bool) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Chunked, batched inference over all windows of N inputs.

    Args:
      kind: 'separate' (audio in -> audio + codes), 'encode' (audio in -> codes), 'decode' (codes in -> audio).
      inputs: audio float32 [N, T, C] or, for 'decode', codes int32 [N, T', S, H].
      masks: [N, M, S] selections per input (None for 'encode'); for 'decode' also per frame, [N, M, T', S].
      progress: tqdm progress bar over windows.

    Returns:
      (audio float32 [N, M, T, C] or None, codes int32 [N, T', S, H] or None); T is the input length (T' * stride
      for 'decode').
    """
    unit = self.stride if kind == 'decode' else 1  # samples per position of `inputs`
    num_inputs, num_samples = inputs.shape[0], inputs.shape[1] * unit
    plan = self.plan(num_samples)
    pad = [(0, 0)] * inputs.ndim
    pad[1] = (0, plan.length // unit - inputs.shape[1])
    padded = np.pad(inputs, pad)
    frames = plan.length // self.stride
    frame_masks = masks is not None and masks.ndim == 4
    if frame_masks:  # windowed like the codes
      masks = np.pad(masks, ((0, 0), (0, 0), (0, frames - masks.shape[2]), (0, 0)))
    wants_audio, wants_codes = kind != 'encode', kind != 'decode'
    audio = (np.zeros((num_inputs, masks.shape[1], plan.length, self.channels), np.float32)
             if wants_audio else None)
    codes = (np.zeros((num_inputs, frames, self.num_sources, self.num_codebooks), np.int32)
             if wants_codes else None)

    jobs = [(n, k) for n in range(num_inputs) for k in range(plan.num_windows)]
    num_devices = self.mesh.devices.size
    batch = -(-min(self.batch_size, len(jobs)) // num_devices) * num_devices
    width = plan.window // unit

    def dispatch(chunk):
      x = np.zeros((batch, width) + padded.shape[2:], padded.dtype)
      for i, (n, k) in enumerate(chunk):
        start = plan.starts[k] // unit
        x[i] = padded[n, start:start + width]
      x = jax.device_put(x, self._batch_sharding)
      if kind == 'encode':
        return self._jit_encode(self.params, x)
      if frame_masks:
        m = np.zeros((batch, masks.shape[1], width, masks.shape[3]), np.float32)
        for i, (n, k) in enumerate(chunk):
          start = plan.starts[k] // unit
          m[i] = masks[n, :, start:start + width]
      else:
        m = np.zeros((batch,) + masks.shape[1:], np.float32)
        m[:len(chunk)] = masks[[n for n, _ in chunk]]
      m = jax.device_put(m, self._batch_sharding)
      fn = self._jit_decode if kind == 'decode' else self._jit_separate
      return fn(self.params, x, m)

    def collect(chunk, result):
      result = jax.device_get(result)
      out_audio = result if kind == 'decode' else (result[0] if kind == 'separate' else None)
      out_codes = result if kind == 'encode' else (result[1] if kind == 'separate' else None)
      for i, (n, k) in enumerate(chunk):
        start = plan.starts[k]
        if out_audio is not None:
          audio[n, :, start:start + plan.window] += plan.weight(k)[None, :, None] * out_audio[i]
        if out_codes is not None:
          first, last = plan.owned_frames(k)
          offset = start // self.stride
          codes[n, first:last] = out_codes[i, first - offset:last - offset]

    chunks = [jobs[i:i + batch] for i in range(0, len(jobs), batch)]
    bar = None
    if progress:
      import tqdm  # pylint: disable=g-import-not-at-top
      bar = tqdm.tqdm(total=len(jobs), unit='window', leave=False)
    # One batch in flight while the host adds up the previous one (JAX dispatches asynchronously).
    pending = None
    for chunk in chunks:
      result = dispatch(chunk)
      if pending is not None:
        collect(*pending)
        if bar is not None:
          bar.update(len(pending[0]))
      pending = (chunk, result)
    collect(*pending)
    if bar is not None:
      bar.update(len(pending[0]))
      bar.close()
    if audio is not None:
      audio = audio[:, :, :num_samples]
    if codes is not None:
      codes = codes[:, :-(-num_samples // self.stride)]
    return audio, codes


# --- Loading -----------------------------------------------------------------------------------------------------


def load(path: str, *, step: int | None = None, window: int | None = None, batch_size: int | None = None,
         devices=None) -> Separator:
  """Loads a model for inference.

  Args:
    path: a training workdir (the params of WORKDIR/checkpoints/<newest step that restores>; the optimizer state
      is not read) or an export directory (checkpointing.save_export: params/ + config.json).
    step: a specific checkpoint step of a workdir (default: the latest).
    window: samples per inference window (default: DEFAULT_WINDOW_SEGMENTS training segments).
    batch_size: windows per model call (default: 1 on a CPU, 8 per accelerator).
    devices: devices the windows are split over (default: the first CPU device, or all local accelerators).

  Returns:
    A Separator.

  Raises:
    errors.UserError: no such directory, or neither a checkpoint nor an export in it.
  """
  if not epath.Path(path).is_dir():
    raise errors.UserError(f'{path}: no such directory (expected a training workdir or an export dir)')
  on_one_device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

  def build(config_dict):
    config = config_lib.config_from_dict(config_dict)
    graphdef, target = models.abstract(config, on_one_device)
    return (config, graphdef), target

  if checkpointing.is_export(path):
    (config, graphdef), target = build(checkpointing.load_export_config(path))
    params, checkpoint_step = checkpointing.restore_export_params(path, target), None
  else:
    checkpoints = epath.Path(path) / checkpointing.CHECKPOINT_DIR
    if not checkpoints.is_dir():
      raise errors.UserError(f'{path}: no checkpoint ({checkpoints} does not exist) and not an export dir '
                             f'({checkpointing.EXPORT_CONFIG} + {checkpointing.EXPORT_PARAMS}/)')
    with library_logs.orbax_warnings_off():
      (config, graphdef), params, checkpoint_step = checkpointing.load_params(path, build, step)
  return Separator(config, graphdef, params, step=checkpoint_step, path=path, window=window,
                   batch_size=batch_size, devices=devices)
