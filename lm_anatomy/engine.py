"""The training engine: pure, jitted train and eval steps, and the loop around them.

It knows no architecture by name. From the config it gets a dataset, a model (by registry name), a
task (batch → loss and metric sums), an optimizer and a parallel strategy, and it runs

    state ← train_step(state, batch_s)   for s = start … steps − 1

with evaluation every `eval_every` steps, checkpoints every `checkpoint_every` steps, a progress
bar, `metrics.jsonl` and TensorBoard events in the workdir. Batch s and its dropout key are pure
functions of (seed, s), so a run that stops and resumes is bitwise identical to one that does not.

`steps_per_dispatch = k` runs k steps per compiled call with `lax.scan`; chunks always start at
multiples of k, so interrupted and uninterrupted runs execute the same programs.
"""
from __future__ import annotations

import json
import logging
import math
import pathlib
import signal
import sys
import threading
import time
from concurrent import futures
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from lm_anatomy import checkpoint as ckpt_lib
from lm_anatomy import config as config_lib
from lm_anatomy import data as data_lib
from lm_anatomy import models, optim, parallel, tasks
from lm_anatomy.data import tokenizers
from lm_anatomy.errors import CheckpointError, ConfigError, Interrupted, LmAnatomyError

log = logging.getLogger(__name__)


class NonFiniteError(LmAnatomyError, FloatingPointError):
  """A NaN or inf appeared in the loss or gradients and `on_nonfinite='stop'`."""


@flax.struct.dataclass
class TrainState:
  step: jax.Array      # int32 []
  params: Any
  opt_state: Any
  skipped: jax.Array   # int32 []: updates skipped for non-finite loss or gradients


def create_state(task, tx, rng, example_batch) -> TrainState:
  params = task.init(rng, example_batch)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                    skipped=jnp.zeros((), jnp.int32))


def _split_micro(batch, k: int):
  return jax.tree.map(lambda x: x.reshape(k, x.shape[0] // k, *x.shape[1:]), batch)


def make_train_step(task, tx, schedule, strategy, grad_accum: int = 1) -> Callable:
  """train_step(state, batch, base_rng) -> (state, metrics). Pure; jit it through a strategy.

  Objective: Σ_micro (Σ w ℓ) / Σ w + λ R(θ), so k micro-batches give the large-batch gradient.
  A step with a non-finite loss or gradients leaves the parameters and moments unchanged; the step, the
  schedules (see advance_schedules) and `skipped` still advance.
  """
  def step(state: TrainState, batch, base_rng):
    rng = jax.random.fold_in(base_rng, state.step)
    total_weight = strategy.total(jnp.sum(batch['weights'].astype(jnp.float32)))

    def objective(params, micro, micro_rng):
      loss_sum, sums = task.loss(params, micro, micro_rng, train=True)
      return loss_sum / jnp.maximum(total_weight, 1e-12), sums

    grad_fn = jax.value_and_grad(objective, has_aux=True)
    if grad_accum == 1:
      (_, sums), grads = grad_fn(state.params, batch, rng)
    else:
      def accumulate(carry, xs):
        micro, i = xs
        (_, s), g = grad_fn(state.params, micro, jax.random.fold_in(rng, i))
        return jax.tree.map(jnp.add, carry, (g, s)), None
      micro_batches = _split_micro(batch, grad_accum)
      sums_shape = jax.eval_shape(lambda: objective(state.params, jax.tree.map(lambda x: x[0], micro_batches), rng)[1])
      init = (jax.tree.map(jnp.zeros_like, state.params), jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), sums_shape))
      (grads, sums), _ = jax.lax.scan(accumulate, init, (micro_batches, jnp.arange(grad_accum)))
    reg, reg_grads = jax.value_and_grad(task.regularizer)(state.params)
    grads = jax.tree.map(jnp.add, strategy.total(grads), reg_grads)
    sums = strategy.total(sums)
    loss = sums['loss'] / jnp.maximum(sums['weight'], 1e-12)
    grad_norm = optax.tree.norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)

    def update():
      updates, opt_state = tx.update(grads, state.opt_state, state.params)
      return optax.apply_updates(state.params, updates), opt_state

    # A branch, not a select per leaf: the skipped case costs nothing when it does not happen.
    params, opt_state = jax.lax.cond(finite, update, lambda: (state.params, advance_schedules(state.opt_state)))
    new_state = TrainState(step=state.step + 1, params=params, opt_state=opt_state,
                           skipped=state.skipped + (~finite).astype(jnp.int32))
    metrics = {'loss': loss, 'objective': loss + reg, 'grad_norm': grad_norm, 'lr': schedule(state.step),
               'finite': finite}
    return new_state, metrics
  return step


