"""ChoraleMix: a small multi-stem dataset in the MUSDB18-HQ layout, rendered offline from Bach chorales.

A new user sees the whole system work without downloading MUSDB18: the four-part chorales bundled with music21 are
rendered with FluidSynth and a General MIDI soundfont into four stems per track,

  vocals = soprano on a voice program        bass  = bass part on a bass program
  other  = alto + tenor on keys/organ/strings/guitar programs
  drums  = a pattern generated from the chorale's meter and tempo on the GM percussion channel,

with tempo, transposition, instruments, velocities, pan, drum style, reverb and stem levels drawn per track from the
seed (same seed -> identical files). Output, readable by `musdb.DB(root=OUT, is_wav=True)`:

  OUT/{train,test}/<BWV_nnn - ChoraleMix>/{mixture,vocals,bass,drums,other}.wav   44.1 kHz, stereo, 16-bit PCM
  OUT/validation_tracks.txt   train tracks of the validation subset, one name per line (like MUSDB18's 14 of 100)
  OUT/musdb_setup.yaml        musdb's setup with that validation list: musdb.DB(..., setup_file='musdb_setup.yaml')
  OUT/chorale_mix.json        render parameters of every track (provenance)

The mixture is the sum of the stems exactly as stored (int16), so stems always add up to the mixture.

  python -m data_prep.chorale_mix --out=data/chorale_mix                       # 150 x 30 s (100 train, 50 test)
  python -m data_prep.chorale_mix --out=data/chorale_mix --num_tracks=32 --seconds=20

Needs pyfluidsynth with libfluidsynth and a GM soundfont (Debian: fluidsynth, fluid-soundfont-gm; --soundfont or
$CHORALE_MIX_SOUNDFONT elsewhere). Rerunning skips tracks whose five wavs exist with the same parameters.
"""
import dataclasses
import functools
import json
import math
import multiprocessing
import os
import re
import shutil
import time
import zipfile
from collections.abc import Sequence
from typing import Any

from absl import app
from absl import flags
from absl import logging
import numpy as np

SOURCES = ('vocals', 'bass', 'drums', 'other')
MIXTURE = 'mixture'
STEMS = (MIXTURE,) + SOURCES
SAMPLE_RATE = 44100
SUBSETS = ('train', 'test')
TRACK_SUFFIX = ' - ChoraleMix'
VALIDATION_LIST = 'validation_tracks.txt'
MUSDB_SETUP = 'musdb_setup.yaml'
METADATA = 'chorale_mix.json'
# Bumped whenever the rendering changes, so reruns re-render tracks made by an older version instead of skipping them.
RENDER_VERSION = 1
# Where Linux distributions put FluidR3 GM (Debian/Ubuntu fluid-soundfont-gm first).
SOUNDFONT_CANDIDATES = (
    '/usr/share/sounds/sf2/FluidR3_GM.sf2',
    '/usr/share/soundfonts/FluidR3_GM.sf2',
    '/usr/share/soundfonts/default.sf2',
    '/usr/share/sounds/sf2/default-GM.sf2',
)
SATB = ('Soprano', 'Alto', 'Tenor', 'Bass')

# MUSDB18: 150 tracks = 100 train (14 of them validation) + 50 test. Other sizes keep these proportions.
_TEST_EVERY = 3                 # track k (in the seeded order) is a test track when k % 3 == 0: ceil(n / 3) tests
_VALIDATION_PER_100_TRAIN = 14  # train track j is validation when ceil(14 (j + 1) / 100) > ceil(14 j / 100)

# FluidSynth renders in blocks of 64 frames and applies events at block starts; every event time and render length
# is a whole number of blocks, so note timing never depends on where an earlier render call stopped.
_BLOCK = 64
_RELEASE_TAIL_S = 1.0    # after the last note-off: release and reverb
_FADE_OUT_S = 0.3        # raised-cosine fade at the very end (cut-off reverb tails would click)
_PEAK = 0.9              # the mixture (and every stem) is scaled to peak at most here
_STEM_RMS_DBFS = -20.0   # per-stem loudness target, +- _STEM_RMS_SPREAD_DB per track and stem
_STEM_RMS_SPREAD_DB = 3.0

