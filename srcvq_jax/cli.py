"""What every `python -m srcvq_jax.<command>` shares: flag parsing and errors as one line, not a traceback."""
from __future__ import annotations

import ctypes.util
import os
import sys

from absl import flags


# Set to 0 to keep the system allocator (see relaunch_with_tcmalloc).
TCMALLOC_SWITCH = 'SRCVQ_TCMALLOC'
_OTHER_ALLOCATORS = ('tcmalloc', 'jemalloc', 'mimalloc')


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


def find_tcmalloc() -> str | None:
  """Name of an installed tcmalloc shared library (Debian: libtcmalloc-minimal4), or None."""
  for name in ('tcmalloc_minimal', 'tcmalloc'):
    found = ctypes.util.find_library(name)
    if found:
      return found
  return None


def relaunch_with_tcmalloc() -> None:
  """Re-executes this command (same interpreter and arguments) with tcmalloc preloaded, once.

  Why: XLA:CPU allocates every buffer of a step afresh, and glibc's malloc hands out large blocks as new mmaps
  whose pages fault on first touch, every step; tcmalloc keeps and reuses the memory (docs/design.md, "CPU
  runtime: tcmalloc", has the figures). Cloud TPU VM images preload tcmalloc for the same reason. A no-op where another
  allocator is already preloaded, where tcmalloc is not installed, off Linux, or with SRCVQ_TCMALLOC=0. Call it
  first in a command's `__main__` block, before anything heavy is imported.
  """
  if os.environ.get(TCMALLOC_SWITCH, '1') == '0' or not sys.platform.startswith('linux'):
    return  # (LD_PRELOAD is the Linux loader's; elsewhere the system allocator stays)
  preload = os.environ.get('LD_PRELOAD', '')
  if any(name in preload for name in _OTHER_ALLOCATORS):
    return  # already relaunched (or the user chose an allocator); also stops a loop if preloading failed
  library = find_tcmalloc()
  if library is None:
    print('note: tcmalloc is not installed (Debian: apt-get install libtcmalloc-minimal4); XLA:CPU steps run '
          'slower with the system allocator', file=sys.stderr)
    return
  env = dict(os.environ, LD_PRELOAD=' '.join(filter(None, [library, preload])))
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


def allocator() -> str:
  """'tcmalloc', 'jemalloc', 'mimalloc' when preloaded, else 'system' (benchmarks record it)."""
  preload = os.environ.get('LD_PRELOAD', '')
  return next((name for name in _OTHER_ALLOCATORS if name in preload), 'system')
