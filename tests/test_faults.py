"""Fault injection: preemption, kill -9, damaged checkpoints, NaNs. Each test names the fault it injects."""
import gc
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import lm_anatomy
from lm_anatomy import checkpoint, engine
from lm_anatomy.data import text
from lm_anatomy.errors import CheckpointError
from conftest import ROOT


def _leaves(params):
  return [np.asarray(x) for x in jax.tree.leaves(params)]


def _assert_same_params(a, b):
  for x, y in zip(_leaves(a.params), _leaves(b.params), strict=True):
    np.testing.assert_array_equal(x, y)


def _cmd(workdir, steps=60):
  return [sys.executable, '-m', 'lm_anatomy.main', f'--config={ROOT}/experiments/configs/shakespeare_char.py:tiny',
          f'--workdir={workdir}', f'--config.steps={steps}', '--config.checkpoint_every=10', '--config.eval_every=30',
          '--config.model.n_embd=16', '--config.model.block_size=16', '--config.batch_size=4',
          '--config.eval_batch_size=8', '--config.steps_per_dispatch=5', '--progress=false']


def _config_like_cmd(tiny_config, steps=60):
  tiny_config.steps, tiny_config.checkpoint_every, tiny_config.eval_every = steps, 10, 30
  tiny_config.model.n_layer, tiny_config.model.n_head = 2, 2
  tiny_config.eval_batches = 4
  return tiny_config


def _steps_on_disk(workdir):
  d = pathlib.Path(workdir) / 'checkpoints'
  return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.exists() else []


