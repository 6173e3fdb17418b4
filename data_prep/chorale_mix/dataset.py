"""The dataset on disk: rendering many tracks in worker processes, skipping those already rendered, the
validation list and metadata, and the command line."""
from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from absl import app
from absl import flags
from absl import logging

from data_prep import musdb_splits
from data_prep.chorale_mix.layout import (METADATA, MIXTURE, MUSDB_SETUP, RENDER_VERSION, SAMPLE_RATE, SOURCES, STEMS,
    SUBSETS, TRACK_SUFFIX)
from data_prep.chorale_mix.arrangement import SPLIT_VERSION, TrackPlan, plan_counts, plan_tracks
from data_prep.chorale_mix.synthesis import Renderer, find_soundfont, render_track


# --- Files ------------------------------------------------------------------------------------------------------


def track_dir(out_dir: str, plan: TrackPlan) -> str:
  return os.path.join(out_dir, plan.subset, plan.name)


def _has_all_stems(path: str) -> bool:
  return all(os.path.isfile(os.path.join(path, s + '.wav')) for s in STEMS)


def _write_track(path: str, audio: dict[str, np.ndarray], sample_rate: int) -> None:
  """Writes the five wavs, each through a temporary name, mixture last: an interrupted write is never 'complete'."""
  import soundfile  # pylint: disable=g-import-not-at-top

  os.makedirs(path, exist_ok=True)
  for stem in SOURCES + (MIXTURE,):
    final = os.path.join(path, stem + '.wav')
    tmp = os.path.join(path, f'.{stem}.wav.part')
    soundfile.write(tmp, audio[stem], sample_rate, subtype='PCM_16', format='WAV')
    os.replace(tmp, final)


def _same_render(record: dict[str, Any] | None, plan: TrackPlan, seconds: float) -> bool:
  """Whether a stored record describes the render `plan` would make (unknown = yes: the files are trusted)."""
  if record is None:
    return True
  return (record.get('render_version') == RENDER_VERSION and record.get('seed') == plan.seed and
          record.get('index') == plan.index and record.get('chorale') == plan.chorale.name and
          float(record.get('seconds', -1)) == float(seconds))


def _write_json(path: str, data: Any) -> None:
  tmp = path + '.part'
  with open(tmp, 'w', encoding='utf-8') as f:
    json.dump(data, f, indent=1)
    f.write('\n')
  os.replace(tmp, path)


def _write_text(path: str, text: str) -> None:
  tmp = path + '.part'
  with open(tmp, 'w', encoding='utf-8') as f:
    f.write(text)
  os.replace(tmp, path)


def _musdb_setup(validation: Sequence[str]) -> str:
  """musdb's default setup (mus.yaml) with this dataset's validation tracks."""
  lines = ['# musdb setup for ChoraleMix: musdb.DB(root, is_wav=True, setup_file="musdb_setup.yaml", split="valid")',
           'sample_rate: 44100.0', 'sources:']
  lines += [f'  {s}: {s}.wav' for s in ('vocals', 'drums', 'bass', 'other')]
  lines += ['mixture: mixture.wav', 'stem_ids:', '  mixture: 0', '  drums: 1', '  bass: 2', '  other: 3',
            '  vocals: 4', 'targets:']
  lines += [f'  {s}:\n    {s}: 1' for s in ('vocals', 'drums', 'bass', 'other')]
  lines += ['  accompaniment:\n    bass: 1\n    drums: 1\n    other: 1',
            '  linear_mixture:\n    vocals: 1\n    bass: 1\n    drums: 1\n    other: 1', 'validation_tracks:']
  lines += [f'- {json.dumps(n)}' for n in validation]  # JSON strings are valid YAML double-quoted scalars
  return '\n'.join(lines) + '\n'


