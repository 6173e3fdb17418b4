"""The paper's SDR table on whole tracks, with baselines, codebook health, bitrate and a t-SNE of the latents.

  python -m srcvq_jax.evaluate --workdir=/ckpt/run1 [--split=test] [--data_dir=/data/tfds]
  python -m srcvq_jax.evaluate --workdir=/ckpt/run1 --musdb_root=/data/musdb18hq [--max_tracks=5] [--max_seconds=30]
      [--museval] [--noanalysis]

--workdir is a training workdir (its latest checkpoint) or an export dir. Tracks come from the TFDS 'tracks' build
(tfds_data.load_tracks, at --data_dir or the config's data.data_dir) or, with --musdb_root, from a MUSDB18(-HQ)
layout read by musdb.DB(root, is_wav=True) (ChoraleMix renders that layout). Every track is separated with the
chunked inference of srcvq_jax.inference (argmax codes; slot i alone decodes source i); a track longer than
--block_seconds is read (wav layout: from disk) and scored in blocks, each with the context that makes its outputs
equal a whole-track pass, so memory does not grow with the track's length and the scores are the whole track's.

SDR (srcvq_jax.sdr, equal to museval's BSSEval v4 image SDR to ~1e-12 dB): 1 s windows, median over windows, then
median over tracks, per source, and the average over sources, for these rows on the same tracks:
  model      the separation.
  oracle     each ground-truth stem encoded alone and decoded with only its own slot: the codec's ceiling.
  mixture    the mixture as the estimate of every source.
  silence    an all-zero estimate. museval returns NaN for it (its silent-window rule), so it is computed from the
             definition: SDR(0) = 10 log10(sum s^2 / sum (0 - s)^2) = 0 dB in every window that museval scores
             (no reference silent), NaN elsewhere; a trained model must beat it on every source (PERF_NOTES).
  0.25 x mixture   a scaled mixture, the stronger trivial baseline.
The reconstruction SDR of the mixture (all slots selected) is reported too.

Sample rate: SDR is evaluated at the model's rate (config.data.sample_rate). Tracks at another rate are resampled
to it first (scipy.signal.resample_poly; the TFDS build is decimated by load_tracks), references included, so the
references are band-limited to the model's Nyquist frequency; at 44.1 kHz (configs/base.py) nothing changes.

Writes OUT/results.json (every row per source + avg, per-track scores, bitrate, codebook health, cluster scores,
timing and real-time factor), OUT/results.md (the table), OUT/tsne.png and, with --museval, OUT/museval/<track>.json
(museval's own per-window scores of the model's estimates) plus its aggregate and the largest difference to the
fast SDR. OUT defaults to WORKDIR/eval/<split>.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import sys
import time
import warnings
from typing import Callable, Iterator

import numpy as np
from absl import app
from absl import flags
from absl import logging

from srcvq_jax import audio as audio_lib
from srcvq_jax import cli
from srcvq_jax import errors
from srcvq_jax import eval_report

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The command line's flags; defined on demand, not at import, so library users can import this module next to
  others that define --workdir."""
  flags.DEFINE_string('workdir', None, 'Training workdir (latest checkpoint) or export dir.')
  flags.DEFINE_string('split', 'test', "Split to evaluate: 'test', 'validation' or 'train'.")
  flags.DEFINE_string('data_dir', None, "TFDS data dir of the tracks build (default: the config's).")
  flags.DEFINE_string('musdb_root', None, 'Read tracks through musdb.DB(root) instead of TFDS (MUSDB18-HQ layout).')
  flags.DEFINE_integer('synthetic_tracks', None, 'Evaluate on N tracks of the NumPy synthetic source (smoke runs '
                       'and tests; --max_seconds long, 4 s by default) instead of a dataset.')
  flags.DEFINE_bool('is_wav', True, 'With --musdb_root: wav folders (MUSDB18-HQ, ChoraleMix); --nois_wav reads '
                    'MUSDB18 .stem.mp4 (needs ffmpeg).')
  flags.DEFINE_integer('max_tracks', None, 'Evaluate only the first N tracks.')
  flags.DEFINE_float('max_seconds', None, 'Evaluate only the first S seconds of every track.')
  flags.DEFINE_bool('museval', False, 'Also score the model with museval (slow: ~15 s per track on a CPU).')
  flags.DEFINE_bool('analysis', True, 't-SNE plot and cluster scores of single-source latents.')
  flags.DEFINE_bool('leakage', True, 'Source-awareness scores: each stem alone in, every slot decoded (S more '
                    'decodes per track).')
  flags.DEFINE_string('out', None, 'Output folder (default: WORKDIR/eval/<split>).')
  flags.DEFINE_string('masked_sources', '', 'Score the model row with these sources through the mixture '
                      "post-filter (comma-separated names or 'all'; srcvq_jax/postfilter.py; 'vocals,drums,other' "
                      "measured best for configs/best.py); '' = codes alone.")
  flags.DEFINE_integer('batch_size', None, 'Inference windows per model call.')
  flags.DEFINE_float('block_seconds', BLOCK_SECONDS, 'Tracks longer than this are read and scored in blocks (same '
                     'scores, memory bounded by the block; wav tracks are read block by block from disk).')


