"""Rewrites one marked section of docs/results.md (the scripts that measure something each own one)."""
from __future__ import annotations

import os
import re


def markers(name: str, writer: str) -> tuple[str, str]:
  return f'<!-- {name}:begin ({writer} writes this section) -->', f'<!-- {name}:end -->'


def write_section(results_md: str, begin: str, end: str, body: str, heading: str) -> None:
  """Replaces the text between `begin` and `end` with `body`; appends `heading` and the section if absent."""
  section = f'{begin}\n{body.rstrip()}\n{end}'
  text = open(results_md, encoding='utf-8').read() if os.path.exists(results_md) else ''
  if begin in text and end in text:
    text = re.sub(re.escape(begin) + '.*?' + re.escape(end), lambda _: section, text, flags=re.S)
  else:
    text = text.rstrip('\n') + f'\n\n## {heading}\n\n' + section + '\n'
  with open(results_md, 'w', encoding='utf-8') as f:
    f.write(text)
