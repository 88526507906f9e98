"""Runs in a subprocess with 8 CPU devices (XLA_FLAGS=--xla_force_host_platform_device_count=8).

  python tests/parallel_check.py OUT.json

Trains the same small GPT for 50 steps in each parallel mode with the same global batch, then moves
checkpoints between layouts (fsdp on 8 devices → single device, and back). Writes the largest
relative differences against the single-device run to OUT.json; tests/test_parallel.py asserts on them.
"""
import json
import os
import pathlib
import sys
import tempfile

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import lm_anatomy  # noqa: E402
from lm_anatomy import engine  # noqa: E402
from lm_anatomy.errors import ConfigError  # noqa: E402
from conftest import TINY_TEXT, load_config  # noqa: E402


def config(mode: str):
  c = load_config('shakespeare_char.py', 'tiny')
  c.model.n_layer, c.model.n_head, c.model.n_embd, c.model.block_size = 2, 2, 32, 16
  c.batch_size, c.eval_batch_size, c.eval_batches = 16, 16, 2
  c.steps, c.eval_every, c.checkpoint_every, c.steps_per_dispatch = 50, 10, 50, 5
  c.parallel.mode = mode
  return c


def rel_diff(a, b) -> float:
  """Largest elementwise relative difference of two loss curves."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-6)))


def params_diff(w1, w2) -> dict:
  """Largest over parameter arrays of ‖a − b‖ / ‖b‖ ('params'), and the largest |a − b| ('params_abs')."""
  p1, p2 = lm_anatomy.restore(w1).params, lm_anatomy.restore(w2).params
  rel, abs_ = [], []
  for x, y in zip(jax.tree.leaves(p1), jax.tree.leaves(p2), strict=True):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    rel.append(float(np.linalg.norm(x - y) / np.linalg.norm(y)))
    abs_.append(float(np.max(np.abs(x - y))))
  return {'params': max(rel), 'params_abs': max(abs_)}


def records(workdir):
  return [json.loads(l) for l in (workdir / 'metrics.jsonl').read_text().splitlines()]


def curve(workdir):
  return [r['train_loss'] for r in records(workdir)], [r['val_loss'] for r in records(workdir)]


def config_error(c, workdir) -> str | None:
  """The ConfigError message that training `c` raises, or None if it trains."""
  try:
    engine.train(c, workdir, progress=False)
  except ConfigError as e:
    return str(e)
  return None


def compiles_inside_pmap_calls(c, workdir) -> list[str]:
  """XLA compilations that happen inside the engine's calls of pmap programs (timed as training)."""
  import logging
  from lm_anatomy import parallel_pmap
  inside, seen = [False], []

  class Catch(logging.Handler):
    def emit(self, record):
      if inside[0] and 'Finished XLA compilation' in record.getMessage():
        seen.append(record.getMessage()[:80])

  original = parallel_pmap._Lowered.__call__

  def call(self, *args):
    inside[0] = True
    try:
      return original(self, *args)
    finally:
      inside[0] = False
  handler = Catch()
  logging.getLogger('jax').addHandler(handler)
  parallel_pmap._Lowered.__call__ = call
  jax.config.update('jax_log_compiles', True)
  try:
    engine.train(c, workdir, progress=False)
  finally:
    jax.config.update('jax_log_compiles', False)
    parallel_pmap._Lowered.__call__ = original
    logging.getLogger('jax').removeHandler(handler)
  return seen


def strategy_checks(result, root):
  """The strategies' own calls on toy trees: batch checks, state shardings through a step, pmap's rows and keys."""
  from lm_anatomy import parallel
  import jax.numpy as jnp
  # Mesh modes cut micro-batches from the global batch: 8 rows on 8 devices take grad_accum 2.
  try:
    parallel.build(config('data').parallel).check_batch(8, grad_accum=2)
    result['data_accum_error'] = None
  except ConfigError as e:
    result['data_accum_error'] = str(e)
  bad = config('data')
  bad.eval_batch_size = 12
  result['bad_eval_batch_error'] = config_error(bad, root / 'bad_eval_batch')
  # fsdp: the state is sharded at init and stays so through a compiled step.
  fsdp = parallel.build(config('fsdp').parallel)
  abstract = {'w': jax.ShapeDtypeStruct((64, 16), jnp.float32), 'b': jax.ShapeDtypeStruct((16,), jnp.float32)}
  state, sharding = fsdp.init_state(lambda rng: {'w': jnp.ones((64, 16)), 'b': jnp.zeros(16)}, jax.random.key(0), abstract)
  spec = lambda x: str(tuple(getattr(x.sharding, 'spec', ('not a NamedSharding',))))
  result['fsdp_init_specs'] = {k: spec(v) for k, v in state.items()}
  step = fsdp.compile_train(lambda s, b, r: (jax.tree.map(lambda x: x + b['x'].sum(), s), {'n': b['x'].sum()}), sharding)
  new, _ = step(state, fsdp.put_batch({'x': np.ones((2, 8), np.float32)}, 1), jax.random.key(1))
  result['fsdp_step_specs'] = {k: spec(v) for k, v in new.items()}
  result['fsdp_step_values'] = {k: np.unique(np.asarray(v)).tolist() for k, v in new.items()}
  # pmap: device d gets rows [2d, 2d + 2) of each step's 16; each device folds its index into the step's key.
  pm = parallel.build(config('pmap').parallel)
  rows = pm.put_batch({'x': np.arange(2 * 16).reshape(2, 16)}, 1)['x']
  result['pmap_rows'] = np.asarray(rows).tolist()
  step = pm.compile_train(lambda s, b, r: (s, {'key': jax.random.key_data(r)}))
  _, metrics = step(pm.put_state({'x': np.zeros(())}), pm.put_batch({'x': np.zeros((1, 8), np.float32)}, 1),
                    jax.random.key(3))
  result['pmap_device_keys'] = np.asarray(metrics['key']).tolist()
  result['pmap_expected_keys'] = [np.asarray(jax.random.key_data(jax.random.fold_in(jax.random.key(3), d))).tolist()
                                  for d in range(8)]