def advance_schedules(opt_state):
  """`opt_state` one step on for its learning-rate schedules only: a skipped update keeps the weights, the
  moments and Adam's step count, while the schedule follows the global step (as PyTorch's scheduler.step()
  goes on when GradScaler skips optimizer.step()), so the logged lr, schedule(step), is the one applied."""
  is_schedule = lambda s: isinstance(s, optax.ScaleByScheduleState)
  return jax.tree.map(lambda s: s._replace(count=optax.safe_int32_increment(s.count)) if is_schedule(s) else s,
                      opt_state, is_leaf=is_schedule)


def make_train_chunk(step_fn: Callable) -> Callable:
  """chunk(state, batches, base_rng): `step_fn` over the leading (step) axis of `batches` with lax.scan."""
  def chunk(state, batches, base_rng):
    return jax.lax.scan(lambda s, b: step_fn(s, b, base_rng), state, batches)
  return chunk


class Programs:
  """Ahead-of-time compiled executables of one jitted function `fn(state_or_params, batch, ...)`, one per
  batch shape. `get` may run in a background thread, so that compilation overlaps other start-up work."""

  def __init__(self, fn):
    self.fn = fn
    self.compiled: dict = {}
    self.seconds = 0.0   # compile seconds (summed over threads)

  @staticmethod
  def key(batch) -> tuple:
    return tuple((tuple(x.shape), str(x.dtype)) for x in jax.tree.leaves(batch))

  def get(self, *args):
    key = self.key(args[1])
    if key not in self.compiled:
      t0 = time.perf_counter()
      self.compiled[key] = self.fn.lower(*args).compile()
      self.seconds += time.perf_counter() - t0
    return self.compiled[key]

  def __call__(self, *args):
    return self.get(*args)(*args)


def make_eval_step(task) -> Callable:
  def eval_step(params, batch):
    _, sums = task.loss(params, batch, None, train=False)
    return sums
  return eval_step


def evaluate(eval_fn, params, dataset, split: str, batch_size: int, strategy, max_batches: int = 0) -> dict:
  """Metric sums over `split` (float64, on the host)."""
  total: dict[str, float] = {}
  for batch in dataset.eval_batches(split, batch_size, max_batches):
    sums = jax.device_get(eval_fn(params, strategy.put_batch(batch)))
    for k, v in sums.items():
      total[k] = total.get(k, 0.0) + float(v)
  return total


# Packages that tensorboardX imports whenever they are installed, for features we do not use: torch, to
# accept torch tensors (2.2 s of start-up here), and boto3 and google.cloud.storage, to write to S3 and GCS
# (0.2 s). We write Python floats to a local folder.
TENSORBOARDX_EXTRAS = ('torch', 'boto3', 'google.cloud.storage')


def _summary_writer_class():
  """tensorboardX's SummaryWriter, imported without the TENSORBOARDX_EXTRAS not already imported."""
  blocked = [name for name in TENSORBOARDX_EXTRAS if name not in sys.modules]
  for name in blocked:
    sys.modules[name] = None  # makes `import name` raise ImportError, which tensorboardX handles
  try:
    from tensorboardX import SummaryWriter
  finally:
    for name in blocked:
      if sys.modules.get(name, 0) is None:
        del sys.modules[name]
  return SummaryWriter


