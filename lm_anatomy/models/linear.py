"""Linear and log-linear classifiers, and a stack of linear layers without activations.

An input is a row vector x ∈ ℝ^{d_in} (a batch is X: [B, d_in]); there are C classes, `input_dim` = d_in
and `num_classes` = C come from the data. Two classes get one score when `binary_output` (the default),
otherwise every class gets a score: d_out = 1 if (C = 2 and binary_output) else C.

  linear        ŷ = f(x) = xW + b                   W: [d_in, d_out], b: [d_out]   ŷ: [B, d_out]
                prediction: sign(ŷ) for one score (class 1 if ŷ > 0), argmax_c ŷ_c for C scores
  log_linear    the same scores read as logits of a distribution over classes:
                one score:  p(y = 1 | x) = σ(ŷ) = 1 / (1 + e^{−ŷ})
                C scores:   p(y = c | x) = softmax(ŷ)_c = e^{ŷ_c} / Σ_k e^{ŷ_k}
                log p is linear in x up to a normaliser; trained with cross-entropy this is logistic
                (multinomial) regression
  linear_stack  ŷ = (…((x W¹ + b¹) W² + b²) …) Wᴸ + bᴸ   W¹: [d_in, width], Wˡ: [width, width], Wᴸ: [width, d_out]
                with no activation between the layers this is exactly one linear map:
                ŷ = x (W¹W²⋯Wᴸ) + (b¹W²⋯Wᴸ + b²W³⋯Wᴸ + … + bᴸ)   (`LinearStack.collapse`)
                so depth adds no expressive power: it cannot learn XOR either.

Weights start as N(0, init_std²), biases at 0. The task (`classify`) picks the loss: squared, hinge or
cross-entropy (lm_anatomy/losses.py).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from lm_anatomy.errors import ConfigError
from lm_anatomy.models import layers
from lm_anatomy.registry import MODELS


def num_outputs(num_classes: int, binary_output: bool) -> int:
  """d_out: one score for two classes when `binary_output`, else one per class."""
  return 1 if binary_output and num_classes == 2 else num_classes


def class_probabilities(scores):
  """p(y | x) [B, C] from scores [B, d_out]: [1 − σ(ŷ), σ(ŷ)] for one score, softmax(ŷ) for C scores."""
  scores = scores.astype(jnp.float32)
  if scores.shape[-1] == 1:
    p1 = jax.nn.sigmoid(scores)
    return jnp.concatenate([1.0 - p1, p1], axis=-1)
  return jax.nn.softmax(scores, axis=-1)


def _check_common(cfg) -> None:
  if cfg.get('init_std', 0.0) < 0:
    raise ConfigError(f'model.init_std must be >= 0, got {cfg.init_std}')


@MODELS.register('linear')
class Linear(nn.Module):
  """ŷ = xW + b. x: [B, input_dim] → scores [B, d_out] float32. Parameters: linear/{kernel, bias}."""
  input_dim: int = 0
  num_classes: int = 2
  binary_output: bool = True   # two classes → one score ŷ, predicted class 1 iff ŷ > 0
  init_std: float = 0.01
  dtype: str = 'float32'

  tasks, inputs = ('classify',), 'vectors'   # class attributes: what it serves, what it reads (config.validate)

  @staticmethod
  def check_config(cfg) -> None:
    _check_common(cfg)

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    d_out = num_outputs(self.num_classes, self.binary_output)
    dense = layers.Dense(d_out, True, self.init_std, jnp.dtype(self.dtype), name='linear')
    return dense(x.astype(jnp.dtype(self.dtype))).astype(jnp.float32)


@MODELS.register('log_linear')
class LogLinear(Linear):
  """Logistic regression: the scores of `Linear`, read as logits. `probabilities(x)` → p(y | x) [B, C]."""

  def probabilities(self, x):
    return class_probabilities(self(x))


@MODELS.register('linear_stack')
class LinearStack(nn.Module):
  """`depth` linear layers, no activations. x: [B, input_dim] → scores [B, d_out] float32.

  Parameters layer_0 … layer_{depth−1}, each {kernel, bias}; hidden layers have `width` units.
  """
  input_dim: int = 0
  num_classes: int = 2
  binary_output: bool = True
  depth: int = 2
  width: int = 16
  init_std: float = 0.1
  dtype: str = 'float32'

  tasks, inputs = ('classify',), 'vectors'   # class attributes: what it serves, what it reads (config.validate)

  @staticmethod
  def check_config(cfg) -> None:
    _check_common(cfg)
    for key in ('depth', 'width'):
      if cfg.get(key, 1) <= 0:
        raise ConfigError(f'model.{key} must be > 0, got {cfg[key]}')
    if cfg.get('depth', 2) > 1 and cfg.get('init_std', 0.1) == 0:
      raise ConfigError('model.init_std=0 with model.depth > 1: all-zero layers get no gradient and never '
                        'learn; use init_std > 0')

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    d_out = num_outputs(self.num_classes, self.binary_output)
    dtype = jnp.dtype(self.dtype)
    h = x.astype(dtype)
    for i in range(self.depth):
      features = d_out if i == self.depth - 1 else self.width
      h = layers.Dense(features, True, self.init_std, dtype, name=f'layer_{i}')(h)
    return h.astype(jnp.float32)

  @staticmethod
  def collapse(params) -> tuple[jax.Array, jax.Array]:
    """The one linear map (W [d_in, d_out], b [d_out]) that the stack computes: ŷ = xW + b.

    W = W¹W²⋯Wᴸ and b = ((b¹W² + b²)W³ + …)Wᴸ + bᴸ, folded layer by layer.
    """
    names = sorted(params, key=lambda n: int(n.split('_')[-1]))
    w, b = None, None
    for name in names:
      k, c = params[name]['kernel'], params[name]['bias']
      w, b = (k, c) if w is None else (w @ k, b @ k + c)
    return w, b
