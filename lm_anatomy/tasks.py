"""Tasks: the only place that knows what a batch means and how it is scored.

A task has
  init(rng, batch) -> params
  loss(params, batch, rng, train) -> (Σ w ℓ, sums)   sums: dict of scalars that add up over batches,
                                                       always with 'loss' (= Σ w ℓ) and 'weight' (= Σ w)
  regularizer(params) -> scalar                       added once per step (λ·R(θ))
  finalize(sums, prefix, split) -> dict of metrics    e.g. val_loss, val_perplexity, val_bpc of split 'val'
Every batch carries 'weights', whose sum normalises the loss, so that gradient accumulation and data
parallelism give exactly the large-batch mean.
"""
from __future__ import annotations

import math

import jax.numpy as jnp

from lm_anatomy import losses
from lm_anatomy.errors import ConfigError
from lm_anatomy.registry import TASKS


class Task:
  """Shared parts: L2 regulariser, label smoothing, and the metrics every task reports. The reported
  `loss` is always the plain loss (no smoothing, no L2), so train and val losses compare."""

  def __init__(self, model, config, dataset):
    self.model = model
    self.config = config
    self.l2 = config.task.get('l2', 0.0)
    self.label_smoothing = config.task.get('label_smoothing', 0.0)

  def _smoothed(self, loss_fn, scores, labels, weights, train: bool):
    """(objective sum, plain loss sum, weight) of `loss_fn(scores, labels, ε)`: label smoothing ε shapes
    the training objective only; the reported loss uses ε = 0."""
    eps = self.label_smoothing if train else 0.0
    objective, weight = losses.weighted_sums(loss_fn(scores, labels, eps), weights)
    plain = losses.weighted_sums(loss_fn(scores, labels, 0.0), weights)[0] if eps else objective
    return objective, plain, weight

  def regularizer(self, params):
    return self.l2 * losses.l2_penalty(params) if self.l2 else jnp.zeros((), jnp.float32)

  def finalize(self, sums: dict, prefix: str = '', split: str | None = None) -> dict:
    """Metrics named `prefix` + name (e.g. 'val_loss') from the sums over one evaluated `split`."""
    weight = max(float(sums['weight']), 1e-12)
    out = {f'{prefix}loss': float(sums['loss']) / weight}
    if 'correct' in sums:
      out[f'{prefix}accuracy'] = float(sums['correct']) / weight
    return out


@TASKS.register('causal_lm')
class CausalLM(Task):
  """Next-token prediction. batch: inputs [B, T], targets [B, T], weights [B, T].

  Loss: mean over scored tokens of −log p(x_{t+1} | x_≤t), in nats.
  Metrics: loss, perplexity = exp(loss), bpc = loss / ln 2 / (characters per token of the split, its
  characters over its tokens), accuracy. On a subword split the denominator counts every token's
  characters, the first (unscored) token's too: for a whole val split the difference is one token in
  ~10⁵, for a periodic estimate over some blocks it is the split's average ratio.
  """

  def __init__(self, model, config, dataset):
    super().__init__(model, config, dataset)
    self.chars_per_token = getattr(dataset, 'chars_per_token', 1.0)

  def init(self, rng, batch):
    return self.model.init({'params': rng}, batch['inputs'], train=False)['params']

  def logits(self, params, batch, rng=None, train: bool = False):
    rngs = {'dropout': rng} if train and rng is not None else {}
    return self.model.apply({'params': params}, batch['inputs'], train=train, rngs=rngs)

  def loss(self, params, batch, rng, train: bool):
    logits = self.logits(params, batch, rng, train)
    objective, loss_sum, weight = self._smoothed(losses.cross_entropy, logits, batch['targets'], batch['weights'], train)
    correct = jnp.sum((jnp.argmax(logits, -1) == batch['targets']) * batch['weights'])
    return objective, {'loss': loss_sum, 'weight': weight, 'correct': correct}

  def finalize(self, sums: dict, prefix: str = '', split: str | None = None) -> dict:
    out = super().finalize(sums, prefix, split)
    loss = out[f'{prefix}loss']
    out[f'{prefix}perplexity'] = math.exp(min(loss, 700.0))
    out[f'{prefix}bpc'] = loss / math.log(2) / self.chars_per_token_of(split)
    return out

  def chars_per_token_of(self, split: str | None) -> float:
    """Characters per token of `split`: its characters over its tokens (1 for the char tokenizer)."""
    ratio = self.chars_per_token
    if isinstance(ratio, dict):
      if split not in ratio:
        raise ValueError(f'characters per token are known for the splits {sorted(ratio)}, not {split!r}')
      return ratio[split]
    return ratio


def build(config, model, dataset):
  return TASKS.get(config.task.name, 'task.name')(model, config, dataset)


def _one_or_many(binary, multiclass):
  """fn(outputs [B, C], labels, ε): for one output (C = 1) the binary loss of that score, else the C-way loss."""
  return lambda out, y, eps: binary(out[..., 0], y, eps) if out.shape[-1] == 1 else multiclass(out, y, eps)


