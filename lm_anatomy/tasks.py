"""Tasks: the only place that knows what a batch means and how it is scored.

A task has
  init(rng, batch) -> params
  loss(params, batch, rng, train) -> (Σ w ℓ, sums)   sums: dict of scalars that add up over batches,
                                                       always with 'loss' (= Σ w ℓ) and 'weight' (= Σ w)
  regularizer(params) -> scalar                       added once per step (λ·R(θ))
  finalize(sums, prefix) -> dict of metrics           e.g. val_loss, val_perplexity, val_bpc
Every batch carries 'weights', whose sum normalises the loss, so that gradient accumulation and data
parallelism give exactly the large-batch mean.
"""
from __future__ import annotations

import math

import jax.numpy as jnp

from lm_anatomy import losses
from lm_anatomy.registry import TASKS


class Task:
  """Shared parts: L2 regulariser and the metrics every task reports."""

  def __init__(self, model, config, dataset):
    self.model = model
    self.config = config
    self.l2 = config.task.get('l2', 0.0)

  def regularizer(self, params):
    return self.l2 * losses.l2_penalty(params) if self.l2 else jnp.zeros((), jnp.float32)

  def finalize(self, sums: dict, prefix: str = '') -> dict:
    weight = max(float(sums['weight']), 1e-12)
    out = {f'{prefix}loss': float(sums['loss']) / weight}
    if 'correct' in sums:
      out[f'{prefix}accuracy'] = float(sums['correct']) / weight
    return out


@TASKS.register('causal_lm')
class CausalLM(Task):
  """Next-token prediction. batch: inputs [B, T], targets [B, T], weights [B, T].

  Loss: mean over scored tokens of −log p(x_{t+1} | x_≤t), in nats.
  Metrics: loss, perplexity = exp(loss), bpc = loss / ln 2 · tokens per character, accuracy.
  """

  def __init__(self, model, config, dataset):
    super().__init__(model, config, dataset)
    self.label_smoothing = config.task.label_smoothing
    self.chars_per_token = getattr(dataset, 'chars_per_token', 1.0)

  def init(self, rng, batch):
    return self.model.init({'params': rng}, batch['inputs'], train=False)['params']

  def logits(self, params, batch, rng=None, train: bool = False):
    rngs = {'dropout': rng} if train and rng is not None else {}
    return self.model.apply({'params': params}, batch['inputs'], train=train, rngs=rngs)

  def loss(self, params, batch, rng, train: bool):
    logits = self.logits(params, batch, rng, train)
    per_token = losses.cross_entropy(logits, batch['targets'], self.label_smoothing if train else 0.0)
    loss_sum, weight = losses.weighted_sums(per_token, batch['weights'])
    correct = jnp.sum((jnp.argmax(logits, -1) == batch['targets']) * batch['weights'])
    return loss_sum, {'loss': loss_sum, 'weight': weight, 'correct': correct}

  def finalize(self, sums: dict, prefix: str = '') -> dict:
    out = super().finalize(sums, prefix)
    loss = out[f'{prefix}loss']
    out[f'{prefix}perplexity'] = math.exp(min(loss, 700.0))
    out[f'{prefix}bpc'] = loss / math.log(2) / self.chars_per_token
    return out


def build(config, model, dataset):
  return TASKS.get(config.task.name, 'task.name')(model, config, dataset)


# Per-example classification losses by config name: fn(outputs [B, C], labels [B], label_smoothing) → [B].
CLASSIFICATION_LOSSES = {
    'cross_entropy': lambda out, y, eps: losses.cross_entropy(out, y, eps),
}
# Optional model inputs a batch may carry besides 'inputs'; passed to the model as keyword arguments.
MODEL_KWARGS = ('attention_mask', 'token_type_ids')


@TASKS.register('classify')
class Classify(Task):
  """Classification. batch: inputs [B, ...], labels [B] int32, weights [B] (+ optional attention_mask,
  token_type_ids [B, T] passed to the model). The model maps inputs to scores [B, C].

  Loss: mean over examples of `config.task.loss` (default cross-entropy), plus λ·R(θ).
  Metrics: loss, accuracy (argmax of the scores; for one output, the sign).
  """

  def __init__(self, model, config, dataset):
    super().__init__(model, config, dataset)
    self.label_smoothing = config.task.label_smoothing
    name = config.task.get('loss', 'cross_entropy')
    self.loss_fn = CLASSIFICATION_LOSSES[name]

  def _kwargs(self, batch):
    return {k: batch[k] for k in MODEL_KWARGS if k in batch}

  def init(self, rng, batch):
    return self.model.init({'params': rng}, batch['inputs'], train=False, **self._kwargs(batch))['params']

  def scores(self, params, batch, rng=None, train: bool = False):
    rngs = {'dropout': rng} if train and rng is not None else {}
    return self.model.apply({'params': params}, batch['inputs'], train=train, rngs=rngs, **self._kwargs(batch))

  def predict(self, scores):
    return (scores[..., 0] > 0).astype(jnp.int32) if scores.shape[-1] == 1 else jnp.argmax(scores, -1)

  def loss(self, params, batch, rng, train: bool):
    scores = self.scores(params, batch, rng, train)
    per_example = self.loss_fn(scores, batch['labels'], self.label_smoothing if train else 0.0)
    loss_sum, weight = losses.weighted_sums(per_example, batch['weights'])
    correct = jnp.sum((self.predict(scores) == batch['labels']) * batch['weights'])
    return loss_sum, {'loss': loss_sum, 'weight': weight, 'correct': correct}
