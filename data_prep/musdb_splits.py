"""The train / validation / test split of a MUSDB18(-HQ)-layout root: the one owner of which track is in which split,
for the TFDS build (data_prep/musdb18.py) and for evaluating from the folder (srcvq_jax/evaluate.py --musdb_root)
alike. No TensorFlow.

test = MUSDB's test subset. validation = the validation subset of MUSDB's train subset: musdb's official list
(`split='valid'`), or, when ROOT/validation_tracks.txt exists (ChoraleMix writes one), the track names listed
there (one per line); train = the rest of the train subset.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

from srcvq_jax.errors import DataError

SPLITS = ('train', 'validation', 'test')
# Per-dataset list of validation tracks (names of ROOT/train/<name>), overriding musdb's official list.
VALIDATION_LIST = 'validation_tracks.txt'


def first_line(text: str) -> str:
  """The last non-empty line of a tool's message (ffmpeg puts the reason last), trimmed for a one-line error."""
  lines = [l.strip() for l in str(text).splitlines() if l.strip()]
  return (lines[-1] if lines else 'unknown error')[:300]


def _read_validation_list(root: str) -> list[str] | None:
  """Names in ROOT/validation_tracks.txt (blank lines and '#' comments ignored), or None without the file."""
  path = os.path.join(root, VALIDATION_LIST)
  if not os.path.isfile(path):
    return None
  with open(path, encoding='utf-8') as f:
    names = [line.strip() for line in f]
  return [n for n in names if n and not n.startswith('#')]


def _musdb_db(root: str, is_wav: bool, subsets: str, split: str | None):
  """musdb.DB with its errors (ffprobe, missing folders) turned into DataError."""
  import musdb  # pylint: disable=g-import-not-at-top

  try:
    return musdb.DB(root=root, is_wav=is_wav, subsets=subsets, split=split)
  except Exception as e:  # pylint: disable=broad-except  (musdb/stempeg raise bare RuntimeError/Warning/ffmpeg.Error)
    raise DataError(f'{root}: musdb could not list the {subsets} tracks ({first_line(e)})') from e


def split_tracks(root: str, is_wav: bool, splits: Sequence[str] = SPLITS) -> dict[str, list[Any]]:
  """{split: musdb tracks (musdb.audio_classes.MultiTrack), in musdb's order} for each of `splits`.

  Raises:
    DataError: a validation list naming tracks not in ROOT/train, or musdb failing to list a subset.
  """
  unknown_splits = [s for s in splits if s not in SPLITS]
  if unknown_splits:
    raise ValueError(f'splits {unknown_splits}: expected some of {SPLITS}')
  result: dict[str, list[Any]] = {}
  if {'train', 'validation'} & set(splits):
    custom_validation = _read_validation_list(root)
    if custom_validation is None:
      for split, musdb_split in (('train', 'train'), ('validation', 'valid')):
        if split in splits:
          result[split] = _musdb_db(root, is_wav, 'train', musdb_split).tracks
    else:
      train = _musdb_db(root, is_wav, 'train', None).tracks
      names = {t.name for t in train}
      unknown = [n for n in custom_validation if n not in names]
      if unknown:
        raise DataError(f'{os.path.join(root, VALIDATION_LIST)}: {len(unknown)} name(s) not in {root}/train, '
                        f'e.g. {unknown[0]!r}')
      wanted = set(custom_validation)
      if 'train' in splits:
        result['train'] = [t for t in train if t.name not in wanted]
      if 'validation' in splits:
        result['validation'] = [t for t in train if t.name in wanted]
  if 'test' in splits:
    result['test'] = _musdb_db(root, is_wav, 'test', None).tracks
  return {split: result[split] for split in splits}
