"""What every `python -m srcvq_jax.<command>` shares: flag parsing and errors as one line, not a traceback."""
from __future__ import annotations

import sys

from absl import flags


class UserError(Exception):
  """A problem the user can fix (bad file, bad flag, missing checkpoint); printed as one line."""


def fail(message: str, code: int = 2):
  """Prints 'error: <message>' to stderr and exits."""
  print(f'error: {message}', file=sys.stderr)
  sys.exit(code)


def parse_flags(argv: list[str]) -> list[str]:
  """absl flags parser for app.run(flags_parser=...): a bad or unknown flag (including --config.<key> keys that
  the config does not have) is one line on stderr and exit status 2."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    fail(str(e))
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    # ml_collections raises these for an unknown --config.<key> or a value of the wrong type.
    detail = str(e).strip('"\'')
    overrides = [a for a in argv[1:] if a.startswith('--config.')]
    culprits = [a for a in overrides if detail and detail in a.split('=', 1)[0]] or overrides
    fail(f'invalid config override {" ".join(culprits)}: {detail!r} is not a key of the config, or the value '
         'has the wrong type')
