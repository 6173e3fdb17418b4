"""Music as integer codes: a file format, edits in code space, and their command line.

  python -m srcvq_jax.codes encode song.wav --workdir=DIR --out=song.codes.npz
  python -m srcvq_jax.codes decode song.codes.npz --workdir=DIR --out=OUT [--sources=vocals,drums] [--mix]
  python -m srcvq_jax.codes edit a.codes.npz --out=b.codes.npz [--range=START:END] --mute=vocals \\
      [--solo=drums] [--swap=bass:other.codes.npz] [--shift=drums:+N] ...

A `.codes.npz` holds only integers and metadata (no float array):
  codes    [T', S, H] in the smallest unsigned dtype that holds the codebook size K (uint8 for K <= 256, ...);
  active   bool [T', S]: which slot is decoded at which frame (edits may leave a slot empty for some frames);
  meta     a JSON string: format version, sources, codebooks H, codebook size K, the model's stride and sample rate,
           the audio's sample rate, length and channels (decode gives back exactly that), and the model fingerprint.
The fingerprint is a hash of everything decoding depends on (the codebooks or FSQ levels, the decoder's parameters,
sources, stride, rate): another checkpoint, even of the same run, is another model; an export of a checkpoint has
the checkpoint's fingerprint. Decoding or editing with codes of another model fails with one line naming both.

Edits apply in the order given; `--range=START:END` limits the edits after it (until the next --range) to the frames
of that time span, in seconds (`2.5:10`, `:4`, `30:`) or in frames with an `f` suffix (`100f:200f`):
  --mute=SOURCE               the slot is not decoded in the range;
  --solo=SOURCE               every other slot is not decoded in the range;
  --swap=SOURCE:FILE          the slot's codes and activity in the range come from the same slot and frames of another
                              song's codes file (of the same model; looped when it is shorter);
  --shift=SOURCE:+N / :-N     the slot's codes move N frames later (earlier) within the range; frames shifted in are
                              inactive.
Decoding writes OUT/<source>.wav per selected source (each slot alone), or with --mix the selected slots decoded
together (the model's mixture of just those sources) as the file OUT; at the audio's own rate, length and channels.
Problems (missing or corrupt files, unknown sources, another model's codes, frames out of range) are one line.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import re
import sys
import zipfile

import numpy as np

from srcvq_jax import audio as audio_lib
from srcvq_jax import cli
from srcvq_jax import config_lib
from srcvq_jax import errors

FORMAT = 'srcvq_jax.codes'
VERSION = 1


class CodesError(errors.UserError):
  """A codes file or edit that cannot be used; the message names the file or edit and the problem."""


def code_dtype(codebook_size: int) -> np.dtype:
  """Smallest unsigned integer dtype that holds codes 0 .. codebook_size - 1."""
  for dtype in (np.uint8, np.uint16, np.uint32):
    if codebook_size - 1 <= np.iinfo(dtype).max:
      return np.dtype(dtype)
  raise ValueError(f'codebook size {codebook_size} does not fit 32 bits')


@dataclasses.dataclass
class Codes:
  """A song as codes.

  Attributes:
    codes: int [T', S, H], slot s's H code indices per frame.
    active: bool [T', S], whether slot s is decoded at each frame.
    sources: source names in slot order.
    codebook_size: K (codes are in 0 .. K - 1).
    stride: audio samples per frame at the model's rate; model_rate: the model's sample rate.
    sample_rate, num_samples, channels: the encoded audio's (decoding resamples back to them).
    fingerprint: the model's (model_fingerprint).
    codes_per_source: codes slot s uses per frame (quantizer.codes_per_source; the rest are always 0), None when
      every slot uses all H.
  """
  codes: np.ndarray
  active: np.ndarray
  sources: tuple[str, ...]
  codebook_size: int
  stride: int
  model_rate: int
  sample_rate: int
  num_samples: int
  channels: int
  fingerprint: str
  codes_per_source: tuple[int, ...] | None = None

  @property
  def num_frames(self) -> int:
    return self.codes.shape[0]

  @property
  def num_codebooks(self) -> int:
    return self.codes.shape[2]

  @property
  def frame_rate(self) -> float:
    return self.model_rate / self.stride

  def raw_bitrate(self) -> float:
    """Bits per second of the code stream at log2(K) bits per used code (activity not counted)."""
    used = sum(self.codes_per_source) if self.codes_per_source else len(self.sources) * self.num_codebooks
    return self.frame_rate * used * float(np.log2(self.codebook_size))

  def source_index(self, name: str) -> int:
    if name not in self.sources:
      raise CodesError(f'unknown source {name!r} (sources: {", ".join(self.sources)})')
    return self.sources.index(name)

  def replace(self, **changes) -> Codes:
    return dataclasses.replace(self, **changes)


# --- The model's fingerprint -------------------------------------------------------------------------------------


def model_fingerprint(config, params) -> str:
  """Hex digest (16 characters) of what decoding codes depends on: codebooks (or FSQ levels), decoder params,
  sources, stride and sample rate. Params: the model's pure dict (host or device arrays)."""
  import jax  # pylint: disable=g-import-not-at-top

  digest = hashlib.sha256()
  q = config.quantizer
  described = {'sources': list(config.data.sources), 'stride': config_lib.total_stride(config),
               'sample_rate': int(config.data.sample_rate), 'channels': int(config.data.channels),
               'quantizer': q.kind, 'num_codebooks': int(q.num_codebooks), 'codebook_size': int(q.codebook_size),
               'fsq_levels': list(q.fsq_levels) if q.kind == 'fsq' else None,
               'decoder_input': config.model.decoder_input}
  uneven = config_lib.uneven_codes_per_source(config)
  if uneven:  # only when set: the fingerprints of earlier models stay as they were
    described['codes_per_source'] = list(uneven)
  digest.update(json.dumps(described, sort_keys=True).encode())
  decoding = {k: params[k] for k in ('decoder', 'quantizers') if k in params and params[k] is not None}
  leaves, _ = jax.tree_util.tree_flatten_with_path(jax.device_get(decoding))
  for path, leaf in sorted(leaves, key=lambda item: jax.tree_util.keystr(item[0])):
    leaf = np.ascontiguousarray(leaf)
    digest.update(jax.tree_util.keystr(path).encode())
    digest.update(f'{leaf.dtype}{leaf.shape}'.encode())
    digest.update(leaf.tobytes())
  return digest.hexdigest()[:16]


def separator_fingerprint(separator) -> str:
  """model_fingerprint of a loaded inference.Separator (cached on it; recomputed after set_params)."""
  cached = getattr(separator, '_codes_fingerprint', None)
  if cached is not None and cached[0] is separator.params:
    return cached[1]
  value = model_fingerprint(separator.config, separator.params)
  separator._codes_fingerprint = (separator.params, value)  # pylint: disable=protected-access
  return value


# --- Files -------------------------------------------------------------------------------------------------------


def save(path: str, codes: Codes) -> None:
  """Writes a .codes.npz (zip-compressed; integers and a JSON string only)."""
  meta = {'format': FORMAT, 'version': VERSION, 'sources': list(codes.sources),
          'codebook_size': int(codes.codebook_size), 'stride': int(codes.stride), 'model_rate': int(codes.model_rate),
          'sample_rate': int(codes.sample_rate), 'num_samples': int(codes.num_samples),
          'channels': int(codes.channels), 'fingerprint': codes.fingerprint}
  if codes.codes_per_source:
    meta['codes_per_source'] = [int(c) for c in codes.codes_per_source]
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  tmp = path + '.tmp.npz'
  np.savez_compressed(tmp, codes=np.asarray(codes.codes).astype(code_dtype(codes.codebook_size)),
                      active=np.asarray(codes.active, bool), meta=np.array(json.dumps(meta)))
  os.replace(tmp, path)  # a reader never sees half a file


def load(path: str) -> Codes:
  """Reads a .codes.npz; CodesError (one line naming the file) when it is missing, corrupt or inconsistent."""
  if not os.path.isfile(path):
    raise CodesError(f'{path}: no such file')
  try:
    with np.load(path, allow_pickle=False) as data:
      arrays = {k: data[k] for k in ('codes', 'active', 'meta')}
  except KeyError as e:
    raise CodesError(f'{path}: not a codes file (no {e} array)') from None
  except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
    raise CodesError(f'{path}: not a readable codes file ({str(e).splitlines()[0] if str(e) else type(e).__name__})'
                     ) from None
  try:
    meta = json.loads(str(arrays['meta']))
    if meta.get('format') != FORMAT:
      raise ValueError(f'format {meta.get("format")!r}')
    if meta.get('version') != VERSION:
      raise ValueError(f'version {meta.get("version")} (this code reads {VERSION})')
    codes, active = arrays['codes'], arrays['active']
    sources = tuple(meta['sources'])
    if codes.ndim != 3 or codes.shape[1] != len(sources) or codes.dtype.kind not in 'iu':
      raise ValueError(f'codes of shape {codes.shape} and dtype {codes.dtype} for {len(sources)} sources')
    if active.shape != codes.shape[:2] or active.dtype != bool:
      raise ValueError(f'activity of shape {active.shape} and dtype {active.dtype} for codes {codes.shape}')
    if codes.size and int(codes.max()) >= int(meta['codebook_size']):
      raise ValueError(f'code {int(codes.max())} out of range for codebook size {meta["codebook_size"]}')
    return Codes(codes=codes.astype(np.int32), active=active, sources=sources,
                 codebook_size=int(meta['codebook_size']), stride=int(meta['stride']),
                 model_rate=int(meta['model_rate']), sample_rate=int(meta['sample_rate']),
                 num_samples=int(meta['num_samples']), channels=int(meta['channels']),
                 fingerprint=str(meta['fingerprint']),
                 codes_per_source=tuple(int(c) for c in meta['codes_per_source']) if meta.get('codes_per_source')
                 else None)
  except (ValueError, KeyError, TypeError) as e:
    raise CodesError(f'{path}: corrupt codes file ({e})') from None


# --- Encoding and decoding ----------------------------------------------------------------------------------------


def encode_audio(separator, audio: np.ndarray, rate: int, *, progress: bool = False) -> Codes:
  """Codes of float [T, C] audio at `rate` (any rate and channel count that separate accepts)."""

  x = audio_lib.match_channels(np.asarray(audio, np.float32), separator.channels)
  x = audio_lib.resample(x, rate, separator.sample_rate, axis=0)
  codes = separator.encode(x, progress=progress)
  return Codes(codes=codes, active=np.ones(codes.shape[:2], bool), sources=tuple(separator.sources),
               codebook_size=separator.codebook_size, stride=separator.stride, model_rate=separator.sample_rate,
               sample_rate=int(rate), num_samples=int(audio.shape[0]), channels=int(audio.shape[1]),
               fingerprint=separator_fingerprint(separator),
               codes_per_source=config_lib.uneven_codes_per_source(separator.config))


def check_model(codes: Codes, separator, what: str = 'codes') -> None:
  """CodesError unless `codes` were made by the separator's model."""
  fingerprint = separator_fingerprint(separator)
  if codes.fingerprint != fingerprint:
    raise CodesError(f'{what} are of model {codes.fingerprint}, but {separator.path or "the model"} is model '
                     f'{fingerprint} (another checkpoint or run): decode with the model that encoded them')


def selection_masks(codes: Codes, sources=None, *, together: bool = False) -> np.ndarray:
  """Per-frame masks [M, T', S] of the selected sources (all when None) under the codes' activity: one mask per
  source (each slot alone), or with `together` a single mask of all of them."""
  names = list(codes.sources) if sources is None else list(sources)
  if not names:
    raise CodesError('no sources selected')
  indices = [codes.source_index(name) for name in names]
  if len(set(indices)) != len(indices):
    raise CodesError(f'a source is selected twice: {",".join(names)}')
  active = codes.active.astype(np.float32)
  masks = np.zeros((len(indices), codes.num_frames, len(codes.sources)), np.float32)
  for m, s in enumerate(indices):
    masks[m, :, s] = active[:, s]
  return masks.sum(0, keepdims=True) if together else masks


def decode_audio(separator, codes: Codes, sources=None, *, together: bool = False,
                 progress: bool = False) -> np.ndarray:
  """Decodes the selected sources: float32 [M, T, C] at the audio's rate, length and channels (M = 1 together)."""

  check_model(codes, separator)
  masks = selection_masks(codes, sources, together=together)
  audio = separator.decode(codes.codes, masks, progress=progress)  # [M, T' * stride, C] at the model's rate
  audio = audio_lib.resample(audio, separator.sample_rate, codes.sample_rate, axis=1)
  length = codes.num_samples
  audio = audio[:, :length] if audio.shape[1] >= length else np.pad(
      audio, ((0, 0), (0, length - audio.shape[1]), (0, 0)))
  return audio_lib.match_channels(audio, codes.channels)


# --- Edits -------------------------------------------------------------------------------------------------------

_RANGE = re.compile(r'^\s*([0-9.]*)(f?)\s*:\s*([0-9.]*)(f?)\s*$')


def parse_range(text: str, codes: Codes) -> tuple[int, int]:
  """'START:END' in seconds (or frames with an 'f' suffix) -> frames [first, last) of `codes`."""
  match = _RANGE.match(text)
  if not match:
    raise CodesError(f'--range={text}: expected START:END in seconds (e.g. 2.5:10, :4, 30:) or frames (100f:200f)')
  bounds = []
  for value, unit, default in ((match[1], match[2], 0), (match[3], match[4], codes.num_frames)):
    if not value:
      bounds.append(default)
      continue
    try:
      number = float(value)
    except ValueError:
      raise CodesError(f'--range={text}: {value!r} is not a number') from None
    bounds.append(int(round(number)) if unit else int(round(number * codes.frame_rate)))
  first, last = bounds
  if not 0 <= first < last <= codes.num_frames:
    raise CodesError(f'--range={text}: frames {first}:{last} are not within the song\'s 0:{codes.num_frames} '
                     f'({codes.num_frames / codes.frame_rate:.2f} s at {codes.frame_rate:.2f} frames/s)')
  return first, last


def mute(codes: Codes, source: str, frames: tuple[int, int] | None = None) -> Codes:
  s = codes.source_index(source)
  first, last = frames or (0, codes.num_frames)
  active = codes.active.copy()
  active[first:last, s] = False
  return codes.replace(active=active)


def solo(codes: Codes, source: str, frames: tuple[int, int] | None = None) -> Codes:
  s = codes.source_index(source)
  first, last = frames or (0, codes.num_frames)
  active = codes.active.copy()
  keep = active[first:last, s].copy()
  active[first:last] = False
  active[first:last, s] = keep
  return codes.replace(active=active)


def swap(codes: Codes, source: str, other: Codes, frames: tuple[int, int] | None = None,
         other_name: str = 'the other codes') -> Codes:
  """The slot's codes and activity in `frames` from the same slot and frames of `other` (looped if shorter)."""
  s = codes.source_index(source)
  if other.fingerprint != codes.fingerprint:
    raise CodesError(f'--swap={source}:{other_name}: its codes are of model {other.fingerprint}, these of model '
                     f'{codes.fingerprint}')
  if other.sources != codes.sources or other.num_codebooks != codes.num_codebooks or (
      other.codebook_size != codes.codebook_size):
    raise CodesError(f'--swap={source}:{other_name}: {other.num_codebooks} codebooks of {other.codebook_size} '
                     f'(sources {",".join(other.sources)}) do not match {codes.num_codebooks} of '
                     f'{codes.codebook_size} ({",".join(codes.sources)})')
  if other.num_frames == 0:
    raise CodesError(f'--swap={source}:{other_name}: it has no frames')
  first, last = frames or (0, codes.num_frames)
  taken = np.arange(first, last) % other.num_frames
  new_codes, active = codes.codes.copy(), codes.active.copy()
  new_codes[first:last, s] = other.codes[taken, s]
  active[first:last, s] = other.active[taken, s]
  return codes.replace(codes=new_codes, active=active)


def shift(codes: Codes, source: str, offset: int, frames: tuple[int, int] | None = None) -> Codes:
  """The slot's codes move `offset` frames later (earlier if negative) within `frames`; frames shifted in are
  inactive (code 0)."""
  s = codes.source_index(source)
  first, last = frames or (0, codes.num_frames)
  if abs(offset) >= last - first:
    raise CodesError(f'--shift={source}:{offset:+d}: the shift is not shorter than the {last - first} frames edited')
  new_codes, active = codes.codes.copy(), codes.active.copy()
  segment_codes, segment_active = codes.codes[first:last, s].copy(), codes.active[first:last, s].copy()
  new_codes[first:last, s] = 0
  active[first:last, s] = False
  if offset >= 0:
    new_codes[first + offset:last, s] = segment_codes[:last - first - offset]
    active[first + offset:last, s] = segment_active[:last - first - offset]
  else:
    new_codes[first:last + offset, s] = segment_codes[-offset:]
    active[first:last + offset, s] = segment_active[-offset:]
  return codes.replace(codes=new_codes, active=active)


def _split_source(text: str, flag: str) -> tuple[str, str]:
  source, sep, rest = text.partition(':')
  if not sep or not source or not rest:
    raise CodesError(f'--{flag}={text}: expected SOURCE:{"FILE" if flag == "swap" else "+N"}')
  return source, rest


def _swap_from_file(value: str) -> tuple[str, Codes, str]:
  source, path = _split_source(value, 'swap')
  return source, load(path), path


def apply_edits(codes: Codes, edits, *, swap_from=_swap_from_file, more=None) -> Codes:
  """Applies [(kind, value)] in order; kind in range, mute, solo, swap, shift (values as on the command line).

  swap_from: value of a swap edit -> (source, the other song's Codes, its name for messages); the default reads
    'SOURCE:FILE' (the page passes its second upload instead).
  more: {kind: fn(codes, value, frames) -> codes} for edits of the caller's own (the page's bass regeneration).
  """
  frames = None
  for kind, value in edits:
    if kind == 'range':
      frames = parse_range(str(value), codes) if value else None
    elif kind == 'mute':
      codes = mute(codes, str(value), frames)
    elif kind == 'solo':
      codes = solo(codes, str(value), frames)
    elif kind == 'swap':
      source = str(value).partition(':')[0]
      codes.source_index(source)
      source, other, name = swap_from(value)
      codes = swap(codes, source, other, frames, other_name=name)
    elif kind == 'shift':
      source, amount = _split_source(str(value), 'shift')
      try:
        offset = int(amount)
      except ValueError:
        raise CodesError(f'--shift={value}: {amount!r} is not a whole number of frames') from None
      codes = shift(codes, source, offset, frames)
    elif more and kind in more:
      codes = more[kind](codes, value, frames)
    else:
      raise CodesError(f'unknown edit {kind!r}')
  return codes


# --- Command line ------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog='python -m srcvq_jax.codes', description=__doc__.split('\n')[0])
  commands = parser.add_subparsers(dest='command', required=True)
  enc = commands.add_parser('encode', help='audio -> .codes.npz')
  enc.add_argument('input')
  enc.add_argument('--workdir', required=True, help='training workdir (latest checkpoint) or export dir')
  enc.add_argument('--out', required=True, help='the .codes.npz to write')
  dec = commands.add_parser('decode', help='.codes.npz -> wav(s)')
  dec.add_argument('input')
  dec.add_argument('--workdir', required=True)
  dec.add_argument('--out', required=True, help='folder of <source>.wav, or with --mix the wav file')
  dec.add_argument('--sources', default=None, help='comma-separated sources to decode (default: all)')
  dec.add_argument('--mix', action='store_true', help='decode the selected sources together into one file')
  dec.add_argument('--subtype', default='PCM_16', choices=['PCM_16', 'PCM_24', 'FLOAT'])
  edit = commands.add_parser('edit', help='.codes.npz -> edited .codes.npz (edits in the order given)')
  edit.add_argument('input')
  edit.add_argument('--out', required=True)
  for kind in ('range', 'mute', 'solo', 'swap', 'shift'):
    edit.add_argument(f'--{kind}', dest='edits', action='append', default=[],
                      type=lambda value, kind=kind: (kind, value))
  return parser


def _write_wav(path: str, audio: np.ndarray, rate: int, subtype: str) -> None:
  import soundfile  # pylint: disable=g-import-not-at-top

  if subtype != 'FLOAT':  # integer formats would wrap around outside [-1, 1]
    audio = np.clip(audio, -1.0, 1.0)
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  soundfile.write(path, audio, rate, subtype=subtype)


def run(argv: list[str]) -> None:
  """The command line (argv without the program name); raises errors.UserError for problems the user can fix."""
  args = _parser().parse_args(argv)
  if args.command == 'edit':
    codes = load(args.input)
    if not [kind for kind, _ in args.edits if kind != 'range']:
      raise CodesError('no edit given (--mute, --solo, --swap or --shift)')
    edited = apply_edits(codes, args.edits)
    save(args.out, edited)
    changed = int((edited.codes != codes.codes).any(-1).sum() + (edited.active != codes.active).sum())
    print(f'{args.input} -> {args.out} ({changed} slot-frames changed)', flush=True)
    return

  from srcvq_jax import inference, separate  # pylint: disable=g-import-not-at-top

  if args.command == 'decode':
    codes = load(args.input)  # before the model: a bad file fails fast
    separator = inference.load(args.workdir)
    check_model(codes, separator, what=f'the codes of {args.input}')
    sources = None if args.sources is None else [s.strip() for s in args.sources.split(',') if s.strip()]
    names = list(codes.sources) if sources is None else sources
    audio = decode_audio(separator, codes, sources, together=args.mix)
    if args.mix:
      _write_wav(args.out, audio[0], codes.sample_rate, args.subtype)
      print(f'{args.input} -> {args.out} ({"+".join(names)})', flush=True)
    else:
      for name, stem in zip(names, audio):
        _write_wav(os.path.join(args.out, f'{name}.wav'), stem, codes.sample_rate, args.subtype)
      print(f'{args.input} -> {args.out}/ ({", ".join(names)})', flush=True)
    return

  try:
    audio, rate = separate.read_audio(args.input)
  except separate.AudioError as e:
    raise CodesError(f'{args.input}: {e}') from None
  separator = inference.load(args.workdir)
  codes = encode_audio(separator, audio, rate, progress=sys.stderr.isatty())
  save(args.out, codes)
  size = os.path.getsize(args.out)
  seconds = audio.shape[0] / rate
  print(f'{args.input} -> {args.out} ({codes.num_frames} frames x {len(codes.sources)} sources x '
        f'{codes.num_codebooks} codes; {codes.raw_bitrate() / 1000:.1f} kbit/s raw, '
        f'{8 * size / max(seconds, 1e-9) / 1000:.1f} kbit/s as this file)', flush=True)


def main(argv=None) -> None:
  try:
    run(sys.argv[1:] if argv is None else argv)
  except errors.UserError as e:
    cli.fail(str(e))


if __name__ == '__main__':
  cli.relaunch_with_tcmalloc()
  main()
