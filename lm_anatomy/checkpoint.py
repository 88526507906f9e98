"""Orbax checkpoints: the last N by step in `workdir/checkpoints`, the best by val loss in `workdir/best`.

A checkpoint holds the whole train state (step, params, optimizer state, counters) and a small JSON
`meta` (best val loss so far, wall time). Restoring always goes into an abstract target that carries
the shardings of the current run, so a run saved under one device layout restores under another.
If the newest checkpoint cannot be read, the previous one is tried, with one warning (the tracebacks of
the reads that Orbax abandons are dropped: see _AbandonedReadFilter).
"""
from __future__ import annotations

import gc
import logging
import operator
import os
import pathlib
import shutil
import sys
import time
import traceback
from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath

from lm_anatomy.errors import CheckpointError

log = logging.getLogger(__name__)


def _manager(path: pathlib.Path, keep: int, best: bool = False, reader: bool = False) -> ocp.CheckpointManager:
  # Orbax names its cross-process barriers after the step; the prefix keeps the latest and the best
  # manager, which may both save the same step at once, from meeting at the same barrier.
  # A reader neither creates the folder nor deletes the temporary folders of unfinished saves: those may
  # belong to a run that is saving right now.
  options = ocp.CheckpointManagerOptions(
      max_to_keep=keep, create=not reader, cleanup_tmp_directories=not reader,
      best_fn=(lambda m: m['val_loss']) if best else None, best_mode='min',
      keep_checkpoints_without_metrics=not best,
      multiprocessing_options=ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=path.name))
  return ocp.CheckpointManager(path.absolute(), options=options)


def has_checkpoint(workdir: str | pathlib.Path, best: bool = False) -> bool:
  """Whether `workdir` holds a checkpoint (a step folder), read from the folder names without starting Orbax."""
  folder = pathlib.Path(workdir) / ('best' if best else 'checkpoints')
  return folder.is_dir() and any(p.name.isdigit() and p.is_dir() for p in folder.iterdir())


def abstract_like(tree, shardings=None):
  """ShapeDtypeStructs of `tree` (arrays or ShapeDtypeStructs), carrying `shardings` if given."""
  if shardings is None:
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, 'sharding', None)), tree)
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)


