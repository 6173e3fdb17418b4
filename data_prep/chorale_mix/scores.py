"""The chorales: music21's bundled Bach SATB chorales and their scores (bars, parts, notes)."""
from __future__ import annotations

import dataclasses
import os
import re
import zipfile

from absl import logging


SATB = ('Soprano', 'Alto', 'Tenor', 'Bass')


@dataclasses.dataclass(frozen=True)
class Chorale:
  """A chorale of the music21 corpus: `name` like 'bach/bwv269', `path` its MusicXML file."""
  name: str
  path: str


def _musicxml_part_names(path: str) -> list[str]:
  """Part names from the <part-list> of a .mxl/.xml file, read without music21 (a few ms instead of ~0.3 s)."""
  if path.endswith('.mxl'):
    with zipfile.ZipFile(path) as z:
      members = [n for n in z.namelist() if not n.startswith('META-INF') and n.endswith(('.xml', '.musicxml'))]
      if not members:
        return []
      text = z.read(members[0]).decode('utf-8', errors='replace')
  else:
    with open(path, encoding='utf-8', errors='replace') as f:
      text = f.read()
  part_list = text.split('</part-list>', 1)[0]
  return [n.strip() for n in re.findall(r'<part-name[^>]*>([^<]*)</part-name>', part_list)]


def list_chorales() -> list[Chorale]:
  """The Bach chorales of music21's bundled corpus with exactly Soprano/Alto/Tenor/Bass parts, sorted by name.

  music21 10.5 ships 410 Bach MusicXML files; 365 are plain SATB chorales. The others (extra instrument parts,
  two sopranos, keyboard works) are skipped and counted in the log. Works offline.

  Returns:
    The chorales, sorted by name (the seed's shuffle starts from this order).
  """
  from music21 import corpus  # pylint: disable=g-import-not-at-top  (slow import; only for rendering)

  paths = sorted({str(p) for p in corpus.getComposer('bach') if str(p).endswith(('.mxl', '.xml', '.musicxml'))})
  chorales, skipped = [], 0
  for path in paths:
    if tuple(_musicxml_part_names(path)) == SATB:
      stem = os.path.basename(path).rsplit('.', 1)[0]
      chorales.append(Chorale(name=f'bach/{stem}', path=path))
    else:
      skipped += 1
  logging.info('music21 corpus: %d SATB Bach chorales; skipped %d Bach scores with other parts', len(chorales), skipped)
  if not chorales:
    raise RuntimeError('no SATB chorales found in the music21 corpus (is music21 installed with its corpus?)')
  return sorted(chorales, key=lambda c: c.name)


@dataclasses.dataclass
class Bar:
  start: float          # quarter offset of the bar's (virtual) downbeat; before the content for a pickup bar
  length: float         # quarters of a full bar of this meter
  content_start: float  # quarters after `start` where the notated bar begins (> 0 for a pickup)
  content_end: float    # ... and ends (< length for a shortened last bar)
  numerator: int
  denominator: int
  fermata: bool = False  # a phrase ends in this bar


@dataclasses.dataclass
class Score:
  voices: dict[str, list[tuple[float, float, int]]]  # 'soprano'..: (onset, duration, midi key) in quarters
  bars: list[Bar]
  length: float  # quarters from the first bar's content start to the end of the last bar
  title: str
  time_signatures: list[str]


def load_score(path: str) -> Score:
  """Parses a SATB chorale into note lists, bars (with pickup and phrase ends) and its length in quarters."""
  from music21 import converter, expressions, meter, stream  # pylint: disable=g-import-not-at-top

  score = converter.parse(path)
  parts = list(score.parts)
  names = tuple(p.partName for p in parts)
  if names != SATB:
    raise ValueError(f'{path}: parts {names}, expected {SATB}')
  voices, fermatas = {}, []
  for voice, part in zip(('soprano', 'alto', 'tenor', 'bass'), parts):
    notes = []
    for n in part.stripTies().flatten().notes:
      duration = float(n.duration.quarterLength)
      if duration <= 0:  # grace notes
        continue
      for p in n.pitches:
        notes.append((float(n.offset), duration, int(p.midi)))
      if voice == 'soprano' and any(isinstance(e, expressions.Fermata) for e in n.expressions):
        fermatas.append(float(n.offset))
    voices[voice] = sorted(notes)

  bars, ts, signatures = [], None, []
  for i, m in enumerate(parts[0].getElementsByClass(stream.Measure)):
    if m.timeSignature is not None:
      ts = m.timeSignature
      if ts.ratioString not in signatures:
        signatures.append(ts.ratioString)
    if ts is None:
      ts = meter.TimeSignature('4/4')
      signatures.append('4/4')
    length = float(ts.barDuration.quarterLength)
    content = float(m.duration.quarterLength)
    pad = float(m.paddingLeft or 0.0)
    if i == 0 and pad == 0.0 and 0 < content < length:  # an anacrusis without paddingLeft in the file
      pad = length - content
    offset = float(m.offset)
    bars.append(Bar(start=offset - pad, length=length, content_start=pad, content_end=pad + content,
                     numerator=int(ts.numerator), denominator=int(ts.denominator)))
  if not bars:
    raise ValueError(f'{path}: no measures')
  for f in fermatas:
    for bar in bars:
      if bar.start + bar.content_start <= f < bar.start + bar.content_end:
        bar.fermata = True
  origin = bars[0].start + bars[0].content_start
  end = max(bars[-1].start + bars[-1].content_end, max(o + d for v in voices.values() for o, d, _ in v))
  # Time 0 is the first notated beat (the pickup, if any).
  for v in voices.values():
    v[:] = [(o - origin, d, k) for o, d, k in v]
  for bar in bars:
    bar.start -= origin
  # Most corpus files carry no title (music21 then reports the file name); keep a real one where present.
  title = (score.metadata.title or '') if score.metadata is not None else ''
  return Score(voices=voices, bars=bars, length=end - origin, title=title, time_signatures=signatures)