ROWS = ('model', 'oracle', 'mixture', 'silence', 'mixture_x0.25')
ROW_TITLES = {
    'model': 'model (argmax codes)',
    'oracle': 'oracle: stem alone in, own slot out (codec ceiling)',
    'mixture': 'mixture as estimate',
    'silence': 'silence (0 dB by definition)',
    'mixture_x0.25': '0.25 x mixture',
}


def _row_titles(separator) -> dict[str, str]:
  titles = dict(ROW_TITLES)
  masked = [s for s, on in zip(separator.sources, separator.masked_sources) if on]
  if masked:  # the model row reads the mixture then: say so wherever it is shown
    titles['model'] = f'model (argmax codes; {",".join(masked)} as masks of the mixture)'
  return titles


# --split names with --musdb_root -> data_prep.musdb_splits' splits (which owns which track is in which).
_MUSDB_SPLITS = {'test': 'test', 'train': 'train', 'validation': 'validation', 'valid': 'validation'}


# --- Tracks ------------------------------------------------------------------------------------------------------

# Tracks longer than this are scored in blocks of it (at least; a multiple of 1 s and of the model's frame), each
# read with the context that makes its outputs equal a whole-track pass: memory does not grow with the length.
BLOCK_SECONDS = 60.0


@dataclasses.dataclass
class TrackAudio:
  """One track to score: read(first, last) -> (stems float32 [S, n, C], mixture float32 [n, C]) of samples
  [first, last) at `rate` (n = last - first), so that a long track can be read in blocks."""
  name: str
  rate: int
  num_samples: int
  read: Callable[[int, int], tuple[np.ndarray, np.ndarray]]

  @classmethod
  def of_arrays(cls, name: str, stems: np.ndarray, mixture: np.ndarray, rate: int) -> TrackAudio:
    length = min(stems.shape[1], mixture.shape[0])
    return cls(name, int(rate), length, lambda first, last: (stems[:, first:last], mixture[first:last]))


def _wav_track(track, sources, max_seconds: float | None) -> TrackAudio:
  """A MUSDB18-HQ-layout track read from its wavs block by block (soundfile seeks; nothing held whole)."""
  import soundfile as sf  # pylint: disable=g-import-not-at-top

  missing = [s for s in sources if s not in track.sources]
  if missing:
    raise errors.UserError(f'{os.path.dirname(track.path)}: no stem for source(s) {", ".join(missing)}')
  paths = [track.sources[s].path for s in sources] + [track.path]
  try:
    infos = [sf.info(p) for p in paths]
  except Exception as e:  # pylint: disable=broad-except  (libsndfile raises several types)
    raise errors.UserError(f'{os.path.dirname(track.path)}: cannot read its wavs ({e})') from e
  rates = {int(i.samplerate) for i in infos}
  if len(rates) != 1:
    raise errors.UserError(f'{os.path.dirname(track.path)}: stems at different sample rates {sorted(rates)}')
  rate = rates.pop()
  total = min(int(i.frames) for i in infos)
  if max_seconds:
    total = min(total, int(round(max_seconds * rate)))

  def read(first, last):
    audio = [sf.read(p, start=first, stop=last, dtype='float32', always_2d=True)[0] for p in paths]
    return np.stack(audio[:-1]), audio[-1]

  return TrackAudio(track.name, rate, total, read)


