"""The two losses of lm_anatomy/losses.py that are not classification losses, each put to its use.

Ranking (losses.ranking_margin): on SST-2 bags of words, a linear scorer s(x) = xw + b learns from pairs
(x⁺ a positive sentence, x⁻ a negative one) with ℓ = max(0, 1 − (s(x⁺) − s(x⁻))). Only differences of
scores count, so b gets no gradient: the model ranks, it has no threshold. Reported: the share of
(positive, negative) dev pairs it ranks right (the AUC), and the same figure for the logistic
regression of experiments/configs/sst2_bow.py if its run is given (--logistic_run).

Triplet (losses.triplet): on the digits, an embedding e(x) ∈ ℝ^8 (an MLP whose 8 outputs are the
embedding) learns from triplets (anchor, another example of its digit, an example of another digit) with
ℓ = max(0, ‖e(a) − e(p)‖ − ‖e(a) − e(n)‖ + 1). Reported: 1-nearest-neighbour test accuracy in the
embedding and on the raw pixels.

The engine's tasks score one example at a time, so this script trains with a plain optax loop over the
library's models and losses.

  python experiments/tutorial/ranking_triplet.py [--logistic_run=runs/tutorial/sentiment/logistic]
"""
from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lm_anatomy import data, losses, tutorial
from lm_anatomy.config import base
from lm_anatomy.models import linear, mlp


def fit(model, loss_fn, sample, steps: int, lr: float, seed: int = 0):
  """Adam on loss_fn(model, params, batch) + 1e-4·R(θ) over batches sample(rng) → params."""
  params = model.init(jax.random.key(seed), jnp.zeros((1, model.input_dim), jnp.float32))['params']
  tx = optax.adam(lr)
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, batch):
    objective = lambda p: loss_fn(p, batch) + 1e-4 * losses.l2_penalty(p)
    grads = jax.grad(objective)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  rng = np.random.default_rng(seed)
  for _ in range(steps):
    params, opt_state = step(params, opt_state, sample(rng))
  return params


def pairwise_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
  """Share of (positive, negative) pairs with s⁺ > s⁻ (ties count ½): the AUC."""
  pos, neg = scores[labels == 1], scores[labels == 0]
  return float(np.mean((pos[:, None] > neg[None]) + 0.5 * (pos[:, None] == neg[None])))


def ranking(logistic_run: str | None) -> dict:
  config = base()
  config.data.corpus, config.data.tokenizer = 'sst2_bow', 'words'
  ds = data.build(config)
  (x, y), (xv, yv) = ds.features('train'), ds.features('val')
  pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
  model = linear.Linear(input_dim=ds.info['input_dim'], num_classes=2, init_std=0.0)

  def loss_fn(params, batch):
    s = lambda v: model.apply({'params': params}, v)[:, 0]
    return jnp.mean(losses.ranking_margin(s(batch[0]), s(batch[1])))

  sample = lambda rng: (x.rows(rng.choice(pos, 128)), x.rows(rng.choice(neg, 128)))
  params = fit(model, loss_fn, sample, steps=800, lr=0.01)
  dev = xv.rows(np.arange(len(yv)))
  out = {'ranking_auc': pairwise_accuracy(np.asarray(model.apply({'params': params}, dev))[:, 0], yv),
         'bias_after_training': float(params['linear']['bias'][0])}
  print(f"ranking loss, linear scorer: dev pairs ranked right {100 * out['ranking_auc']:.2f}%; "
        f"bias still {out['bias_after_training']:.1f} (it gets no gradient)")
  if logistic_run:
    clf = tutorial.Classifier.load(logistic_run)
    out['logistic_auc'] = pairwise_accuracy(clf.scores(dev)[:, 0], yv)
    print(f"logistic regression ({logistic_run}): dev pairs ranked right {100 * out['logistic_auc']:.2f}%")
  return out


def nearest_neighbour_accuracy(train_e, train_y, test_e, test_y) -> float:
  d = ((test_e[:, None, :] - train_e[None, :, :]) ** 2).sum(-1)
  return float(np.mean(train_y[np.argmin(d, axis=1)] == test_y))


def triplet() -> dict:
  config = base()
  config.data.corpus = 'digits'
  ds = data.build(config)
  (x, y), (xt, yt) = ds.features('train'), ds.features('test')
  by_class = [np.flatnonzero(y == c) for c in range(10)]
  model = mlp.MLP(input_dim=64, num_classes=8, binary_output=False, width=64, activation='relu')  # 8 outputs: e(x)

  def loss_fn(params, batch):
    e = lambda v: model.apply({'params': params}, v)
    return jnp.mean(losses.triplet(e(batch[0]), e(batch[1]), e(batch[2])))

  def sample(rng):
    a = rng.integers(0, len(y), 128)
    p = np.array([rng.choice(by_class[y[i]]) for i in a])
    other = (y[a] + rng.integers(1, 10, 128)) % 10
    n = np.array([rng.choice(by_class[c]) for c in other])
    return x[a], x[p], x[n]

  params = fit(model, loss_fn, sample, steps=1000, lr=3e-3)
  embed = lambda v: np.asarray(model.apply({'params': params}, jnp.asarray(v)))
  out = {'triplet_1nn': nearest_neighbour_accuracy(embed(x), y, embed(xt), yt),
         'pixels_1nn': nearest_neighbour_accuracy(x, y, xt, yt)}
  print(f"triplet loss, 8-d MLP embedding: 1-nearest-neighbour test accuracy {100 * out['triplet_1nn']:.2f}% "
        f"(raw 64 pixels: {100 * out['pixels_1nn']:.2f}%)")
  return out


if __name__ == '__main__':
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--logistic_run', default=None, help='workdir of an sst2_bow.py run, to compare its AUC')
  args = parser.parse_args()
  ranking(args.logistic_run)
  triplet()
