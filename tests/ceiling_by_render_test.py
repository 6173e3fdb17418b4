"""scripts/ceiling_by_render.py: evaluate's per-track SDR joined with ChoraleMix's render record."""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'scripts'))
import ceiling_by_render  # noqa: E402  (scripts/ceiling_by_render.py)

PROGRAMS = ('Church Organ', 'Electric Piano 1', 'String Ensemble 1')


def _render_and_results(num_tracks: int = 6):
  tracks, scored = {}, []
  for i in range(num_tracks):
    name = f'BWV_{i} - ChoraleMix'
    wet = 0.2 + 0.05 * i
    tracks[name] = {'reverb': {'rt60_s': 1.0 + 0.1 * i, 'wet': {'other': wet}},
                    'program_names': {'alto': PROGRAMS[i % 3], 'tenor': PROGRAMS[i % 3]}}
    # The ceiling falls with the wet level and is 3 dB higher for the electric piano.
    scored.append({'name': name, 'sdr': {'oracle': {'other': 5.0 - 10.0 * wet + 3.0 * (i % 3 == 1)}}})
  return {'tracks': tracks}, {'tracks': scored}


def test_medians_per_program_and_the_wet_correlation():
  render, results = _render_and_results()
  text = ceiling_by_render.table(results, render, 'other', 'oracle')
  assert text.splitlines()[-1].startswith('| Electric Piano 1 |')  # sorted by median, the best last
  assert '6 tracks' in text and 'Church Organ | 2 |' in text
  assert float(text.split('wet level ')[1].split(',')[0]) < 0  # the ceiling falls with the wet level


def test_results_of_another_render_are_refused_not_half_joined(tmp_path):
  render, results = _render_and_results()
  results['tracks'].append({'name': 'BWV_99 - ChoraleMix', 'sdr': {'oracle': {'other': 1.0}}})
  with pytest.raises(ValueError, match='1 of its 7 tracks are not in the render record'):
    ceiling_by_render.table(results, render, 'other', 'oracle')
  (tmp_path / 'r.json').write_text(json.dumps(results))
  (tmp_path / 'render.json').write_text(json.dumps(render))
  with pytest.raises(SystemExit, match='r.json: 1 of its 7 tracks'):
    ceiling_by_render.main([f'--results={tmp_path / "r.json"}', f'--render={tmp_path / "render.json"}'])
  with pytest.raises(SystemExit, match='missing.json: cannot read evaluate results'):
    ceiling_by_render.main([f'--results={tmp_path / "missing.json"}', f'--render={tmp_path / "render.json"}'])
