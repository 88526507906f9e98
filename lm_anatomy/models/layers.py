"""Transformer building blocks, written once and shared by GPT, BERT, the encoder-decoder and ViT.

Notation (per layer, d = n_embd, h = n_head, d_h = d / h):
  Attention(Q, K, V) = softmax(Q Kᵀ / √d_h + M) V      M: 0 where allowed, −∞ where masked
  [Q | K | V] = x W_qkv + b_qkv                         one fused matmul, W_qkv: [d, 3d]
  MultiHead(x) = concat(head_1, …, head_h) W_o + b_o
  MLP(x) = act(x W_1 + b_1) W_2 + b_2                   W_1: [d, 4d], W_2: [4d, d]
  pre-LN block (GPT):   x ← x + MultiHead(LN_1(x));  x ← x + MLP(LN_2(x))
  post-LN block (BERT): x ← LN_1(x + MultiHead(x));  x ← LN_2(x + MLP(x))

Dense layers flatten their input to 2-D `[batch·length, features]` so that XLA's CPU backend emits
plain matrix products (measurably faster than a batched dot_general at small sizes).
"""
from __future__ import annotations

import re
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

ACTIVATIONS: dict[str, Callable] = {
    'gelu': lambda x: jax.nn.gelu(x, approximate=False),
    'gelu_tanh': lambda x: jax.nn.gelu(x, approximate=True),
    'relu': jax.nn.relu,
    'tanh': jnp.tanh,
    'sigmoid': jax.nn.sigmoid,
    'identity': lambda x: x,
}
ATTENTION_IMPLS = ('auto', 'einsum', 'xla', 'cudnn')


def normal(std: float):
  return nn.initializers.normal(stddev=std)


def uniform(bound: float):
  """U(−bound, bound)."""
  return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


class Dense(nn.Module):
  """y = x W + b over the last axis. x: [..., in] → y: [..., features]; computed as one 2-D matmul.

  Initialisation: W ~ N(0, init_std²) and b = 0; or, with `init_std=None`, PyTorch's nn.Linear
  default, W and b ~ U(−1/√in, 1/√in).
  """
  features: int
  use_bias: bool = True
  init_std: float | None = 0.02
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    fan_in = x.shape[-1]
    kernel_init = uniform(fan_in ** -0.5) if self.init_std is None else normal(self.init_std)
    bias_init = uniform(fan_in ** -0.5) if self.init_std is None else nn.initializers.zeros
    kernel = self.param('kernel', kernel_init, (fan_in, self.features), jnp.float32)
    y = jnp.dot(x.reshape(-1, fan_in).astype(self.dtype), kernel.astype(self.dtype))
    if self.use_bias:
      y = y + self.param('bias', bias_init, (self.features,), jnp.float32).astype(self.dtype)
    return y.reshape(*x.shape[:-1], self.features)


def check_attention_impl(impl: str, dtype: str = 'float32') -> None:
  """ConfigError for an unknown `model.attention_impl`, or 'cudnn' in float32 or without a GPU."""
  from lm_anatomy.errors import ConfigError
  if impl not in ATTENTION_IMPLS:
    raise ConfigError(f'unknown model.attention_impl={impl!r}; choose one of {list(ATTENTION_IMPLS)}')
  if impl == 'cudnn' and jnp.dtype(dtype) not in (jnp.bfloat16, jnp.float16):
    raise ConfigError(f"model.attention_impl='cudnn' needs dtype='bfloat16' or 'float16' (cuDNN's fused "
                      f"attention has no {jnp.dtype(dtype).name} kernel); set the top-level dtype or use 'auto'")
  if impl == 'cudnn' and jax.default_backend() != 'gpu':
    raise ConfigError(f"model.attention_impl='cudnn' needs a GPU (this backend: {jax.default_backend()}); "
                      "use 'auto'")


def resolve_attention_impl(impl: str) -> str:
  """'auto' → the fused path on GPU, a plain einsum on CPU (faster there at small sizes)."""
  if impl == 'auto':
    return 'xla' if jax.default_backend() == 'gpu' else 'einsum'
  return impl


