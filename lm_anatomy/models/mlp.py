"""A multi-layer perceptron classifier of configurable depth, width and activation.

For an input row vector x ∈ ℝ^{d_in} (batch X: [B, d_in]), `depth` = L hidden layers of `width` = n units:
  h⁰ = x
  hˡ = g(hˡ⁻¹ Wˡ + bˡ),  l = 1 … L            W¹: [d_in, n], Wˡ: [n, n], bˡ: [n]      hˡ: [B, n]
  ŷ = hᴸ Wᵒ + bᵒ                              Wᵒ: [n, d_out], bᵒ: [d_out]              ŷ: [B, d_out]
with g one of sigmoid σ(z) = 1/(1 + e^{−z}), tanh, relu max(0, z), gelu z·Φ(z) (`layers.ACTIVATIONS`).
d_out = 1 for two classes when `binary_output` (prediction: class 1 iff ŷ > 0), else C (argmax).
Without g the layers would collapse into one linear map (see `linear_stack`); with it, one hidden layer
of two tanh units already computes XOR.

Initialisation: Wˡ ~ N(0, init_scale² / fan_in) (LeCun's scaling), biases 0. Dropout (rate `dropout`)
follows each hidden activation in training.
"""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from lm_anatomy.errors import ConfigError
from lm_anatomy.models import layers
from lm_anatomy.models.linear import num_outputs
from lm_anatomy.registry import MODELS


@MODELS.register('mlp')
class MLP(nn.Module):
  """x: [B, input_dim] → scores [B, d_out] float32. Parameters hidden_0 … hidden_{depth−1}, output."""
  input_dim: int = 0
  num_classes: int = 2
  binary_output: bool = True   # two classes → one score ŷ, predicted class 1 iff ŷ > 0
  depth: int = 1
  width: int = 16
  activation: str = 'tanh'
  init_scale: float = 1.0
  dropout: float = 0.0
  dtype: str = 'float32'

  tasks, inputs = ('classify',), 'vectors'   # class attributes: what it serves, what it reads (config.validate)

  @staticmethod
  def check_config(cfg) -> None:
    for key in ('depth', 'width'):
      if cfg.get(key, 1) <= 0:
        raise ConfigError(f'model.{key} must be > 0, got {cfg[key]}')
    if cfg.get('activation', 'tanh') not in layers.ACTIVATIONS:
      raise ConfigError(f'unknown model.activation={cfg.activation!r}; choose one of {sorted(layers.ACTIVATIONS)}')
    if cfg.get('init_scale', 1.0) <= 0:
      raise ConfigError(f'model.init_scale must be > 0, got {cfg.init_scale}')
    if not 0.0 <= cfg.get('dropout', 0.0) < 1.0:
      raise ConfigError(f'model.dropout must be in [0, 1), got {cfg.dropout}')

  @nn.compact
  def __call__(self, x, *, train: bool = False, return_hidden: bool = False):
    """Scores ŷ [B, d_out]; with `return_hidden`, (ŷ, [h¹, …, hᴸ])."""
    dtype = jnp.dtype(self.dtype)
    g = layers.ACTIVATIONS[self.activation]
    h = x.astype(dtype)
    hidden = []
    for i in range(self.depth):
      std = self.init_scale / np.sqrt(h.shape[-1])
      h = g(layers.Dense(self.width, True, std, dtype, name=f'hidden_{i}')(h))
      hidden.append(h)
      h = nn.Dropout(self.dropout)(h, deterministic=not train)
    d_out = num_outputs(self.num_classes, self.binary_output)
    scores = layers.Dense(d_out, True, self.init_scale / np.sqrt(self.width), dtype, name='output')(h)
    scores = scores.astype(jnp.float32)
    return (scores, hidden) if return_hidden else scores

  def hidden(self, x):
    """The hidden representations [h¹, …, hᴸ], each [B, width] (no dropout)."""
    return self(x, return_hidden=True)[1]
