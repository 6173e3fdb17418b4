"""What every `python -m srcvq_jax.<command>` shares: flag parsing and errors as one line, not a traceback."""
from __future__ import annotations

import contextlib
import ctypes.util
import logging as std_logging
import os
import sys

from absl import flags

# Set to 0 to keep the system allocator (see relaunch_with_tcmalloc).
TCMALLOC_SWITCH = 'SRCVQ_TCMALLOC'
_OTHER_ALLOCATORS = ('tcmalloc', 'jemalloc', 'mimalloc')


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
  whose pages fault on first touch, every step (configs/base.py on the 2-core CPU: 16k page faults for one 64 MiB
  buffer; the train step takes ~250 ms with glibc, ~170 ms with tcmalloc, which keeps and reuses the memory;
  benchmarks/train_step.py). Cloud TPU VM images preload tcmalloc for the same reason. A no-op where another
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
          '~1.5x slower with the system allocator', file=sys.stderr)
    return
  env = dict(os.environ, LD_PRELOAD=' '.join(filter(None, [library, preload])))
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


def allocator() -> str:
  """'tcmalloc', 'jemalloc', 'mimalloc' when preloaded, else 'system' (benchmarks record it)."""
  preload = os.environ.get('LD_PRELOAD', '')
  return next((name for name in _OTHER_ALLOCATORS if name in preload), 'system')


class _QuietLibraries(std_logging.Filter):
  """Drops Orbax's records below `level` (not the project's own); with `no_tracebacks`, Orbax's errors keep their
  message line but lose the traceback."""

  def __init__(self, level: int, *, no_tracebacks: bool = False):
    super().__init__()
    self.level = level
    self.no_tracebacks = no_tracebacks

  def filter(self, record):
    if '/orbax/' not in record.pathname:
      return True
    if self.no_tracebacks and record.exc_info:
      record.exc_info, record.exc_text = None, None
    return record.levelno >= self.level


def quiet_library_info() -> None:
  """Keeps Orbax's INFO lines (several per save) off a command's console; its warnings and errors still show,
  as one line each: a failed background save logs a traceback per thread (four for a full disk), and the loop
  reports the failure itself (srcvq_jax/loop.py)."""
  from absl import logging  # pylint: disable=g-import-not-at-top
  logging.get_absl_handler().addFilter(_QuietLibraries(std_logging.WARNING, no_tracebacks=True))


@contextlib.contextmanager
def orbax_warnings_off():
  """Within the block, Orbax's warnings are dropped too (a read-only CheckpointManager warns that it does not
  save: expected when loading for inference, and noise on a command's stderr); the project's own still show."""
  absl_logger = std_logging.getLogger('absl')
  quiet = _QuietLibraries(std_logging.ERROR)
  absl_logger.addFilter(quiet)
  try:
    yield
  finally:
    absl_logger.removeFilter(quiet)
