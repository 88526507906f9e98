"""Recurrent language models: Elman RNN, LSTM and GRU, multi-layer, in PyTorch's equations and layout.

For input tokens x_1 … x_T, embeddings e_t = E[x_t] (E: [vocab, n_embd]) feed layer 1; layer l reads
the outputs h^{l−1}_t of the layer below, with dropout between layers. Layer l's state starts at a
learned h^l_0 (and c^l_0), or at a carry passed in. The start states are stored as h0, c0 [n_layer, H],
so weight decay and the L2 penalty treat them as matrices and shrink them towards PyTorch's zero start.
σ is the logistic sigmoid, ⊙ the elementwise product.

  rnn   (Elman 1990)
        h_t = tanh(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh)

  lstm  (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000)
        i_t = σ(W_ii x_t + b_ii + W_hi h_{t−1} + b_hi)              input gate
        f_t = σ(W_if x_t + b_if + W_hf h_{t−1} + b_hf)              forget gate
        g_t = tanh(W_ig x_t + b_ig + W_hg h_{t−1} + b_hg)           candidate cell
        o_t = σ(W_io x_t + b_io + W_ho h_{t−1} + b_ho)              output gate
        c_t = f_t ⊙ c_{t−1} + i_t ⊙ g_t
        h_t = o_t ⊙ tanh(c_t)

  gru   (Cho et al. 2014, in PyTorch's variant: the reset gate scales W_hn h + b_hn, not h)
        r_t = σ(W_ir x_t + b_ir + W_hr h_{t−1} + b_hr)              reset gate
        z_t = σ(W_iz x_t + b_iz + W_hz h_{t−1} + b_hz)              update gate
        n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t−1} + b_hn))   candidate state
        h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t−1}

  logits_t = W_out h^L_t + b_out,   p(x_{t+1} | x_≤t) = softmax(logits_t)

Layout (as PyTorch's nn.RNN / nn.LSTM / nn.GRU, transposed to x·W): layer l holds
  w_ih [in, G·H], w_hh [H, G·H], b_ih [G·H], b_hh [G·H]
with the G gate blocks in PyTorch's order (lstm: i f g o; gru: r z n; rnn: G = 1), so a PyTorch
`weight_ih_l{k}` is `w_ih.T`. Initialisation is PyTorch's: every weight and bias of the cells ~ U(−1/√H, 1/√H),
the output layer's ~ U(−1/√H, 1/√H) too (nn.Linear's default), embeddings ~ N(0, 1) (nn.Embedding's).

Time runs in one `lax.scan` per layer (no Python loop over time); the input projections W_ih x_t + b_ih
of all steps are computed before the scan as one matrix product.

The carry (the recurrent state, for stateful evaluation): a tuple of arrays [n_layer, batch, H],
  (h,) for rnn and gru,  (h, c) for lstm                 (PyTorch's h_n / (h_n, c_n))
  logits, carry = model.apply({'params': p}, idx, carry, method='forward')   carry=None: the learned start
  logits = model.apply({'params': p}, idx, carry=carry)                       the same logits, carry dropped
Feeding each chunk of a long text with the carry returned by the previous chunk gives exactly the logits
of one pass over the whole text (tested), so the context is not cut at the training length.
"""
from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lm_anatomy.errors import ConfigError
from lm_anatomy.models import layers
from lm_anatomy.registry import MODELS


def Linear(features: int, dtype: str = 'float32', name: str | None = None) -> layers.Dense:
  """PyTorch's nn.Linear: y = x W + b, W and b ~ U(−1/√in, 1/√in). x: [..., in] → [..., features]."""
  return layers.Dense(features, use_bias=True, init_std=None, dtype=jnp.dtype(dtype), name=name)


# One time step of each cell. gx = W_ih x_t + b_ih and hx = W_hh h_{t−1} + b_hh, both [B, G·H];
# carry is the tuple of state arrays [B, H]. Returns (new carry, output h_t).

def rnn_step(carry, gx, hx):
  h = jnp.tanh(gx + hx)
  return (h,), h


def lstm_step(carry, gx, hx):
  _, c = carry
  i, f, g, o = jnp.split(gx + hx, 4, axis=-1)
  c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
  h = jax.nn.sigmoid(o) * jnp.tanh(c)
  return (h, c), h


def gru_step(carry, gx, hx):
  (h,) = carry
  x_r, x_z, x_n = jnp.split(gx, 3, axis=-1)
  h_r, h_z, h_n = jnp.split(hx, 3, axis=-1)
  r = jax.nn.sigmoid(x_r + h_r)
  z = jax.nn.sigmoid(x_z + h_z)
  n = jnp.tanh(x_n + r * h_n)
  h = (1.0 - z) * n + z * h
  return (h,), h


# cell name → (gate blocks G, state arrays in the carry, step function)
CELLS: dict[str, tuple[int, int, Callable]] = {
    'rnn': (1, 1, rnn_step),
    'lstm': (4, 2, lstm_step),
    'gru': (3, 1, gru_step),
}


