"""Audio from events: FluidSynth with a General MIDI soundfont, reverb, stem levels and the mixture."""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from data_prep.chorale_mix.layout import MIXTURE, RENDER_VERSION, SAMPLE_RATE, SOURCES
from data_prep.chorale_mix.scores import load_score
from data_prep.chorale_mix.arrangement import (DRUM_CHANNEL, DRUM_KITS, Event, GM_NAMES, LOWEST_BASS_KEY, TrackPlan,
    drum_events, note_events, sample_params, timeline, track_rng)


# Where Linux distributions put FluidR3 GM (Debian/Ubuntu fluid-soundfont-gm first).
SOUNDFONT_CANDIDATES = (
    '/usr/share/sounds/sf2/FluidR3_GM.sf2',
    '/usr/share/soundfonts/FluidR3_GM.sf2',
    '/usr/share/soundfonts/default.sf2',
    '/usr/share/sounds/sf2/default-GM.sf2',
)
# FluidSynth renders in blocks of 64 frames and applies events at block starts; every event time and render length
# is a whole number of blocks, so note timing never depends on where an earlier render call stopped.
_BLOCK = 64
_RELEASE_TAIL_S = 1.0    # after the last note-off: release and reverb
_FADE_OUT_S = 0.3        # raised-cosine fade at the very end (cut-off reverb tails would click)
_PEAK = 0.9              # the mixture (and every stem) is scaled to peak at most here


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

  def render(self, channels: Sequence[tuple[int, int, int, int]], events: Sequence[Event],
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
  score = load_score(plan.chorale.path)
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
  octave = -12 if params['bass_octave_down'] and min(bass_keys) + transpose - 12 >= LOWEST_BASS_KEY else 0
  programs, pan, velocity, gate = params['programs'], params['pan'], params['velocity'], params['gate']

  record = {
      'name': plan.name, 'subset': plan.subset, 'validation': plan.validation, 'index': plan.index,
      'seed': plan.seed, 'render_version': RENDER_VERSION, 'seconds': seconds, 'num_frames': num_frames,
      'sample_rate': sample_rate,
      'chorale': plan.chorale.name, 'chorale_file': os.path.basename(plan.chorale.path), 'title': score.title,
      'time_signatures': score.time_signatures, 'chorale_quarters': score.length,
      'repeats': len(timeline(score, music_end)), 'music_end_s': round(music_end * spq, 4),
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
  note_rng = track_rng(plan, 1)
  common = dict(score=score, spq=spq, music_end=music_end, rng=note_rng)
  dry = {
      'vocals': renderer.render(
          [(0, 0, programs['vocals'], pan['vocals'])],
          note_events(voices=['soprano'], channel_of={'soprano': 0}, transpose=transpose,
                       velocity=velocity['vocals'], gate=gate['vocals'], **common), num_frames),
      'bass': renderer.render(
          [(0, 0, programs['bass'], pan['bass'])],
          note_events(voices=['bass'], channel_of={'bass': 0}, transpose=transpose + octave,
                       velocity=velocity['bass'], gate=gate['bass'], **common), num_frames),
      'drums': renderer.render(
          [(DRUM_CHANNEL, 128, programs['drum_kit'], pan['drums'])],
          drum_events(score, params, spq, music_end, track_rng(plan, 2)), num_frames),
      'other': renderer.render(
          [(0, 0, programs['alto'], pan['alto']), (1, 0, programs['tenor'], pan['tenor'])],
          note_events(voices=['alto', 'tenor'], channel_of={'alto': 0, 'tenor': 1}, transpose=transpose,
                       velocity=velocity['other'], gate=gate['other'], **common), num_frames),
  }
  for name, audio in dry.items():
    if not np.any(audio):
      raise RuntimeError(f'{plan.name}: the {name} stem rendered silent')

  ir = _impulse_response(params['reverb'], track_rng(plan, 3), sample_rate)
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
