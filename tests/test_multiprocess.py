"""A real two-process run: two OS processes, jax.distributed on the CPU backend (gloo), loopback only."""
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

import lm_anatomy
from lm_anatomy import engine
from conftest import ROOT, load_config


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _run_pair(workdir, stop_after, data_dir, mode='data', ok=True):
  """Both processes at once. Their output goes to files, not pipes: a full pipe that nobody reads
  would block one process inside a collective and hang the other."""
  port = _free_port()
  logs = [workdir.parent / f'process{i}_stop{stop_after}.log' for i in range(2)]
  procs = []
  for i, log in enumerate(logs):
    with open(log, 'w') as f:
      procs.append(subprocess.Popen([sys.executable, str(ROOT / 'tests' / 'multiprocess_check.py'), str(i), str(port),
                                     str(workdir), str(stop_after), str(data_dir), mode], cwd=ROOT, stdout=f,
                                    stderr=subprocess.STDOUT, text=True))
  for p in procs:
    p.wait(timeout=600)
  outs = [log.read_text() for log in logs]
  for p, out in zip(procs, outs):
    assert (p.returncode == 0) == ok, out[-3000:]
  return outs


def test_two_processes_train_checkpoint_resume_and_match_one(tiny_data, tmp_path):
  outs = _run_pair(tmp_path / 'multi', 10, tiny_data)
  assert all('of 2, 2 devices: done' in o for o in outs), outs
  assert lm_anatomy.restore(tmp_path / 'multi').step == 10
  _run_pair(tmp_path / 'multi', 0, tiny_data)  # resume to the end
  c = load_config('shakespeare_char.py', 'tiny')
  c.model.n_layer, c.model.n_head, c.model.n_embd, c.model.block_size = 2, 2, 32, 16
  c.batch_size, c.eval_batch_size, c.eval_batches = 6, 6, 2
  c.steps, c.eval_every, c.checkpoint_every, c.steps_per_dispatch = 20, 10, 10, 5
  engine.train(c, tmp_path / 'single', progress=False)
  multi, single = lm_anatomy.restore(tmp_path / 'multi'), lm_anatomy.restore(tmp_path / 'single')
  assert multi.step == single.step == 20
  for a, b in zip(jax.tree.leaves(multi.params), jax.tree.leaves(single.params), strict=True):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert np.linalg.norm(a - b) / np.linalg.norm(b) < 1e-5
    assert np.max(np.abs(a - b)) < 1e-6


@pytest.mark.parametrize('mode, message', [('single', 'runs on one device of one process'),
                                           ('pmap', 'runs over the devices of one process')])
def test_one_process_modes_in_two_processes_are_a_config_error(tiny_data, tmp_path, mode, message):
  """Before: 'single' trained both processes on process 0's device and wrote the same workdir, then
  crashed; 'pmap' wrote the workdir, then crashed inside JAX lowering the pmapped step. Now neither
  writes anything."""
  outs = _run_pair(tmp_path / mode, 0, tiny_data, mode=mode, ok=False)
  for out in outs:
    assert f"ConfigError: parallel.mode='{mode}' {message}, but 2 processes" in out, out[-3000:]
  assert not (tmp_path / mode).exists()
