"""Sampling speed with and without the KV cache: 10 samples × 500 new tokens from the baby GPT.

  python experiments/bench/sampling.py [--workdir=runs/baby]

Uses a trained run's weights if --workdir is given, else a freshly initialised baby model (speed does
not depend on the weights). Prints new tokens/s for each path, compile time excluded (each path is run
once to compile, then timed).
"""
import argparse
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument('--workdir', default='')
  ap.add_argument('--num_samples', type=int, default=10)
  ap.add_argument('--max_new_tokens', type=int, default=500)
  args = ap.parse_args()
  from lm_anatomy import _cpu, generate
  _cpu.tune_malloc()
  if args.workdir:
    import lm_anatomy
    run = lm_anatomy.restore(args.workdir)
    model, params = run.model, run.params
  else:
    from lm_anatomy.models.gpt import GPT
    model = GPT(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, bias=False)
    params = model.init(jax.random.key(0), jnp.zeros((1, 64), jnp.int32))['params']
  prompt = np.zeros((args.num_samples, 1), np.int32)
  print(f'{args.num_samples} samples × {args.max_new_tokens} tokens, block_size {getattr(model, "block_size", None)}, '
        f'device {jax.devices()[0].device_kind}')
  for use_cache in (True, False):
    generate.generate(model, params, prompt, args.max_new_tokens, jax.random.key(0), top_k=200, use_cache=use_cache)
    t0 = time.perf_counter()
    out = generate.generate(model, params, prompt, args.max_new_tokens, jax.random.key(1), top_k=200,
                            use_cache=use_cache)
    dt = time.perf_counter() - t0
    print(f'{"with" if use_cache else "without"} KV cache: {out.size / dt:,.0f} tokens/s ({dt:.2f} s)')


if __name__ == '__main__':
  main()
