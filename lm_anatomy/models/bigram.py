"""The bigram language model: a table of next-token logits, the count model's neural twin.

For input tokens x_1 … x_T:
  logits_t = W[x_t]                                        W: [vocab, vocab], one row per current token
  p(x_{t+1} | x_≤t) = p(x_{t+1} | x_t) = softmax(W[x_t])

The counting model sets p(b | a) = N(a, b) / Σ_c N(a, c) from bigram counts N; trained by gradient
descent on the cross-entropy, softmax(W[a]) approaches the same table (with W = log N + const at the
optimum). W starts at zero (the uniform distribution), as in makemore. The context is one token.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lm_anatomy.registry import MODELS


@MODELS.register('bigram')
class Bigram(nn.Module):
  """idx: [batch, length] int32 → logits [batch, length, vocab_size] float32."""
  vocab_size: int = 0

  tasks, inputs = ('causal_lm',), 'tokens'   # class attributes: what it serves, what it reads (config.validate)

  @staticmethod
  def check_config(cfg) -> None:
    """Nothing to size: the table is vocab × vocab."""

  @nn.compact
  def __call__(self, idx, *, train: bool = False):
    table = self.param('logits', nn.initializers.zeros, (self.vocab_size, self.vocab_size), jnp.float32)
    return jnp.take(table, idx, axis=0)

  def num_params(self, params) -> int:
    return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))

  def flops_per_token(self, seq_len: int, params) -> float:
    """A row lookup: no matrix products (the softmax's O(vocab) work is not counted for any model)."""
    return 0.0

  def context_limit(self) -> int:
    return 1
