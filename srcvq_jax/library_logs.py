"""What the project keeps off a command's console from the libraries it uses (Orbax, TensorFlow Datasets): every
log filter of the project is here. The project's own records always pass."""
from __future__ import annotations

import contextlib
import logging as std_logging


class _QuietOrbax(std_logging.Filter):
  """Drops Orbax's records below `level`; with `no_tracebacks`, Orbax's errors keep their message line but lose
  the traceback."""

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


class _DropMessages(std_logging.Filter):
  """Drops log records containing any of the given texts."""

  def __init__(self, *texts: str):
    super().__init__()
    self._texts = texts

  def filter(self, record: std_logging.LogRecord) -> bool:
    return not any(t in record.getMessage() for t in self._texts)


def quiet_library_info() -> None:
  """Keeps Orbax's INFO lines (several per save) off a command's console for the rest of the process; its
  warnings and errors still show, as one line each: a failed background save logs a traceback per thread (four
  for a full disk), and the loop reports the failure itself (srcvq_jax/loop.py)."""
  from absl import logging  # pylint: disable=g-import-not-at-top
  logging.get_absl_handler().addFilter(_QuietOrbax(std_logging.WARNING, no_tracebacks=True))


@contextlib.contextmanager
def _filtered(log_filter: std_logging.Filter, logger_name: str = 'absl'):
  logger = std_logging.getLogger(logger_name)
  logger.addFilter(log_filter)
  try:
    yield
  finally:
    logger.removeFilter(log_filter)


def orbax_warnings_off():
  """Within the block, Orbax's warnings are dropped too (a read-only CheckpointManager warns that it does not
  save: expected when loading for inference, and noise on a command's stderr)."""
  return _filtered(_QuietOrbax(std_logging.ERROR))


def messages_dropped(*texts: str):
  """Within the block, absl log records containing any of `texts` are dropped (a library's own deprecation
  notices, which the user cannot act on)."""
  return _filtered(_DropMessages(*texts))
