import json
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lm_anatomy
from lm_anatomy import engine, optim
from lm_anatomy.errors import CheckpointError
from conftest import ROOT


def _leaves(params):
  return [np.asarray(x) for x in jax.tree.leaves(params)]


def test_run_writes_outputs_and_learns(tiny_config, tmp_path):
  tiny_config.keep_checkpoints = 1
  record = engine.train(tiny_config, tmp_path / 'run', progress=False)
  run = tmp_path / 'run'
  assert json.loads((run / 'config.json').read_text())['model']['n_embd'] == 16
  records = [json.loads(l) for l in (run / 'metrics.jsonl').read_text().splitlines()]
  assert [r['step'] for r in records] == [10, 20]
  for key in ('train_loss', 'val_loss', 'val_perplexity', 'val_bpc', 'tokens_per_sec'):
    assert all(np.isfinite(r[key]) for r in records), key
  assert all(0 < r['mfu'] < 1 for r in records)
  assert records[-1]['val_perplexity'] == pytest.approx(np.exp(records[-1]['val_loss']))
  assert records[-1]['val_bpc'] == pytest.approx(records[-1]['val_loss'] / np.log(2))
  assert records[-1]['val_loss'] < np.log(tiny_config_vocab(run))  # better than uniform
  best = min(records, key=lambda r: r['val_loss'])
  assert {k: v for k, v in record.items() if not k.startswith('best_')} == records[-1]
  assert (record['best_step'], record['best_val_loss']) == (best['step'], best['val_loss'])
  assert list((run / 'tensorboard').iterdir())
  assert sorted(p.name for p in (run / 'checkpoints').iterdir() if p.name.isdigit()) == ['20']  # keep 1
  assert [p.name for p in (run / 'best').iterdir() if p.name.isdigit()] == [str(best['step'])]


def test_on_cpu_a_best_waits_for_the_next_checkpoint_and_matches_one_written_at_once(tiny_config, tmp_path,
                                                                                   monkeypatch):
  """Evaluations every 5 steps, checkpoints every 10, a stop at 15: each evaluation is a new best (the
  tiny run learns), and on CPU a best is written with the next checkpoint (10, the stop at 15, 20), not at
  each evaluation. The best checkpoint then holds what writing each best at once gives, to the bit."""
  from lm_anatomy import checkpoint
  tiny_config.eval_every, tiny_config.checkpoint_every = 5, 10
  written = []
  save_best = checkpoint.Checkpointer.save_best
  monkeypatch.setattr(checkpoint.Checkpointer, 'save_best',
                      lambda self, step, *args: written.append(step) or save_best(self, step, *args))
  assert engine.defer_best_checkpoints()  # the tests run on CPU
  engine.train(tiny_config, tmp_path / 'deferred', stop_after=15, progress=False)
  assert written == [10, 15]
  engine.train(tiny_config, tmp_path / 'deferred', progress=False)
  assert written == [10, 15, 20]
  monkeypatch.setattr(engine, 'defer_best_checkpoints', lambda: False)
  written.clear()
  engine.train(tiny_config, tmp_path / 'at_once', progress=False)
  assert written == [5, 10, 15, 20]
  deferred, at_once = lm_anatomy.restore(tmp_path / 'deferred', best=True), lm_anatomy.restore(tmp_path / 'at_once', best=True)
  assert deferred.step == at_once.step == 20
  for x, y in zip(_leaves(deferred.params), _leaves(at_once.params)):
    np.testing.assert_array_equal(x, y)