def _prune_stale(out_dir: str, plans: Sequence[TrackPlan]) -> int:
  """Removes ChoraleMix track folders that are not part of this dataset (other seed / size), so loaders that list
  train/ and test/ see exactly these tracks. Only folders holding nothing but our wavs are touched."""
  wanted = {(p.subset, p.name) for p in plans}
  ours = {s + '.wav' for s in STEMS} | {f'.{s}.wav.part' for s in STEMS}
  removed = 0
  for subset in SUBSETS:
    folder = os.path.join(out_dir, subset)
    if not os.path.isdir(folder):
      continue
    for entry in sorted(os.listdir(folder)):
      path = os.path.join(folder, entry)
      if (subset, entry) in wanted or not entry.endswith(TRACK_SUFFIX) or not os.path.isdir(path):
        continue
      if set(os.listdir(path)) <= ours:
        shutil.rmtree(path)
        removed += 1
      else:
        logging.warning('%s: not part of this ChoraleMix (seed/num_tracks) but holds other files; left alone', path)
  return removed


# --- Workers ----------------------------------------------------------------------------------------------------

_WORKER_RENDERER: Renderer | None = None


def _init_worker(soundfont: str) -> None:
  global _WORKER_RENDERER
  _WORKER_RENDERER = Renderer(soundfont)


def _work(task: tuple[TrackPlan, float, str, bool]) -> tuple[str, dict[str, Any]]:
  """Renders and writes one track (or only describes it); runs in a worker or in the main process."""
  plan, seconds, out_dir, describe_only = task
  audio, record = render_track(plan, seconds, None if describe_only else _WORKER_RENDERER)
  if audio is not None:
    _write_track(track_dir(out_dir, plan), audio, record['sample_rate'])
  return plan.name, record


# --- API --------------------------------------------------------------------------------------------------------


