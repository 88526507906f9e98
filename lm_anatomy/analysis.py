"""Measurements on trained language models: context length, stateful evaluation, gradient flow.

All functions take a causal LM (`model`, `params`; idx [batch, length] → logits [batch, length, vocab])
and token ids (numpy int arrays), and work for every architecture: none is named here.

  window_losses(model, params, ids, positions, context)
      ℓ_p = −log p(x_{p+1} | x_{p−c+1} … x_p) for each position p: exactly c tokens of context.
  stateful_losses(model, params, ids, chunk_len)
      ℓ_t = −log p(x_{t+1} | x_1 … x_t) for every t, for models with a carry (models/rnn.py): the text runs
      through in chunks of `chunk_len`, the state of one chunk starting the next, so the context is the
      whole text before t, not a window.
  embedding_grad_norms(model, params, windows)
      g_k = ‖∂L_t / ∂x_{t−k}‖ for k = 0 … T−1, averaged over windows: how much the loss at the last position
      t depends on the input embedding k steps back. Vanishing gradients make g_k fall with k.
"""
from __future__ import annotations

import functools
from typing import Callable, Iterator

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lm_anatomy import losses


def has_carry(model) -> bool:
  """Whether `model` can carry its state from one call to the next (`forward(idx, carry)`, `zero_carry`)."""
  return callable(getattr(model, 'forward', None)) and callable(getattr(model, 'zero_carry', None))


def _batches(n: int, size: int) -> Iterator[slice]:
  for i in range(0, n, size):
    yield slice(i, min(i + size, n))


@functools.partial(jax.jit, static_argnums=0)
def _last_position_loss(model, params, inputs, targets):
  """inputs [B, c], targets [B] → −log p(target | inputs) at the last position, [B]."""
  logits = model.apply({'params': params}, inputs)[:, -1]
  return losses.cross_entropy(logits, targets)


def window_losses(model, params, ids: np.ndarray, positions: np.ndarray, context: int,
                  tokens_per_batch: int = 1 << 16) -> np.ndarray:
  """ℓ_p = −log p(ids[p+1] | ids[p−context+1 … p]) for each p in `positions` (all p ≥ context − 1) → [len(positions)]."""
  positions = np.asarray(positions)
  if positions.size == 0:
    return np.zeros(0, np.float32)
  if positions.min() < context - 1 or positions.max() + 1 >= len(ids):
    raise ValueError(f'positions must lie in [{context - 1}, {len(ids) - 2}] for context {context}')
  windows = positions[:, None] + np.arange(1 - context, 1)[None, :]
  size = max(1, tokens_per_batch // context)
  out = [np.asarray(_last_position_loss(model, params, jnp.asarray(ids[windows[s]]), jnp.asarray(ids[positions[s] + 1])))
         for s in _batches(len(positions), size)]
  return np.concatenate(out)


@functools.partial(jax.jit, static_argnums=0)
def _chunk_losses(model, params, carry, inputs, targets):
  logits, carry = model.apply({'params': params}, inputs, carry, method='forward')
  return carry, losses.cross_entropy(logits, targets)


@functools.partial(jax.jit, static_argnums=0)
def _first_chunk_losses(model, params, inputs, targets):
  logits, carry = model.apply({'params': params}, inputs, None, method='forward')  # the learned start state
  return carry, losses.cross_entropy(logits, targets)


def stateful_losses(model, params, ids: np.ndarray, chunk_len: int = 512) -> np.ndarray:
  """ℓ_t = −log p(ids[t+1] | ids[0 … t]) for t = 0 … len(ids) − 2, carrying the state across chunks → [len(ids) − 1]."""
  if not has_carry(model):
    raise ValueError(f'{type(model).__name__} has no carry: stateful evaluation needs a recurrent model')
  ids = np.asarray(ids, np.int32)
  n = len(ids) - 1
  if n < 1:
    raise ValueError(f'stateful evaluation needs at least 2 tokens, got {len(ids)}')
  out, carry = [], None
  for s in _batches(n, chunk_len):
    inputs, targets = jnp.asarray(ids[s][None]), jnp.asarray(ids[s.start + 1:s.stop + 1][None])
    if carry is None:
      carry, ell = _first_chunk_losses(model, params, inputs, targets)
    else:
      carry, ell = _chunk_losses(model, params, carry, inputs, targets)
    out.append(np.asarray(ell[0]))
  return np.concatenate(out)


def _embedding_interceptor(on_output: Callable):
  """A method interceptor that passes the output of every nn.Embed lookup (`__call__`) through `on_output`."""
  def interceptor(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if isinstance(context.module, nn.Embed) and context.method_name == '__call__':
      return on_output(out)
    return out
  return interceptor


def embedding_shape(model, params, inputs) -> tuple[int, ...]:
  """The shape of the model's one embedding lookup for `inputs` (a model must look up its input once)."""
  shapes = []

  def record(out):
    shapes.append(out.shape)
    return out
  with nn.intercept_methods(_embedding_interceptor(record)):
    jax.eval_shape(lambda p, x: model.apply({'params': p}, x), params, inputs)
  if len(shapes) != 1:
    raise ValueError(f'{type(model).__name__} looks up {len(shapes)} embeddings; the diagnostic needs exactly one')
  return shapes[0]


@functools.partial(jax.jit, static_argnums=0)
def _embedding_grads(model, params, inputs, targets, delta):
  def loss(delta):
    def add(out):
      return out + delta.astype(out.dtype)
    with nn.intercept_methods(_embedding_interceptor(add)):
      logits = model.apply({'params': params}, inputs)[:, -1]
    return jnp.sum(losses.cross_entropy(logits, targets))  # a sum, so each row's gradient is its own ∂L_t/∂x
  return jax.grad(loss)(delta)


def embedding_grad_norms(model, params, windows: np.ndarray, batch_size: int = 32) -> np.ndarray:
  """g_k = mean over windows of ‖∂L_t / ∂x_{t−k}‖₂, k = 0 … T−1 → [T].

  windows: [N, T + 1] token ids; the inputs are the first T, L_t is the loss of the last token given them
  (t = T − 1, the last position). x_s is the model's input embedding at s (the output of its nn.Embed,
  found with `nn.intercept_methods`, so no model needs a hook); for the GPT it is the token embedding,
  to which the position embedding is added.
  """
  windows = np.asarray(windows, np.int32)
  T = windows.shape[1] - 1
  shape = embedding_shape(model, params, jnp.asarray(windows[:1, :T]))
  total = np.zeros(T)
  for s in _batches(len(windows), batch_size):
    inputs, targets = jnp.asarray(windows[s, :T]), jnp.asarray(windows[s, T])
    delta = jnp.zeros((len(inputs),) + tuple(shape[1:]), jnp.float32)
    grads = _embedding_grads(model, params, inputs, targets, delta)      # [B, S, d], S ≥ T (a window may pad)
    norms = np.asarray(jnp.linalg.norm(grads[:, -T:], axis=-1))          # [B, T], position s = 0 … T−1
    total += norms.sum(0)[::-1]                                          # index k = T − 1 − s
  return total / len(windows)


def decay_per_step(g: np.ndarray, k_max: int) -> float:
  """The geometric mean factor by which g_k shrinks per step over k = 0 … k_max: (g_{k_max} / g_0)^(1/k_max)."""
  if not 0 < k_max < len(g):
    raise ValueError(f'k_max must be in [1, {len(g) - 1}] for {len(g)} gradient norms, got {k_max}')
  return float((g[k_max] / g[0]) ** (1.0 / k_max))