def test_stop_after_rounds_up_and_the_last_step_evaluates_and_saves(tiny_config, tmp_path, monkeypatch):
  """steps = 25 (not a multiple of eval_every = 10), checkpoint_every = 1000 > steps, stop_after = 7 with
  5 steps a dispatch: the run stops at 10 with a checkpoint; resumed, it evaluates at 10, 20 and 25, and
  each train_loss is the mean of the training losses since the evaluation before."""
  from lm_anatomy import parallel
  tiny_config.steps, tiny_config.checkpoint_every = 25, 1000
  losses = []
  def build(*args):  # records every training step's loss as the engine receives it
    strategy = build_strategy(*args)
    to_host = strategy.to_host
    def record(metrics):
      out = to_host(metrics)
      losses.extend(float(x) for x in out['loss'])
      return out
    strategy.to_host = record
    return strategy
  build_strategy = parallel.build
  monkeypatch.setattr(parallel, 'build', build)
  engine.train(tiny_config, tmp_path / 'run', stop_after=7, progress=False)
  assert lm_anatomy.restore(tmp_path / 'run').step == 10
  last = engine.train(tiny_config, tmp_path / 'run', progress=False)
  assert lm_anatomy.restore(tmp_path / 'run').step == 25 and last['step'] == 25
  records = [json.loads(l) for l in (tmp_path / 'run' / 'metrics.jsonl').read_text().splitlines()]
  assert [r['step'] for r in records] == [10, 20, 25] and len(losses) == 25
  for r, (a, b) in zip(records, [(0, 10), (10, 20), (20, 25)]):
    assert r['train_loss'] == pytest.approx(np.mean(losses[a:b]), rel=1e-6)


def tiny_config_vocab(run):
  return json.loads((run / 'data_info.json').read_text())['vocab_size']


def test_stop_and_resume_is_bitwise_identical(tiny_config, tmp_path):
  tiny_config.steps, tiny_config.eval_every, tiny_config.checkpoint_every = 40, 20, 5
  engine.train(tiny_config, tmp_path / 'whole', progress=False)
  engine.train(tiny_config, tmp_path / 'split', stop_after=15, progress=False)  # rounds up to 15 (k=5)
  assert lm_anatomy.restore(tmp_path / 'split').step == 15
  engine.train(tiny_config, tmp_path / 'split', progress=False)
  whole, split = lm_anatomy.restore(tmp_path / 'whole'), lm_anatomy.restore(tmp_path / 'split')
  assert whole.step == split.step == 40
  for a, b in zip(_leaves(whole.params), _leaves(split.params)):
    np.testing.assert_array_equal(a, b)
  metrics = lambda p: [json.loads(l) for l in (p / 'metrics.jsonl').read_text().splitlines()]
  for key in ('val_loss', 'train_loss'):   # train_loss at 20 averages steps 0-19 across the stop at 15
    assert [r[key] for r in metrics(tmp_path / 'whole')] == [r[key] for r in metrics(tmp_path / 'split')]
  # tokens/s covers every step since the last evaluation, across the checkpoints in between.
  first, second = metrics(tmp_path / 'whole')
  window = second['elapsed_sec'] - first['elapsed_sec']
  assert second['tokens_per_sec'] == pytest.approx(20 * tiny_config.batch_size * 16 / window, rel=1e-6)


def test_same_seed_same_curve(tiny_config, tmp_path):
  tiny_config.model.dropout = 0.1
  a = engine.train(tiny_config, tmp_path / 'a', progress=False)
  b = engine.train(tiny_config, tmp_path / 'b', progress=False)
  assert a['val_loss'] == b['val_loss'] and a['train_loss'] == b['train_loss']
  tiny_config.seed += 1
  c = engine.train(tiny_config, tmp_path / 'c', progress=False)
  assert c['val_loss'] != a['val_loss']


