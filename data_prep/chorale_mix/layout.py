"""Where ChoraleMix puts what: stem names, sample rate, subsets, the metadata and setup files."""
from __future__ import annotations


SOURCES = ('vocals', 'bass', 'drums', 'other')
MIXTURE = 'mixture'
STEMS = (MIXTURE,) + SOURCES
SAMPLE_RATE = 44100
SUBSETS = ('train', 'test')
TRACK_SUFFIX = ' - ChoraleMix'
MUSDB_SETUP = 'musdb_setup.yaml'
METADATA = 'chorale_mix.json'
# Bumped whenever the rendering changes, so reruns re-render tracks made by an older version instead of skipping them.
RENDER_VERSION = 1