class RecurrentLayer(nn.Module):
  """One layer over a whole sequence. x: [B, T, in], carry: tuple of [B, H] → (outputs [B, T, H], carry)."""
  cell: str
  hidden: int
  dtype: str = 'float32'

  @nn.compact
  def __call__(self, x, carry):
    B, T, D = x.shape
    G, _, step = CELLS[self.cell]
    H, dtype = self.hidden, jnp.dtype(self.dtype)
    init = layers.uniform(H ** -0.5)  # PyTorch's initialisation of recurrent layers
    w_ih = self.param('w_ih', init, (D, G * H), jnp.float32)
    w_hh = self.param('w_hh', init, (H, G * H), jnp.float32)
    b_ih = self.param('b_ih', init, (G * H,), jnp.float32)
    b_hh = self.param('b_hh', init, (G * H,), jnp.float32)
    # Input projections of every step at once: one [B·T, in] × [in, G·H] product, then time-major.
    gx = (x.reshape(B * T, D).astype(dtype) @ w_ih.astype(dtype)).astype(jnp.float32) + b_ih
    gx = gx.reshape(B, T, G * H).swapaxes(0, 1)                                 # [T, B, G·H]

    def body(carry, gx_t):
      # The recurrent product in the compute dtype; gates and state stay float32.
      hx = (carry[0].astype(dtype) @ w_hh.astype(dtype)).astype(jnp.float32) + b_hh
      return step(carry, gx_t, hx)

    carry, ys = jax.lax.scan(body, tuple(c.astype(jnp.float32) for c in carry), gx)
    return ys.swapaxes(0, 1), carry


class RecurrentLM(nn.Module):
  """idx: [batch, length] int32 → logits [batch, length, vocab_size] float32. `cell` is set by each subclass."""
  vocab_size: int = 0
  n_layer: int = 1
  n_embd: int = 64         # embedding size
  n_hidden: int = 64       # H: state size of every layer
  dropout: float = 0.0     # between layers (on the outputs of every layer but the last)
  dtype: str = 'float32'

  cell = 'rnn'             # class attributes, not config fields
  decoding = 'carry'       # sampling carries the state h_t from token to token (generate.py)
  tasks, inputs = ('causal_lm',), 'tokens'

  @staticmethod
  def check_config(cfg) -> None:
    for key in ('n_layer', 'n_embd', 'n_hidden'):
      if cfg.get(key, 1) <= 0:
        raise ConfigError(f'model.{key} must be > 0, got {cfg[key]}')
    if not 0.0 <= cfg.get('dropout', 0.0) < 1.0:
      raise ConfigError(f'model.dropout must be in [0, 1), got {cfg.dropout}')
    if cfg.get('dropout', 0.0) and cfg.get('n_layer', 1) == 1:
      raise ConfigError(f'model.dropout ({cfg.dropout}) acts between layers, and model.n_layer is 1: it would '
                        'do nothing; set it to 0 or add layers')

  def zero_carry(self, batch_size: int) -> tuple:
    """An all-zero state (PyTorch's default h_0 / c_0): tuple of [n_layer, batch_size, H]."""
    n_state = CELLS[self.cell][1]
    return tuple(jnp.zeros((self.n_layer, batch_size, self.n_hidden), jnp.float32) for _ in range(n_state))

  @nn.compact
  def forward(self, idx, carry=None, *, train: bool = False):
    """idx [B, T], carry (tuple of [n_layer, B, H]) or None for the learned start → (logits [B, T, V], carry)."""
    B, T = idx.shape
    n_state = CELLS[self.cell][1]
    start = [self.param(name, nn.initializers.zeros, (self.n_layer, self.n_hidden), jnp.float32)
             for name in ('h0', 'c0')[:n_state]]
    if carry is None:
      carry = tuple(jnp.broadcast_to(s[:, None], (self.n_layer, B, self.n_hidden)) for s in start)
    if len(carry) != n_state or any(c.shape != (self.n_layer, B, self.n_hidden) for c in carry):
      raise ValueError(f'{self.cell} carry must be {n_state} array(s) [n_layer={self.n_layer}, batch={B}, '
                       f'n_hidden={self.n_hidden}], got shapes {[tuple(c.shape) for c in carry]}')
    x = nn.Embed(self.vocab_size, self.n_embd, embedding_init=layers.normal(1.0), name='wte')(idx)
    new_carry = []
    for l in range(self.n_layer):
      if l > 0:
        x = nn.Dropout(self.dropout)(x, deterministic=not train)
      x, c = RecurrentLayer(self.cell, self.n_hidden, self.dtype, name=f'layer_{l}')(x, tuple(s[l] for s in carry))
      new_carry.append(c)
    logits = Linear(self.vocab_size, self.dtype, name='lm_head')(x)
    carry = tuple(jnp.stack([c[i] for c in new_carry]) for i in range(n_state))
    return logits.astype(jnp.float32), carry

  def __call__(self, idx, *, train: bool = False, carry=None):
    return self.forward(idx, carry, train=train)[0]

  def num_params(self, params) -> int:
    return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))

  def flops_per_token(self, seq_len: int, params) -> float:
    """6 × the weights of the matrix products per token (W_ih, W_hh of every layer and the output layer)."""
    weights = sum(int(np.prod(p.shape)) for l in range(self.n_layer) for k, p in params[f'layer_{l}'].items()
                  if k.startswith('w_'))
    return 6.0 * (weights + int(np.prod(params['lm_head']['kernel'].shape)))

  def context_limit(self) -> None:
    """None: unbounded. Trained on windows, but a carried state reaches back over the whole text."""
    return None


@MODELS.register('rnn')
class RNN(RecurrentLM):
  cell = 'rnn'


@MODELS.register('lstm')
class LSTM(RecurrentLM):
  cell = 'lstm'


@MODELS.register('gru')
class GRU(RecurrentLM):
  cell = 'gru'