# Per-example classification losses by config name: fn(outputs [B, C], labels [B], label_smoothing) → [B].
# One output (C = 1) means two classes scored by the sign of ŷ; see lm_anatomy/losses.py for the equations.
CLASSIFICATION_LOSSES = {
    'cross_entropy': _one_or_many(losses.sigmoid_cross_entropy, losses.cross_entropy),
    'squared': _one_or_many(lambda s, y, eps: losses.binary_squared_error(s, y),
                            lambda s, y, eps: losses.squared_error(s, y)),
    'hinge': _one_or_many(lambda s, y, eps: losses.binary_hinge(s, y),
                          lambda s, y, eps: losses.multiclass_hinge(s, y)),
}
SMOOTHED_LOSSES = ('cross_entropy',)  # the losses that use task.label_smoothing
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
    name = config.task.get('loss', 'cross_entropy')
    self.loss_fn = CLASSIFICATION_LOSSES[name]
    if self.label_smoothing and name not in SMOOTHED_LOSSES:
      raise ConfigError(f'task.label_smoothing applies to {list(SMOOTHED_LOSSES)} only, not task.loss={name!r}')

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
    objective, loss_sum, weight = self._smoothed(self.loss_fn, scores, batch['labels'], batch['weights'], train)
    correct = jnp.sum((self.predict(scores) == batch['labels']) * batch['weights'])
    return objective, {'loss': loss_sum, 'weight': weight, 'correct': correct}


@TASKS.register('masked_lm')
class MaskedLM(Task):
  """BERT pretraining: masked-LM, plus next-sentence prediction when the batch has its labels.

  batch: inputs, attention_mask, token_type_ids [B, T]; masked_positions, masked_targets, weights [B, P]
  (weight 1 for each of the P slots that holds a masked token); next_sentence_labels [B] (optional;
  0 = B follows A, 1 = B is random). The dataset chose and corrupted the masked tokens.

  Loss:  Σ_b Σ_p w_bp (−log p(x_bp | corrupted input))  +  Σ_b n_b · (−log p(nsp_b | pooled_b)),
  over Σ w, with n_b = Σ_p w_bp: the mean masked-token loss plus each sequence's NSP loss counted once
  per masked token it has, so that every term is a plain sum (exact under accumulation and sharding).
  Metrics: loss, accuracy (masked tokens), mlm_loss, mlm_perplexity, and nsp_loss, nsp_accuracy.
  """

  def _kwargs(self, batch):
    kwargs = {k: batch[k] for k in MODEL_KWARGS if k in batch}
    return kwargs | {'masked_positions': batch['masked_positions']}

  def init(self, rng, batch):
    return self.model.init({'params': rng}, batch['inputs'], train=False, **self._kwargs(batch))['params']

  def loss(self, params, batch, rng, train: bool):
    rngs = {'dropout': rng} if train and rng is not None else {}
    out = self.model.apply({'params': params}, batch['inputs'], train=train, rngs=rngs, **self._kwargs(batch))
    mlm_logits, nsp_logits = out if isinstance(out, tuple) else (out, None)
    w = batch['weights'].astype(jnp.float32)
    objective, mlm_sum, weight = self._smoothed(losses.cross_entropy, mlm_logits, batch['masked_targets'], w, train)
    correct = jnp.sum((jnp.argmax(mlm_logits, -1) == batch['masked_targets']) * w)
    sums = {'loss': mlm_sum, 'weight': weight, 'correct': correct, 'mlm_loss': mlm_sum}
    if nsp_logits is not None and 'next_sentence_labels' in batch:
      n = jnp.sum(w, axis=-1)                        # masked tokens per sequence; 0 for padding rows
      real = (n > 0).astype(jnp.float32)
      nsp = losses.cross_entropy(nsp_logits, batch['next_sentence_labels'])
      sums['loss'] = mlm_sum + jnp.sum(n * nsp)
      objective = objective + jnp.sum(n * nsp)
      sums['nsp_loss'] = jnp.sum(real * nsp)
      sums['nsp_correct'] = jnp.sum(real * (jnp.argmax(nsp_logits, -1) == batch['next_sentence_labels']))
      sums['sequences'] = jnp.sum(real)
    return objective, sums

  def finalize(self, sums: dict, prefix: str = '', split: str | None = None) -> dict:
    out = super().finalize(sums, prefix, split)
    mlm = float(sums['mlm_loss']) / max(float(sums['weight']), 1e-12)
    out[f'{prefix}mlm_loss'] = mlm
    out[f'{prefix}mlm_perplexity'] = math.exp(min(mlm, 700.0))
    if 'nsp_loss' in sums:
      sequences = max(float(sums['sequences']), 1e-12)
      out[f'{prefix}nsp_loss'] = float(sums['nsp_loss']) / sequences
      out[f'{prefix}nsp_accuracy'] = float(sums['nsp_correct']) / sequences
    return out
