"""The project's errors that reach a user as one line (commands print `error: <message>` and exit, no traceback).

One module so that any layer can raise them without importing another's machinery (data_prep raises DataError
without loading the input pipeline; checkpointing raises UserError without the command-line helpers).
"""


class UserError(Exception):
  """A problem the user can fix (bad file, bad flag, missing checkpoint); printed as one line."""


class ConfigError(ValueError):
  """A config value that cannot work; the message names the field."""


class DataError(ValueError):
  """Bad or missing data (a dataset not built, a source missing, an unreadable file); the message says which."""
