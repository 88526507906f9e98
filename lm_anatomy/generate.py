"""Sampling from a causal language model.

A model's `decoding` attribute says how it produces token t+1 after t tokens:
- 'cache' (GPT): a KV cache. The prompt is run once (prefill) and each new token costs one position:
    logits_{t+1} = model(x_{t+1} | cached keys/values of x_≤t).
  A model with absolute positions cannot slide its cache, so when the context reaches block_size the
  cache is rebuilt from the last block_size // 2 tokens and generation goes on: every token then sees
  between block_size // 2 and block_size tokens of context.
- 'carry' (RNN, LSTM, GRU): the recurrent state is the cache, h_{t+1} = f(h_t, x_{t+1}), and it reaches
  back over the whole text.
- 'window' (the default: the n-gram FFNN, the bigram): each token re-runs the model on its window.
Prompts longer than a model's context limit are cropped to their last `context_limit()` tokens
(nanoGPT does the same); a model without a limit (None) keeps the whole text.

Without the cache (`use_cache=False`), each token re-runs the model on the last context_limit() tokens
(the whole text when there is no limit), as nanoGPT does; this is the reference the cached paths are
tested against. New token i is drawn with the key fold_in(rng, i) on every path, so one seed gives the
same text with the cache and without it, as long as the context fits (past block_size the cached path
sees shorter contexts, as above).
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from lm_anatomy.errors import ConfigError


GREEDY_BELOW = 1e-6


def check_sampling(temperature: float, top_k: int, top_p: float) -> None:
  """Raises ConfigError unless temperature ≥ 0 (0 = greedy), top_k ≥ 0 (0 = all) and 0 < top_p ≤ 1."""
  bad = []
  if not temperature >= 0 or math.isinf(temperature):  # `not ≥` also catches NaN
    bad.append(f'temperature must be a finite number >= 0 (0 = greedy), got {temperature}')
  if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or not top_k >= 0:
    bad.append(f'top_k must be an integer >= 0 (0 = no limit), got {top_k!r}')
  if not 0 < top_p <= 1:
    bad.append(f'top_p must be in (0, 1], got {top_p}')
  if bad:
    raise ConfigError('; '.join(bad))


def sample_logits(logits, rng, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0):
  """One token per row from logits [batch, vocab] → [batch] int32. temperature 0 = greedy (argmax), and
  so is any temperature below GREEDY_BELOW (a subnormal one would flush to 0 and divide by it);
  top_k keeps the k most likely tokens, top_p the smallest set whose probability reaches top_p."""
  check_sampling(temperature, top_k, top_p)
  if temperature < GREEDY_BELOW:
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


def _context_limit(model) -> int | None:
  return model.context_limit() if hasattr(model, 'context_limit') else model.block_size


def _decoding(model) -> str:
  return getattr(model, 'decoding', 'window')


def _feed(model, params, state, tokens):
  """Runs tokens [batch, n] after `state` (a KV cache or a recurrent carry) → (logits [batch, n, vocab],
  new state)."""
  if _decoding(model) == 'carry':
    return model.apply({'params': params}, tokens, state, method=model.forward)
  logits, mutated = model.apply({'params': params, 'cache': state}, tokens, decode=True, mutable=['cache'])
  return logits, mutated['cache']


@functools.partial(jax.jit, static_argnames=('model', 'cache_len'))
def _prefill(model, params, context, cache_len: int):
  """Runs `context` [batch, n] from a fresh state (a cache of `cache_len` positions) → (last logits, state)."""
  state = None
  if _decoding(model) == 'cache':
    state = model.init(jax.random.key(0), jnp.zeros((context.shape[0], cache_len), jnp.int32), decode=True)['cache']
  logits, state = _feed(model, params, state, context)
  return logits[:, -1], state


@functools.partial(jax.jit, static_argnames=('model', 'steps', 'temperature', 'top_k', 'top_p'))
def _decode(model, params, state, logits, rng, first, steps: int, temperature, top_k, top_p):
  """Samples new token `first` from `logits`, feeds it, repeats: tokens first … first + steps,
  [batch, steps + 1]; token i is drawn with fold_in(rng, i)."""
  def body(carry, i):
    state, logits = carry
    tok = sample_logits(logits, jax.random.fold_in(rng, i), temperature, top_k, top_p)
    out, state = _feed(model, params, state, tok[:, None])
    return (state, out[:, -1]), tok
  (state, logits), toks = jax.lax.scan(body, (state, logits), first + jnp.arange(steps))
  last = sample_logits(logits, jax.random.fold_in(rng, first + steps), temperature, top_k, top_p)
  return jnp.concatenate([toks.T, last[:, None]], axis=1)


@functools.partial(jax.jit, static_argnames=('model', 'temperature', 'top_k', 'top_p'))
def _step_no_cache(model, params, window, length, rng, temperature, top_k, top_p):
  """window [batch, w] holding `length` real tokens; causal, so padding after them is inert."""
  logits = model.apply({'params': params}, window)
  return sample_logits(logits[:, length - 1], rng, temperature, top_k, top_p)


def generate(model, params, prompt, max_new_tokens: int, rng, temperature: float = 1.0, top_k: int = 0,
             top_p: float = 1.0, use_cache: bool = True) -> np.ndarray:
  """prompt: [batch, n] int ids (n ≥ 1) → new tokens [batch, max_new_tokens] int32."""
  check_sampling(temperature, top_k, top_p)
  prompt = np.asarray(prompt)
  if prompt.ndim != 2 or 0 in prompt.shape or prompt.dtype.kind not in 'iu':  # an empty batch: min() would fail
    raise ConfigError(f'prompt must be integer ids [batch, n] with n >= 1 and batch >= 1, got {prompt.dtype} '
                      f'{prompt.shape}')
  vocab = getattr(model, 'vocab_size', 0)
  if vocab and (prompt.min() < 0 or prompt.max() >= vocab):
    raise ConfigError(f'prompt ids must lie in [0, {vocab}), got {prompt.min()} … {prompt.max()}')
  prompt = prompt.astype(np.int32)
  if max_new_tokens < 0:
    raise ConfigError(f'max_new_tokens must be >= 0, got {max_new_tokens}')
  B = prompt.shape[0]
  if max_new_tokens == 0:
    return np.zeros((B, 0), np.int32)
  limit = _context_limit(model)
  tokens = prompt if limit is None else prompt[:, -limit:]
  out = []
  if not use_cache or _decoding(model) == 'window':
    width = limit or tokens.shape[1] + max_new_tokens  # without a limit: the whole text, one program
    for i in range(max_new_tokens):
      window = tokens[:, -width:]
      length = window.shape[1]
      padded = np.zeros((B, width), np.int32)
      padded[:, :length] = window
      tok = np.asarray(_step_no_cache(model, params, padded, length, jax.random.fold_in(rng, i),
                                      temperature, top_k, top_p))
      tokens = np.concatenate([tokens, tok[:, None]], 1)
      out.append(tok[:, None])
    return np.concatenate(out, 1)
  produced = 0
  context = tokens
  while produced < max_new_tokens:
    logits, state = _prefill(model, params, context, limit or 0)
    room = max_new_tokens if limit is None else limit - context.shape[1]
    steps = min(room, max_new_tokens - produced - 1)
    new = np.asarray(_decode(model, params, state, logits, rng, produced, steps, temperature, top_k, top_p))
    out.append(new)
    produced += new.shape[1]
    tokens = np.concatenate([tokens, new], 1)
    context = tokens[:, -max(limit // 2, 1):] if limit else tokens
  return np.concatenate(out, 1)[:, :max_new_tokens]