def render(out_dir: str, num_tracks: int = 150, seconds: float = 30.0, seed: int = 0, workers: int | None = 1,
           overwrite: bool = False, soundfont: str | None = None, progress: bool = True) -> list[str]:
  """Renders ChoraleMix into `out_dir` (MUSDB18-HQ layout) and writes its split list, musdb setup and metadata.

  Args:
    out_dir: dataset root; train/ and test/ are created under it.
    num_tracks: tracks in all (MUSDB18 proportions, see split_of).
    seconds: length of every track; <= 0: each chorale once.
    seed: seed of chorale choice, splits and all render parameters (same seed -> identical files).
    workers: render processes, each loading the soundfont once; None: all CPUs; <= 1: in this process.
    overwrite: re-render tracks whose five wavs exist (otherwise they are kept when their parameters match).
    soundfont: GM .sf2 (default: find_soundfont()).
    progress: show a tqdm progress bar.

  Returns:
    The track folders, in the seed's order.
  """
  global _WORKER_RENDERER
  import tqdm  # pylint: disable=g-import-not-at-top

  started = time.time()
  soundfont = find_soundfont(soundfont)
  plans = plan_tracks(num_tracks, seed)
  os.makedirs(out_dir, exist_ok=True)
  meta_path = os.path.join(out_dir, METADATA)
  old = {}
  if os.path.isfile(meta_path):
    try:
      with open(meta_path, encoding='utf-8') as f:
        old = json.load(f).get('tracks', {})
    except (OSError, ValueError) as e:
      logging.warning('%s: unreadable (%s); re-describing the existing tracks', meta_path, e)

  records, tasks = {}, []
  for plan in plans:
    exists = _has_all_stems(track_dir(out_dir, plan))
    record = old.get(plan.name)
    if exists and not overwrite and _same_render(record, plan, seconds):
      if record is not None:
        records[plan.name] = record
      else:
        tasks.append((plan, seconds, out_dir, True))  # files from an earlier run without metadata: describe only
    else:
      tasks.append((plan, seconds, out_dir, False))
  to_render = sum(not t[3] for t in tasks)
  counts = plan_counts(plans)
  logging.info('ChoraleMix: %d tracks (%d train incl. %d validation, %d test) of %s, seed %d: %d to render, %d kept',
               num_tracks, counts['train'], counts['validation'], counts['test'],
               f'{seconds:g} s' if seconds > 0 else 'one chorale each', seed, to_render, num_tracks - to_render)

  def save_metadata():
    _write_json(meta_path, {
        'dataset': 'ChoraleMix', 'render_version': RENDER_VERSION, 'split_version': SPLIT_VERSION, 'seed': seed,
        'num_tracks': num_tracks,
        'seconds': seconds, 'sample_rate': SAMPLE_RATE, 'soundfont': os.path.basename(soundfont),
        'splits': counts, 'tracks': {p.name: records[p.name] for p in plans if p.name in records}})

  workers = (os.cpu_count() or 1) if workers is None else workers
  workers = max(1, min(workers, to_render))
  bar = tqdm.tqdm(total=len(tasks), desc='ChoraleMix', unit='track', disable=not progress or not tasks)
  try:
    if workers <= 1:
      previous = _WORKER_RENDERER
      _WORKER_RENDERER = Renderer(soundfont) if to_render else None
      try:
        for task in tasks:
          name, record = _work(task)
          records[name] = record
          save_metadata()
          bar.update()
      finally:
        if _WORKER_RENDERER is not None:
          _WORKER_RENDERER.close()
        _WORKER_RENDERER = previous
    else:
      # 'spawn': a fresh interpreter per worker, safe even when the caller has threads (JAX, TF) running.
      context = multiprocessing.get_context('spawn')
      with context.Pool(workers, initializer=_init_worker, initargs=(soundfont,)) as pool:
        for name, record in pool.imap_unordered(_work, tasks, chunksize=1):
          records[name] = record
          save_metadata()
          bar.update()
  finally:
    bar.close()
  save_metadata()

  removed = _prune_stale(out_dir, plans)
  if removed:
    logging.info('removed %d ChoraleMix track folder(s) of another seed/size', removed)
  validation = [p.name for p in plans if p.validation]
  _write_text(os.path.join(out_dir, musdb_splits.VALIDATION_LIST), ''.join(n + '\n' for n in validation))
  _write_text(os.path.join(out_dir, MUSDB_SETUP), _musdb_setup(validation))
  elapsed = time.time() - started
  audio_s = sum(records[p.name]['num_frames'] for p in plans) / SAMPLE_RATE
  logging.info('ChoraleMix ready in %s: %d tracks, %.0f s of audio, %.1f s (%d rendered)', out_dir, num_tracks,
               audio_s, elapsed, to_render)
  return [track_dir(out_dir, p) for p in plans]


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Defines the command-line flags (not at import, so importing the module cannot clash with others' flags)."""
  flags.DEFINE_string('out', None, 'Output root (MUSDB18-HQ layout).', flag_values=flag_values)
  flags.DEFINE_integer('num_tracks', 150, 'Tracks to render (MUSDB18 proportions: 1/3 test, 14% of train '
                       'validation).', flag_values=flag_values)
  flags.DEFINE_float('seconds', 30.0, 'Length of every track in seconds (the chorale is cut or looped); <= 0: each '
                     'chorale once, plus the release tail.', flag_values=flag_values)
  flags.DEFINE_integer('seed', 0, 'Seed of the chorale choice, splits and every render parameter.',
                       flag_values=flag_values)
  flags.DEFINE_integer('workers', None, 'Render processes (each loads the soundfont once); default: CPUs.',
                       flag_values=flag_values)
  flags.DEFINE_bool('overwrite', False, 'Re-render tracks whose five wavs already exist.', flag_values=flag_values)
  flags.DEFINE_string('soundfont', None, 'GM soundfont (.sf2); default: $CHORALE_MIX_SOUNDFONT or FluidR3 GM where '
                      'the distribution installs it.', flag_values=flag_values)


def main(argv: Sequence[str]) -> None:
  """absl entry point: renders with the flags of define_flags()."""
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  f = flags.FLAGS
  if not f.out:
    raise app.UsageError('--out is required')
  render(f.out, num_tracks=f.num_tracks, seconds=f.seconds, seed=f.seed, workers=f.workers, overwrite=f.overwrite,
         soundfont=f.soundfont)
