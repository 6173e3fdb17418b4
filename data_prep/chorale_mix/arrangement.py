"""A track from a chorale: the seeded track plan and split, the render parameters drawn per track, and the
note and drum events of every stem."""
from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from data_prep.chorale_mix.layout import SOURCES, TRACK_SUFFIX
from data_prep.chorale_mix.scores import Bar, Chorale, Score, list_chorales


# MUSDB18: 150 tracks = 100 train (14 of them validation) + 50 test. Other sizes keep these proportions.
_TEST_EVERY = 3                 # track k (in the seeded order) is a test track when k % 3 == 0: ceil(n / 3) tests
_VALIDATION_PER_100_TRAIN = 14  # train track j is validation when ceil(14 (j + 1) / 100) > ceil(14 j / 100)
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
DRUM_CHANNEL = 9  # GM percussion channel 10
LOWEST_BASS_KEY = 28  # E1, the open E of a bass guitar: the octave-down bass goes no lower
# GM percussion keys.
_KICK, _SIDE_STICK, _SNARE, _ELECTRIC_SNARE = 36, 37, 38, 40
_CLOSED_HAT, _PEDAL_HAT, _OPEN_HAT = 42, 44, 46
_CRASH, _CRASH2, _RIDE = 49, 57, 51
_TOMS = (50, 48, 47, 45, 43, 41)  # high to low


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


def track_rng(plan: TrackPlan, stream_id: int) -> np.random.Generator:
  """Independent random streams per track and purpose, so changing one aspect does not reshuffle the others."""
  return np.random.default_rng(np.random.SeedSequence([plan.seed, 1, plan.index, stream_id]))


def sample_params(plan: TrackPlan) -> dict[str, Any]:
  """The track's random render parameters (JSON-serializable; independent of the score)."""
  rng = track_rng(plan, 0)
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
Event = tuple[float, int, int, int, int]


def timeline(score: Score, music_end: float) -> list[float]:
  """Shifts (in quarters) of the chorale's repetitions that start before `music_end`."""
  period = max(score.length, 1.0)
  return [r * period for r in range(int(math.ceil(music_end / period)))]


def _metric_accent(bars: Sequence[Bar], onset: float) -> int:
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


def note_events(score: Score, voices: Sequence[str], channel_of: dict[str, int], spq: float, music_end: float,
                 transpose: int, velocity: int, gate: float, rng: np.random.Generator) -> list[Event]:
  """Note on/off events of some voices, looped until `music_end` (quarters) and cut there."""
  events = []
  for shift in timeline(score, music_end):
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


def drum_events(score: Score, params: dict[str, Any], spq: float, music_end: float,
                 rng: np.random.Generator) -> list[Event]:
  """A drum part following the chorale's bars: groove per meter, fills before phrases, crashes after fills."""
  style = params['drums']
  offset = params['velocity']['drums']
  backbeat_key = {'snare': _SNARE, 'side_stick': _SIDE_STICK, 'electric_snare': _ELECTRIC_SNARE}[style['backbeat']]
  keeper_key = {'closed_hat': _CLOSED_HAT, 'ride': _RIDE, 'pedal_hat': _PEDAL_HAT}[style['timekeeper']]
  hits = []  # (quarters, key, velocity)
  crash_next, full_bars = True, 0  # a crash on the first full bar and after every fill
  for shift in timeline(score, music_end):
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
    events.append((max(q * spq + rng.normal(0.0, 0.004), 0.0), 1, DRUM_CHANNEL, key, vel))
  return events