def musdb_tracks(root: str, split: str, sources, *, is_wav: bool = True, max_tracks: int | None = None,
                 max_seconds: float | None = None) -> tuple[list, Iterator[tuple[str, np.ndarray, np.ndarray, int]]]:
  """Tracks of a MUSDB18(-HQ)-layout folder.

  Args:
    root: the dataset root (train/ and test/ under it).
    split: 'test', 'train' or 'validation' (as data_prep.musdb_splits splits the train subset: musdb's list, or the
      root's validation_tracks.txt).
    sources: source names, in slot order.
    is_wav: MUSDB18-HQ wav folders (True) or MUSDB18 .stem.mp4.
    max_tracks: only the first N tracks.
    max_seconds: only the first S seconds of every track.

  Returns:
    (track names, iterator of TrackAudio (wav layout: read block by block) or of (name, stems float32 [S, T, C],
    mixture float32 [T, C], sample rate) (.stem.mp4, decoded whole)).

  Raises:
    errors.UserError: no such folder, unknown split, no tracks, or a source missing from a track.
  """
  if not os.path.isdir(root):
    raise errors.UserError(f'--musdb_root={root}: no such directory')
  if split not in _MUSDB_SPLITS:
    raise errors.UserError(f'--split={split}: expected one of {sorted(_MUSDB_SPLITS)} with --musdb_root')
  subset = 'test' if _MUSDB_SPLITS[split] == 'test' else 'train'
  if not os.path.isdir(os.path.join(root, subset)):
    raise errors.UserError(f'--musdb_root={root}: no {subset}/ folder (split {split!r})')
  from data_prep import musdb_splits  # pylint: disable=g-import-not-at-top

  try:
    tracks = musdb_splits.split_tracks(root, is_wav, (_MUSDB_SPLITS[split],))[_MUSDB_SPLITS[split]]
  except errors.DataError as e:
    raise errors.UserError(str(e)) from e
  tracks = list(tracks)[:max_tracks] if max_tracks else list(tracks)
  if not tracks:
    raise errors.UserError(f'--musdb_root={root}: no tracks in split {split!r}')

  def iterate():
    for track in tracks:
      if is_wav:  # read block by block
        yield _wav_track(track, sources, max_seconds)
        continue
      if max_seconds:
        track.chunk_start, track.chunk_duration = 0.0, float(max_seconds)
      missing = [s for s in sources if s not in track.targets]
      if missing:
        raise errors.UserError(f'{track.path}: no stem for source(s) {", ".join(missing)}')
      stems = np.stack([track.targets[s].audio for s in sources]).astype(np.float32)
      yield track.name, stems, np.asarray(track.audio, np.float32), int(track.rate)

  return [t.name for t in tracks], iterate()


def tfds_tracks(config, split: str, *, max_tracks: int | None = None, max_seconds: float | None = None):
  """Tracks of the TFDS 'tracks' build (tfds_data.load_tracks), already at the model's rate.

  Returns:
    (None: names unknown in advance, iterator of (name, stems [S, T, C], mixture [T, C], sample rate)).
  """
  from srcvq_jax import tfds_data  # pylint: disable=g-import-not-at-top

  if not config.data.data_dir:
    raise errors.UserError('no data: pass --data_dir=DIR (a TFDS build of data_prep.build) or --musdb_root=DIR '
                        '(MUSDB18-HQ layout)')
  rate = int(config.data.sample_rate)

  def iterate():
    try:
      tracks = tfds_data.load_tracks(config, split)
      for name, stems in itertools.islice(tracks, max_tracks):
        if max_seconds:
          stems = stems[:, :int(round(max_seconds * rate))]
        yield name, stems, stems.sum(0), rate
    except errors.DataError as e:
      raise errors.UserError(str(e)) from e
    except ImportError as e:
      raise errors.UserError(f'reading the TFDS build needs TensorFlow ({e}); pass --musdb_root instead') from e

  return None, iterate()


def synthetic_source_tracks(config, split: str, num_tracks: int, seconds: float):
  """(names, iterator of (name, stems, mixture, rate)) of synthetic_data.synthetic_tracks (no dataset needed)."""
  from srcvq_jax import synthetic_data  # pylint: disable=g-import-not-at-top

  tracks = list(synthetic_data.synthetic_tracks(config, split, num_tracks, seconds))
  rate = int(config.data.sample_rate)
  return [n for n, _ in tracks], ((name, stems, stems.sum(0), rate) for name, stems in tracks)


# --- Scores ------------------------------------------------------------------------------------------------------


def silence_sdr_per_window(references: np.ndarray, sample_rate: int) -> np.ndarray:
  """SDR of an all-zero estimate per window: 0 dB by definition where museval scores the window, else NaN.

  SDR(0) = 10 log10(sum s^2 / sum (0 - s)^2) = 10 log10(1) = 0. museval itself gives NaN, because its
  silent-window rule drops every window in which an estimate is all zeros. The NaN pattern here is the one museval
  gives from the references alone (passing the references as estimates leaves only their silence in the rule).

  Args:
    references: [S, T, C].
    sample_rate: samples per second.

  Returns:
    [S, n_windows] float64: 0.0, or NaN where a reference is silent.
  """
  from srcvq_jax import sdr  # pylint: disable=g-import-not-at-top

  per_window = sdr.sdr_per_window(references, references, sample_rate)
  return np.where(np.isnan(per_window), np.nan, 0.0)


