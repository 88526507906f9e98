"""The feed-forward neural language model of Bengio, Ducharme, Vincent and Jauvin (2003).

To predict x_{t+1}, the model sees a window of the n = `window` most recent tokens x_{t−n+1} … x_t:
  e_s = C[x_s]                                             C: [vocab + 1, m] embeddings, m = n_embd
  x = [e_{t−n+1}; …; e_t]                                  concatenated, [n·m], oldest first
  h = tanh(d + H x)                                        H: [n·m, h], h = n_hidden
  y = b + U h (+ W x if `direct`)                          U: [h, vocab]; W: [n·m, vocab] direct connections
  p(x_{t+1} | x_{t−n+1} … x_t) = softmax(y)

Positions before the start of the sequence (s < 1) hold a learned <blank> embedding, the extra row
C[vocab] (makemore's choice), so every position gets a full window. The model is applied at every
position of a [batch, length] input at once, so it trains on the same next-token task as the GPT.
Its context never exceeds n tokens, whatever the sequence length. Dropout follows the tanh layer.
Initialisation is PyTorch's (as in makemore): C ~ N(0, 1); H, d, U, b ~ U(−1/√fan_in, 1/√fan_in); the
direct connections W ~ N(0, 1/(n·m)), without a bias.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lm_anatomy.errors import ConfigError
from lm_anatomy.models import layers
from lm_anatomy.models.rnn import Linear
from lm_anatomy.registry import MODELS


@MODELS.register('ffnn')
class FFNN(nn.Module):
  """idx: [batch, length] int32 → logits [batch, length, vocab_size] float32."""
  vocab_size: int = 0
  window: int = 16         # n: tokens of context, the current one included
  n_embd: int = 64         # m: embedding size per token
  n_hidden: int = 64       # h: tanh hidden units
  direct: bool = False     # add Bengio's direct input → output connections W x
  dropout: float = 0.0
  dtype: str = 'float32'

  tasks, inputs = ('causal_lm',), 'tokens'   # class attributes: what it serves, what it reads (config.validate)

  @staticmethod
  def check_config(cfg) -> None:
    for key in ('window', 'n_embd', 'n_hidden'):
      if cfg.get(key, 1) <= 0:
        raise ConfigError(f'model.{key} must be > 0, got {cfg[key]}')
    if not 0.0 <= cfg.get('dropout', 0.0) < 1.0:
      raise ConfigError(f'model.dropout must be in [0, 1), got {cfg.dropout}')

  @nn.compact
  def __call__(self, idx, *, train: bool = False):
    B, T = idx.shape
    n, m = self.window, self.n_embd
    dtype = jnp.dtype(self.dtype)
    blank = jnp.full((B, n - 1), self.vocab_size, idx.dtype)                   # <blank> before the start
    e = nn.Embed(self.vocab_size + 1, m, embedding_init=layers.normal(1.0), name='wte')(
        jnp.concatenate([blank, idx], axis=1))                                 # [B, n−1+T, m]
    x = jnp.concatenate([e[:, k:k + T] for k in range(n)], axis=-1).astype(dtype)  # [B, T, n·m]
    h = jnp.tanh(Linear(self.n_hidden, self.dtype, name='hidden')(x))
    h = nn.Dropout(self.dropout)(h, deterministic=not train)
    y = Linear(self.vocab_size, self.dtype, name='out')(h)
    if self.direct:
      y = y + layers.Dense(self.vocab_size, use_bias=False, init_std=(n * m) ** -0.5, dtype=dtype, name='direct')(x)
    return y.astype(jnp.float32)

  def num_params(self, params) -> int:
    return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))

  def flops_per_token(self, seq_len: int, params) -> float:
    """6 × the weights of the matrix products (2 forward + 4 backward FLOPs per weight per token)."""
    return 6.0 * sum(int(np.prod(p['kernel'].shape)) for k, p in params.items() if k != 'wte')

  def context_limit(self) -> int:
    return self.window
