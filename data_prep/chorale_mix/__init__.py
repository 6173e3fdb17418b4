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

The package: layout.py (where files go), scores.py (the chorales), arrangement.py (track plans, parameters,
events), synthesis.py (FluidSynth, reverb, levels), dataset.py (many tracks on disk, the command line).
"""
# The public API (what callers and tests use; the modules hold the rest).
# ruff: noqa: F401
from data_prep.chorale_mix.arrangement import TrackPlan, plan_tracks, sample_params, split_counts, split_of, tune_of
from data_prep.chorale_mix.dataset import define_flags, main, render, track_dir
from data_prep.chorale_mix.layout import (METADATA, MIXTURE, MUSDB_SETUP, RENDER_VERSION, SAMPLE_RATE, SOURCES, STEMS,
                                          SUBSETS, TRACK_SUFFIX)
from data_prep.chorale_mix.scores import Chorale, list_chorales
from data_prep.chorale_mix.synthesis import Renderer, find_soundfont, render_track, renderer_available