class MetricWriter:
  """metrics.jsonl (one JSON object per evaluation) and TensorBoard events, written by process 0."""

  def __init__(self, workdir: pathlib.Path, enabled: bool, resume_step: int):
    self.enabled = enabled
    self.path = workdir / 'metrics.jsonl'
    self.tb = None
    if not enabled:
      return
    if self.path.exists():  # keep records up to the checkpoint we resume from; drop a line cut by a crash
      from lm_anatomy.sweep import records
      keep = [r for r in records(workdir) if r.get('step', 0) <= resume_step]
      self.path.write_text(''.join(json.dumps(r) + '\n' for r in keep))
    self.tb = _summary_writer_class()(str(workdir / 'tensorboard'), flush_secs=30)

  def write(self, record: dict) -> None:
    if not self.enabled:
      return
    with open(self.path, 'a') as f:
      f.write(json.dumps(record) + '\n')
    for k, v in record.items():
      if k != 'step' and isinstance(v, (int, float)) and math.isfinite(v):
        self.tb.add_scalar(k, v, record['step'])

  def close(self) -> None:
    if self.tb is not None:
      self.tb.close()


class _StopFlag:
  """Set by SIGTERM / SIGINT: the loop finishes its step, saves and exits cleanly."""

  def __init__(self):
    self.signal = None
    self._old = {}

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for sig in (signal.SIGTERM, signal.SIGINT):
        self._old[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame):
    if self.signal is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt  # a second Ctrl-C aborts at once
    self.signal = signum

  def __exit__(self, *exc):
    for sig, old in self._old.items():
      signal.signal(sig, old)


def example_spec(batch: dict) -> dict:
  return {k: [list(v.shape), str(v.dtype)] for k, v in batch.items()}


def batch_from_spec(spec: dict) -> dict:
  return {k: np.zeros(shape, dtype) for k, (shape, dtype) in spec.items()}


def row_length(inputs_shape, config) -> int:
  """Positions per row of batches whose inputs have `inputs_shape` ([batch, length]; e.g. 16 for names
  whatever block_size says), else the config's sequence length."""
  return inputs_shape[1] if len(inputs_shape) > 1 else config_lib.seq_len(config)


def _check_resume(workdir: pathlib.Path, config, tokenizer) -> None:
  """Raises CheckpointError if `workdir` holds a run with another model or another tokenizer (whose ids
  would mean other symbols), before anything in it is overwritten."""
  path = workdir / 'config.json'
  if path.exists():
    old = json.loads(path.read_text())
    new = config_lib.to_dict(config)
    changed = [f'model.{k}: {old.get("model", {}).get(k)!r} → {new["model"].get(k)!r}'
               for k in sorted(set(old.get('model', {})) | set(new['model']))
               if old.get('model', {}).get(k) != new['model'].get(k)]
    if changed:
      raise CheckpointError(f'{workdir} holds a run with a different model ({"; ".join(changed)}); '
                            'use a new --workdir or the original model config')
  path = workdir / 'tokenizer.json'
  if path.exists() and json.loads(path.read_text()) != json.loads(json.dumps(tokenizer.to_json())):
    raise CheckpointError(f'{workdir} holds a run with a different tokenizer (see its tokenizer.json; the '
                          'data section changed); use a new --workdir or the original data config')


def defer_best_checkpoints() -> bool:
  """Whether a new best state waits, as an in-memory copy, for the next regular checkpoint to be written.

  On CPU a checkpoint's serialisation takes the cores that train (about 0.15 s of CPU time for the baby
  GPT's 85 arrays), and a run evaluates more often than it checkpoints, so most bests are superseded
  before the next checkpoint: the baby writes 2 instead of 8. The files after the run, and after any
  resume (which drops bests newer than its start), are the same; the cost is one more copy of the state
  in host memory while a best waits. A run that ends in an error keeps the best as of its last
  checkpoint. On accelerators the host serialises while the device trains: bests are written at once.
  """
  return jax.default_backend() == 'cpu'


