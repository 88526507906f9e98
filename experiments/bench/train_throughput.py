"""Training throughput of nanoGPT's CPU "baby" setting (shakespeare_char.py:baby, 2000 steps).

  python experiments/bench/train_throughput.py [--steps=2000] [--workdir=/tmp/lm_anatomy_bench_baby]
      [--compilation_cache=fresh|off|DIR]

Runs the real command line (`python -m lm_anatomy.main`) in a fresh workdir and prints: the wall time
of the whole run (start-up and compilation included), steady-state tokens/s and ms/step (evaluation
records after the first), compile time, final val loss over the whole val split, and CPU MFU: model
FLOP/s (6N + 12·L·H·Q·T per token) over the FLOP/s of a large float32 matmul, which the run measures at
its start (the engine's `mfu` and `peak_flops` in metrics.jsonl).
The workdir is cleared before the run only if it is missing or a previous bench workdir (it holds the
marker file `.bench_workdir`); any other folder is refused, so that a trained run is never erased.
Reference (PyTorch nanoGPT on a 2-core machine like CI's): 35.75 ms/iter, 21.5k tokens/s, about 55%
CPU MFU, 80 s in all.

By default the run starts with an empty compilation cache (`fresh`: a new temporary folder), so every
program is compiled, as on a first run. Pass `--compilation_cache=DIR` twice with the same DIR to time a
rerun that loads its programs from the cache, as a resumed job or a repeated config does.
"""
import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
MARKER = '.bench_workdir'


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument('--steps', type=int, default=2000)
  ap.add_argument('--workdir', default='/tmp/lm_anatomy_bench_baby')
  ap.add_argument('--compilation_cache', default='fresh', help="'fresh' (an empty folder), 'off', or a folder")
  args = ap.parse_args()
  workdir = pathlib.Path(args.workdir).absolute()  # the run's command starts in the repository root
  if workdir.exists() and any(workdir.iterdir()) and not (workdir / MARKER).exists():
    sys.exit(f'error: --workdir={args.workdir} holds files that this bench did not write; give an empty or new folder')
  shutil.rmtree(workdir, ignore_errors=True)
  workdir.mkdir(parents=True)
  (workdir / MARKER).write_text('a workdir of experiments/bench/train_throughput.py, cleared on its next run\n')
  fresh = args.compilation_cache == 'fresh'
  # Absolute, as the workdir: the run's command starts in the repository root.
  cache = (tempfile.mkdtemp(prefix='xla_cache_') if fresh else args.compilation_cache if args.compilation_cache == 'off'
           else str(pathlib.Path(args.compilation_cache).absolute()))
  try:
    run_bench(args, workdir, cache)
  finally:
    if fresh:
      shutil.rmtree(cache, ignore_errors=True)


def run_bench(args, workdir: pathlib.Path, cache: str):
  cache_state = 'off' if cache == 'off' else f'{len(list(pathlib.Path(cache).glob("*-cache")))} programs in {cache}'
  cmd = [sys.executable, '-m', 'lm_anatomy.main', f'--config={ROOT}/experiments/configs/shakespeare_char.py:baby',
         f'--workdir={workdir}', f'--config.steps={args.steps}', '--progress=false',
         f'--compilation_cache={cache}']
  t0 = time.perf_counter()
  subprocess.run(cmd, check=True, cwd=ROOT)
  wall = time.perf_counter() - t0

  import jax
  import lm_anatomy
  records = [json.loads(l) for l in (workdir / 'metrics.jsonl').read_text().splitlines()]
  steady = [r['tokens_per_sec'] for r in records[1:]] or [records[-1]['tokens_per_sec']]
  tok_s = statistics.median(steady)
  run = lm_anatomy.restore(workdir)
  seq_len = run.config.model.block_size
  fpt = run.model.flops_per_token(seq_len, run.params)
  peak = records[-1]['peak_flops']  # measured by the run at its start
  tokens_per_step = run.config.batch_size * seq_len
  print(f'device: {jax.devices()[0].device_kind}, {os.cpu_count()} CPUs')
  print(f'whole run ({args.steps} steps, start-up and compile included): {wall:.1f} s '
        f'(compilation cache at start: {cache_state})')
  print(f'start-up (state creation and compilation, overlapped): {records[-1].get("startup_sec", float("nan")):.1f} s; '
        f'compile: {records[-1].get("compile_sec", float("nan")):.1f} s summed over threads')
  print(f'steady state: {tok_s:,.0f} tokens/s, {1000 * tokens_per_step / tok_s:.2f} ms/step '
        f'(median over {len(steady)} evaluation intervals)')
  print(f'final val loss (whole val split): {records[-1]["val_loss"]:.4f}')
  print(f'model: {run.model.num_params(run.params):,} params (no position embeddings), {fpt / 1e6:.2f} MFLOP/token')
  print(f'CPU peak (float32 1536³ matmul, measured at the run\'s start): {peak / 1e9:.1f} GFLOP/s; '
        f'MFU: {100 * fpt * tok_s / peak:.1f}%')


if __name__ == '__main__':
  main()
