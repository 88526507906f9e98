"""Reusable pieces of the tutorial experiments (experiments/tutorial/): trained runs as classifiers,
exact linear separability in 2-D, decision-boundary and hidden-layer plots, scikit-learn baselines.

Every model here is trained by the engine from a config; these functions read the runs back.
"""
from __future__ import annotations

import dataclasses
import pathlib
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lm_anatomy import api, data, engine, losses
from lm_anatomy.errors import DataError


@dataclasses.dataclass
class Classifier:
  """A trained run with its dataset: scores ŷ = f(x), predictions and the training objective."""
  run: api.Pretrained
  dataset: object
  workdir: pathlib.Path | None = None

  @classmethod
  def train(cls, config, workdir: str | pathlib.Path) -> 'Classifier':
    """Trains `config` in `workdir` with the engine (or resumes it there) and reads the result back."""
    engine.train(config, workdir, progress=False)
    return cls.load(workdir)

  @classmethod
  def load(cls, workdir: str | pathlib.Path) -> 'Classifier':
    run = api.restore(workdir)
    return cls(run, data.build(run.config), pathlib.Path(workdir))

  def scores(self, x, method=None) -> np.ndarray:
    """ŷ [N, d_out] for inputs x [N, d]."""
    return np.asarray(self.run.model.apply({'params': self.run.params}, jnp.asarray(x, jnp.float32), method=method))

  def predict(self, x) -> np.ndarray:
    return np.asarray(self.run.task.predict(jnp.asarray(self.scores(x))))

  def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(inputs [N, d] dense float32, labels [N]) of a split."""
    x, y = self.dataset.features(name)
    return (x.rows(np.arange(len(y))) if hasattr(x, 'rows') else np.asarray(x, np.float32)), y

  def accuracy(self, split: str) -> float:
    x, y = self.split(split)
    return float(np.mean(self.predict(x) == y))

  def objective(self, split: str = 'train') -> float:
    """Mean loss over the whole split plus λ·R(θ), at the final parameters: what training minimises when it
    has no dropout and no label smoothing (this evaluates without either)."""
    task, params = self.run.task, self.run.params
    total, weight = 0.0, 0.0
    for batch in self.dataset.eval_batches(split, 512):
      _, sums = task.loss(params, jax.tree.map(jnp.asarray, batch), None, train=False)
      total, weight = total + float(sums['loss']), weight + float(sums['weight'])
    return total / weight + float(task.regularizer(params))


def best_linear_accuracy_2d(x: np.ndarray, y: np.ndarray) -> float:
  """The highest accuracy any linear classifier 1[x·w + b > 0] (or its complement) reaches on 2-D points.

  Exact: the order of the projections x·w changes only at directions w orthogonal to some x_i − x_j, so
  one direction per arc between those critical angles, and the critical angles themselves, cover every
  order; for each, every threshold between consecutive projections is tried. x: [N, 2], y: [N] in {0, 1}.
  """
  x = np.asarray(x, np.float64)
  if x.ndim != 2 or x.shape[1] != 2:
    raise DataError(f'best_linear_accuracy_2d needs points of shape [N, 2], got {x.shape}')
  diffs = (x[:, None] - x[None]).reshape(-1, 2)
  diffs = diffs[np.linalg.norm(diffs, axis=1) > 0]
  critical = np.sort(np.mod(np.arctan2(diffs[:, 1], diffs[:, 0]) + np.pi / 2, np.pi))
  arcs = np.concatenate([critical, [critical[0] + np.pi]]) if len(critical) else np.array([0.0, np.pi])
  angles = np.concatenate([critical, (arcs[:-1] + arcs[1:]) / 2])
  best = 0.0
  for a in angles:
    proj = x @ np.array([np.cos(a), np.sin(a)])
    values = np.unique(proj)
    thresholds = np.concatenate([[values[0] - 1], (values[:-1] + values[1:]) / 2, [values[-1] + 1]])
    for t in thresholds:
      acc = np.mean((proj > t) == y)
      best = max(best, acc, 1 - acc)  # w and −w both count
  return float(best)


def decision_grid(score_fn: Callable, lo: float, hi: float, n: int = 200):
  """(g1, g2, ŷ) over an n×n grid of [lo, hi]²: g1, g2 [n, n] coordinates, ŷ [n, n] the first score."""
  g1, g2 = np.meshgrid(np.linspace(lo, hi, n), np.linspace(lo, hi, n))
  s = score_fn(np.stack([g1.ravel(), g2.ravel()], 1).astype(np.float32))
  return g1, g2, np.asarray(s)[:, 0].reshape(n, n)


def plot_decision_boundaries(panels: Sequence[dict], path: str | pathlib.Path, lo: float = -0.5, hi: float = 1.5):
  """One panel per model: the regions ŷ > 0 and ŷ < 0, the boundary ŷ = 0 and the points.

  Each panel: {'title', 'score_fn' (x [N, 2] → ŷ [N, 1]), 'x' [N, 2], 'y' [N], optional 'xlabel', 'ylabel',
  'lo', 'hi'}. Saves a PNG.
  """
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), squeeze=False)
  for ax, p in zip(axes[0], panels):
    a, b = p.get('lo', lo), p.get('hi', hi)
    g1, g2, s = decision_grid(p['score_fn'], a, b)
    ax.contourf(g1, g2, (s > 0).astype(float), levels=[-0.5, 0.5, 1.5], colors=['#f4c7c3', '#c6dbef'], alpha=0.8)
    if s.min() < 0 < s.max():
      ax.contour(g1, g2, s, levels=[0.0], colors='k', linewidths=1.5)
    x, y = np.asarray(p['x']), np.asarray(p['y'])
    for label, marker, color in ((0, 'o', '#c0392b'), (1, 's', '#2166ac')):
      ax.scatter(x[y == label, 0], x[y == label, 1], marker=marker, c=color, s=70, edgecolors='k',
                 label=f'y = {label}', zorder=3)
    ax.set(title=p['title'], xlabel=p.get('xlabel', 'x1'), ylabel=p.get('ylabel', 'x2'), xlim=(a, b), ylim=(a, b))
    ax.set_aspect('equal')
  axes[0][0].legend(loc='upper right', fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return pathlib.Path(path)


def output_boundary(output: dict) -> tuple[np.ndarray, float]:
  """(w, b) with class 1 where h·w + b > 0, for a binary output layer over hidden vectors h: one score
  (w = Wᵒ, b = bᵒ) or two (class 1 where score₁ > score₀: w = Wᵒ₁ − Wᵒ₀, b = bᵒ₁ − bᵒ₀)."""
  kernel, bias = np.asarray(output['kernel']), np.asarray(output['bias'])
  if kernel.shape[1] == 1:
    return kernel[:, 0], float(bias[0])
  if kernel.shape[1] == 2:
    return kernel[:, 1] - kernel[:, 0], float(bias[1] - bias[0])
  raise DataError(f'the output layer has {kernel.shape[1]} scores; a boundary is drawn for two classes only')


def plot_hidden_representation(clf: Classifier, x: np.ndarray, y: np.ndarray, path: str | pathlib.Path,
                               lo: float = -0.5, hi: float = 1.5):
  """Where an MLP's last hidden layer hᴸ (the one the output layer reads) sends the plane and the points
  (2 or 3 units).

  Grid points are coloured by the predicted class; in the hidden space the output layer is linear, so
  its boundary (`output_boundary`) is a line (2 units) or a plane (3 units), drawn too. Saves a PNG.
  """
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  hidden = lambda v: np.asarray(clf.run.model.apply({'params': clf.run.params}, jnp.asarray(v, jnp.float32),
                                                    method='hidden')[-1])
  g1, g2 = np.meshgrid(np.linspace(lo, hi, 60), np.linspace(lo, hi, 60))
  grid = np.stack([g1.ravel(), g2.ravel()], 1).astype(np.float32)
  h_grid, h_pts = hidden(grid), hidden(x)
  width = h_pts.shape[1]
  if width not in (2, 3):
    raise DataError(f'plot_hidden_representation draws 2 or 3 hidden units; this model has {width}')
  pred = clf.predict(grid)
  w, b = output_boundary(clf.run.params['output'])
  fig = plt.figure(figsize=(5.5, 5))
  ax = fig.add_subplot(projection='3d' if width == 3 else None)
  colors = np.where(pred == 1, '#9ecae1', '#f4a582')
  ax.scatter(*h_grid.T, c=colors, s=4, alpha=0.35)
  for label, marker, color in ((0, 'o', '#c0392b'), (1, 's', '#2166ac')):
    ax.scatter(*h_pts[y == label].T, marker=marker, c=color, s=90, edgecolors='k', label=f'y = {label}')
  lo_h, hi_h = h_grid.min(0), h_grid.max(0)
  if width == 2 and abs(w[1]) > 1e-9:
    t = np.linspace(lo_h[0], hi_h[0], 10)
    ax.plot(t, -(w[0] * t + b) / w[1], 'k-', label='output boundary')
  elif width == 3 and abs(w[2]) > 1e-9:
    u, v = np.meshgrid(np.linspace(lo_h[0], hi_h[0], 40), np.linspace(lo_h[1], hi_h[1], 40))
    z = -(w[0] * u + w[1] * v + b) / w[2]
    z[(z < lo_h[2]) | (z > hi_h[2])] = np.nan  # only the part of the plane inside the box
    ax.plot_surface(u, v, z, color='gray', alpha=0.3, linewidth=0)
  ax.set_xlabel('h1')
  ax.set_ylabel('h2')
  if width == 3:
    ax.set_zlabel('h3')
  ax.set_title(f'hidden layer: {width} {clf.run.config.model.activation} units')
  ax.legend(loc='upper left', fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return pathlib.Path(path)


def sklearn_baselines(train: tuple, val: tuple, C: float = 1.0, seed: int = 0) -> dict[str, float]:
  """Accuracy on `val` of scikit-learn's LogisticRegression(C) and LinearSVC(C) fitted on `train`.

  train, val: (inputs [N, d] dense array or BinaryRows, labels [N]).
  """
  from sklearn.linear_model import LogisticRegression
  from sklearn.svm import LinearSVC
  as_matrix = lambda x: x.to_scipy() if hasattr(x, 'to_scipy') else np.asarray(x)
  (xt, yt), (xv, yv) = (as_matrix(train[0]), train[1]), (as_matrix(val[0]), val[1])
  out = {}
  for name, model in (('LogisticRegression', LogisticRegression(C=C, max_iter=5000)),
                      ('LinearSVC', LinearSVC(C=C, max_iter=20000, random_state=seed))):
    out[name] = float(model.fit(xt, yt).score(xv, yv))
  return out


def logistic_objective_sklearn(train: tuple, C: float = 1.0) -> tuple[float, float]:
  """scikit-learn's LogisticRegression(C) objective at its optimum, in the engine's scale: the mean
  cross-entropy + λ·½‖w‖² with λ = 1/(C·N) (sklearn minimises C·N times that). Returns (objective, λ)."""
  from sklearn.linear_model import LogisticRegression
  x, y = train
  x = x.to_scipy() if hasattr(x, 'to_scipy') else np.asarray(x)
  model = LogisticRegression(C=C, max_iter=5000).fit(x, y)
  z = np.asarray(x @ model.coef_[0] + model.intercept_[0]).ravel()
  lam = 1.0 / (C * len(y))
  ce = float(np.mean(losses.sigmoid_cross_entropy(jnp.asarray(z), jnp.asarray(y))))
  return ce + lam * 0.5 * float(np.sum(model.coef_ ** 2)), lam


def top_words(clf: Classifier, k: int = 15) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
  """The k words with the largest and the k with the smallest weight w_j of a one-score linear model."""
  kernel = np.asarray(clf.run.params['linear']['kernel'])
  if kernel.shape[1] != 1:
    raise DataError(f'top_words reads a one-score linear model; this one has {kernel.shape[1]} scores')
  w = kernel[:, 0]
  words = clf.dataset.tokenizer.itos
  order = np.argsort(w)
  return [(words[i], float(w[i])) for i in order[::-1][:k]], [(words[i], float(w[i])) for i in order[:k]]