def test_grad_accumulation_matches_large_batch(tiny_config):
  from lm_anatomy import data, models, optim, parallel, tasks
  tiny_config.batch_size = 8
  ds = data.build(tiny_config)
  model = models.build(tiny_config, ds.info)
  task = tasks.build(tiny_config, model, ds)
  tx, schedule = optim.build(tiny_config.optimizer, tiny_config.steps)
  strategy = parallel.build(tiny_config.parallel)
  batch = jax.tree.map(jax.numpy.asarray, ds.train_batch(0, 8))
  state = jax.jit(lambda key: engine.create_state(task, tx, key, batch))(jax.random.key(0))
  outs = []
  for k in (1, 4):
    step = jax.jit(engine.make_train_step(task, tx, schedule, strategy, grad_accum=k))
    new, metrics = step(state, batch, jax.random.key(1))
    outs.append((new, metrics))
  for a, b in zip(_leaves(outs[0][0].params), _leaves(outs[1][0].params)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(outs[0][1]['loss'], outs[1][1]['loss'], rtol=1e-6)
  # The gradient itself (Adam's first step hardly depends on the gradient's size, so check it directly).
  np.testing.assert_allclose(outs[0][1]['grad_norm'], outs[1][1]['grad_norm'], rtol=1e-6)


@pytest.mark.skipif(jax.default_backend() != 'cpu', reason='the -O1 init compile is a CPU setting')
@pytest.mark.parametrize('name, arg', [('shakespeare_char.py', 'baby'), ('shakespeare_family.py', 'lstm')])
def test_state_initialisation_compiled_for_speed_is_the_default_compile_to_the_bit(tiny_data, name, arg):
  """init_state compiles its one-off program at LLVM -O1 on CPU (a faster compile); the parameters and
  optimizer state it makes are those of the default compile, bit for bit."""
  from conftest import load_config
  from lm_anatomy import data, models, parallel, tasks
  config = load_config(name, arg)
  ds = data.build(config)
  task = tasks.build(config, models.build(config, ds.info), ds)
  tx, _ = optim.build(config.optimizer, config.steps)
  example = {k: v[:1] for k, v in ds.example_batch(config.batch_size).items()}
  init_fn = lambda key: engine.create_state(task, tx, key, example)
  key = jax.random.key(3)
  assert parallel.init_compiler_options() == {'xla_backend_optimization_level': 1}
  got, _ = parallel.build(config.parallel).init_state(init_fn, key, jax.eval_shape(init_fn, key))
  want = jax.jit(init_fn)(key)
  assert len(_leaves(got)) == len(_leaves(want)) > 10
  for a, b in zip(_leaves(got), _leaves(want)):
    np.testing.assert_array_equal(a, b)


def test_each_step_draws_its_dropout_masks_from_seed_and_step(tiny_config):
  """The dropout key of step s is fold_in(base key, s): the same weights and batch at steps 0 and 1 give
  the losses of those two keys, which differ."""
  from lm_anatomy import data, models, parallel, tasks
  tiny_config.model.dropout = 0.3
  ds = data.build(tiny_config)
  model = models.build(tiny_config, ds.info)
  task = tasks.build(tiny_config, model, ds)
  tx, schedule = optim.build(tiny_config.optimizer, tiny_config.steps)
  batch = jax.tree.map(jax.numpy.asarray, ds.train_batch(0, tiny_config.batch_size))
  state = jax.jit(lambda key: engine.create_state(task, tx, key, batch))(jax.random.key(0))
  step = jax.jit(engine.make_train_step(task, tx, schedule, parallel.build(tiny_config.parallel)))
  loss = jax.jit(lambda key: task.loss(state.params, batch, key, train=True)[1]['loss'] / jnp.sum(batch['weights']))
  base_key, got = jax.random.key(7), []
  for s in (0, 1):
    got.append(float(step(state.replace(step=jnp.int32(s)), batch, base_key)[1]['loss']))
    assert got[-1] == pytest.approx(float(loss(jax.random.fold_in(base_key, s))), rel=1e-6)
  assert got[0] != pytest.approx(got[1], rel=1e-4)


def test_changed_model_size_is_a_clear_error(tiny_config, tmp_path):
  tiny_config.steps = 10
  engine.train(tiny_config, tmp_path / 'run', progress=False)
  run = tmp_path / 'run'
  saved = {f.name: f.read_text() for f in run.glob('*.json')}
  tiny_config.model.n_embd = 32
  with pytest.raises(CheckpointError, match=r'different model \(model.n_embd: 16 → 32\)'):
    engine.train(tiny_config, run, progress=False)
  tiny_config.model.n_embd = 16
  tiny_config.data.tokenizer = 'byte'
  with pytest.raises(CheckpointError, match='different tokenizer'):
    engine.train(tiny_config, run, progress=False)
  assert {f.name: f.read_text() for f in run.glob('*.json')} == saved   # a rejected resume writes nothing
  # Without the saved config and tokenizer, the checkpoint's own shapes name the misfit, before Orbax reads.
  (run / 'config.json').unlink()
  (run / 'tokenizer.json').unlink()
  V = json.loads(saved['data_info.json'])['vocab_size']
  with pytest.raises(CheckpointError, match=rf'params/wte/embedding: checkpoint \({V}, 16\), model \(256, 16\)'):
    engine.train(tiny_config, run, progress=False)
  assert not (run / 'config.json').exists()


def test_restore_without_a_checkpoint_is_a_clear_error(tiny_config, tmp_path):
  tiny_config.steps = 10
  engine.train(tiny_config, tmp_path / 'run', progress=False)
  (tmp_path / 'bare').mkdir()
  for f in ('config.json', 'data_info.json', 'tokenizer.json'):
    (tmp_path / 'bare' / f).write_text((tmp_path / 'run' / f).read_text())
  with pytest.raises(CheckpointError, match='bare has no checkpoint yet'):
    lm_anatomy.restore(tmp_path / 'bare')
  assert sorted(p.name for p in (tmp_path / 'bare').iterdir()) == ['config.json', 'data_info.json', 'tokenizer.json']


def test_restore_and_sample_cli(tiny_config, tmp_path, tiny_data):
  tiny_config.steps = 10
  record = engine.train(tiny_config, tmp_path / 'run', progress=False)
  # `python -m lm_anatomy.evaluate` on a text file: the val split's own text scores the run's val loss.
  from conftest import TINY_TEXT
  from lm_anatomy import evaluate
  (tmp_path / 'val.txt').write_text(TINY_TEXT[int(len(TINY_TEXT) * 0.9):])
  scored = evaluate.evaluate_file(tmp_path / 'run', tmp_path / 'val.txt')
  assert scored['count'] == len(TINY_TEXT) - int(len(TINY_TEXT) * 0.9) - 1
  assert scored['loss'] == pytest.approx(record['val_loss'], rel=1e-6)
  run = lm_anatomy.restore(tmp_path / 'run')
  assert run.step == 10 and run.config.model.n_embd == 16
  logits = run.model.apply({'params': run.params}, run.tokenizer.encode('Speak')[None])
  assert logits.shape == (1, 5, run.tokenizer.vocab_size)
  cmd = [sys.executable, '-m', 'lm_anatomy.sample', f'--workdir={tmp_path}/run', '--prompt=All:',
         '--num_samples=2', '--max_new_tokens=30', '--seed=3']
  out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
  assert out.returncode == 0, out.stderr
  assert out.stdout.count('--- sample') == 2 and out.stdout.count('All:') == 2
  bad = subprocess.run(cmd[:-3] + ['--prompt=Speak~'], capture_output=True, text=True, cwd=ROOT, timeout=120)
  assert bad.returncode == 2 and "error: character '~' at position 5 is not in the vocabulary" in bad.stderr


def test_wsd_schedule_holds_then_anneals(tiny_config):
  opt = tiny_config.optimizer
  opt.schedule, opt.lr, opt.min_lr, opt.warmup_steps, opt.decay_fraction = 'wsd', 1e-3, 0.0, 10, 0.25
  opt.warmup_offset = 0          # η·s/W: the first step at lr 0
  _, lr = optim.build(opt, 90)   # 80 steps after warmup: 60 stable, 20 annealed
  values = np.array([float(lr(s)) for s in range(91)])
  np.testing.assert_allclose(values[:11], np.linspace(0, 1e-3, 11), rtol=1e-6, atol=1e-12)
  np.testing.assert_allclose(values[10:71], 1e-3, rtol=1e-6)
  np.testing.assert_allclose(values[70:], np.linspace(1e-3, 0.0, 21), rtol=1e-5, atol=1e-9)


def test_warmup_offset_one_is_nanogpts_schedule(tiny_config):
  """warmup_offset=1 gives nanoGPT's get_lr: η(s+1)/(W+1) in warmup, then cosine to min_lr."""
  opt = tiny_config.optimizer
  opt.schedule, opt.lr, opt.min_lr, opt.warmup_steps, opt.warmup_offset = 'cosine', 1e-3, 1e-4, 100, 1
  _, lr = optim.build(opt, 2000)

  def nanogpt_lr(it, warmup=100, steps=2000):
    if it < warmup:
      return 1e-3 * (it + 1) / (warmup + 1)
    return 1e-4 + 0.5 * (1.0 + math.cos(math.pi * (it - warmup) / (steps - warmup))) * (1e-3 - 1e-4)

  steps = np.arange(2001)
  np.testing.assert_allclose(np.array(jax.vmap(lr)(steps)), [nanogpt_lr(s) for s in steps], rtol=1e-5)
  opt.warmup_offset = 0
  _, lr0 = optim.build(opt, 2000)
  assert float(lr0(0)) == 0.0 and float(lr0(100)) == pytest.approx(1e-3, rel=1e-6)


def test_linear_and_wsd_decays_follow_their_formulas(tiny_config):
  """optim's docstring, W = 10, S = 30, η = 1, η_min = 0.1: linear η + (η_min − η)(s−W)/(S−W); wsd holds η
  until D = S − ⌊f·(S−W)⌋ = 25 (f = 0.25), then η + (η_min − η)(s−D)/(S−D); both η_min after S."""
  opt = tiny_config.optimizer
  opt.lr, opt.min_lr, opt.warmup_steps, opt.warmup_offset, opt.decay_fraction = 1.0, 0.1, 10, 0, 0.25
  steps = np.arange(10, 36)
  for schedule, start in (('linear', 10), ('wsd', 25)):
    opt.schedule = schedule
    _, lr = optim.build(opt, 30)
    want = np.where(steps < start, 1.0, 1.0 + (0.1 - 1.0) * np.clip(steps - start, 0, 30 - start) / (30 - start))
    np.testing.assert_allclose(np.array(jax.vmap(lr)(steps)), want, rtol=1e-6, err_msg=schedule)


@pytest.mark.parametrize('schedule', ['cosine', 'linear', 'wsd', 'constant'])
def test_a_warmup_longer_than_the_run_is_kept_as_nanogpt_keeps_it(tiny_config, schedule):
  """W = 100 > S = 20 steps: every step is in the warmup η(s+1)/(W+1); W was once cut to S (η(s+1)/21)."""
  opt = tiny_config.optimizer
  opt.schedule, opt.lr, opt.warmup_steps, opt.warmup_offset = schedule, 1e-3, 100, 1
  _, lr = optim.build(opt, 20)
  np.testing.assert_allclose([float(lr(s)) for s in range(20)], [1e-3 * (s + 1) / 101 for s in range(20)], rtol=1e-5)
  opt.warmup_steps = 20  # W = S: the last step is still warmup (wsd's decay once started at step 19)
  _, lr = optim.build(opt, 20)
  assert float(lr(19)) == pytest.approx(1e-3 * 20 / 21, rel=1e-5)


@pytest.mark.parametrize('schedule', ['cosine', 'linear', 'wsd'])
def test_a_decay_that_ends_with_the_warmup_leaves_the_floor_after_it(tiny_config, schedule):
  """decay_steps ≤ W: every schedule is at η after the warmup, then at η_min (wsd stayed at η for the run)."""
  opt = tiny_config.optimizer
  opt.schedule, opt.lr, opt.min_lr, opt.warmup_steps, opt.decay_steps = schedule, 1.0, 0.1, 10, 10
  _, lr = optim.build(opt, 100)
  np.testing.assert_allclose([float(lr(s)) for s in (10, 11, 50, 99)], [1.0, 0.1, 0.1, 0.1], rtol=1e-6)


def test_restore_needs_an_integer_step(tiny_config, tmp_path):
  tiny_config.steps = 10
  engine.train(tiny_config, tmp_path / 'run', progress=False)
  assert lm_anatomy.restore(tmp_path / 'run', step=np.int64(10)).step == 10
  for bad in ('10', 10.0):
    with pytest.raises(CheckpointError, match=f'step must be an integer, got {bad!r}'):
      lm_anatomy.restore(tmp_path / 'run', step=bad)


def test_tensorboard_writer_leaves_optional_packages_unimported_and_importable(tmp_path):
  """tensorboardX imports torch, boto3 and google.cloud.storage whenever they are installed (2.4 s of
  start-up with the real ones); the writer keeps them out and leaves them importable. Stand-ins on the path
  record whether they were imported."""
  fakes = tmp_path / 'fakes'
  for name in engine.TENSORBOARDX_EXTRAS:
    path = fakes.joinpath(*name.split('.')).with_suffix('.py')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'IMPORTED = True\nopen({str(tmp_path / "imported.txt")!r}, "a").write({name!r} + "\\n")\n')
  code = (
      'import importlib, sys\n'
      'from lm_anatomy import engine\n'
      f'w = engine.MetricWriter(__import__("pathlib").Path({str(tmp_path / "run")!r}), True, 0)\n'
      'w.write({"step": 1, "val_loss": 2.5}); w.close()\n'
      'print(sorted(n for n in engine.TENSORBOARDX_EXTRAS if n in sys.modules))\n'
      'print([importlib.import_module(n).IMPORTED for n in engine.TENSORBOARDX_EXTRAS])\n')
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fakes), str(ROOT)]))
  out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT, env=env)
  assert out.returncode == 0, out.stderr
  assert out.stdout.splitlines() == ['[]', '[True, True, True]']
  assert (tmp_path / 'imported.txt').read_text().split() == list(engine.TENSORBOARDX_EXTRAS)
  assert list((tmp_path / 'run' / 'tensorboard').iterdir())


