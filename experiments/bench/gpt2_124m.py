"""GPT-2 124M training-step throughput and MFU on one accelerator (bfloat16 compute).

  python experiments/bench/gpt2_124m.py [--batch_size=16] [--steps=30] [--dtype=bfloat16] [--remat]

12 layers, 12 heads, n_embd 768, block 1024, vocab 50304 (padded as nanoGPT does), AdamW, random
tokens (throughput does not depend on the data). Prints tokens/s, ms/step and MFU against the device's
peak bf16 FLOP/s (lm_anatomy/flops.py); on CPU it runs too, slowly, against a measured matmul.
"""
import argparse
import time

import jax
import numpy as np

from lm_anatomy import config as config_lib, engine, flops, optim, parallel, tasks
from lm_anatomy.models.gpt import GPT


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument('--batch_size', type=int, default=16)
  ap.add_argument('--steps', type=int, default=30, help='timed steps: a multiple of --steps_per_dispatch')
  ap.add_argument('--steps_per_dispatch', type=int, default=5)
  ap.add_argument('--dtype', default='bfloat16')
  ap.add_argument('--remat', action='store_true')
  ap.add_argument('--scan_layers', action='store_true')
  ap.add_argument('--attention_impl', default='auto')
  args = ap.parse_args()
  if args.steps_per_dispatch < 1 or args.steps < 1 or args.steps % args.steps_per_dispatch:
    ap.error(f'--steps ({args.steps}) must be a positive multiple of --steps_per_dispatch ({args.steps_per_dispatch})')
  T, B, k = 1024, args.batch_size, args.steps_per_dispatch
  config = config_lib.base()
  model = GPT(vocab_size=50304, block_size=T, n_layer=12, n_head=12, n_embd=768, bias=False, dtype=args.dtype,
              remat=args.remat, scan_layers=args.scan_layers, attention_impl=args.attention_impl)
  task = tasks.CausalLM(model, config, None)
  tx, schedule = optim.build(config.optimizer, 1000)
  strategy = parallel.build(config.parallel)
  rng = np.random.default_rng(0)
  batches = {'inputs': rng.integers(0, 50257, (k, B, T), dtype=np.int32),
             'targets': rng.integers(0, 50257, (k, B, T), dtype=np.int32),
             'weights': np.ones((k, B, T), np.float32)}
  init_fn = lambda r: engine.create_state(task, tx, r, {key: v[0] for key, v in batches.items()})
  abstract = jax.eval_shape(init_fn, jax.random.key(0))
  state, sharding = strategy.init_state(init_fn, jax.random.key(0), abstract)
  chunk = strategy.compile_train(engine.make_train_chunk(engine.make_train_step(task, tx, schedule, strategy)),
                                 sharding)
  device_batches = strategy.put_batch(batches, 1)
  t0 = time.perf_counter()
  compiled = chunk.lower(state, device_batches, jax.random.key(1)).compile()
  compile_s = time.perf_counter() - t0
  state, m = compiled(state, device_batches, jax.random.key(1))
  jax.block_until_ready(m)
  n_chunks = args.steps // k
  t0 = time.perf_counter()
  for _ in range(n_chunks):
    state, m = compiled(state, device_batches, jax.random.key(1))
  jax.block_until_ready(m)
  dt = (time.perf_counter() - t0) / (n_chunks * k)
  tok_s = B * T / dt
  fpt = model.flops_per_token(T, state.params)
  peak, source = flops.device_peak_flops()
  print(f'device: {jax.devices()[0].device_kind}; GPT-2 124M ({model.num_params(state.params) / 1e6:.1f}M params '
        f'without position embeddings), batch {B} × {T}, dtype {args.dtype}, remat {args.remat}')
  print(f'compile {compile_s:.1f} s; {dt * 1000:.1f} ms/step; {tok_s:,.0f} tokens/s; loss {float(m["loss"][-1]):.3f}')
  print(f'MFU {100 * fpt * tok_s / peak:.1f}% of {peak / 1e12:.3g} TFLOP/s ({source})')


if __name__ == '__main__':
  main()