class Checkpointer:
  """The run's two checkpoint folders. `reader=True` (restore, sample, evaluate, init_from) opens them
  without touching them, so that it is safe beside a run that is training in the same workdir."""

  def __init__(self, workdir: str | pathlib.Path, keep: int = 3, reader: bool = False):
    workdir = pathlib.Path(workdir)
    self.workdir = workdir
    self.reader = reader
    self.latest = _manager(workdir / 'checkpoints', keep, reader=reader)
    self.best = _manager(workdir / 'best', 1, best=True, reader=reader)

  def _check_writer(self) -> None:
    if self.reader:
      raise CheckpointError(f'{self.workdir} was opened to read checkpoints, not to write or delete them')

  @staticmethod
  def _clear(mngr: ocp.CheckpointManager, step: int) -> None:
    """Removes a checkpoint of `step` that a run killed while finishing it left behind: the run resumed
    from an earlier one and has just recomputed this step, so the new save replaces it."""
    mngr.wait_until_finished()   # so that reading the steps from disk loses no save in flight
    mngr.reload()
    if step in mngr.all_steps():
      log.warning('replacing the checkpoint at step %d left by an interrupted run', step)
      mngr.delete(step)

  def save(self, step: int, state, meta: dict) -> None:
    self._check_writer()
    self._clear(self.latest, step)
    self.latest.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
                     force=True)

  def save_best(self, step: int, state, meta: dict, val_loss: float) -> None:
    self._check_writer()
    self._clear(self.best, step)
    self.best.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
                   metrics={'val_loss': float(val_loss)}, force=True)

  def drop_best_after(self, step: int) -> float | None:
    """Deletes best checkpoints newer than `step`, where the run (re)starts: they come from a stretch of
    the run that is being redone (its later checkpoints were damaged or deleted). Returns the val loss of
    the best checkpoint that remains (None if none), the bar a resumed run's evaluations must beat: a run
    killed while writing a best and a regular checkpoint at once may have finished only the regular one."""
    self._check_writer()
    self.best.wait_until_finished()
    for s in self.best.all_steps():
      if s > step:
        log.warning('deleting the best checkpoint at step %d: training restarts from step %d', s, step)
        self.best.delete(s)
    kept = self.best.all_steps()
    metrics = self.best.metrics(max(kept)) if kept else None
    return float(metrics['val_loss']) if metrics else None

  def wait(self) -> None:
    self.latest.wait_until_finished()
    self.best.wait_until_finished()

  def steps(self, best: bool = False) -> list[int]:
    return sorted((self.best if best else self.latest).all_steps())

  def restore(self, abstract_state, step: int | None = None, best: bool = False,
              quarantine: bool = False) -> tuple[Any, dict, int] | None:
    """(state, meta, step) of `step`, or of the newest readable checkpoint; None if there is none.

    With `quarantine`, an unreadable checkpoint is moved to `workdir/damaged/` so that training can
    write that step again.
    """
    if quarantine:
      self._check_writer()
    mngr = self.best if best else self.latest
    mngr.wait_until_finished()
    steps = sorted(mngr.all_steps(), reverse=True)
    if step is not None:
      try:
        step = operator.index(step)
      except TypeError:
        raise CheckpointError(f'step must be an integer, got {step!r}') from None
      if step not in steps:
        raise CheckpointError(f'no checkpoint at step {step}; available: {sorted(steps)}')
      steps = [step]
    for s in steps:
      mismatched = _shape_mismatches(pathlib.Path(mngr.directory) / str(s) / 'state', abstract_state)
      if mismatched:  # found before any array is read, so Orbax leaves no reads half done
        raise CheckpointError(f'checkpoint at step {s} does not fit this model: {"; ".join(mismatched[:3])}'
                              f'{f" (and {len(mismatched) - 3} more)" if len(mismatched) > 3 else ""}. '
                              'Was the model, data or optimizer config changed since it was saved?')
      _filter_abandoned_reads(pathlib.Path(mngr.directory) / str(s))
      try:
        out = mngr.restore(s, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state),
                                                      meta=ocp.args.JsonRestore()))
        return out['state'], dict(out['meta'] or {}), s
      except Exception as e:  # damaged files: tensorstore, OS and decoding errors
        if isinstance(e, (ValueError, KeyError, TypeError)) and _is_mismatch(e):
          raise CheckpointError(f'checkpoint at step {s} does not fit this model: {_short(e)}. '
                                'Was the model, data or optimizer config changed since it was saved?') from None
        if step is not None:
          raise
        log.warning('checkpoint at step %d could not be restored (%s); trying the previous one', s, _short(e))
      gc.collect()  # the abandoned reads' coroutines (the error held them), reported and dropped now
      if quarantine:
        self._quarantine(mngr, s)
    return None

  def _quarantine(self, mngr: ocp.CheckpointManager, step: int) -> None:
    src = pathlib.Path(mngr.directory) / str(step)
    if jax.process_index() == 0 and src.exists():
      dest = self.workdir / 'damaged' / f'{src.parent.name}_{step}_{int(time.time())}'
      dest.parent.mkdir(parents=True, exist_ok=True)
      shutil.move(str(src), str(dest))
      log.warning('moved the damaged checkpoint to %s', dest)
    mngr.reload()

  def close(self) -> None:
    self.wait()
    for mngr in (self.latest, self.best):
      # Orbax waits for its start-up removal of unfinished saves only inside the next save; a writer that
      # closes without saving would leave it running into interpreter shutdown. (Private; absent = no-op.)
      getattr(mngr, '_maybe_await_cleanup_tmp_directory', lambda: None)()
      mngr.close()


def _path_names(path) -> tuple[str, ...]:
  """A pytree path as plain names: dict keys, attribute names (Orbax saves NamedTuples as dicts), indices."""
  return tuple(str(getattr(k, 'key', getattr(k, 'name', getattr(k, 'idx', k)))) for k in path)