def dot_product_attention(q, k, v, *, causal: bool, mask=None, impl: str = 'auto',
                          dropout_rate: float = 0.0, dropout_rng=None):
  """softmax(q kᵀ/√d_h + M) v, heads-major.

  q: [batch, heads, q_len, d_h]; k, v: [batch, heads, kv_len, d_h];
  mask: None or bool, broadcastable to [batch, heads, q_len, kv_len] (True = may attend).
  causal: query i (of q_len) sees keys j ≤ i + kv_len − q_len, i.e. the queries are the last q_len
  positions of the keys' sequence, with either impl.
  With dropout on the attention weights (training with dropout_rate > 0) the einsum path runs whatever
  `impl` says: jax.nn.dot_product_attention has no dropout.
  Returns [batch, heads, q_len, d_h]. Softmax runs in float32. Heads-major keeps both products
  plain batched matmuls (no transposes inside them): about 25% faster on CPU than [b, t, h, d].
  """
  impl = resolve_attention_impl(impl)
  q_len, kv_len = q.shape[2], k.shape[2]
  if causal and (q_len != kv_len or impl == 'einsum' or dropout_rate):
    # jax.nn's is_causal aligns the mask top-left; with q_len = kv_len both alignments agree.
    allowed = jnp.tril(jnp.ones((q_len, kv_len), bool), k=kv_len - q_len)
    mask, causal = (allowed if mask is None else (mask & allowed)), False
  if impl != 'einsum' and not dropout_rate:
    if impl == 'cudnn' and mask is not None:  # cuDNN takes a mask only as a bias spanning [q_len, kv_len]
      mask = jnp.broadcast_to(mask, (*mask.shape[:-2], q_len, kv_len))
    to_bthd = lambda t: jnp.swapaxes(t, 1, 2)
    out = jax.nn.dot_product_attention(to_bthd(q), to_bthd(k), to_bthd(v), mask=mask, is_causal=causal,
                                       implementation=impl)
    return to_bthd(out)
  scale = 1.0 / np.sqrt(q.shape[-1])
  scores = jnp.einsum('bhqd,bhkd->bhqk', q, k, preferred_element_type=jnp.float32) * scale
  if mask is not None:
    scores = jnp.where(mask, scores, jnp.finfo(jnp.float32).min)
  probs = jax.nn.softmax(scores, axis=-1)
  if dropout_rate:
    keep = jax.random.bernoulli(dropout_rng, 1.0 - dropout_rate, probs.shape)
    probs = jnp.where(keep, probs / (1.0 - dropout_rate), 0.0)
  return jnp.einsum('bhqk,bhkd->bhqd', probs.astype(v.dtype), v)


class MultiHeadAttention(nn.Module):
  """MultiHead(x) with fused QKV projection, optional causal mask, padding mask and KV cache.

  Self-attention: q, k, v from x via `c_attn` [d, 3d]. Cross-attention (`memory` given): q from x via
  `query` [d, d], k and v from memory via `key_value` [d, 2d]. Output projection `c_proj` [d, d].
  In decode mode (self-attention only) keys and values are appended to a cache of the length of the
  sequence the cache was initialised with; queries see cached keys at positions ≤ their own.
  """
  n_head: int
  causal: bool = False
  use_bias: bool = True
  dropout: float = 0.0
  attention_impl: str = 'auto'
  init_std: float = 0.02
  out_init_std: float = 0.02
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, *, memory=None, mask=None, train: bool = False, decode: bool = False):
    """x: [batch, length, d]; memory: [batch, mem_length, d] or None → [batch, length, d]."""
    B, T, C = x.shape
    H = self.n_head
    D = C // H
    dense = lambda f, name, std=self.init_std: Dense(f, self.use_bias, std, self.dtype, name=name)
    heads_major = lambda t, n: t.reshape(B, -1, n, H, D).transpose(2, 0, 3, 1, 4)  # → [n, B, H, len, D]
    if memory is None:
      q, k, v = heads_major(dense(3 * C, 'c_attn')(x), 3)
    else:
      q = heads_major(dense(C, 'query')(x), 1)[0]
      k, v = heads_major(dense(2 * C, 'key_value')(memory), 2)
    causal = self.causal
    if decode:
      initialised = self.has_variable('cache', 'cached_key')
      cached_k = self.variable('cache', 'cached_key', jnp.zeros, k.shape, k.dtype)
      cached_v = self.variable('cache', 'cached_value', jnp.zeros, v.shape, v.dtype)
      index = self.variable('cache', 'cache_index', lambda: jnp.array(0, jnp.int32))
      if initialised:
        i = index.value
        cached_k.value = jax.lax.dynamic_update_slice(cached_k.value, k.astype(cached_k.value.dtype), (0, 0, i, 0))
        cached_v.value = jax.lax.dynamic_update_slice(cached_v.value, v.astype(cached_v.value.dtype), (0, 0, i, 0))
        index.value = i + T
        k, v = cached_k.value, cached_v.value
        q_pos = i + jnp.arange(T)
        kv_pos = jnp.arange(k.shape[2])
        step_mask = (kv_pos[None, :] <= q_pos[:, None])[None, None]
        mask = step_mask if mask is None else mask & step_mask
        causal = False
    drop = self.dropout if train else 0.0
    rng = self.make_rng('dropout') if drop else None
    y = dot_product_attention(q, k, v, causal=causal, mask=mask, impl=self.attention_impl,
                              dropout_rate=drop, dropout_rng=rng)
    y = y.transpose(0, 2, 1, 3)  # [B, T, H, D]
    out = dense(C, 'c_proj', self.out_init_std)(y.reshape(B, T, C))
    return nn.Dropout(self.dropout)(out, deterministic=not train)


