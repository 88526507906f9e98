"""GPT-2: a decoder-only Transformer language model (Radford et al. 2019), in nanoGPT's names.

For input tokens x_1 … x_T (T ≤ block_size):
  h⁰_t = E[x_t] + P[t]                                     E: [vocab, d] tokens, P: [block_size, d] positions
  hˡ = Blockˡ(hˡ⁻¹),  l = 1 … n_layer                      pre-LN blocks with causal self-attention
       Blockˡ(h) :  h ← h + MultiHead_causal(LN_1(h));  h ← h + MLP(LN_2(h))
  logits_t = LN_f(h^L_t) Eᵀ                                tied output embedding
  p(x_{t+1} | x_≤t) = softmax(logits_t)

Attention at position t sees positions ≤ t only (mask M_ts = −∞ for s > t). The MLP is
GELU(h W_1 + b_1) W_2 + b_2 with W_1: [d, 4d]; GELU is GPT-2's tanh form ½z(1 + tanh(√(2/π)(z + 0.044715z³)))
by default (`activation='gelu_tanh'`; 'gelu' is the exact zΦ(z)). Dropout follows the embeddings, the attention weights,
and each residual branch.

Initialisation (`weight_init`): 'gpt2' (default) is GPT-2's, N(0, 0.02²) for embeddings and weights, the
residual output projections scaled by 1/√(2·n_layer), biases zero. 'pytorch' is PyTorch's defaults, as
makemore's Transformer uses them: embeddings N(0, 1), weights and biases U(−1/√in, 1/√in).
With `tie_embeddings=False` the output layer is its own matrix W_out: [d, vocab] (no bias), as in
makemore: logits_t = LN_f(h^L_t) W_out.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lm_anatomy.errors import ConfigError
from lm_anatomy.models import layers
from lm_anatomy.registry import MODELS


INITS = ('gpt2', 'pytorch')


@MODELS.register('gpt')
class GPT(nn.Module):
  """idx: [batch, length] int32 → logits [batch, length, vocab_size] float32."""
  vocab_size: int = 0
  block_size: int = 256
  n_layer: int = 6
  n_head: int = 6
  n_embd: int = 384
  dropout: float = 0.0
  bias: bool = True
  activation: str = 'gelu_tanh'
  layer_norm_eps: float = 1e-5
  attention_impl: str = 'auto'
  weight_init: str = 'gpt2'         # 'gpt2' | 'pytorch' (see the module docstring)
  tie_embeddings: bool = True       # logits from Eᵀ; False: a separate output matrix
  scan_layers: bool = False         # one nn.scan over stacked layers: compile time independent of depth
  remat: bool = False               # recompute each layer's activations in the backward pass
  dtype: str = 'float32'

  decoding = 'cache'                # class attribute, not a config field: sampling uses a KV cache (generate.py)
  tasks, inputs = ('causal_lm',), 'tokens'   # class attributes: what it serves, what it reads (config.validate)

  @staticmethod
  def check_config(cfg) -> None:
    for key in ('block_size', 'n_layer', 'n_head', 'n_embd'):
      if cfg.get(key, 1) <= 0:
        raise ConfigError(f'model.{key} must be > 0, got {cfg[key]}')
    if cfg.get('n_embd', 384) % cfg.get('n_head', 6):
      raise ConfigError(f"model.n_embd ({cfg.get('n_embd', 384)}) must be divisible by "
                        f"model.n_head ({cfg.get('n_head', 6)})")
    if cfg.get('activation', 'gelu_tanh') not in layers.ACTIVATIONS:
      raise ConfigError(f"unknown model.activation={cfg.activation!r}; choose one of {sorted(layers.ACTIVATIONS)}")
    layers.check_attention_impl(cfg.get('attention_impl', 'auto'), cfg.get('dtype', 'float32'))
    if not 0.0 <= cfg.get('dropout', 0.0) < 1.0:
      raise ConfigError(f'model.dropout must be in [0, 1), got {cfg.dropout}')
    if cfg.get('weight_init', 'gpt2') not in INITS:
      raise ConfigError(f"unknown model.weight_init={cfg.weight_init!r}; choose one of {list(INITS)}")

  @nn.compact
  def __call__(self, idx, *, train: bool = False, decode: bool = False):
    B, T = idx.shape
    if T > self.block_size:
      raise ValueError(f'input of {T} tokens is longer than block_size={self.block_size}, the positions the '
                       'model has; crop it to its last block_size tokens')
    dtype = jnp.dtype(self.dtype)
    gpt2 = self.weight_init == 'gpt2'
    embedding_init = layers.normal(0.02 if gpt2 else 1.0)
    wte = nn.Embed(self.vocab_size, self.n_embd, embedding_init=embedding_init, dtype=dtype,
                   param_dtype=jnp.float32, name='wte')
    wpe = self.param('wpe', embedding_init, (self.block_size, self.n_embd), jnp.float32)
    if decode:
      # Position of the first new token: how many tokens the cache already holds.
      initialised = self.has_variable('cache', 'position')
      position = self.variable('cache', 'position', lambda: jnp.array(0, jnp.int32))
      start = position.value if initialised else 0
      if initialised:
        position.value = start + T
      pos = jax.lax.dynamic_slice_in_dim(wpe, start, T, axis=0)
    else:
      pos = wpe[:T]
    x = (wte(idx) + pos[None]).astype(dtype)
    x = nn.Dropout(self.dropout)(x, deterministic=not train)
    block = dict(n_head=self.n_head, causal=True, pre_norm=True, activation=self.activation, use_bias=self.bias,
                 dropout=self.dropout, layer_norm_eps=self.layer_norm_eps, attention_impl=self.attention_impl,
                 init_std=0.02 if gpt2 else None, out_init_std=0.02 / np.sqrt(2 * self.n_layer) if gpt2 else None,
                 dtype=dtype)
    x = layers.apply_blocks(self, x, self.n_layer, block, train=train, decode=decode, scan=self.scan_layers,
                            remat=self.remat)
    x = layers.layer_norm(self.layer_norm_eps, self.bias, dtype, 'ln_f')(x)
    x = x.reshape(B * T, self.n_embd)
    if self.tie_embeddings:
      logits = wte.attend(x)  # in the compute dtype; loss and softmax in float32
    else:
      logits = layers.Dense(self.vocab_size, False, 0.02 if gpt2 else None, dtype, name='lm_head')(x)
    return logits.astype(jnp.float32).reshape(B, T, self.vocab_size)

  def num_params(self, params, exclude_embeddings: bool = True) -> int:
    n = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
    return n - (int(np.prod(params['wpe'].shape)) if exclude_embeddings else 0)

  def flops_per_token(self, seq_len: int, params) -> float:
    """Training FLOPs per token: 6N + 12·L·H·Q·T (PaLM appendix B; nanoGPT's estimate_mfu). N is nanoGPT's:
    every parameter but the position embeddings (LayerNorm gains and biases included, which enter no
    matrix product: 0.14% of N for the baby model), less the token embeddings when the output layer is
    untied (they are then a lookup; lm_head does the product)."""
    head_dim = self.n_embd // self.n_head
    n = self.num_params(params) - (0 if self.tie_embeddings else int(np.prod(params['wte']['embedding'].shape)))
    return 6 * n + 12 * self.n_layer * self.n_head * head_dim * seq_len

  def context_limit(self) -> int:
    return self.block_size


# ---------------------------------------------------------------------------------------------------
# Hugging Face's GPT2LMHeadModel names. GPT-2's Conv1D stores weight [in, out], like our Dense kernel,
# and its fused c_attn [d, 3d] is [W_q | W_k | W_v] as ours: the tensors map one to one.

HF_ACTIVATIONS = {'gelu_tanh': 'gelu_new', 'gelu': 'gelu', 'relu': 'relu'}
_HF_BLOCK = ('ln_1', 'attn/c_attn', 'attn/c_proj', 'ln_2', 'mlp/c_fc', 'mlp/c_proj')


def to_hf(model: GPT, params) -> tuple[dict, dict[str, np.ndarray]]:
  """(config.json dict, {name: array}) for Hugging Face's GPT2LMHeadModel. Without biases
  (`bias=False`) the exported biases are zeros, which computes the same function, and config.json says
  `lm_anatomy_bias: false` (transformers keeps the key and ignores it) so that `from_hf` drops them again."""
  if model.activation not in HF_ACTIVATIONS:
    raise ConfigError(f'model.activation={model.activation!r} has no GPT-2 equivalent; export supports '
                      f'{sorted(HF_ACTIVATIONS)}')
  config = {'architectures': ['GPT2LMHeadModel'], 'model_type': 'gpt2', 'vocab_size': model.vocab_size,
            'n_positions': model.block_size, 'n_embd': model.n_embd, 'n_layer': model.n_layer,
            'n_head': model.n_head, 'n_inner': None, 'activation_function': HF_ACTIVATIONS[model.activation],
            'resid_pdrop': model.dropout, 'embd_pdrop': model.dropout, 'attn_pdrop': model.dropout,
            'layer_norm_epsilon': model.layer_norm_eps, 'initializer_range': 0.02,
            'tie_word_embeddings': model.tie_embeddings, 'lm_anatomy_bias': model.bias}
  params = layers.unrolled_blocks(params, model.n_layer)  # scan / remat layouts hold the same weights
  t = {'transformer.wte.weight': params['wte']['embedding'], 'transformer.wpe.weight': params['wpe']}
  if not model.tie_embeddings:
    t['lm_head.weight'] = np.asarray(params['lm_head']['kernel']).T
  groups = [('transformer.ln_f', params['ln_f'])]
  for i in range(model.n_layer):
    for path in _HF_BLOCK:
      p = params[f'h_{i}']
      for part in path.split('/'):
        p = p[part]
      groups.append((f"transformer.h.{i}.{path.replace('/', '.')}", p))
  for name, p in groups:
    weight = p['scale'] if 'scale' in p else p['kernel']
    t[f'{name}.weight'] = weight
    t[f'{name}.bias'] = p['bias'] if 'bias' in p else np.zeros(weight.shape[-1], np.float32)
  return config, {k: np.ascontiguousarray(np.asarray(v, np.float32)) for k, v in t.items()}


def from_hf(config: dict, tensors: dict[str, np.ndarray]) -> tuple[dict, dict]:
  """(our model fields, params) from a Hugging Face GPT-2 config.json and its tensors."""
  acts = {v: k for k, v in HF_ACTIVATIONS.items()} | {'gelu_pytorch_tanh': 'gelu_tanh', 'gelu_fast': 'gelu_tanh'}
  act = config.get('activation_function', 'gelu_new')
  if act not in acts:
    raise ConfigError(f'unsupported GPT-2 activation_function={act!r}; supported: {sorted(acts)}')
  for key, plain in (('scale_attn_weights', True), ('scale_attn_by_inverse_layer_idx', False),
                     ('reorder_and_upcast_attn', False)):
    if config.get(key, plain) != plain:
      raise ConfigError(f'unsupported GPT-2 option {key}={config[key]!r} (only {plain!r} is implemented)')
  d = config['n_embd']
  if config.get('n_inner') not in (None, 4 * d):
    raise ConfigError(f"unsupported GPT-2 n_inner={config['n_inner']} (only 4·n_embd = {4 * d})")
  t = {k[len('transformer.'):] if k.startswith('transformer.') else k: np.asarray(v, np.float32)
       for k, v in tensors.items()}

  def get(name):
    if name not in t:
      raise ConfigError(f'the GPT-2 checkpoint has no tensor {name!r}')
    return t[name]

  tied = config.get('tie_word_embeddings', True)
  params = {'wte': {'embedding': get('wte.weight')}, 'wpe': get('wpe.weight'),
            'ln_f': {'scale': get('ln_f.weight'), 'bias': get('ln_f.bias')}}
  if not tied:
    params['lm_head'] = {'kernel': np.ascontiguousarray(get('lm_head.weight').T)}
  for i in range(config['n_layer']):
    block: dict = {'attn': {}, 'mlp': {}}
    for path in _HF_BLOCK:
      name = f"h.{i}.{path.replace('/', '.')}"
      first = 'scale' if path.startswith('ln') else 'kernel'
      leaf = {first: get(f'{name}.weight'), 'bias': get(f'{name}.bias')}
      if '/' in path:
        mod, sub = path.split('/')
        block[mod][sub] = leaf
      else:
        block[path] = leaf
    params[f'h_{i}'] = block
  bias = bool(config.get('lm_anatomy_bias', True))  # False: our export of a GPT without biases (all zeros)
  if not bias:
    params, biases = _split_biases(params)
    if any(np.any(b != 0) for b in biases):
      raise ConfigError('config.json says lm_anatomy_bias=false, but the checkpoint has non-zero biases')
  fields = {'name': 'gpt', 'vocab_size': config['vocab_size'], 'block_size': config['n_positions'],
            'n_layer': config['n_layer'], 'n_head': config['n_head'], 'n_embd': d,
            'dropout': float(config.get('resid_pdrop', 0.0)), 'bias': bias, 'activation': acts[act],
            'layer_norm_eps': float(config.get('layer_norm_epsilon', 1e-5)), 'tie_embeddings': bool(tied)}
  return fields, params


def _split_biases(tree: dict) -> tuple[dict, list]:
  """(`tree` without its 'bias' entries, those biases)."""
  kept, biases = {}, []
  for k, v in tree.items():
    if k == 'bias':
      biases.append(v)
    elif isinstance(v, dict):
      kept[k], inner = _split_biases(v)
      biases += inner
    else:
      kept[k] = v
  return kept, biases
