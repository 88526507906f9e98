"""Convexity: a linear model reaches the same loss from any start; an MLP does not.

Trains each model, with the engine, from several random initialisations (config.seed = 0, 1, …) and
reports the final training objective (mean loss + λ·R(θ) over the whole training set):
  - softmax regression on digits (digits_mlp.py:linear, weights initialised N(0, 1), full batch, Adam
    with lr 0.05 decaying to 0 over 2000 steps): the
    objective is convex, so every start ends at the same value (the minimiser need not be unique: the
    L2 term skips the biases, and adding one constant to every class's bias leaves softmax unchanged);
  - the MLP on digits (digits_mlp.py, full batch): the objective is not convex; final values differ;
  - an MLP with 2 tanh hidden units on XOR (xor.py:mlp with model.width = 2): some starts reach 0,
    others stop in a local minimum with one point wrong.
Writes convexity.png (final objective per start) and results.json.

  python experiments/tutorial/convexity.py --workdir=runs/tutorial/convexity
"""
from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np

from lm_anatomy import sweep, tutorial

DIGITS_TRAIN = 1257

# (name, config file, variant, overrides, seeds)
EXPERIMENTS = (
    ('softmax regression, digits', 'digits_mlp', 'linear',
     {'model.init_std': 1.0, 'batch_size': DIGITS_TRAIN, 'optimizer.lr': 0.05}, range(5)),
    ('MLP 128 ReLU, digits', 'digits_mlp', '', {'batch_size': DIGITS_TRAIN}, range(5)),
    ('MLP 2 tanh units, XOR', 'xor', 'mlp', {'model.width': 2}, range(8)),
)


def main(workdir: pathlib.Path) -> dict:
  workdir.mkdir(parents=True, exist_ok=True)
  results = {}
  for name, file, variant, overrides, seeds in EXPERIMENTS:
    finals, accs = [], []
    for seed in seeds:
      config = sweep.experiment_config(file, variant)
      config.update_from_flattened_dict(dict(overrides))
      config.seed = seed
      clf = tutorial.Classifier.train(config, workdir / f'{file}_{variant or "mlp"}' / f'seed_{seed}')
      finals.append(clf.objective('train'))
      accs.append(clf.accuracy('val'))
    spread = max(finals) - min(finals)
    results[name] = {'objective': finals, 'val_accuracy': accs, 'spread': spread}
    print(f'{name:<28} final train objective over {len(finals)} starts: min {min(finals):.6f} '
          f'max {max(finals):.6f} spread {spread:.2e}; val accuracy {min(accs):.3f} … {max(accs):.3f}')
  (workdir / 'results.json').write_text(json.dumps(results, indent=2))
  path = plot(results, workdir / 'convexity.png')
  print(f'plot: {path}')
  return results


def plot(results: dict, path: pathlib.Path) -> pathlib.Path:
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 3.6))
  for ax, (name, r) in zip(np.atleast_1d(axes), results.items()):
    values = r['objective']
    ax.plot(range(len(values)), values, 'o', ms=8)
    ax.set(title=f'{name}\nspread (max − min) {r["spread"]:.1e}', xlabel='start (seed)',
           ylabel='final train objective')
    ax.ticklabel_format(axis='y', useOffset=False)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


if __name__ == '__main__':
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--workdir', default='runs/tutorial/convexity', type=pathlib.Path)
  main(parser.parse_args().workdir)
