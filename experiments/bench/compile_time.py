"""Compile time of a 12-layer GPT train step, layers unrolled vs `nn.scan`-ned (and with remat).

  python experiments/bench/compile_time.py [--n_layer=12] [--n_embd=768] [--block_size=1024]

Prints seconds to lower and compile the engine's jitted train step (fwd + bwd + AdamW) on the
default device for each variant. Shapes only matter a little to compile time; depth does.
"""
import argparse
import time

import jax
import numpy as np

from lm_anatomy import config as config_lib, engine, optim, parallel, tasks
from lm_anatomy.models.gpt import GPT


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument('--n_layer', type=int, default=12)
  ap.add_argument('--n_embd', type=int, default=768)
  ap.add_argument('--n_head', type=int, default=12)
  ap.add_argument('--block_size', type=int, default=1024)
  ap.add_argument('--batch_size', type=int, default=8)
  args = ap.parse_args()
  config = config_lib.base()
  strategy = parallel.build(config.parallel)
  tx, schedule = optim.build(config.optimizer, config.steps)
  batch = {'inputs': np.zeros((args.batch_size, args.block_size), np.int32),
           'targets': np.zeros((args.batch_size, args.block_size), np.int32),
           'weights': np.ones((args.batch_size, args.block_size), np.float32)}
  print(f'device: {jax.devices()[0].device_kind}; GPT {args.n_layer} layers, n_embd {args.n_embd}, '
        f'block {args.block_size}, batch {args.batch_size}')
  for scan, remat in ((False, False), (True, False), (False, True), (True, True)):
    model = GPT(vocab_size=50304, block_size=args.block_size, n_layer=args.n_layer, n_head=args.n_head,
                n_embd=args.n_embd, scan_layers=scan, remat=remat)
    task = tasks.CausalLM(model, config, None)
    abstract = jax.eval_shape(lambda r: engine.create_state(task, tx, r, batch), jax.random.key(0))
    step = jax.jit(engine.make_train_step(task, tx, schedule, strategy))
    t0 = time.perf_counter()
    lowered = step.lower(abstract, batch, jax.random.key(1))
    t1 = time.perf_counter()
    lowered.compile()
    t2 = time.perf_counter()
    print(f'scan_layers={scan!s:5} remat={remat!s:5}  trace+lower {t1 - t0:5.1f} s  compile {t2 - t1:5.1f} s  '
          f'total {t2 - t0:5.1f} s')


if __name__ == '__main__':
  main()
