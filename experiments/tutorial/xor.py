"""XOR: the limits of linear models and two ways past them.

Trains, with the engine, the configs experiments/configs/xor.py:{linear,stack,phi,mlp} and shows that
  - no linear classifier gets more than 3 of the 4 points (exact check over all separating lines), and
    the trained linear model and the stack of linear layers (one linear map) do not;
  - under φ(x1, x2) = [x1 + x2, x1·x2] the points are linearly separable: the linear model gets all 4;
  - an MLP with 3 tanh hidden units gets all 4.
Writes decision_boundaries.png (linear, φ in its own space and pulled back to the plane, MLP) and
mlp_hidden.png (where the hidden layer sends the plane: the classes become linearly separable there).

  python experiments/tutorial/xor.py --workdir=runs/tutorial/xor
"""
from __future__ import annotations

import argparse
import pathlib

import numpy as np

from lm_anatomy import sweep, tutorial
from lm_anatomy.data import vectors


def main(workdir: pathlib.Path) -> dict:
  workdir.mkdir(parents=True, exist_ok=True)
  x, y = vectors.XOR_INPUTS, vectors.XOR_LABELS
  runs = {v: tutorial.Classifier.train(sweep.experiment_config('xor', v), workdir / v)
          for v in ('linear', 'stack', 'phi', 'mlp')}
  results = {v: clf.accuracy('val') for v, clf in runs.items()}
  best_raw = tutorial.best_linear_accuracy_2d(x, y)
  best_phi = tutorial.best_linear_accuracy_2d(vectors.xor_phi(x), y)
  print(f'best accuracy of any linear classifier on XOR:        {best_raw:.2f}')
  print(f'best accuracy of any linear classifier on φ(XOR):     {best_phi:.2f}')
  for v, name in (('linear', 'linear ŷ = xW + b (hinge)'), ('stack', 'stack of 3 linear layers (hinge)'),
                  ('phi', 'linear on φ(x) (hinge)'), ('mlp', 'MLP, 3 tanh units (cross-entropy)')):
    print(f'{name:<38} accuracy {results[v]:.2f}  ({int(round(results[v] * 4))}/4 points)')

  lin, phi, mlp = runs['linear'], runs['phi'], runs['mlp']
  w, b = runs['stack'].run.model.collapse(runs['stack'].run.params)
  print(f'the stack collapses to one linear map: W = {np.asarray(w).ravel().round(3)}, b = {np.asarray(b).round(3)}')
  boundaries = tutorial.plot_decision_boundaries([
      {'title': f'linear: {results["linear"]:.0%}', 'score_fn': lin.scores, 'x': x, 'y': y},
      {'title': f'stack of linear layers: {results["stack"]:.0%}', 'score_fn': runs['stack'].scores, 'x': x, 'y': y},
      {'title': f'linear on φ (φ-space): {results["phi"]:.0%}', 'score_fn': phi.scores, 'x': vectors.xor_phi(x),
       'y': y, 'xlabel': 'x1 + x2', 'ylabel': 'x1·x2', 'lo': -0.5, 'hi': 2.5},
      {'title': 'linear on φ, seen in the plane', 'score_fn': lambda v: phi.scores(vectors.xor_phi(v)), 'x': x, 'y': y},
      {'title': f'MLP: {results["mlp"]:.0%}', 'score_fn': mlp.scores, 'x': x, 'y': y},
  ], workdir / 'decision_boundaries.png')
  hidden = tutorial.plot_hidden_representation(mlp, x, y, workdir / 'mlp_hidden.png')
  print(f'plots: {boundaries}, {hidden}')
  return {'best_linear': best_raw, 'best_linear_phi': best_phi, **results}


if __name__ == '__main__':
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--workdir', default='runs/tutorial/xor', type=pathlib.Path)
  main(parser.parse_args().workdir)