# General MIDI programs (0-based) per role; names as in the GM standard.
GM_NAMES = {
    0: 'Acoustic Grand Piano', 1: 'Bright Acoustic Piano', 4: 'Electric Piano 1', 5: 'Electric Piano 2',
    16: 'Drawbar Organ', 19: 'Church Organ', 24: 'Acoustic Guitar (nylon)', 25: 'Acoustic Guitar (steel)',
    26: 'Electric Guitar (jazz)', 32: 'Acoustic Bass', 33: 'Electric Bass (finger)', 34: 'Electric Bass (pick)',
    35: 'Fretless Bass', 38: 'Synth Bass 1', 39: 'Synth Bass 2', 48: 'String Ensemble 1', 49: 'String Ensemble 2',
    52: 'Choir Aahs', 53: 'Voice Oohs', 54: 'Synth Voice',
}
VOICE_PROGRAMS = (52, 53, 54)
BASS_PROGRAMS = (32, 33, 34, 35, 38, 39)
OTHER_PROGRAMS = (0, 1, 4, 5, 16, 19, 24, 25, 26, 48, 49)
# GM2 drum kits (bank 128) that FluidR3 GM has.
DRUM_KITS = {0: 'Standard', 8: 'Room', 16: 'Power', 25: 'TR-808', 32: 'Jazz', 40: 'Brush'}
_DRUM_KIT_WEIGHTS = {0: 0.3, 8: 0.2, 16: 0.15, 25: 0.05, 32: 0.15, 40: 0.15}
_DRUM_CHANNEL = 9  # GM percussion channel 10
_LOWEST_BASS_KEY = 28  # E1, the open E of a bass guitar: the octave-down bass goes no lower

# GM percussion keys.
_KICK, _SIDE_STICK, _SNARE, _ELECTRIC_SNARE = 36, 37, 38, 40
_CLOSED_HAT, _PEDAL_HAT, _OPEN_HAT = 42, 44, 46
_CRASH, _CRASH2, _RIDE = 49, 57, 51
_TOMS = (50, 48, 47, 45, 43, 41)  # high to low

# --- Chorales ---------------------------------------------------------------------------------------------------


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
class _Bar:
  start: float          # quarter offset of the bar's (virtual) downbeat; before the content for a pickup bar
  length: float         # quarters of a full bar of this meter
  content_start: float  # quarters after `start` where the notated bar begins (> 0 for a pickup)
  content_end: float    # ... and ends (< length for a shortened last bar)
  numerator: int
  denominator: int
  fermata: bool = False  # a phrase ends in this bar


@dataclasses.dataclass
class _Score:
  voices: dict[str, list[tuple[float, float, int]]]  # 'soprano'..: (onset, duration, midi key) in quarters
  bars: list[_Bar]
  length: float  # quarters from the first bar's content start to the end of the last bar
  title: str
  time_signatures: list[str]


