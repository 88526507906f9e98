"""Vanishing gradients, visible: ‖∂L_t / ∂x_{t−k}‖ against k for RNN, LSTM, GRU and GPT.

Train the models first (tiny Shakespeare):
  python -m lm_anatomy.sweep --sweep=experiments/sweeps/shakespeare_family.py --workdir=runs/sweeps/shakespeare_family
then
  python experiments/studies/vanishing_gradients.py --runs=runs/sweeps/shakespeare_family --out=runs/studies/vanishing_gradients

For windows of T + 1 val characters, L_t is the loss of the last one given the T before it, and x_{t−k}
the input embedding k steps back (lm_anatomy.analysis.embedding_grad_norms). The plot shows the mean
gradient norm against k for the trained models and for the same architectures at initialisation,
on a log scale: a straight falling line is an exponential decay.
Writes vanishing_gradients.png and vanishing_gradients.json into --out.
"""
from __future__ import annotations

import json
import pathlib

import numpy as np
from absl import flags

from lm_anatomy import cli

_RUNS = flags.DEFINE_string('runs', 'runs/sweeps/shakespeare_family', 'Folder of trained runs (one per subfolder).')
_OUT = flags.DEFINE_string('out', 'runs/studies/vanishing_gradients', 'Where the plot and numbers go.')
_MODELS = flags.DEFINE_list('models', ['rnn', 'gru', 'lstm', 'gpt'], 'Run folders (names under --runs) to measure.')
_LENGTH = flags.DEFINE_integer('length', 128, 'T: tokens before the scored one (at most the GPT block size).')
_WINDOWS = flags.DEFINE_integer('windows', 128, 'Windows averaged over.')

CHECK_K = (1, 8, 32, 64)


def measure(run_dir: pathlib.Path, length: int, n_windows: int) -> dict:
  import jax
  import jax.numpy as jnp
  import lm_anatomy
  from lm_anatomy import analysis, data
  from lm_anatomy.errors import ConfigError
  run = lm_anatomy.restore(run_dir)
  limit = run.model.context_limit()
  if length < 1 or (limit and length > limit):
    raise ConfigError(f'--length={length} must lie in [1, {limit or "∞"}], the context of {run_dir.name}')
  val = data.build(run.config).splits['val']
  starts = np.linspace(0, len(val) - length - 2, n_windows).astype(np.int64)
  windows = val[starts[:, None] + np.arange(length + 1)[None]]
  init = run.model.init(jax.random.key(0), jnp.asarray(windows[:1, :length]))['params']
  out = {'model': run.config.model.name, 'step': run.step}
  for name, params in (('trained', run.params), ('init', init)):
    g = analysis.embedding_grad_norms(run.model, run.params if name == 'trained' else init, windows)
    out[name] = g.tolist()
    out[f'{name}_ratio'] = {k: float(g[k] / g[0]) for k in CHECK_K if k < length}
  return out


def plot(results: list[dict], path: pathlib.Path) -> None:
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
  for ax, which, title in ((axes[0], 'trained', 'trained'), (axes[1], 'init', 'at initialisation')):
    for i, r in enumerate(results):
      g = np.array(r[which])
      g[g <= 0] = np.nan  # underflowed to 0 in float32: the line ends there
      ax.plot(np.arange(len(g)), g, color=f'C{i}', label=r['model'])
    ax.set_yscale('log')
    ax.set_xlabel('k (steps back)')
    ax.set_title(f'‖∂L_t / ∂x_(t−k)‖, {title}')
    ax.grid(alpha=0.3)
  axes[0].set_ylabel('mean gradient norm')
  axes[0].legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main(argv):
  del argv
  from lm_anatomy.errors import ConfigError
  runs = pathlib.Path(_RUNS.value)
  missing = [m for m in _MODELS.value if not (runs / m / 'config.json').exists()]
  if missing:
    raise ConfigError(f'no runs {missing} in {runs}; train them first (see this script\'s docstring)')
  out = pathlib.Path(_OUT.value)
  out.mkdir(parents=True, exist_ok=True)
  results = []
  for m in _MODELS.value:
    r = measure(runs / m, _LENGTH.value, _WINDOWS.value)
    print(f'{m}: g_k/g_0 trained ' + ', '.join(f'k={k} {v:.3g}' for k, v in r['trained_ratio'].items())
          + ' | init ' + ', '.join(f'k={k} {v:.3g}' for k, v in r['init_ratio'].items()))
    results.append(r)
  (out / 'vanishing_gradients.json').write_text(json.dumps(results, indent=2))
  plot(results, out / 'vanishing_gradients.png')
  print(f'wrote {out}/vanishing_gradients.png, .json')


if __name__ == '__main__':
  cli.run(main)
