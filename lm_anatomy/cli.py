"""Shared command-line plumbing: logging, XLA's on-disk compilation cache, and clear one-line errors
instead of tracebacks."""
from __future__ import annotations

import atexit
import logging
import os
import re
import sys
import threading
from typing import Callable, NoReturn

from absl import flags

from lm_anatomy.errors import Interrupted, LmAnatomyError

_COMPILATION_CACHE = flags.DEFINE_string(
    'compilation_cache', None,
    "Folder for XLA's on-disk cache of compiled programs, so that a resumed run, a rerun or the next "
    "point of a sweep loads them instead of compiling again. Default: $LM_ANATOMY_COMPILATION_CACHE, else "
    "$JAX_COMPILATION_CACHE_DIR, else $LM_ANATOMY_CACHE/xla (~/.cache/lm_anatomy/xla); 'off' turns it off. "
    "The choice passes to the processes this one starts (a sweep's runs).")


def compilation_cache(folder: str | None = None) -> str | None:
  """Turns on JAX's persistent compilation cache in `folder` (see the flag's help). Returns the folder
  in use, or None when off. Call before the first compilation. Every program is cached, however quick
  its compile: on a 2-core CPU the baby GPT's start-up falls from 6.6 s to 2.0 s on a rerun. The cache
  is keyed on the program, the compiler options, the jax version and the device, so a hit runs the
  same executable (tests/test_engine.py checks a rerun through it bitwise). JAX skips an entry it cannot
  read (say, one a killed process left half-written) with a warning and compiles the program. The
  folder is not pruned: delete it to clear it."""
  import jax
  from lm_anatomy.data import corpora
  if folder is None:
    folder = (os.environ.get('LM_ANATOMY_COMPILATION_CACHE') or os.environ.get('JAX_COMPILATION_CACHE_DIR')
              or str(corpora.cache_dir() / 'xla'))
  os.environ['LM_ANATOMY_COMPILATION_CACHE'] = folder  # inherited by child processes
  if folder == 'off':
    return None
  jax.config.update('jax_compilation_cache_dir', folder)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)
  return folder


def _override_error(e: Exception) -> str:
  """The message for a --config.KEY=VALUE override that names no key of the config."""
  text = e
  while isinstance(text, BaseException) and text.args:  # AttributeError(KeyError("'key'\nDid you mean …"))
    text = text.args[0]
  key, _, hint = str(text).partition('\n')
  key = key.strip('"\'')
  given = [a.split('=')[0] for a in sys.argv[1:] if a.startswith('--config.')]
  # config_flags indexed into a value as if it were a section: a TypeError for a string, a KeyError
  # ("Attribute <class 'float'>.x does not exist and the type does not support indexing. …") otherwise.
  below_number = re.match(r"Attribute <class '(\w+)'>\.\S+ does not exist and the type does not support indexing",
                          str(text))
  if isinstance(e, TypeError) or below_number:
    nested = [g for g in given if g.count('.') >= 2] or given
    why = f'its value is of type {below_number[1]}' if below_number else e
    return f'an override names a key inside a value that is not a section ({why}), in {", ".join(nested)}'
  named = [g for g in given if key in g.split('.')[1:]] or given
  return (f'unknown config key {key!r} in {", ".join(named)}. {hint + " " if hint else ""}The model section '
          "takes the model's fields (see its module); lm_anatomy/config.py lists the other keys")


def exit_now(code: int | str | None) -> NoReturn:
  """Ends the process as `sys.exit(code)` does, less the interpreter's teardown of every module and object
  (0.4 s after a training run: JAX's client and compiled programs). The atexit handlers run (logging's
  flush among them) and the standard streams are flushed first. While a non-daemon thread is still
  running, it is `sys.exit(code)`, which waits for that thread."""
  others = [t for t in threading.enumerate() if t is not threading.current_thread() and not t.daemon]
  if threading.current_thread() is not threading.main_thread() or any(t.is_alive() for t in others):
    sys.exit(code)
  if code is None:
    status = 0
  elif isinstance(code, int):
    status = code
  else:  # sys.exit('message') prints the message and exits with status 1
    print(code, file=sys.stderr)
    status = 1
  atexit._run_exitfuncs()
  for stream in (sys.stdout, sys.stderr):
    try:
      stream.flush()
    except (OSError, ValueError):  # closed, or a broken pipe
      pass
  os._exit(status & 0xFF)


def run(main: Callable[[list[str]], None]) -> NoReturn:
  """absl.app.run(main) with the compilation cache on (`--compilation_cache`); an LmAnatomyError, or an
  override naming no config key, prints `error: …` and exits with status 2; a run stopped by a signal
  (Interrupted) exits with 128 + the signal number. The process ends through `exit_now`."""
  from absl import app
  started = False

  def wrapped(argv):
    nonlocal started
    started = True
    logging.getLogger().setLevel(logging.INFO)
    for noisy in ('absl', 'orbax', 'jax._src', 'tensorstore'):
      logging.getLogger(noisy).setLevel(logging.WARNING)
    compilation_cache(_COMPILATION_CACHE.value)
    try:
      main(argv)
    except Interrupted as e:
      print(e, file=sys.stderr)
      sys.exit(128 + e.signum)
    except LmAnatomyError as e:
      print(f'error: {e}', file=sys.stderr)
      sys.exit(2)
  try:
    app.run(wrapped)
  except SystemExit as e:
    exit_now(e.code)
  except (AttributeError, KeyError, TypeError) as e:  # raised by config_flags while applying an override
    if started:
      raise
    print(f'error: {_override_error(e)}', file=sys.stderr)
    exit_now(2)
