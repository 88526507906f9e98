"""Errors that users should see as one clear line, not a traceback."""


class LmAnatomyError(Exception):
  """Base class: a mistake in input, config or data, with a message that says what to do."""


class ConfigError(LmAnatomyError, ValueError):
  """A config key, type, value or size is wrong. The message names the key."""


class DataError(LmAnatomyError, ValueError):
  """A corpus is missing, damaged, empty, or holds a symbol the tokenizer does not know."""


class CheckpointError(LmAnatomyError, RuntimeError):
  """A checkpoint cannot be restored into the requested model."""


class Interrupted(LmAnatomyError):
  """Training stopped at a signal (SIGTERM, Ctrl-C) after saving a checkpoint; the same command resumes.
  Command lines exit with 128 + the signal number, as a shell does."""

  def __init__(self, message: str, signum: int):
    super().__init__(message)
    self.signum = signum