def train(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, stop_after: int | None = None,
          progress: bool = True) -> dict:
  """Trains (or resumes) the run in `workdir`. Returns the last evaluation's metrics, with `best_step` and
  `best_val_loss`: the evaluation whose checkpoint is kept in `workdir/best` (none: both None)."""
  config_lib.validate(config)
  workdir = pathlib.Path(workdir)
  if stop_after is not None and stop_after < 1:
    raise ConfigError(f'stop_after must be >= 1, got {stop_after}')
  existing = next(p for p in (workdir, *workdir.absolute().parents) if p.exists())
  if not existing.is_dir():
    raise ConfigError(f'workdir {str(workdir)!r} cannot be a folder: {str(existing)!r} is a file')
  strategy = parallel.build(config.parallel)
  strategy.check_batch(config.batch_size, grad_accum=config.grad_accum_steps)
  if config.eval_batch_size:
    strategy.check_batch(config.eval_batch_size, 'eval_batch_size')
  lead = strategy.process_index == 0
  dataset = data_lib.build(config, strategy.process_index, strategy.process_count)
  model = models.build(config, dataset.info)
  task = tasks.build(config, model, dataset)
  tx, schedule = optim.build(config.optimizer, config.steps)

  k = config.steps_per_dispatch
  end = config.steps
  if stop_after is not None:
    end = min(end, -(-stop_after // k) * k)
    if end > stop_after:
      log.info('stop_after=%d rounded up to %d, a multiple of steps_per_dispatch', stop_after, end)
    elif end < stop_after:
      log.info('stop_after=%d is past the run\'s last step; it ends at step %d', stop_after, end)

  example = {k: v[:1] for k, v in dataset.example_batch(config.batch_size).items()}  # global size: it cuts this process's rows
  _check_resume(workdir, config, dataset.tokenizer)

  base_rng = jax.random.key(config.seed)
  init_rng, dropout_rng = jax.random.fold_in(base_rng, 0), jax.random.fold_in(base_rng, 1)
  init_fn = lambda r: create_state(task, tx, r, example)
  abstract = jax.eval_shape(init_fn, init_rng)
  state_sharding = strategy.state_sharding(abstract)
  checkpointer = ckpt_lib.Checkpointer(workdir, config.keep_checkpoints)
  # Everything after this point closes the checkpointer (and its Orbax threads) on the way out, error or not.
  bar = writer = interrupted = pending_best = None  # pending_best: (step, state, meta, val loss) not yet written
  defer_best = defer_best_checkpoints()
  try:
    train_chunk = Programs(strategy.compile_train(
        make_train_chunk(make_train_step(task, tx, schedule, strategy, config.grad_accum_steps)), state_sharding))
    eval_fn = Programs(strategy.compile_eval(make_eval_step(task), state_sharding.params))
    eval_bs = config.eval_batch_size or config.batch_size
    primary = dataset.eval_splits[0] if dataset.eval_splits else None

    def chunk_batches(s: int) -> tuple[int, dict]:
      n = min(k - s % k, end - s)
      per_step = [dataset.train_batch(t, config.batch_size) for t in range(s, s + n)]
      return n, {key: np.stack([b[key] for b in per_step]) for key in per_step[0]}

    t0 = time.perf_counter()
    restored = checkpointer.restore(strategy.checkpoint_target(abstract), quarantine=True)
    start = 0 if restored is None else int(jax.device_get(restored[0].step))  # as saved: one copy
    best_val_loss = checkpointer.drop_best_after(start)
    if lead:  # only now that the run's state fits this config (restored, or none yet)
      workdir.mkdir(parents=True, exist_ok=True)
      (workdir / 'config.json').write_text(json.dumps(config_lib.to_dict(config), indent=2))
      tokenizers.save(dataset.tokenizer, workdir / 'tokenizer.json')
      info = dict(dataset.info, chars_per_token=getattr(dataset, 'chars_per_token', 1.0),
                  example=example_spec(example))
      (workdir / 'data_info.json').write_text(json.dumps(info, indent=2))
    pending = chunk_batches(start) if start < end else None
    # XLA compiles on one core: compile the first train chunk and the eval step in the background, from
    # shapes alone, while this thread creates (or places) the state.
    shaped = strategy.placed_abstract(abstract, state_sharding)
    with futures.ThreadPoolExecutor(2) as pool:
      background = []
      if pending is not None:
        background.append(pool.submit(train_chunk.get, shaped, strategy.put_batch(pending[1], 1), dropout_rng))
      if primary is not None:
        first_eval = next(iter(dataset.eval_batches(primary, eval_bs, 1)), None)
        if first_eval is not None:
          background.append(pool.submit(eval_fn.get, shaped.params, strategy.put_batch(first_eval)))
      if restored is None:
        state, _ = strategy.init_state(init_fn, init_rng, abstract)
        if config.init_from:  # fine-tuning: pretrained weights replace the fresh ones they share a name with
          from lm_anatomy import hf
          state = strategy.checkpoint_view(state)  # one copy (pmap replicates over a device axis)
          params = hf.init_params(config.init_from, model, jax.device_get(state.params))
          state = strategy.put_state(state.replace(params=params, opt_state=tx.init(params)), state_sharding)
        meta = {'best_val_loss': None, 'train_seconds': 0.0}
      else:
        state, meta, _ = restored
        state = strategy.place_restored(state)
        meta['best_val_loss'] = best_val_loss  # None if no best survives: the next evaluation saves one
      for f in background:
        f.result()
    startup_time = time.perf_counter() - t0
    if lead and start:
      log.info('resumed from step %d in %s', start, workdir)

    flops_per_token = peak_flops = float('nan')
    if config.report_mfu and hasattr(model, 'flops_per_token'):
      from lm_anatomy import flops
      flops_per_token = model.flops_per_token(row_length(np.shape(example.get('inputs', ())), config), abstract.params)
      peak_flops = flops.peak_flops(strategy.num_devices, strategy.process_count)
    writer = MetricWriter(workdir, lead, start)

    def run_eval(step: int, final: bool) -> dict:
      record = {'step': step}
      for split in dataset.eval_splits + (['train'] if final and config.eval_train else []):
        sums = evaluate(eval_fn, state.params, dataset, split, eval_bs, strategy,
                        0 if final else config.eval_batches)
        record.update(task.finalize(sums, f'{split}_', split))
      return record

    last = {}
    # Training losses since the last evaluation (kept in checkpoints, so that a resumed run reports the
    # same train_loss); tokens and seconds since the last evaluation (tokens/s).
    train_losses: list[float] = list(meta.pop('train_losses_since_eval', []))
    window_tokens, window_time = 0, 0.0
    if progress and lead:
      from tqdm.auto import tqdm
      bar = tqdm(total=end, initial=start, unit='step', dynamic_ncols=True, desc=workdir.name)
    step = start
    with _StopFlag() as stop_flag:
      while step < end:
        n, batches = pending
        device_batches = strategy.put_batch(batches, 1)
        program = train_chunk.get(state, device_batches, dropout_rng)  # compiled here if its shapes are new
        t0 = time.perf_counter()
        state, metrics = program(state, device_batches, dropout_rng)
        nxt = step + n
        pending = chunk_batches(nxt) if nxt < end else None  # overlaps with the device's work
        metrics = strategy.to_host(metrics)
        dt = time.perf_counter() - t0
        tokens = config.batch_size * n * dataset.tokens_per_example(batches)
        window_tokens, window_time = window_tokens + tokens, window_time + dt
        meta['train_seconds'] = meta.get('train_seconds', 0.0) + dt
        if not metrics['finite'].all():
          bad = step + int(np.argmin(metrics['finite']))
          if config.on_nonfinite == 'stop':
            raise NonFiniteError(f'non-finite loss or gradients at step {bad} (loss {metrics["loss"][bad - step]}); '
                                 'the update was not applied and no checkpoint holds it. '
                                 "Set on_nonfinite='skip' to skip such updates.")
          for i in np.flatnonzero(~np.asarray(metrics['finite'], bool)):
            log.warning('non-finite loss or gradients at step %d: update skipped', step + int(i))
        train_losses.extend(float(x) for x, f in zip(metrics['loss'], metrics['finite']) if f)
        step = nxt
        if bar is not None:
          bar.update(n)
          bar.set_postfix(loss=f'{metrics["loss"][-1]:.4f}', tok_s=f'{tokens / dt:,.0f}', refresh=False)
        final = step == config.steps
        if (step % config.eval_every == 0 or final) and primary is not None:
          record = run_eval(step, final)
          # train_loss: the mean training loss since the last evaluation, unless the train split was
          # just evaluated in full (eval_train), which is the better figure.
          record.setdefault('train_loss', float(np.mean(train_losses)) if train_losses else float('nan'))
          record.update(tokens_per_sec=window_tokens / max(window_time, 1e-9),
                        lr=float(metrics['lr'][-1]), skipped_updates=int(jax.device_get(strategy.checkpoint_view(state.skipped))),
                        elapsed_sec=meta['train_seconds'],
                        compile_sec=train_chunk.seconds + eval_fn.seconds, startup_sec=startup_time)
          if math.isfinite(flops_per_token * peak_flops):
            record.update(mfu=flops_per_token * record['tokens_per_sec'] / peak_flops, peak_flops=peak_flops)
          train_losses = []
          window_tokens, window_time = 0, 0.0
          writer.write(record)
          last = record
          val = record.get(f'{primary}_loss')
          if val is not None and math.isfinite(val) and (meta.get('best_val_loss') is None or val < meta['best_val_loss']):
            meta['best_val_loss'] = val
            best_state = strategy.checkpoint_view(state)
            if defer_best:  # the next chunk donates the state's buffers: keep a copy
              best_state = jax.tree.map(lambda x: jax.device_put(x, x.sharding, may_alias=False), best_state)
            pending_best = (step, best_state, dict(meta), val)
          if bar is not None:
            bar.write(f'step {step}: ' + ', '.join(f'{k} {v:.4f}' for k, v in record.items()
                                                   if k.endswith(('_loss', '_accuracy')) and isinstance(v, float)))
        signum = stop_flag.signal  # read once: a signal that comes later stops the run after the next chunk
        checkpoint_now = step % config.checkpoint_every == 0 or step == end or signum is not None
        if pending_best is not None and (checkpoint_now or not defer_best):
          checkpointer.save_best(*pending_best)
          pending_best = None
        if checkpoint_now:
          checkpointer.save(step, strategy.checkpoint_view(state), dict(meta, train_losses_since_eval=train_losses))
        if signum is not None and step < end:  # at `end` the run is complete: it finishes as usual
          interrupted = Interrupted(f'stopped by signal {signum} at step {step}, with a checkpoint; run the '
                                    'same command to resume', signum)
          break
    if last and interrupted is None:
      checkpointer.wait()
      best = checkpointer.steps(best=True)
      last = dict(last, best_step=best[-1] if best else None,
                  best_val_loss=meta.get('best_val_loss') if best else None)
  finally:
    if bar is not None:
      bar.close()
    checkpointer.close()
    if writer is not None:
      writer.close()
  if interrupted is not None:
    raise interrupted
  return last
