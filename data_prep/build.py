"""Builds the TFDS TFRecords of MUSDB18 / MUSDB18-HQ / ChoraleMix for training and evaluation.

  python -m data_prep.build --dataset=musdb18 --musdb_root=/data/musdb18 --data_dir=/data/tfds
  python -m data_prep.build --dataset=musdb18 --musdb_root=/data/musdb18hq --is_wav --data_dir=/data/tfds
  python -m data_prep.build --dataset=chorale_mix --musdb_root=data/chorale_mix --is_wav --data_dir=data/tfds

Writes DATA_DIR/<dataset>/{chunks,tracks}/1.0.0/ (sharded TFRecords + dataset_info.json); an existing build is
reused unless --overwrite. Bad input prints one line `error: <file>: <problem>` and exits with status 2.
"""
from __future__ import annotations

import os
import sys
import time

from absl import app
from absl import flags
from absl import logging

_DATASET = flags.DEFINE_enum('dataset', 'musdb18', ['musdb18', 'chorale_mix'],
                             'TFDS name to write (the same builder; a data_dir can hold both).')
_ROOT = flags.DEFINE_string('musdb_root', None, 'Dataset root with train/ and test/ (MUSDB18 layout).')
_IS_WAV = flags.DEFINE_bool('is_wav', False, 'MUSDB18-HQ layout: <track>/{mixture,vocals,bass,drums,other}.wav.')
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'Output TFDS data_dir (config.data.data_dir of training).')
_CHUNK_SECONDS = flags.DEFINE_float('chunk_seconds', 10.0, 'Seconds per example of the chunks config.')
_CONFIGS = flags.DEFINE_list('configs', ['chunks', 'tracks'], 'Builder configs to write (chunks, tracks).')
_NUM_SHARDS = flags.DEFINE_integer('num_shards', None, 'TFRecord files per split of the chunks config (default: '
                                   'tfds sizes them, 64 MiB to 1 GiB each).')
_OVERWRITE = flags.DEFINE_bool('overwrite', False, 'Rebuild even if the dataset already exists in data_dir.')
_DEBUG = flags.DEFINE_bool('debug', False, 'Show the traceback of unexpected errors.')


def build(dataset: str, root: str, data_dir: str, *, is_wav: bool = False, chunk_seconds: float = 10.0,
          configs=('chunks', 'tracks'), num_shards: int | None = None, overwrite: bool = False) -> dict:
  """Builds the given configs of a dataset; returns {config: {split: num_examples}}.

  Args:
    dataset: 'musdb18' or 'chorale_mix' (the TFDS name written under data_dir).
    root: the dataset root (MUSDB18 layout).
    data_dir: the TFDS data_dir to write.
    is_wav: MUSDB18-HQ layout (wav folders) instead of .stem.mp4 files.
    chunk_seconds: seconds per example of the chunks config.
    configs: builder configs to write.
    num_shards: TFRecord files per split of the chunks config (None: tfds's sizing, 64 MiB to 1 GiB a file);
      every split needs at least that many chunks.
    overwrite: rebuild an existing dataset.

  Raises:
    DataError: bad input, one line naming the file (raised before anything is written).
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from data_prep import musdb18  # pylint: disable=g-import-not-at-top

  cls = musdb18.BUILDERS[dataset]
  unknown = set(configs) - {c.name for c in cls.BUILDER_CONFIGS}
  if unknown:
    raise musdb18.DataError(f'--configs: unknown config(s) {sorted(unknown)}, expected chunks and/or tracks')
  existing = [cls(data_dir=data_dir, config=config) for config in configs]
  for b in existing:
    built = b.is_prepared() and (b.info.metadata or {}).get('chunk_seconds')
    if not overwrite and built and abs(built - chunk_seconds) > 1e-9:
      raise musdb18.DataError(f'{b.data_dir}: already built with chunk_seconds={built}, not {chunk_seconds}; '
                              'pass --overwrite to rebuild')
  tracks = None
  if overwrite or not all(b.is_prepared() for b in existing):
    # Listed and checked once, here, so that bad input fails before tfds creates any folder.
    tracks = musdb18.list_tracks(root, is_wav)
  builders = [cls(root=root, is_wav=is_wav, chunk_seconds=chunk_seconds, tracks=tracks, data_dir=data_dir,
                  config=config) for config in configs]
  mode = (tfds.download.GenerateMode.FORCE_REDOWNLOAD if overwrite
          else tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS)
  counts = {}
  for config, builder in zip(configs, builders):
    start = time.time()
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=root, download_mode=mode, try_download_gcs=False,
        # Whole tracks are few examples: a fixed shard count could exceed them, so only chunks take it.
        num_shards=num_shards if builder.chunk_seconds else None))
    seconds = time.time() - start
    counts[config] = {name: split.num_examples for name, split in builder.info.splits.items()}
    logging.info('%s/%s: %s in %.1f s -> %s', dataset, config, counts[config], seconds, builder.data_dir)
    print(f'{dataset}/{config}: ' + ', '.join(f'{k} {v}' for k, v in counts[config].items()) +
          f' examples -> {builder.data_dir} ({seconds:.1f} s)', flush=True)
  return counts


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  from srcvq_jax.errors import DataError  # pylint: disable=g-import-not-at-top

  if not _ROOT.value or not _DATA_DIR.value:
    print('error: --musdb_root and --data_dir are required', file=sys.stderr)
    sys.exit(2)
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    tfds.disable_progress_bar()
    build(_DATASET.value, os.path.expanduser(_ROOT.value), os.path.expanduser(_DATA_DIR.value),
          is_wav=_IS_WAV.value, chunk_seconds=_CHUNK_SECONDS.value, configs=tuple(_CONFIGS.value),
          num_shards=_NUM_SHARDS.value, overwrite=_OVERWRITE.value)
  except DataError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  except Exception as e:  # pylint: disable=broad-except  (one line for the user; --debug for the traceback)
    if _DEBUG.value:
      raise
    message = ' '.join(str(e).split())[:500]
    print(f'error: {type(e).__name__}: {message} (rerun with --debug for the traceback)', file=sys.stderr)
    sys.exit(1)


if __name__ == '__main__':
  app.run(main)