def _wait_for_checkpoint(proc, workdir, timeout=120, after=0):
  """Waits until `workdir` holds a checkpoint of a step past `after` (the process must still run)."""
  t0 = time.time()
  while not [s for s in _steps_on_disk(workdir) if s > after]:
    assert proc.poll() is None, proc.communicate()
    assert time.time() - t0 < timeout, 'no checkpoint appeared'
    time.sleep(0.05)


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT])
def test_preemption_saves_and_exits_cleanly(tiny_data, tmp_path, sig):
  """Fault: SIGTERM / SIGINT mid-training. Expect, within 30 s, a checkpoint and exit status 128 + signal
  (so that a scheduler or a sweep sees an unfinished run, as a shell reports a signal), then a clean resume."""
  workdir = tmp_path / 'run'
  proc = subprocess.Popen(_cmd(workdir, steps=100_000), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
  _wait_for_checkpoint(proc, workdir)
  t0 = time.time()
  proc.send_signal(sig)
  out, err = proc.communicate(timeout=30)
  assert time.time() - t0 < 30
  assert proc.returncode == 128 + sig, err
  stopped_at = lm_anatomy.restore(workdir).step
  assert 0 < stopped_at < 100_000 and stopped_at % 5 == 0
  assert f'stopped by signal {int(sig)} at step {stopped_at}, with a checkpoint; run the same command to resume' in err
  assert 'Traceback' not in err


def test_kill_9_at_random_moments_then_resume_is_bitwise_exact(tiny_data, tiny_config, tmp_path):
  """Fault: SIGKILL at random moments, three times. Expect every resume to work, and the final
  parameters to equal those of an uninterrupted run bit for bit."""
  steps = 100
  engine.train(_config_like_cmd(tiny_config, steps), tmp_path / 'whole', progress=False)
  workdir = tmp_path / 'killed'
  rng = random.Random(0)
  kills = 0
  while kills < 3:
    before = max(_steps_on_disk(workdir), default=0)
    proc = subprocess.Popen(_cmd(workdir, steps), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_checkpoint(proc, workdir, after=before)  # the kill comes after this launch has trained and saved
    time.sleep(rng.uniform(0.0, 0.25))
    if proc.poll() is not None:  # finished before the kill: start over so every kill lands mid-run
      import shutil
      shutil.rmtree(workdir)
      continue
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kills += 1
    assert max(_steps_on_disk(workdir)) > before  # this launch got further than the one before
    lm_anatomy.restore(workdir)  # whatever is on disk restores
  done = subprocess.run(_cmd(workdir, steps), cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr
  whole, killed = lm_anatomy.restore(tmp_path / 'whole'), lm_anatomy.restore(workdir)
  assert whole.step == killed.step == steps
  _assert_same_params(whole, killed)
  records = [json.loads(l) for l in (workdir / 'metrics.jsonl').read_text().splitlines()]
  assert [r['step'] for r in records] == [30, 60, 90, 100]


def _settle():
  """Lets the reads that a failed restore abandoned finish and be collected."""
  time.sleep(0.5)  # TensorStore's last callbacks run on its own threads
  gc.collect()


@pytest.mark.parametrize('damage', ['truncate', 'delete'])
def test_damaged_latest_checkpoint_falls_back_to_previous(tiny_config, tmp_path, caplog, monkeypatch, damage):
  """Fault: a truncated or deleted array file inside the newest checkpoint. Expect a warning, a restore
  of the previous checkpoint, and a resumed run identical to an uninterrupted one. The reads that Orbax
  abandons leave no tracebacks behind (Python reported 30-90 of them before the filter)."""
  config = _config_like_cmd(tiny_config, 30)
  engine.train(config, tmp_path / 'whole', progress=False)
  engine.train(config, tmp_path / 'run', stop_after=20, progress=False)
  assert _steps_on_disk(tmp_path / 'run') == [10, 20]
  files = [p for p in (tmp_path / 'run' / 'checkpoints' / '20').rglob('*') if p.is_file() and p.stat().st_size > 0
           and 'state' in p.parts and 'METADATA' not in p.name.upper() and not p.name.startswith('_')]
  assert files
  victim = max(files, key=lambda p: p.stat().st_size)
  if damage == 'truncate':
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 3])
  else:
    victim.unlink()
  unraisable = []
  monkeypatch.setattr(sys, 'unraisablehook', unraisable.append)
  with caplog.at_level('WARNING'):
    run = lm_anatomy.restore(tmp_path / 'run')
    _settle()
  assert run.step == 10
  assert 'checkpoint at step 20 could not be restored (Encountered error while reading array index' in caplog.text
  assert 'TensorStore details' not in caplog.text
  assert [(u.exc_type, u.object) for u in unraisable] == []
  assert [r.getMessage()[:80] for r in caplog.records if r.name == 'asyncio'] == []
  with caplog.at_level('WARNING'):
    engine.train(config, tmp_path / 'run', progress=False)  # restores with quarantine
    _settle()
  assert [(u.exc_type, u.object) for u in unraisable] == []
  assert [r.getMessage()[:80] for r in caplog.records if r.name == 'asyncio'] == []
  _assert_same_params(lm_anatomy.restore(tmp_path / 'whole'), lm_anatomy.restore(tmp_path / 'run'))
  assert [p.name.split('_')[:2] for p in (tmp_path / 'run' / 'damaged').iterdir()] == [['checkpoints', '20']]


def test_abandoned_read_filter_passes_other_reports_on(monkeypatch):
  """The filter drops only an Orbax read's leftovers: a closed loop met by call_soon_threadsafe, an Orbax
  coroutine, an asyncio 'never retrieved' report about a restored folder. Everything else goes on."""
  import asyncio
  import logging
  import types
  passed = []
  leftover_filter = checkpoint._AbandonedReadFilter(passed.append)

  def report(exc, obj=None):
    try:
      raise exc
    except BaseException as e:
      return types.SimpleNamespace(exc_type=type(e), exc_value=e, exc_traceback=e.__traceback__, object=obj)

  loop = asyncio.new_event_loop()
  loop.close()
  try:
    loop.call_soon_threadsafe(print)
  except RuntimeError as e:  # as TensorStore's callback, called from C, reports it: no frame above the call
    closed = types.SimpleNamespace(exc_type=RuntimeError, exc_value=e, exc_traceback=e.__traceback__.tb_next,
                                   object=None)
  orbax_coroutine = types.SimpleNamespace(cr_code=types.SimpleNamespace(
      co_filename=os.path.join('site-packages', 'orbax', 'checkpoint', '_src', 'serialization.py')))
  other_coroutine = types.SimpleNamespace(cr_code=types.SimpleNamespace(co_filename='/app/server.py'))
  leftover_filter(closed)
  leftover_filter(report(Exception('read failed'), orbax_coroutine))
  assert passed == []
  others = [report(RuntimeError('Event loop is closed')), report(Exception('read failed'), other_coroutine),
            report(ValueError('something else'))]
  for u in others:
    leftover_filter(u)
  assert passed == others

  monkeypatch.setattr(checkpoint._AbandonedReadFilter, 'folders', {'/runs/a/checkpoints/20'})

  def never_retrieved(exc):
    return logging.LogRecord('asyncio', logging.ERROR, __file__, 1, 'Future exception was never retrieved',
                             None, (type(exc), exc, None))
  assert not leftover_filter.filter(never_retrieved(ValueError('Error reading "x" at "/runs/a/checkpoints/20/state/"')))
  assert leftover_filter.filter(never_retrieved(ValueError('Error reading "x" at "/runs/b/checkpoints/20/state/"')))
  assert leftover_filter.filter(logging.LogRecord('asyncio', logging.ERROR, __file__, 1, 'Task was destroyed',
                                                  None, None))


def _poison_step(monkeypatch, *bad_steps):
  original = text.StreamLM.train_batch

  def train_batch(self, step, batch_size):
    batch = original(self, step, batch_size)
    if step in bad_steps:
      batch['weights'] = batch['weights'] * np.nan
    return batch
  monkeypatch.setattr(text.StreamLM, 'train_batch', train_batch)


def test_nonfinite_loss_is_skipped_and_counted(tiny_config, tmp_path, monkeypatch, caplog):
  """Fault: NaN losses at steps 6 and 7 (one dispatch of 5 steps) with on_nonfinite='skip'. Expect both
  updates skipped, counted and logged, and no NaN in any checkpoint."""
  _poison_step(monkeypatch, 6, 7)
  tiny_config.on_nonfinite = 'skip'
  with caplog.at_level('WARNING'):
    record = engine.train(tiny_config, tmp_path / 'run', progress=False)
  assert record['skipped_updates'] == 2
  assert [m for m in caplog.messages if m.startswith('non-finite')] == [
      f'non-finite loss or gradients at step {s}: update skipped' for s in (6, 7)]
  assert all(np.isfinite(x).all() for x in _leaves(lm_anatomy.restore(tmp_path / 'run').params))
  # The schedule followed the global step through the skip (it logs and applies schedule(step)); Adam's
  # own count (bias correction) counts the applied updates only.
  ckpt = checkpoint.Checkpointer(tmp_path / 'run')
  try:
    state = ckpt.restore(None)[0]   # as saved, without a target
  finally:
    ckpt.close()
  counts = [int(x) for p, x in jax.tree_util.tree_leaves_with_path(state['opt_state']) if 'count' in jax.tree_util.keystr(p)]
  assert sorted(counts) == [tiny_config.steps - 2, tiny_config.steps], counts
  for step in _steps_on_disk(tmp_path / 'run'):
    assert all(np.isfinite(x).all() for x in _leaves(lm_anatomy.restore(tmp_path / 'run', step=step).params))


def test_nonfinite_loss_stops_with_the_step(tiny_config, tmp_path, monkeypatch):
  """Fault: a NaN loss at step 13 with on_nonfinite='stop'. Expect an error naming step 13, and only
  the checkpoint from before it on disk."""
  _poison_step(monkeypatch, 13)
  tiny_config.on_nonfinite = 'stop'
  with pytest.raises(engine.NonFiniteError, match='at step 13'):
    engine.train(tiny_config, tmp_path / 'run', progress=False)
  assert _steps_on_disk(tmp_path / 'run') == [10]


def test_a_leftover_checkpoint_of_a_recomputed_step_is_replaced(tiny_config, tmp_path, caplog):
  """Fault: a run killed while finishing left a checkpoint of step 20 that its resume did not start
  from. Expect the recomputed step to replace it instead of failing with 'already exists'."""
  engine.train(_config_like_cmd(tiny_config, 20), tmp_path / 'run', progress=False)
  run = lm_anatomy.restore(tmp_path / 'run')
  state = {'w': np.full(3, 7.0, np.float32)}
  ckpt = checkpoint.Checkpointer(tmp_path / 'run', keep=3)
  with caplog.at_level('WARNING'):
    ckpt.save(20, state, {'note': 'again'})
    ckpt.save_best(20, state, {'note': 'again'}, 1.0)
  ckpt.wait()
  assert 'replacing the checkpoint at step 20' in caplog.text
  target = {'w': jax.ShapeDtypeStruct((3,), np.float32)}
  restored, meta, step = ckpt.restore(target)
  assert step == 20 and meta == {'note': 'again'} and (np.asarray(restored['w']) == 7.0).all()
  assert run.step == 20
  ckpt.close()


def test_a_restart_from_an_earlier_checkpoint_drops_the_best_saved_after_it(tiny_config, tmp_path):
  """Fault: the newest checkpoint is lost, so the run redoes steps 11–20. The best checkpoint of step 20
  came from the stretch being redone: it is dropped at the restart, and saved again when step 20 is."""
  w = tmp_path / 'run'
  engine.train(tiny_config, w, progress=False)
  best_steps = lambda: sorted(int(p.name) for p in (w / 'best').iterdir() if p.name.isdigit())
  assert best_steps() == [20]
  import shutil
  shutil.rmtree(w / 'checkpoints' / '20')
  engine.train(tiny_config, w, stop_after=10, progress=False)  # restarts at 10 and stops there
  assert best_steps() == []
  engine.train(tiny_config, w, progress=False)
  assert best_steps() == [20]
  _assert_same_params(lm_anatomy.restore(w, best=True), lm_anatomy.restore(w))


def test_a_resume_measures_new_bests_against_the_best_checkpoint_on_disk(tiny_config, tmp_path):
  """Fault: a run killed while writing a best and a regular checkpoint at once finished only the regular
  one, so its meta holds a best val loss that no best checkpoint on disk has (here -1, which nothing
  beats). Expect the resumed run to take its bar from the best on disk, and to save the next better one."""
  tiny_config.steps = 30
  w = tmp_path / 'run'
  engine.train(tiny_config, w, stop_after=20, progress=False)
  meta_file = w / 'checkpoints' / '20' / 'meta' / 'metadata'
  meta = json.loads(meta_file.read_text())
  assert meta['best_val_loss'] > 0
  meta_file.write_text(json.dumps(dict(meta, best_val_loss=-1.0)))
  record = engine.train(tiny_config, w, progress=False)
  vals = {r['step']: r['val_loss'] for r in map(json.loads, (w / 'metrics.jsonl').read_text().splitlines())}
  assert vals[30] < min(vals[10], vals[20])  # the run still learns: step 30 is a new best
  assert (record['best_step'], record['best_val_loss']) == (30, vals[30])
  assert lm_anatomy.restore(w, best=True).step == 30


def test_a_resume_keeps_a_best_on_disk_that_nothing_beats(tiny_config, tmp_path):
  """The other side of the test above: the best checkpoint on disk records a val loss (here -1) that the
  resumed run's evaluations cannot beat, while the regular checkpoint's meta holds the real one. Expect no
  new best: the bar comes from the best on disk, not from the meta and not from nothing."""
  tiny_config.steps = 30
  w = tmp_path / 'run'
  engine.train(tiny_config, w, stop_after=20, progress=False)
  metrics_file = w / 'best' / '20' / 'metrics' / 'metrics'
  assert json.loads(metrics_file.read_text())['val_loss'] > 0
  metrics_file.write_text(json.dumps({'val_loss': -1.0}))
  record = engine.train(tiny_config, w, progress=False)
  vals = {r['step']: r['val_loss'] for r in map(json.loads, (w / 'metrics.jsonl').read_text().splitlines())}
  assert vals[30] < min(vals[10], vals[20])  # a new best by the meta's bar, or with no bar at all
  assert record['best_step'] == 20 and sorted(int(d.name) for d in (w / 'best').iterdir() if d.name.isdigit()) == [20]


def test_reading_a_run_leaves_the_save_in_flight_alone(tiny_config, tmp_path):
  """Fault: `restore` (and so sample, evaluate, init_from) runs while the trainer is writing a checkpoint,
  whose files sit in a temporary folder until it commits. Expect the reader to leave that folder, and
  everything else in the workdir, as it was, and to refuse to write."""
  tiny_config.steps = 10
  w = tmp_path / 'run'
  engine.train(tiny_config, w, progress=False)
  in_flight = [w / 'checkpoints' / '20.orbax-checkpoint-tmp-1700000000000000',
               w / 'best' / '20.orbax-checkpoint-tmp-1700000000000001']
  for folder in in_flight:
    folder.mkdir()
    (folder / 'part').write_text('being written')
  before = sorted(p.relative_to(w) for p in w.rglob('*'))
  assert lm_anatomy.restore(w).step == 10 and lm_anatomy.restore(w, best=True).step == 10
  assert sorted(p.relative_to(w) for p in w.rglob('*')) == before
  reader = checkpoint.Checkpointer(w, reader=True)
  try:
    with pytest.raises(CheckpointError, match="opened to read"):
      reader.save(20, {'w': np.zeros(3, np.float32)}, {})
  finally:
    reader.close()
  # The trainer, which owns the workdir, clears what an unfinished save left when it starts again.
  checkpoint.Checkpointer(w).close()
  assert not any(folder.exists() for folder in in_flight)


def test_a_signal_during_the_last_chunk_lets_the_run_finish(tiny_config, tmp_path, monkeypatch):
  """Fault: SIGTERM comes while the last chunk (or the final evaluation) runs. The run is complete then:
  expect its final record and best, not 'stopped by signal … run the same command to resume'. A signal
  before the last chunk still stops the run."""
  class Signalled(engine._StopFlag):
    def __enter__(self):
      super().__enter__()
      self.signal = signal.SIGTERM
      return self

  monkeypatch.setattr(engine, '_StopFlag', Signalled)
  tiny_config.steps = 2 * tiny_config.steps_per_dispatch
  with pytest.raises(engine.Interrupted, match=f'at step {tiny_config.steps_per_dispatch}'):
    engine.train(tiny_config, tmp_path / 'a', progress=False)
  tiny_config.steps = tiny_config.steps_per_dispatch
  record = engine.train(tiny_config, tmp_path / 'b', progress=False)
  assert record['step'] == tiny_config.steps and record['best_step'] == tiny_config.steps
  assert record['best_val_loss'] == record['val_loss']