class MLP(nn.Module):
  """MLP(x) = act(x W_1 + b_1) W_2 + b_2, then dropout. x: [..., d] → [..., d]."""
  hidden: int
  activation: str = 'gelu_tanh'
  use_bias: bool = True
  dropout: float = 0.0
  init_std: float = 0.02
  out_init_std: float = 0.02
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    h = Dense(self.hidden, self.use_bias, self.init_std, self.dtype, name='c_fc')(x)
    h = ACTIVATIONS[self.activation](h)
    y = Dense(x.shape[-1], self.use_bias, self.out_init_std, self.dtype, name='c_proj')(h)
    return nn.Dropout(self.dropout)(y, deterministic=not train)


def layer_norm(epsilon: float, use_bias: bool, dtype, name: str) -> nn.LayerNorm:
  """LN(x) = γ ⊙ (x − μ) / √(σ² + ε) + β, statistics in float32; β optional."""
  return nn.LayerNorm(epsilon=epsilon, use_bias=use_bias, dtype=dtype, param_dtype=jnp.float32, name=name)


class Block(nn.Module):
  """One Transformer layer: self-attention (+ optional cross-attention) and an MLP, pre- or post-LN.

  x: [batch, length, d] → [batch, length, d]. Sub-modules: ln_1, attn, (ln_cross, cross_attn), ln_2, mlp.
  """
  n_head: int
  causal: bool = False
  pre_norm: bool = True
  cross_attention: bool = False
  mlp_ratio: int = 4
  activation: str = 'gelu_tanh'
  use_bias: bool = True
  dropout: float = 0.0
  layer_norm_eps: float = 1e-5
  attention_impl: str = 'auto'
  init_std: float = 0.02
  out_init_std: float = 0.02
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, *, mask=None, memory=None, memory_mask=None, train: bool = False, decode: bool = False):
    attn = lambda causal, name: MultiHeadAttention(
        self.n_head, causal, self.use_bias, self.dropout, self.attention_impl, self.init_std,
        self.out_init_std, self.dtype, name=name)
    norm = lambda name: layer_norm(self.layer_norm_eps, self.use_bias, self.dtype, name)
    mlp = MLP(self.mlp_ratio * x.shape[-1], self.activation, self.use_bias, self.dropout, self.init_std,
              self.out_init_std, self.dtype, name='mlp')
    sublayers = [('ln_1', lambda h: attn(self.causal, 'attn')(h, mask=mask, train=train, decode=decode))]
    if self.cross_attention:
      sublayers.append(('ln_cross', lambda h: attn(False, 'cross_attn')(
          h, memory=memory, mask=memory_mask, train=train)))
    sublayers.append(('ln_2', lambda h: mlp(h, train=train)))
    for ln_name, f in sublayers:
      if self.pre_norm:
        x = x + f(norm(ln_name)(x))
      else:
        x = norm(ln_name)(x + f(x))
    return x


