"""Shared command-line plumbing: logging, clear one-line errors instead of tracebacks."""
from __future__ import annotations

import logging
import sys
from typing import Callable

from lm_anatomy.errors import LmAnatomyError


def run(main: Callable[[list[str]], None]) -> None:
  """absl.app.run(main), but an LmAnatomyError prints `error: …` and exits with status 2."""
  from absl import app

  def wrapped(argv):
    logging.getLogger().setLevel(logging.INFO)
    for noisy in ('absl', 'orbax', 'jax._src', 'tensorstore'):
      logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
      main(argv)
    except LmAnatomyError as e:
      print(f'error: {e}', file=sys.stderr)
      sys.exit(2)
  app.run(wrapped)