def main(out_path):
  assert jax.device_count() == 8, jax.devices()
  root = pathlib.Path(tempfile.mkdtemp())
  (root / 'data' / 'tinyshakespeare').mkdir(parents=True)
  (root / 'data' / 'tinyshakespeare' / 'input.txt').write_text(TINY_TEXT)
  os.environ['LM_ANATOMY_DATA'] = str(root / 'data')
  result = {}
  # First, while no small program is cached yet: the pmap step compiles ahead of time, and slicing its
  # metrics on the device once compiled small programs inside the timed calls.
  result['pmap_call_compiles'] = compiles_inside_pmap_calls(config('pmap'), root / 'pmap_compiles')
  for mode in ('single', 'pmap', 'data', 'fsdp'):
    engine.train(config(mode), root / mode, progress=False)
  base_train, base_val = curve(root / 'single')

  def against_single(workdir) -> dict:
    train, val = curve(workdir)
    return {'train_loss': rel_diff(train, base_train), 'val_loss': rel_diff(val, base_val), 'records': len(train),
            **params_diff(workdir, root / 'single')}

  for mode in ('pmap', 'data', 'fsdp'):
    result[mode] = against_single(root / mode)
  result['compile_sec'] = {mode: records(root / mode)[0]['compile_sec'] for mode in ('single', 'pmap', 'data', 'fsdp')}
  # Two micro-batches of the same global batch give the same updates (each device's rows cut in two).
  for mode in ('data', 'pmap'):
    c = config(mode)
    c.grad_accum_steps = 2
    engine.train(c, root / f'{mode}_accum2', progress=False)
    result[f'{mode}_accum2'] = against_single(root / f'{mode}_accum2')
  # Portability: stop at 30 in one layout, resume in the other.
  for first, second in (('fsdp', 'single'), ('single', 'fsdp'), ('pmap', 'pmap')):
    w = root / f'{first}_to_{second}'
    engine.train(config(first), w, stop_after=30, progress=False)
    engine.train(config(second), w, progress=False)
    result[f'{first}_to_{second}'] = params_diff(w, root / 'single')
  # Fine-tuning from a run (init_from) under pmap equals the same under one device.
  for mode in ('single', 'pmap'):
    c = config(mode)
    c.init_from, c.steps, c.eval_every, c.checkpoint_every = str(root / 'single'), 10, 10, 10
    engine.train(c, root / f'init_from_{mode}', progress=False)
  result['init_from_pmap'] = params_diff(root / 'init_from_pmap', root / 'init_from_single')
  # pmap cuts each device's rows into the micro-batches: 16 rows on 8 devices cannot make 4.
  bad = config('pmap')
  bad.grad_accum_steps = 4
  result['bad_accum_error'] = config_error(bad, root / 'bad_accum')
  # A global batch that 8 devices cannot split is a config error, raised before anything compiles.
  bad = config('data')
  bad.batch_size = 12
  result['bad_batch_error'] = config_error(bad, root / 'bad_batch')
  result['bad_batch_workdir_made'] = (root / 'bad_batch').exists()
  fsdp_state = lm_anatomy.restore(root / 'fsdp')  # an 8-device fsdp run, restored on one device
  result['fsdp_restored_on'] = sorted({len(x.devices()) for x in jax.tree.leaves(fsdp_state.params)})
  # fsdp's rule: shard the largest axis that 8 devices divide; arrays under 1024 elements stay whole.
  from lm_anatomy import parallel
  fsdp = parallel.build(config('fsdp').parallel)
  shapes = [(64, 16), (16, 64), (3, 1024), (8, 100), (12, 100), (2048,)]
  result['fsdp_specs'] = {str(s): str(tuple(fsdp.state_sharding(jax.ShapeDtypeStruct(s, jax.numpy.float32)).spec))
                          for s in shapes}
  data = parallel.build(config('data').parallel)
  result['data_specs'] = {str(s): str(tuple(data.state_sharding(jax.ShapeDtypeStruct(s, jax.numpy.float32)).spec))
                          for s in shapes}
  strategy_checks(result, root)
  pathlib.Path(out_path).write_text(json.dumps(result, indent=2))


if __name__ == '__main__':
  main(sys.argv[1])