class _LayerStep(nn.Module):
  """One Block as a scan step: (x, None) → (Block(x), None). `train` and `decode` are fields so that
  nn.scan and nn.remat see them as static."""
  block: dict
  train: bool = False
  decode: bool = False

  @nn.compact
  def __call__(self, x, _):
    return Block(**self.block, name='block')(x, train=self.train, decode=self.decode), None


def apply_blocks(module: nn.Module, x, n_layer: int, block: dict, *, train: bool, decode: bool,
                 scan: bool = False, remat: bool = False, prefix: str = 'h'):
  """x ← Block_l(x) for l = 1 … n_layer, with Block(**block).

  Unrolled (default): sub-modules `{prefix}_0 … {prefix}_{L-1}`. With `scan`, one `nn.scan` over a
  stacked `{prefix}` (parameters [L, ...]): compile time independent of depth. With `remat`, each
  layer's activations are recomputed in the backward pass instead of stored.
  Call from inside `module`'s compact method.
  """
  if not scan and not remat:
    for i in range(n_layer):
      x = Block(**block, parent=module, name=f'{prefix}_{i}')(x, train=train, decode=decode)
    return x
  step = nn.remat(_LayerStep, prevent_cse=not scan) if remat else _LayerStep
  if scan:
    stack = nn.scan(step, variable_axes={'params': 0, 'cache': 0}, split_rngs={'params': True, 'dropout': True},
                    length=n_layer)
    x, _ = stack(block, train, decode, parent=module, name=prefix)(x, None)
    return x
  for i in range(n_layer):
    x, _ = step(block, train, decode, parent=module, name=f'{prefix}_{i}')(x, None)
  return x


def _is_stacked(params: dict, key: str) -> bool:
  """Whether params[key] holds blocks that `apply_blocks(scan=True)` stacked along a leading layer axis:
  a `{prefix}/block` (remat's unstacked `{prefix}_i/block` ends in a layer index)."""
  entry = params.get(key)
  return isinstance(entry, dict) and set(entry) == {'block'} and not re.search(r'_\d+$', key)


def matrix_mask(params: dict):
  """True for each weight that is a matrix of the model's function (ndim ≥ 2: kernels, embeddings), False
  for biases and gains; the layer axis of scan-stacked blocks is not counted. Weight decay and the L2
  penalty use it."""
  def is_matrix(path, p):
    stacked = len(path) > 1 and _is_stacked(params, str(getattr(path[0], 'key', '')))
    return p.ndim - int(stacked) >= 2
  return jax.tree_util.tree_map_with_path(is_matrix, params)


def unrolled_blocks(params: dict, n_layer: int, prefix: str = 'h') -> dict:
  """`params` with its blocks as `{prefix}_0 … {prefix}_{L-1}`, whichever layout `apply_blocks` stored
  them in (scan: one `{prefix}/block` stacked [L, ...]; remat: `{prefix}_i/block`). Other entries pass
  through; a tree that is already unrolled comes back as it is."""
  out = dict(params)
  if _is_stacked(out, prefix):
    stacked = out.pop(prefix)['block']
    for i in range(n_layer):
      out[f'{prefix}_{i}'] = jax.tree.map(lambda x: x[i], stacked)
  for i in range(n_layer):
    layer = out.get(f'{prefix}_{i}')
    if isinstance(layer, dict) and set(layer) == {'block'}:
      out[f'{prefix}_{i}'] = layer['block']
  return out


def stored_blocks(params: dict, n_layer: int, scan: bool, remat: bool, prefix: str = 'h') -> dict:
  """The inverse of `unrolled_blocks`: unrolled blocks in the layout `apply_blocks(scan=…, remat=…)` uses."""
  out = dict(params)
  if not (scan or remat) or f'{prefix}_0' not in out:
    return out
  blocks = [out.pop(f'{prefix}_{i}') for i in range(n_layer)]
  if scan:
    out[prefix] = {'block': jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *blocks)}
  else:
    out.update({f'{prefix}_{i}': {'block': b} for i, b in enumerate(blocks)})
  return out