def _shape_mismatches(item_dir: pathlib.Path, abstract_state) -> list[str]:
  """'path: checkpoint (a, b), model (c, d)' for each array the saved item and `abstract_state` both hold
  with different shapes, read from the checkpoint's metadata. Empty if the metadata cannot be read (a
  damaged checkpoint: the restore reports it) or the shapes agree."""
  try:
    handler = ocp.StandardCheckpointHandler()
    try:
      saved = handler.metadata(epath.Path(item_dir))
    finally:
      handler.close()
  except Exception:  # noqa: BLE001  (missing or damaged metadata: left to the restore)
    return []
  shapes = {_path_names(p): tuple(m.shape) for p, m in jax.tree_util.tree_leaves_with_path(saved)
            if getattr(m, 'shape', None) is not None}
  out = []
  for p, leaf in jax.tree_util.tree_leaves_with_path(abstract_state):
    names = _path_names(p)
    if names in shapes and shapes[names] != tuple(leaf.shape):
      out.append(f'{"/".join(names)}: checkpoint {shapes[names]}, model {tuple(leaf.shape)}')
  return out


def _is_orbax_code(code) -> bool:
  return f'orbax{os.sep}checkpoint' in code.co_filename


def _from_orbax(tb) -> bool:
  return any(_is_orbax_code(f.f_code) for f, _ in traceback.walk_tb(tb))


class _AbandonedReadFilter(logging.Filter):
  """Drops the leftovers of a failed Orbax restore and passes every other report on.

  When one array of a checkpoint cannot be read, Orbax raises at once and closes its event loop while
  the other reads are still in flight. Python then reports each abandoned read on its own: the unfinished
  coroutine when it is collected and TensorStore's completion callback, which finds the loop closed (both
  through sys.unraisablehook), and the gathering future whose error nobody retrieved (asyncio's logger).
  A damaged checkpoint of a small model gave 30-90 such tracebacks (up to 3,000 lines of stderr) after
  the one warning that says what happened. As a sys.unraisablehook this wraps the hook before it; as a
  filter it sits on the 'asyncio' logger.
  """

  folders: set[str] = set()  # every checkpoint folder this process has restored from (shared)

  def __init__(self, previous=None):
    super().__init__()
    self.previous = previous

  @staticmethod
  def is_leftover(u) -> bool:
    code = getattr(u.object, 'cr_code', None)
    if code is not None and _is_orbax_code(code):
      return True  # an unfinished Orbax read coroutine, collected
    frames = [f.f_code.co_name for f, _ in traceback.walk_tb(u.exc_traceback)]  # outermost first
    return (u.object is None and isinstance(u.exc_value, RuntimeError)  # called from C: TensorStore's callback
            and str(u.exc_value) == 'Event loop is closed' and frames[:1] == ['call_soon_threadsafe'])

  def __call__(self, u) -> None:
    if not self.is_leftover(u):
      self.previous(u)

  def filter(self, record: logging.LogRecord) -> bool:
    exc = record.exc_info[1] if record.exc_info else None
    if (exc is not None and 'exception was never retrieved' in str(record.msg)
        and (_from_orbax(exc.__traceback__) or any(folder in str(exc) for folder in self.folders))):
      return False
    return True


def _filter_abandoned_reads(folder: pathlib.Path) -> None:
  """Before a restore of the checkpoint in `folder`: installs _AbandonedReadFilter over sys.unraisablehook
  and on the 'asyncio' logger, once, for good (if the restore fails, TensorStore's callbacks fire on other
  threads both before the error reaches the caller and after)."""
  _AbandonedReadFilter.folders.add(str(folder))
  if not isinstance(sys.unraisablehook, _AbandonedReadFilter):
    sys.unraisablehook = _AbandonedReadFilter(sys.unraisablehook)
  asyncio_log = logging.getLogger('asyncio')
  if not any(isinstance(f, _AbandonedReadFilter) for f in asyncio_log.filters):
    asyncio_log.addFilter(_AbandonedReadFilter())


def _short(e: Exception) -> str:
  """The first line of an error, without the TensorStore spec that Orbax appends to a failed read."""
  text = str(e).strip().split(' See full TensorStore details')[0]
  return text.splitlines()[0][:300] if text else type(e).__name__


def _is_mismatch(e: Exception) -> bool:
  text = str(e).lower()
  return any(w in text for w in ('shape', 'structure', 'mismatch', 'not compatible', 'dict key'))