def track_windows(stems: np.ndarray, mixture: np.ndarray, rate: int, *, model: np.ndarray | None = None,
                  oracle: np.ndarray | None = None) -> dict[str, np.ndarray]:
  """Per-window SDR [S, W] of every row of one track: the baselines, and 'model' / 'oracle' when given.

  Args:
    stems: references [S, T, C]; mixture: [T, C]; rate: their sample rate.
    model: the separation estimates [S, T, C] (slot i decoded alone from the mixture's codes).
    oracle: the codec ceiling's estimates [S, T, C] (stem i alone in, slot i out).
  """
  from srcvq_jax import sdr  # pylint: disable=g-import-not-at-top

  estimates_of = {'mixture': np.broadcast_to(mixture, stems.shape),
                  'mixture_x0.25': np.broadcast_to(0.25 * mixture, stems.shape)}
  if model is not None:
    estimates_of['model'] = model
  if oracle is not None:
    estimates_of['oracle'] = oracle
  windows = {row: sdr.sdr_per_window(stems, est, rate) for row, est in estimates_of.items()}
  windows['silence'] = silence_sdr_per_window(stems, rate)
  return windows


def score_track(separator, stems: np.ndarray, mixture: np.ndarray,
                estimate: np.ndarray | None = None) -> dict[str, np.ndarray]:
  """Median-over-windows SDR [S] of every row of one track at the separator's rate, as `evaluate` scores it
  (the in-training SDR of sdr_monitor uses this). `estimate`: the mixture's separation where the caller already
  has it (e.g. timed it), instead of separating again."""
  from srcvq_jax import sdr  # pylint: disable=g-import-not-at-top

  model = separator.separate(mixture) if estimate is None else estimate
  windows = track_windows(stems, mixture, separator.sample_rate, model=model, oracle=separator.oracle(stems))
  return {row: sdr.median_over_windows(w) for row, w in windows.items()}


def _row_dict(values: np.ndarray, sources) -> dict:
  """{source: dB, 'avg': mean over sources} (NaN stays NaN here; JSON writes null)."""
  row = {name: float(v) for name, v in zip(sources, values)}
  row['avg'] = float(np.mean(values))
  return row