def _load_score(path: str) -> _Score:
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
    bars.append(_Bar(start=offset - pad, length=length, content_start=pad, content_end=pad + content,
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
  return _Score(voices=voices, bars=bars, length=end - origin, title=title, time_signatures=signatures)


# --- Track plan and parameters ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TrackPlan:
  """One track to render: its place in the dataset and everything its audio depends on."""
  index: int       # position in the seed's chorale order; the split and the track's random stream follow from it
  name: str        # folder name, e.g. 'BWV_269 - ChoraleMix'
  subset: str      # 'train' or 'test'
  validation: bool  # a train track of the validation subset
  chorale: Chorale
  seed: int        # the dataset seed


# How tracks get their split: 1 = by position only (renders before 2026-12-01: 6 of the 50 test tracks of the
# 150-track set shared their tune with a train/validation track); 2 = by tune (every track of a tune in one split).
SPLIT_VERSION = 2
# Melodic intervals of the soprano that identify a tune (the music21 corpus holds several harmonizations of many
# tunes, e.g. bwv244.15 / 244.17 / 244.54, "O Haupt voll Blut und Wunden").
_TUNE_INTERVALS = 12


@functools.lru_cache(maxsize=None)
def tune_of(path: str) -> tuple[int, ...]:
  """The tune of a chorale file: its soprano's first _TUNE_INTERVALS melodic intervals in semitones (repeated notes
  merged, so transposition, rhythm and repeated-note splits do not matter)."""
  from music21 import converter  # pylint: disable=g-import-not-at-top

  soprano = converter.parse(path).parts[0]
  keys = [int(p.midi) for n in soprano.stripTies().flatten().notes for p in n.pitches[-1:]]
  merged = [k for i, k in enumerate(keys) if i == 0 or k != keys[i - 1]]
  return tuple(b - a for a, b in zip(merged, merged[1:]))[:_TUNE_INTERVALS]


def split_of(index: int) -> tuple[str, bool]:
  """(subset, is_validation) of the track at `index` in the seed's order.

  A fixed interleaving, so that the first n tracks always have MUSDB18's proportions: ceil(n / 3) test tracks and,
  of the train tracks, ceil(14% of them) validation (n=150 -> 100 train incl. 14 validation + 50 test; n=20 -> 13
  train incl. 2 validation + 7 test; n >= 3 -> at least one test and one validation track). A track keeps its split
  when --num_tracks grows.

  Args:
    index: 0-based position of the track.

  Returns:
    ('test', False) or ('train', is_validation).
  """
  if index % _TEST_EVERY == 0:
    return 'test', False
  j = index - (index + _TEST_EVERY - 1) // _TEST_EVERY  # train tracks before this one
  ceil_frac = lambda x: -(-x * _VALIDATION_PER_100_TRAIN // 100)
  return 'train', ceil_frac(j + 1) > ceil_frac(j)


def split_counts(num_tracks: int) -> dict[str, int]:
  """{'train': ..., 'validation': ..., 'test': ...} for `num_tracks` (train includes validation)."""
  counts = {'train': 0, 'validation': 0, 'test': 0}
  for k in range(num_tracks):
    subset, validation = split_of(k)
    counts[subset] += 1
    counts['validation'] += validation
  return counts


def _track_name(chorale: Chorale, variant: int) -> str:
  stem = chorale.name.split('/')[-1]
  label = 'BWV_' + stem[3:] if stem.lower().startswith('bwv') else stem
  return label + (f' v{variant + 1}' if variant else '') + TRACK_SUFFIX


def plan_tracks(num_tracks: int, seed: int, chorales: Sequence[Chorale] | None = None) -> list[TrackPlan]:
  """The dataset's tracks: chorales in an order shuffled by `seed`, with names and splits.

  Args:
    num_tracks: how many tracks; beyond the number of chorales, chorales repeat with new parameters ('... v2').
    seed: the dataset seed.
    chorales: default list_chorales().

  Returns:
    num_tracks plans; plan_tracks(n, s)[:m] == plan_tracks(m, s) for m <= n.
  """
  if num_tracks < 1:
    raise ValueError(f'num_tracks must be >= 1, got {num_tracks}')
  if seed < 0:
    raise ValueError(f'seed must be >= 0, got {seed}')
  chorales = list(chorales) if chorales is not None else list_chorales()
  order = np.random.default_rng([seed, 0]).permutation(len(chorales))
  plans = []
  split_of_tune = {}
  for k in range(num_tracks):
    chorale = chorales[order[k % len(chorales)]]
    # A tune keeps the split of its first track, so no harmonization of a test tune (or a "v2" of a chorale) is
    # trained on; the position's split (split_of) goes to every new tune.
    subset, validation = split_of_tune.setdefault(tune_of(chorale.path), split_of(k))
    plans.append(TrackPlan(index=k, name=_track_name(chorale, k // len(chorales)), subset=subset,
                           validation=validation, chorale=chorale, seed=seed))
  return plans


def plan_counts(plans: Sequence[TrackPlan]) -> dict[str, int]:
  """{'train': ..., 'validation': ..., 'test': ...} of planned tracks (train includes validation)."""
  return {'train': sum(p.subset == 'train' for p in plans), 'validation': sum(p.validation for p in plans),
          'test': sum(p.subset == 'test' for p in plans)}


def _rng(plan: TrackPlan, stream_id: int) -> np.random.Generator:
  """Independent random streams per track and purpose, so changing one aspect does not reshuffle the others."""
  return np.random.default_rng(np.random.SeedSequence([plan.seed, 1, plan.index, stream_id]))


def sample_params(plan: TrackPlan) -> dict[str, Any]:
  """The track's random render parameters (JSON-serializable; independent of the score)."""
  rng = _rng(plan, 0)
  uniform = lambda lo, hi: float(round(rng.uniform(lo, hi), 3))
  alto = int(rng.choice(OTHER_PROGRAMS))
  tenor = alto if rng.random() < 0.5 else int(rng.choice(OTHER_PROGRAMS))
  spread = int(rng.integers(10, 36)) * (1 if rng.random() < 0.5 else -1)
  kits = list(_DRUM_KIT_WEIGHTS)
  kit = int(rng.choice(kits, p=np.array([_DRUM_KIT_WEIGHTS[k] for k in kits])))
  tempo = uniform(72.0, 100.0)
  params = {
      'tempo_qpm': tempo,
      'transpose': int(rng.integers(-5, 6)),
      'programs': {
          'vocals': int(rng.choice(VOICE_PROGRAMS)),
          'bass': int(rng.choice(BASS_PROGRAMS)),
          'alto': alto,
          'tenor': tenor,
          'drum_kit': kit,
      },
      'bass_octave_down': bool(rng.random() < 0.6),  # applied only where the part stays above E1
      'pan': {  # MIDI CC10, 64 = centre
          'vocals': int(rng.integers(52, 77)),
          'bass': int(rng.integers(58, 71)),
          'alto': 64 - spread,
          'tenor': 64 + spread,
          'drums': int(rng.integers(56, 73)),
      },
      'velocity': {  # base MIDI velocity per part; notes vary around it with the meter and at random
          'vocals': int(rng.integers(80, 106)),
          'bass': int(rng.integers(85, 111)),
          'other': int(rng.integers(65, 96)),
          'drums': int(rng.integers(-12, 9)),  # offset to the pattern's velocities
      },
      'gate': {'vocals': uniform(0.93, 0.99), 'bass': uniform(0.8, 0.97), 'other': uniform(0.85, 0.99)},
      'drums': {
          'timekeeper': str(rng.choice(['closed_hat', 'closed_hat', 'ride', 'pedal_hat'])),
          'subdivision': int(rng.choice([1, 2, 2, 2] + ([4] if tempo <= 84 else []))),  # per beat
          'groove': int(rng.integers(0, 3)),
          'backbeat': str(rng.choice(['snare', 'snare', 'side_stick', 'electric_snare'])),
          'fills': str(rng.choice(['phrase_ends', 'every_4', 'every_8'])),
          'fill_beats': int(rng.integers(1, 3)),
          'open_hat': bool(rng.random() < 0.4),
          'ghost_notes': uniform(0.0, 0.2),
      },
      'reverb': {
          'rt60_s': uniform(0.6, 1.8),
          'predelay_ms': uniform(8.0, 30.0),
          'damping': uniform(0.2, 0.7),
          'wet': {'vocals': uniform(0.25, 0.55), 'bass': uniform(0.03, 0.12), 'drums': uniform(0.08, 0.25),
                  'other': uniform(0.2, 0.45)},
      },
      'level_db': {s: uniform(_STEM_RMS_DBFS - _STEM_RMS_SPREAD_DB, _STEM_RMS_DBFS + _STEM_RMS_SPREAD_DB)
                   for s in SOURCES},
  }
  return params


# --- Events -----------------------------------------------------------------------------------------------------

# An event: (time in seconds, note-off 0 / note-on 1, channel, key, velocity).
_Event = tuple[float, int, int, int, int]


def _timeline(score: _Score, music_end: float) -> list[float]:
  """Shifts (in quarters) of the chorale's repetitions that start before `music_end`."""
  period = max(score.length, 1.0)
  return [r * period for r in range(int(math.ceil(music_end / period)))]


def _metric_accent(bars: Sequence[_Bar], onset: float) -> int:
  """Velocity accent of a note by its place in the bar: downbeat > beat > off-beat."""
  for bar in bars:
    if bar.start <= onset < bar.start + bar.length:
      pos = onset - bar.start
      compound = bar.denominator == 8 and bar.numerator % 3 == 0 and bar.numerator > 3
      beat = 1.5 if compound else 4.0 / bar.denominator
      if abs(pos) < 1e-6:
        return 8
      return 3 if abs(pos / beat - round(pos / beat)) < 1e-6 else 0
  return 0


def _note_events(score: _Score, voices: Sequence[str], channel_of: dict[str, int], spq: float, music_end: float,
                 transpose: int, velocity: int, gate: float, rng: np.random.Generator) -> list[_Event]:
  """Note on/off events of some voices, looped until `music_end` (quarters) and cut there."""
  events = []
  for shift in _timeline(score, music_end):
    for voice in voices:
      for onset, duration, key in score.voices[voice]:
        start = onset + shift
        if start >= music_end:
          continue
        end = min(start + duration * gate, music_end)
        key = int(np.clip(key + transpose, 0, 127))
        vel = int(np.clip(velocity + _metric_accent(score.bars, onset) + rng.normal(0.0, 3.0), 1, 127))
        events.append((start * spq, 1, channel_of[voice], key, vel))
        events.append((end * spq, 0, channel_of[voice], key, 0))
  return events


def _groove(beats: int, groove: int) -> tuple[list[float], list[float]]:
  """Kick and backbeat positions (in beats) of a bar with `beats` beats."""
  if beats == 4:
    kicks = [[0, 2], [0, 2, 2.5], [0, 1.5, 2]][groove]
    return kicks, [1, 3]
  if beats == 3:
    return [[0], [0], [0, 1.5]][groove], [[1, 2], [2], [2]][groove]
  if beats == 2:
    return [[0], [0, 1.5], [0, 0.5]][groove], [1]
  return [b for b in range(beats) if b % 2 == 0], [b for b in range(beats) if b % 2 == 1]


def _drum_events(score: _Score, params: dict[str, Any], spq: float, music_end: float,
                 rng: np.random.Generator) -> list[_Event]:
  """A drum part following the chorale's bars: groove per meter, fills before phrases, crashes after fills."""
  style = params['drums']
  offset = params['velocity']['drums']
  backbeat_key = {'snare': _SNARE, 'side_stick': _SIDE_STICK, 'electric_snare': _ELECTRIC_SNARE}[style['backbeat']]
  keeper_key = {'closed_hat': _CLOSED_HAT, 'ride': _RIDE, 'pedal_hat': _PEDAL_HAT}[style['timekeeper']]
  hits = []  # (quarters, key, velocity)
  crash_next, full_bars = True, 0  # a crash on the first full bar and after every fill
  for shift in _timeline(score, music_end):
    for bar in score.bars:
      start = bar.start + shift
      compound = bar.denominator == 8 and bar.numerator % 3 == 0 and bar.numerator > 3
      beats = bar.numerator // 3 if compound else bar.numerator
      beat_q = bar.length / beats
      subdivision = (3 if style['subdivision'] > 1 else 1) if compound else style['subdivision']
      pickup = bar.content_start > 0
      if not pickup:
        full_bars += 1
      if style['fills'] == 'phrase_ends':
        fill = bar.fermata and not pickup
      else:
        fill = not pickup and full_bars % (4 if style['fills'] == 'every_4' else 8) == 0
      fill_from = beats - min(style['fill_beats'], beats - 1) if fill else beats
      kicks, backbeats = _groove(beats, style['groove'])
      if compound:
        kicks = [math.floor(k) for k in kicks]
      bar_hits = []
      for b in range(beats):
        if b >= fill_from:
          continue
        for s in range(subdivision):
          vel = (88 if b == 0 else 78) if s == 0 else 62
          key = keeper_key
          if style['timekeeper'] == 'pedal_hat' and s:
            continue  # a pedal hi-hat only keeps the beat
          if style['open_hat'] and b == fill_from - 1 and s == subdivision - 1 and subdivision > 1:
            key = _OPEN_HAT
          bar_hits.append(((b + s / subdivision) * beat_q, key, vel))
          if s and rng.random() < style['ghost_notes']:
            bar_hits.append(((b + s / subdivision) * beat_q, _SNARE, 35))
        for k in kicks:
          if b <= k < b + 1:
            bar_hits.append((k * beat_q, _KICK, 100 if k == 0 else 90))
        if b in backbeats:
          bar_hits.append((b * beat_q, backbeat_key, 96))
      if fill:
        steps = (4 if spq * beat_q / 4 > 0.09 and not compound else (3 if compound else 2)) * (beats - fill_from)
        kind = int(rng.integers(0, 3))  # snare roll, toms down, snare then toms
        for i in range(steps):
          if kind == 0:
            key = _SNARE
          elif kind == 1:
            key = _TOMS[min(i * len(_TOMS) // steps, len(_TOMS) - 1)]
          else:
            key = _SNARE if i < steps // 2 else _TOMS[min((i - steps // 2) * 4 // max(steps - steps // 2, 1), 5)]
          bar_hits.append(((fill_from + i * (beats - fill_from) / steps) * beat_q, key, int(70 + 40 * i / steps)))
      if crash_next and not pickup:
        bar_hits = [h for h in bar_hits if not (h[0] == 0 and h[1] == keeper_key)]
        bar_hits.append((0.0, _CRASH if rng.random() < 0.7 else _CRASH2, 105))
        if not any(h[0] == 0 and h[1] == _KICK for h in bar_hits):
          bar_hits.append((0.0, _KICK, 100))
        crash_next = False
      crash_next = crash_next or fill
      for pos, key, vel in bar_hits:
        if bar.content_start - 1e-6 <= pos < bar.content_end - 1e-6 and start + pos < music_end:
          hits.append((start + pos, key, vel))
  events = []
  for q, key, vel in hits:
    vel = int(np.clip(vel + offset + rng.normal(0.0, 4.0), 1, 127))
    # Percussion is one-shot: no note-off, so cymbals ring out instead of being cut by the soundfont's release.
    events.append((max(q * spq + rng.normal(0.0, 0.004), 0.0), 1, _DRUM_CHANNEL, key, vel))
  return events


# --- Rendering --------------------------------------------------------------------------------------------------


def renderer_available() -> bool:
  """True when pyfluidsynth imports and a GM soundfont is found (tests skip rendering otherwise)."""
  try:
    import fluidsynth  # pylint: disable=g-import-not-at-top,unused-import
    find_soundfont()
  except (ImportError, OSError):
    return False
  return True


def find_soundfont(path: str | None = None) -> str:
  """The soundfont to use: `path`, else $CHORALE_MIX_SOUNDFONT, else FluidR3 GM where distributions install it."""
  candidates = [path] if path else ([os.environ['CHORALE_MIX_SOUNDFONT']] if os.environ.get('CHORALE_MIX_SOUNDFONT')
                                    else list(SOUNDFONT_CANDIDATES))
  for c in candidates:
    if os.path.isfile(c):
      return c
  raise FileNotFoundError(f'no GM soundfont at {", ".join(candidates)}: install one (Debian/Ubuntu: apt-get install '
                          'fluid-soundfont-gm) or pass --soundfont / set $CHORALE_MIX_SOUNDFONT')


class Renderer:
  """FluidSynth with the soundfont loaded once, rendering note events to float32 stereo, reproducibly.

  A track must not depend on what the process rendered before (workers render different tracks in different
  orders), and FluidSynth keeps history that no reset clears: voice objects start their first 64-frame block
  ramping from the gains of their previous use, and the reverb/chorus delay lines are modulated by free-running
  LFOs. So every track gets a fresh synth (start_track: ~0.1 s, because a second synth that loads the same file
  shares the sample data the first one keeps cached), stems are rendered in a fixed order, FluidSynth's reverb and
  chorus are off (a seeded convolution reverb is added afterwards), and audio is read with
  fluid_synth_write_float (Synth.get_samples returns 16-bit audio dithered with a running noise index).
  """

  def __init__(self, soundfont: str | None = None, sample_rate: int = SAMPLE_RATE):
    import ctypes  # pylint: disable=g-import-not-at-top
    import fluidsynth  # pylint: disable=g-import-not-at-top  (loads libfluidsynth; only where rendering happens)

    self.soundfont = find_soundfont(soundfont)
    self.sample_rate = sample_rate
    self._fluidsynth = fluidsynth
    # Holds the soundfont's samples in FluidSynth's cache for the per-track synths; never renders.
    self._holder, _ = self._new_synth()
    self._synth, self._sfid = None, -1
    write = fluidsynth._fl.fluid_synth_write_float  # pylint: disable=protected-access
    write.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p,
                      ctypes.c_int, ctypes.c_int]
    write.restype = ctypes.c_int
    self._write = write
    self._scratch = np.zeros((_BLOCK * 64, 2), np.float32)

  def _new_synth(self):
    synth = self._fluidsynth.Synth(gain=0.2, samplerate=float(self.sample_rate),
                                   **{'synth.reverb.active': 0, 'synth.chorus.active': 0})
    sfid = synth.sfload(self.soundfont)
    if sfid < 0:
      synth.delete()
      raise RuntimeError(f'FluidSynth could not load {self.soundfont}')
    return synth, sfid

  def start_track(self) -> None:
    """Replaces the synth by a fresh one: what follows renders the same whatever was rendered before."""
    if self._synth is not None:
      self._synth.delete()
    self._synth, self._sfid = self._new_synth()

  def _fill(self, buf: np.ndarray, start: int, stop: int) -> None:
    """Renders frames [start, stop) of the C-contiguous (n, 2) float32 `buf` (interleaved stereo)."""
    if stop <= start:
      return
    ptr = buf.ctypes.data + start * 2 * buf.itemsize
    if self._write(self._synth.synth, stop - start, ptr, 0, 2, ptr, 1, 2) != 0:
      raise RuntimeError('fluid_synth_write_float failed')

  def _reset(self) -> None:
    """Stops every voice and renders until none is left, so the next stem of the track starts in silence."""
    self._synth.system_reset()
    for _ in range(1000):  # at most ~90 s of release; a voice that never ends is an error
      self._fill(self._scratch, 0, len(self._scratch))
      if self._synth.get_active_voice_count() == 0:
        return
    raise RuntimeError('FluidSynth voices do not stop')

  def render(self, channels: Sequence[tuple[int, int, int, int]], events: Sequence[_Event],
             num_frames: int) -> np.ndarray:
    """Renders one stem.

    Args:
      channels: (MIDI channel, bank, program, pan CC) of every channel the events use.
      events: (seconds, on 1 / off 0, channel, key, velocity), any order; times are rounded to 64-frame blocks.
      num_frames: length of the result.

    Returns:
      (num_frames, 2) float32.
    """
    if self._synth is None:
      self.start_track()
    self._reset()
    for channel, bank, program, pan in channels:
      self._synth.program_select(channel, self._sfid, bank, program)
      self._synth.cc(channel, 7, 100)
      self._synth.cc(channel, 10, int(pan))
    num_blocks = -(-num_frames // _BLOCK)
    buf = np.zeros((num_blocks * _BLOCK, 2), np.float32)
    scheduled = sorted((int(round(t * self.sample_rate / _BLOCK)), on, ch, key, vel) for t, on, ch, key, vel in events)
    done = 0
    for block, on, channel, key, vel in scheduled:
      if block >= num_blocks:
        break
      self._fill(buf, done * _BLOCK, block * _BLOCK)
      done = block
      if on:
        self._synth.noteon(channel, key, vel)
      else:
        self._synth.noteoff(channel, key)
    self._fill(buf, done * _BLOCK, num_blocks * _BLOCK)
    return buf[:num_frames]

  def close(self) -> None:
    if self._synth is not None:
      self._synth.delete()
      self._synth = None
    self._holder.delete()


def _impulse_response(reverb: dict[str, Any], rng: np.random.Generator, sample_rate: int) -> np.ndarray:
  """Stereo reverb impulse response: decorrelated noise, exponential decay to -60 dB at rt60, darker with time."""
  from scipy import signal  # pylint: disable=g-import-not-at-top

  rt60 = reverb['rt60_s']
  length = int(min(rt60, 2.5) * sample_rate)
  t = np.arange(length) / sample_rate
  noise = rng.standard_normal((length, 2)) * 10.0 ** (-3.0 * t / rt60)[:, None]
  # One-pole low-pass: high frequencies die faster in real rooms; `damping` sets how dark the tail is.
  a = reverb['damping']
  noise = signal.lfilter([1.0 - a], [1.0, -a], noise, axis=0)
  predelay = np.zeros((int(reverb['predelay_ms'] * 1e-3 * sample_rate), 2))
  ir = np.concatenate([predelay, noise]).astype(np.float32)
  return ir / np.sqrt(np.sum(ir ** 2, axis=0, keepdims=True))


def _add_reverb(stems: dict[str, np.ndarray], ir: np.ndarray, wet: dict[str, float]) -> dict[str, np.ndarray]:
  """dry + wet * (dry convolved with the IR), per stem, all stems in one batch of FFTs; same length as the input."""
  from scipy import fft  # pylint: disable=g-import-not-at-top

  names = list(stems)
  dry = np.concatenate([stems[n] for n in names], axis=1)  # (frames, 2 * stems)
  n = fft.next_fast_len(len(dry) + len(ir) - 1, real=True)
  spectrum = fft.rfft(dry, n=n, axis=0) * np.tile(fft.rfft(ir, n=n, axis=0), (1, len(names)))
  wet_all = fft.irfft(spectrum, n=n, axis=0)[:len(dry)].astype(np.float32)
  return {name: stems[name] + wet[name] * wet_all[:, 2 * i:2 * i + 2] for i, name in enumerate(names)}


def render_track(plan: TrackPlan, seconds: float, renderer: Renderer | None) -> tuple[dict[str, np.ndarray] | None,
                                                                                         dict[str, Any]]:
  """Renders one track's stems and mixture.

  Args:
    plan: the track (from plan_tracks).
    seconds: track length; <= 0: the chorale once plus the release tail.
    renderer: a Renderer; None only describes the track (parses the chorale, renders nothing).

  Returns:
    ({'mixture', 'vocals', 'bass', 'drums', 'other'}: (frames, 2) int16 with mixture == sum of the four stems, or
    None without a renderer), and the track's JSON record of render parameters.
  """
  params = sample_params(plan)
  score = _load_score(plan.chorale.path)
  spq = 60.0 / params['tempo_qpm']
  sample_rate = renderer.sample_rate if renderer else SAMPLE_RATE
  if seconds > 0:
    # Music stops on a quarter-note beat, leaving the release tail; the chorale repeats if it is shorter.
    music_end = max(math.floor((seconds - _RELEASE_TAIL_S) / spq), 1)
    num_frames = int(round(seconds * sample_rate))
  else:
    music_end = score.length
    num_frames = int(round((score.length * spq + _RELEASE_TAIL_S) * sample_rate))
  transpose = params['transpose']
  bass_keys = [k for _, _, k in score.voices['bass']]
  octave = -12 if params['bass_octave_down'] and min(bass_keys) + transpose - 12 >= _LOWEST_BASS_KEY else 0
  programs, pan, velocity, gate = params['programs'], params['pan'], params['velocity'], params['gate']

  record = {
      'name': plan.name, 'subset': plan.subset, 'validation': plan.validation, 'index': plan.index,
      'seed': plan.seed, 'render_version': RENDER_VERSION, 'seconds': seconds, 'num_frames': num_frames,
      'sample_rate': sample_rate,
      'chorale': plan.chorale.name, 'chorale_file': os.path.basename(plan.chorale.path), 'title': score.title,
      'time_signatures': score.time_signatures, 'chorale_quarters': score.length,
      'repeats': len(_timeline(score, music_end)), 'music_end_s': round(music_end * spq, 4),
      'bass_octave_shift': octave,
      'program_names': {
          'vocals': GM_NAMES[programs['vocals']], 'bass': GM_NAMES[programs['bass']],
          'alto': GM_NAMES[programs['alto']], 'tenor': GM_NAMES[programs['tenor']],
          'drum_kit': DRUM_KITS[programs['drum_kit']]},
      **params,
  }
  if renderer is None:
    return None, record

  renderer.start_track()
  note_rng = _rng(plan, 1)
  common = dict(score=score, spq=spq, music_end=music_end, rng=note_rng)
  dry = {
      'vocals': renderer.render(
          [(0, 0, programs['vocals'], pan['vocals'])],
          _note_events(voices=['soprano'], channel_of={'soprano': 0}, transpose=transpose,
                       velocity=velocity['vocals'], gate=gate['vocals'], **common), num_frames),
      'bass': renderer.render(
          [(0, 0, programs['bass'], pan['bass'])],
          _note_events(voices=['bass'], channel_of={'bass': 0}, transpose=transpose + octave,
                       velocity=velocity['bass'], gate=gate['bass'], **common), num_frames),
      'drums': renderer.render(
          [(_DRUM_CHANNEL, 128, programs['drum_kit'], pan['drums'])],
          _drum_events(score, params, spq, music_end, _rng(plan, 2)), num_frames),
      'other': renderer.render(
          [(0, 0, programs['alto'], pan['alto']), (1, 0, programs['tenor'], pan['tenor'])],
          _note_events(voices=['alto', 'tenor'], channel_of={'alto': 0, 'tenor': 1}, transpose=transpose,
                       velocity=velocity['other'], gate=gate['other'], **common), num_frames),
  }
  for name, audio in dry.items():
    if not np.any(audio):
      raise RuntimeError(f'{plan.name}: the {name} stem rendered silent')

  ir = _impulse_response(params['reverb'], _rng(plan, 3), sample_rate)
  stems = _add_reverb(dry, ir, params['reverb']['wet'])
  fade = min(int(_FADE_OUT_S * sample_rate), num_frames // 4)
  ramp = (0.5 + 0.5 * np.cos(np.linspace(0.0, np.pi, fade, dtype=np.float32)))[:, None]
  for name in SOURCES:
    stem = stems[name]
    stem[len(stem) - fade:] *= ramp
    rms = float(np.sqrt(np.mean(np.square(stem, dtype=np.float64))))
    stems[name] = stem * np.float32(10.0 ** (params['level_db'][name] / 20.0) / rms)
  # One gain for the whole track: the balance stays, and neither the mixture nor any stem goes above _PEAK.
  peak = max(float(np.max(np.abs(sum(stems.values())))), *(float(np.max(np.abs(s))) for s in stems.values()))
  gain = min(1.0, _PEAK / peak)
  out = {name: np.round(stems[name] * (gain * 32767.0)).astype(np.int16) for name in SOURCES}
  # The mixture is the sum of the stored int16 stems, so stems add up to it exactly.
  mixture = sum(out[name].astype(np.int32) for name in SOURCES)
  if np.max(np.abs(mixture)) > 32767:
    raise RuntimeError(f'{plan.name}: mixture clips')
  out[MIXTURE] = mixture.astype(np.int16)
  record['gain_db'] = round(20.0 * math.log10(gain), 3)
  record['peak'] = round(float(np.max(np.abs(mixture))) / 32768.0, 4)
  return out, record


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
  _write_text(os.path.join(out_dir, VALIDATION_LIST), ''.join(n + '\n' for n in validation))
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


if __name__ == '__main__':
  define_flags()
  app.run(main)
