"""Sampling from a causal language model, with a KV cache.

With the cache, the prompt is run once (prefill) and each new token costs one position:
  logits_{t+1} = model(x_{t+1} | cache of keys/values for x_≤t).
A model with absolute positions cannot slide its cache, so when the context reaches block_size
the cache is rebuilt from the last block_size // 2 tokens and generation goes on: every token then
sees between block_size // 2 and block_size tokens of context. Prompts longer than block_size are
cropped to their last block_size tokens (nanoGPT does the same).

Without the cache (`use_cache=False`), each token re-runs the model on the last block_size tokens,
as nanoGPT does; the result is the reference the cached path is tested against.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


def sample_logits(logits, rng, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0):
  """One token per row from logits [batch, vocab]. temperature 0 = greedy (argmax)."""
  if temperature == 0:
    return jnp.argmax(logits, -1).astype(jnp.int32)
  logits = logits.astype(jnp.float32) / temperature
  neg = jnp.finfo(jnp.float32).min
  if top_k:
    kth = jax.lax.top_k(logits, min(top_k, logits.shape[-1]))[0][..., -1:]
    logits = jnp.where(logits < kth, neg, logits)
  if top_p < 1.0:
    order = jnp.argsort(-logits, axis=-1)
    sorted_logits = jnp.take_along_axis(logits, order, -1)
    cum = jnp.cumsum(jax.nn.softmax(sorted_logits, -1), -1)
    drop_sorted = (cum - jax.nn.softmax(sorted_logits, -1)) >= top_p  # keep the smallest set reaching top_p
    drop = jnp.zeros_like(drop_sorted).at[jnp.arange(logits.shape[0])[:, None], order].set(drop_sorted)
    logits = jnp.where(drop, neg, logits)
  return jax.random.categorical(rng, logits, -1).astype(jnp.int32)


def _block_size(model) -> int:
  return model.context_limit() if hasattr(model, 'context_limit') else model.block_size


@functools.partial(jax.jit, static_argnames=('model', 'cache_len'))
def _prefill(model, params, context, cache_len: int):
  """Runs `context` [batch, n] into a fresh cache of `cache_len` positions → (last logits, cache)."""
  B = context.shape[0]
  cache = model.init(jax.random.key(0), jnp.zeros((B, cache_len), jnp.int32), decode=True)['cache']
  logits, mutated = model.apply({'params': params, 'cache': cache}, context, decode=True, mutable=['cache'])
  return logits[:, -1], mutated['cache']


@functools.partial(jax.jit, static_argnames=('model', 'steps', 'temperature', 'top_k', 'top_p'))
def _decode(model, params, cache, logits, rng, steps: int, temperature, top_k, top_p):
  """Samples a token from `logits`, feeds it, repeats: `steps` + 1 tokens [batch, steps + 1]."""
  def body(carry, r):
    cache, logits = carry
    tok = sample_logits(logits, r, temperature, top_k, top_p)
    out, mutated = model.apply({'params': params, 'cache': cache}, tok[:, None], decode=True, mutable=['cache'])
    return (mutated['cache'], out[:, -1]), tok
  rngs = jax.random.split(rng, steps + 1)
  (cache, logits), toks = jax.lax.scan(body, (cache, logits), rngs[:steps])
  last = sample_logits(logits, rngs[steps], temperature, top_k, top_p)
  return jnp.concatenate([toks.T, last[:, None]], axis=1)


@functools.partial(jax.jit, static_argnames=('model', 'temperature', 'top_k', 'top_p'))
def _step_no_cache(model, params, window, length, rng, temperature, top_k, top_p):
  """window [batch, block_size] holding `length` real tokens; causal, so padding after them is inert."""
  logits = model.apply({'params': params}, window)
  return sample_logits(logits[:, length - 1], rng, temperature, top_k, top_p)


def generate(model, params, prompt, max_new_tokens: int, rng, temperature: float = 1.0, top_k: int = 0,
             top_p: float = 1.0, use_cache: bool = True) -> np.ndarray:
  """prompt: [batch, n] int ids (n ≥ 1) → new tokens [batch, max_new_tokens]."""
  prompt = np.asarray(prompt, np.int32)
  if prompt.ndim != 2 or prompt.shape[1] == 0:
    raise ValueError('prompt must be [batch, n] with n >= 1')
  block = _block_size(model)
  tokens = prompt[:, -block:]
  out = []
  if not use_cache:
    for i in range(max_new_tokens):
      window = tokens[:, -block:]
      length = window.shape[1]
      padded = np.zeros((tokens.shape[0], block), np.int32)
      padded[:, :length] = window
      tok = np.asarray(_step_no_cache(model, params, padded, length, jax.random.fold_in(rng, i),
                                      temperature, top_k, top_p))
      tokens = np.concatenate([tokens, tok[:, None]], 1)
      out.append(tok[:, None])
    return np.concatenate(out, 1) if out else np.zeros((prompt.shape[0], 0), np.int32)
  produced, segment = 0, 0
  context = tokens
  while produced < max_new_tokens:
    logits, cache = _prefill(model, params, context, block)
    steps = min(block - context.shape[1], max_new_tokens - produced - 1)
    new = np.asarray(_decode(model, params, cache, logits, jax.random.fold_in(rng, segment), steps,
                             temperature, top_k, top_p))
    out.append(new)
    produced += new.shape[1]
    tokens = np.concatenate([tokens, new], 1)
    context = tokens[:, -max(block // 2, 1):]
    segment += 1
  return np.concatenate(out, 1)[:, :max_new_tokens]
