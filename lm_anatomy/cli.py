"""Shared command-line plumbing: logging, clear one-line errors instead of tracebacks."""
from __future__ import annotations

import logging
import sys
from typing import Callable

from lm_anatomy.errors import LmAnatomyError


def _override_error(e: Exception) -> str:
  """The message for a --config.KEY=VALUE override that names no key of the config."""
  text = e
  while isinstance(text, BaseException) and text.args:  # AttributeError(KeyError("'key'\nDid you mean …"))
    text = text.args[0]
  key, _, hint = str(text).partition('\n')
  key = key.strip('"\'')
  given = [a.split('=')[0] for a in sys.argv[1:] if a.startswith('--config.')]
  named = [g for g in given if g.split('.')[-1] == key] or given
  return (f'unknown config key {key!r} in {", ".join(named)}. {hint + " " if hint else ""}The model section '
          "takes the model's fields (see its module); lm_anatomy/config.py lists the other keys")


def run(main: Callable[[list[str]], None]) -> None:
  """absl.app.run(main), but an LmAnatomyError, or an override naming no config key, prints
  `error: …` and exits with status 2."""
  from absl import app
  started = False

  def wrapped(argv):
    nonlocal started
    started = True
    logging.getLogger().setLevel(logging.INFO)
    for noisy in ('absl', 'orbax', 'jax._src', 'tensorstore'):
      logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
      main(argv)
    except LmAnatomyError as e:
      print(f'error: {e}', file=sys.stderr)
      sys.exit(2)
  try:
    app.run(wrapped)
  except (AttributeError, KeyError) as e:  # raised by config_flags while applying an override
    if started:
      raise
    print(f'error: {_override_error(e)}', file=sys.stderr)
    sys.exit(2)