def test_cli_compilation_cache_is_reused_with_identical_results(tiny_data, tmp_path):
  """A rerun in the default folder loads the programs it finds there and compiles (and writes) only the
  missing one, and trains bitwise alike."""
  cache = tmp_path / 'lm_cache' / 'xla'
  cmd = lambda w: [sys.executable, '-m', 'lm_anatomy.main', f'--config={ROOT}/experiments/configs/shakespeare_char.py:tiny',
                   f'--workdir={tmp_path}/{w}', '--config.steps=10', '--config.eval_every=10', '--noprogress']
  first = subprocess.run(cmd('a') + [f'--compilation_cache={cache}'], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
  assert first.returncode == 0, first.stderr
  val = json.loads((tmp_path / 'a' / 'metrics.jsonl').read_text().splitlines()[-1])['val_loss']
  assert first.stdout.splitlines()[-2].startswith(f'final: step=10, val_loss={val:.4f}, ')
  assert first.stdout.splitlines()[-1] == f'best: step=10, val_loss={val:.4f} (its checkpoint: {tmp_path}/a/best)'
  entries = lambda: {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
  written = entries()
  chunk = [name for name in written if name.startswith('jit_chunk-')]
  assert len(chunk) == 1, written
  # every program is cached, however fast it compiled: the eval step and the small helpers too
  assert any(name.startswith('jit_eval_step-') for name in written) and len(written) >= 5, written
  (cache / chunk[0]).unlink()  # the train step must be compiled and written again; the rest loaded
  chosen = ('JAX_COMPILATION_CACHE_DIR', 'LM_ANATOMY_COMPILATION_CACHE')
  env = {k: v for k, v in os.environ.items() if k not in chosen}
  env['LM_ANATOMY_CACHE'] = str(tmp_path / 'lm_cache')  # the default folder is $LM_ANATOMY_CACHE/xla
  second = subprocess.run(cmd('b'), capture_output=True, text=True, cwd=ROOT, timeout=120, env=env)
  assert second.returncode == 0, second.stderr
  rerun = entries()
  assert rerun.keys() == written.keys()
  assert rerun[chunk[0]] > written[chunk[0]]
  assert {k: v for k, v in rerun.items() if k != chunk[0]} == {k: v for k, v in written.items() if k != chunk[0]}
  a, b = lm_anatomy.restore(tmp_path / 'a'), lm_anatomy.restore(tmp_path / 'b')
  for x, y in zip(_leaves(a.params), _leaves(b.params)):
    np.testing.assert_array_equal(x, y)


def test_compilation_cache_off_leaves_jax_config_alone_and_passes_to_child_processes(monkeypatch):
  from lm_anatomy import cli
  monkeypatch.setenv('LM_ANATOMY_COMPILATION_CACHE', 'x')  # recorded, so that the 'off' set below is undone
  monkeypatch.delenv('LM_ANATOMY_COMPILATION_CACHE')
  before = jax.config.jax_compilation_cache_dir
  assert cli.compilation_cache('off') is None
  assert jax.config.jax_compilation_cache_dir == before
  assert os.environ['LM_ANATOMY_COMPILATION_CACHE'] == 'off'
  assert cli.compilation_cache() is None  # what a sweep's run, started with this environment, chooses