def _json_safe(value):
  """NaN/inf -> None, NumPy scalars -> Python, recursively (strict JSON)."""
  if isinstance(value, dict):
    return {k: _json_safe(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_json_safe(v) for v in value]
  if isinstance(value, (np.floating, float)):
    return float(value) if math.isfinite(value) else None
  if isinstance(value, np.integer):
    return int(value)
  return value


def _museval_track(name: str, references: np.ndarray, estimates: np.ndarray, rate: int, sources, out_dir: str):
  """museval v4 on one track: writes OUT/museval/<name>.json; returns (TrackStore, SDR per window [S, W])."""
  import museval  # pylint: disable=g-import-not-at-top

  sdr_w, isr, sir, sar = museval.evaluate(references, estimates, win=rate, hop=rate, mode='v4')
  store = museval.TrackStore(track_name=name, win=1.0, hop=1.0)
  for i, target in enumerate(sources):
    store.add_target(target_name=target, values={'SDR': sdr_w[i].tolist(), 'SIR': sir[i].tolist(),
                                                 'ISR': isr[i].tolist(), 'SAR': sar[i].tolist()})
  folder = os.path.join(out_dir, 'museval')
  os.makedirs(folder, exist_ok=True)
  with open(os.path.join(folder, name.replace(os.sep, '_') + '.json'), 'w', encoding='utf-8') as f:
    f.write(store.json)
  return store, np.asarray(sdr_w, np.float64)


def _score_blocks(separator, track: TrackAudio, masks: np.ndarray, *, block_seconds: float, run_leakage: bool,
                  keep_whole: bool, on_codes: Callable[[np.ndarray, np.ndarray, np.ndarray, bool], None]) -> dict:
  """Everything evaluate needs of one track, computed block by block at the model's rate.

  Each block is read with `context` samples on both sides (separate.block_geometry: the receptive margin plus
  both resamplings' reach, at frame-aligned positions), resampled and run through the model whole, and cropped to
  its own samples: its outputs equal a pass over the whole track. Blocks are a multiple of 1 s at the model's
  rate, so their SDR windows are the track's windows. A track of at most one block is one block, no context.

  on_codes(mixture codes [T', S, H], oracle codes [S, T', S, H], stems [S, T, C], first block) is called with each
  block's (nothing of a block is kept after it, but its scores' windows and sums).

  Returns:
    {'windows': {row: [S, W]}, 'reconstruction_windows': [1, W], 'awareness': analysis.AwarenessSums,
     'whole': (stems, estimates) of a one-block track when keep_whole else None, 'blocks', 'seconds',
     'separation_s', 'oracle_s'}.
  """
  from srcvq_jax import analysis  # pylint: disable=g-import-not-at-top
  from srcvq_jax import sdr  # pylint: disable=g-import-not-at-top
  from srcvq_jax import separate  # pylint: disable=g-import-not-at-top

  rate, num_sources, stride = separator.sample_rate, separator.num_sources, separator.stride
  g = math.gcd(track.rate, rate)
  up, down = rate // g, track.rate // g
  unit, context = separate.block_geometry(separator, track.rate)
  # Block starts: multiples of the frame unit and of 1 s at both rates.
  step = math.lcm(unit, track.rate)
  block = max(step, int(round(block_seconds * track.rate / step)) * step)
  total = track.num_samples
  if total <= block:
    block, context = total, 0
  model_length = -(-total * up // down)
  out = {'windows': {row: [] for row in ROWS}, 'reconstruction_windows': [],
         'awareness': analysis.AwarenessSums(num_sources), 'whole': None, 'blocks': 0,
         'seconds': total / track.rate, 'separation_s': 0.0, 'oracle_s': 0.0}
  for start in range(0, max(total, 1), max(block, 1)):
    end = min(start + block, total)
    first, last = max(0, start - context), min(total, end + context)
    stems, mixture = track.read(first, last)
    stems = audio_lib.match_channels(audio_lib.resample(stems, track.rate, rate, axis=1), separator.channels)
    mixture = audio_lib.match_channels(audio_lib.resample(mixture, track.rate, rate, axis=0), separator.channels)
    # This block's samples at the model's rate, within the resampled context segment.
    begin = start * up // down
    stop = model_length if end == total else end * up // down
    offset = begin - first * up // down
    length = min(stems.shape[1], mixture.shape[0])
    keep = slice(offset, min(offset + stop - begin, length))
    frames = slice(offset // stride, -(-keep.stop // stride))

    t0 = time.perf_counter()
    decoded, codes = separator.apply(mixture[:length], masks, return_codes=True)
    decoded[:num_sources] = separator.postfilter(decoded[:num_sources], mixture[:length], offset=first * up // down)
    out['separation_s'] += time.perf_counter() - t0
    t0 = time.perf_counter()
    oracle, oracle_codes = separator.oracle(stems[:, :length], return_codes=True)
    out['oracle_s'] += time.perf_counter() - t0
    single = None
    if run_leakage:  # every slot decoded from each stem alone: where a stem goes (analysis.slot_leakage_db)
      single = np.stack([separator.apply(stems[i, :length], np.eye(num_sources, dtype=np.float32))
                         for i in range(num_sources)])[:, :, keep]

    stems, mixture, decoded, oracle = stems[:, keep], mixture[keep], decoded[:, keep], oracle[:, keep]
    estimates, reconstructed = decoded[:num_sources], decoded[num_sources]
    # The whole track's windows drop a trailing partial one: so does a last block shorter than a window.
    if start == 0 or mixture.shape[0] >= rate:
      for row, values in track_windows(stems, mixture, rate, model=estimates, oracle=oracle).items():
        out['windows'][row].append(values)
      out['reconstruction_windows'].append(sdr.sdr_per_window(mixture[None], reconstructed[None], rate))
    out['awareness'].add(single, estimates, stems)
    on_codes(codes[frames], oracle_codes[:, frames], stems, start == 0)
    out['blocks'] += 1
    if keep_whole and total <= block:
      out['whole'] = (stems, estimates)
  out['windows'] = {row: np.concatenate(values, axis=1) for row, values in out['windows'].items()}
  out['reconstruction_windows'] = np.concatenate(out['reconstruction_windows'], axis=1)
  return out


# --- Evaluation --------------------------------------------------------------------------------------------------


def evaluate(separator, tracks, *, out_dir: str, split: str, data_info: dict, run_museval: bool = False,
             run_analysis: bool = True, progress: bool | None = None, num_tracks: int | None = None,
             run_leakage: bool = True, block_seconds: float = BLOCK_SECONDS) -> dict:
  """Separates every track, scores all rows, writes results.json / results.md / tsne.png into out_dir.

  A track longer than block_seconds is read and scored in blocks (_score_blocks): every score equals the whole
  track's (the blocks' SDR windows are the track's, their sums are its sums), except museval, which needs the
  track whole and is left out for such a track (its record says so).

  Args:
    separator: an inference.Separator.
    tracks: iterable of TrackAudio, or of (name, stems [S, T, C], mixture [T, C], sample rate of both).
    out_dir: output folder (created).
    split: the split's name (for the report).
    data_info: where the tracks came from (for the report).
    run_museval: also score the model's estimates with museval.
    run_analysis: t-SNE plot and cluster scores of single-source latents.
    run_leakage: the source-awareness scores that can fail (analysis.slot_leakage_db / slot_correlations): S more
      decodes of every track.
    progress: tqdm bar over tracks (None: only on a terminal).
    num_tracks: number of tracks, when known (the bar's total).
    block_seconds: tracks longer than this are scored in blocks of about this length.

  Returns:
    The results dict written to results.json.
  """
  from srcvq_jax import analysis  # pylint: disable=g-import-not-at-top
  from srcvq_jax import sdr  # pylint: disable=g-import-not-at-top

  started = time.perf_counter()
  os.makedirs(out_dir, exist_ok=True)
  sources, rate, num_sources = separator.sources, separator.sample_rate, separator.num_sources
  # S separations plus the all-slots reconstruction, from one encoding of the mixture.
  masks = np.concatenate([np.eye(num_sources, dtype=np.float32), np.ones((1, num_sources), np.float32)])
  usage = analysis.CodeUsage(num_sources, separator.num_codebooks, separator.codebook_size)
  embeddings = analysis.SlotEmbeddings()
  frames_per_window = max(int(round(separator.frames_per_second)), 1)
  track_scores = {row: [] for row in ROWS}
  awareness = {'leakage_db': [], 'own_correlation': [], 'other_correlation': []}
  leakage_matrices = []  # per track [S inputs, S slots]
  reconstruction, per_track, museval_stores, museval_diffs = [], [], [], []
  timing = {'compile_s': 0.0, 'separation_s': 0.0, 'oracle_s': 0.0, 'audio_s': 0.0}
  dataset_rates = set()

  import tqdm  # pylint: disable=g-import-not-at-top
  bar = tqdm.tqdm(tracks, unit='track', total=num_tracks, disable=None if progress is None else not progress)
  for index, track in enumerate(bar):
    if not isinstance(track, TrackAudio):
      track = TrackAudio.of_arrays(*track)
    dataset_rates.add(track.rate)
    if index == 0:
      # Compile outside the timed calls (tracks longer than a window share one compiled shape).
      t0 = time.perf_counter()
      separator.warm_up(-(-track.num_samples * rate // track.rate), num_masks=len(masks), oracle=True)
      timing['compile_s'] = time.perf_counter() - t0
    def on_codes(codes, oracle_codes, stems, first_block, index=index):
      usage.add(codes)
      # (A last block shorter than a window: the whole track drops that partial window too.)
      if run_analysis and (first_block or codes.shape[0] >= frames_per_window):
        # Input i's codes of every slot -> vectors (slot j's codebook for slot j) -> input i's own slot i.
        vectors = separator.slot_vectors(oracle_codes)  # [S inputs, T', S slots, H * D]
        own = vectors[np.arange(num_sources), :, np.arange(num_sources)]  # [S, T', H * D]
        embeddings.add(own, stems, frames_per_window, separator.stride, index)

    scored = _score_blocks(separator, track, masks, block_seconds=block_seconds, run_leakage=run_leakage,
                           keep_whole=run_museval, on_codes=on_codes)
    separation_s, seconds = scored['separation_s'], scored['seconds']
    timing['separation_s'] += separation_s
    timing['oracle_s'] += scored['oracle_s']
    timing['audio_s'] += seconds
    windows = scored['windows']
    scores = {row: sdr.median_over_windows(windows[row]) for row in ROWS}
    for row in ROWS:
      track_scores[row].append(scores[row])
    recon = float(sdr.median_over_windows(scored['reconstruction_windows'])[0])
    reconstruction.append(recon)
    record = {'name': track.name, 'seconds': seconds, 'separation_s': separation_s, 'blocks': scored['blocks'],
              'sdr': {row: _row_dict(scores[row], sources) for row in ROWS}, 'reconstruction_sdr': recon}

    if run_museval:
      if scored['whole'] is None:
        record['museval_error'] = (f'not run: the track is longer than one block ({block_seconds:g} s) and museval '
                                   'needs it whole in memory')
      else:
        stems, estimates = scored['whole']
        try:
          store, museval_windows = _museval_track(track.name, stems, estimates, rate, sources, out_dir)
          museval_stores.append(store)
          both = np.isfinite(museval_windows) & np.isfinite(windows['model'])
          if both.any():
            museval_diffs.append(float(np.abs(museval_windows - windows['model'])[both].max()))
        except ValueError as e:  # museval refuses tracks with an all-silent reference or estimate
          record['museval_error'] = str(e)

    if run_leakage:
      awareness['leakage_db'].append(scored['awareness'].leakage_db())
      leakage_matrices.append(scored['awareness'].leakage_matrix_db())
      own, other = scored['awareness'].correlations()
      awareness['own_correlation'].append(own)
      awareness['other_correlation'].append(other)

    per_track.append(record)
    logging.info('%s: %.1f s, model avg SDR %.2f dB (oracle %.2f), %.1fx real time', track.name, seconds,
                 record['sdr']['model']['avg'], record['sdr']['oracle']['avg'], seconds / max(separation_s, 1e-9))

  if not per_track:
    raise errors.UserError(f'no tracks in split {split!r}')

  rows = {row: _row_dict(sdr.aggregate_tracks(track_scores[row]), sources) for row in ROWS}
  results = {
      'checkpoint': {'path': separator.path, 'step': separator.step},
      'split': split,
      'data': {**data_info, 'dataset_sample_rates': sorted(dataset_rates), 'model_sample_rate': rate,
               'resampled': any(r != rate for r in dataset_rates), 'tracks': len(per_track),
               'channels': separator.channels},
      'sources': list(sources),
      'protocol': ('BSSEval v4 image SDR (srcvq_jax.sdr, museval-exact), 1 s windows, median over windows then '
                   'tracks, at the model sample rate; silence = 0 dB by definition (museval gives NaN)'),
      'sdr': rows,
      'row_titles': _row_titles(separator),
      'masked_sources': [s for s, on in zip(sources, separator.masked_sources) if on],
      'reconstruction_sdr': float(np.nanmedian(reconstruction)) if np.isfinite(reconstruction).any() else None,
      'bitrate_kbps': analysis.bitrate_kbps(separator.frames_per_second, sum(separator.codes_per_source),
                                            separator.codebook_size),
      'codebook': usage.summary(sources, separator.frames_per_second),
      'tracks': per_track,
  }
  if run_museval and museval_stores:
    import museval  # pylint: disable=g-import-not-at-top

    store = museval.EvalStore(frames_agg='median', tracks_agg='median')
    for track_store in museval_stores:
      store.add_track(track_store)
    aggregated = store.agg_frames_tracks_scores()
    museval_rows = {}
    for metric in ('SDR', 'SIR', 'ISR', 'SAR'):
      values = np.asarray([float(aggregated.get((s, metric), np.nan)) for s in sources])
      museval_rows[metric] = _row_dict(values, sources)
    results['museval'] = {'scores': museval_rows, 'folder': os.path.join(out_dir, 'museval'),
                          'max_abs_sdr_diff_db': max(museval_diffs) if museval_diffs else None}
  if run_leakage:
    results['source_awareness'] = {
        name: _row_dict(sdr.aggregate_tracks(values), sources) for name, values in awareness.items()}
    with warnings.catch_warnings():  # a cell NaN on every track (a source silent throughout) stays NaN
      warnings.simplefilter('ignore', RuntimeWarning)
      matrix = np.nanmedian(np.stack(leakage_matrices), axis=0)
    results['source_awareness']['leakage_matrix_db'] = {
        s: {slot: float(matrix[i, j]) for j, slot in enumerate(sources)} for i, s in enumerate(sources)}
    results['source_awareness']['note'] = (
        'leakage_db: a stem alone in, mean energy of the other slots\' decodes over its own slot\'s (dB, median '
        'over tracks; << 0 = source-aware, ~0 = slots alike); leakage_matrix_db[stem][slot]: that slot\'s decoded '
        'energy over the stem\'s own slot\'s, stem alone in (dB, median over tracks); own/other_correlation: '
        'squared correlation of slot i\'s separation with reference i / with the other references')
  if run_analysis:
    results['analysis'] = analysis.embedding_summary(embeddings, sources, os.path.join(out_dir, 'tsne.png'),
                                                     shared_codebooks=bool(separator.config.quantizer.shared_codebooks),
                                                     title=f'{os.path.basename(os.path.normpath(separator.path or ""))}'
                                                     f' step {separator.step}, {split}: single-source slot vectors')
  timing['total_s'] = time.perf_counter() - started
  timing['realtime_factor'] = timing['audio_s'] / max(timing['separation_s'], 1e-9)
  timing['note'] = ('separation_s: the model pass of every track (S separations + the reconstruction from one '
                    'encoding), compilation excluded; realtime_factor = audio_s / separation_s')
  results['timing'] = timing
  results = _json_safe(results)
  with open(os.path.join(out_dir, 'results.json'), 'w', encoding='utf-8') as f:
    json.dump(results, f, indent=2)
  with open(os.path.join(out_dir, 'results.md'), 'w', encoding='utf-8') as f:
    f.write(eval_report.format_report(results))
  return results


# --- Command line ------------------------------------------------------------------------------------------------


def run(workdir: str, split: str = 'test', *, data_dir: str | None = None, musdb_root: str | None = None,
        is_wav: bool = True, max_tracks: int | None = None, max_seconds: float | None = None,
        run_museval: bool = False, run_analysis: bool = True, out_dir: str | None = None,
        batch_size: int | None = None, progress: bool | None = None, synthetic_tracks: int | None = None,
        run_leakage: bool = True, block_seconds: float = BLOCK_SECONDS, masked_sources: str = '') -> dict:
  """Loads the model of `workdir`, reads the split and evaluates (what `python -m srcvq_jax.evaluate` does).

  Raises:
    errors.UserError: a missing workdir/checkpoint, split or data, or an unknown masked source.
  """
  from srcvq_jax import inference  # pylint: disable=g-import-not-at-top
  from srcvq_jax import postfilter  # pylint: disable=g-import-not-at-top

  separator = inference.load(workdir, batch_size=batch_size)
  try:
    separator.masked_sources = postfilter.parse_sources(masked_sources, separator.sources)
  except ValueError as e:
    raise errors.UserError(f'--masked_sources: {e}') from None
  if synthetic_tracks:
    names, tracks = synthetic_source_tracks(separator.config, split, synthetic_tracks, max_seconds or 4.0)
    data_info = {'source': 'synthetic'}
  elif musdb_root:
    names, tracks = musdb_tracks(musdb_root, split, separator.sources, is_wav=is_wav, max_tracks=max_tracks,
                                 max_seconds=max_seconds)
    data_info = {'source': 'musdb', 'path': os.path.abspath(musdb_root)}
  else:
    config = separator.config
    if data_dir:
      config.data.data_dir = data_dir
    names, tracks = tfds_tracks(config, split, max_tracks=max_tracks, max_seconds=max_seconds)
    data_info = {'source': 'tfds', 'path': config.data.data_dir, 'dataset': config.data.dataset}
  data_info['max_seconds'] = max_seconds
  out_dir = out_dir or os.path.join(workdir, 'eval', split)
  return evaluate(separator, tracks, out_dir=out_dir, split=split, data_info=data_info, run_museval=run_museval,
                  run_analysis=run_analysis, progress=progress, num_tracks=len(names) if names else None,
                  run_leakage=run_leakage, block_seconds=block_seconds)


def main(argv):
  if len(argv) > 1:
    cli.fail(f'unexpected arguments: {" ".join(argv[1:])}')
  if not FLAGS.workdir:
    cli.fail('--workdir is required')
  out_dir = FLAGS.out or os.path.join(FLAGS.workdir, 'eval', FLAGS.split)
  try:
    results = run(FLAGS.workdir, FLAGS.split, data_dir=FLAGS.data_dir, musdb_root=FLAGS.musdb_root,
                  is_wav=FLAGS.is_wav, max_tracks=FLAGS.max_tracks, max_seconds=FLAGS.max_seconds,
                  run_museval=FLAGS.museval, run_analysis=FLAGS.analysis, out_dir=out_dir,
                  batch_size=FLAGS.batch_size, synthetic_tracks=FLAGS.synthetic_tracks,
                  run_leakage=FLAGS.leakage, block_seconds=FLAGS.block_seconds,
                  masked_sources=FLAGS.masked_sources)
  except errors.UserError as e:
    cli.fail(str(e))
  print(eval_report.format_table(results))
  png = (results.get('analysis') or {}).get('tsne_png')
  print(f'results: {os.path.join(out_dir, "results.json")} and results.md' + (f', t-SNE: {png}' if png else ''))
  sys.stdout.flush()


if __name__ == '__main__':
  cli.relaunch_with_tcmalloc()
  define_flags()
  app.run(main, flags_parser=cli.parse_flags)
