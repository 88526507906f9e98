"""Shared fixtures: a tiny corpus in a temporary data folder, and tiny configs."""
import os
import pathlib
import tempfile

import pytest

# One on-disk XLA compilation cache for the session, shared with the subprocesses the tests start:
# many tests compile the same tiny programs again (a resumed run, a second seed, a second process).
# Cached executables are the same programs, so results (bitwise checks included) do not change.
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', tempfile.mkdtemp(prefix='lm_anatomy_xla_cache_'))
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES', '0')
# On a GPU, JAX takes 75% of its memory when its backend starts; the test command's two workers (and the
# processes tests start) would then not fit on one GPU. The tests' programs are tiny: allocate as needed.
# Only GPU clients read this.
os.environ.setdefault('XLA_PYTHON_CLIENT_PREALLOCATE', 'false')

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY_TEXT = ('First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n'
             'First Citizen:\nYou are all resolved rather to die than to famish?\n\nAll:\nResolved. resolved.\n') * 20


def pytest_configure(config):
  """On a GPU, XLA multiplies float32 matrices in TF32 by default (a 10-bit mantissa: relative errors near
  1e-3). The tests check the models' float32 math against float64 references at 1e-5, so on a GPU they ask
  for full float32 products, here and in the processes they start. CPUs multiply float32 in float32
  already: nothing changes there. A hook, not an import-time call: scripts that import this module
  (multiprocess_check.py) must not start JAX's backend before jax.distributed.initialize."""
  import jax
  if jax.default_backend() == 'gpu':
    jax.config.update('jax_default_matmul_precision', 'highest')
    os.environ['JAX_DEFAULT_MATMUL_PRECISION'] = 'highest'


def load_config(name: str, arg: str = ''):
  """experiments/configs/NAME:ARG, loaded as the command line loads it."""
  from lm_anatomy import sweep
  return sweep.experiment_config(name, arg)


@pytest.fixture
def tiny_data(tmp_path, monkeypatch):
  """LM_ANATOMY_DATA pointing at a folder with a tiny 'tinyshakespeare/input.txt'; no cache, no downloads."""
  root = tmp_path / 'data'
  (root / 'tinyshakespeare').mkdir(parents=True)
  (root / 'tinyshakespeare' / 'input.txt').write_text(TINY_TEXT)
  monkeypatch.setenv('LM_ANATOMY_DATA', str(root))
  monkeypatch.setenv('LM_ANATOMY_CACHE', str(tmp_path / 'cache'))
  return root


@pytest.fixture
def tiny_config(tiny_data):
  config = load_config('shakespeare_char.py', 'tiny')
  config.model.n_layer, config.model.n_head, config.model.n_embd, config.model.block_size = 2, 2, 16, 16
  config.batch_size = 4
  config.steps = 20
  config.eval_every = 10
  config.checkpoint_every = 10
  config.eval_batches = 2
  config.eval_batch_size = 8
  config.steps_per_dispatch = 5
  return config
