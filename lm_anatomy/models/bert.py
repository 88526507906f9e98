"""BERT: a bidirectional Transformer encoder (Devlin et al. 2019), with its pretraining and task heads.

For input tokens x_1 … x_T (T ≤ block_size) with segments s_t ∈ {0, 1} and padding mask m_t ∈ {0, 1}:
  h⁰_t = LN_emb(E[x_t] + P[t] + S[s_t])                    E: [vocab, d], P: [block_size, d], S: [2, d]
  hˡ = Blockˡ(hˡ⁻¹),  l = 1 … n_layer                      post-LN blocks, attention over all positions
       Blockˡ(h) :  h ← LN_1(h + MultiHead(h; M));  h ← LN_2(h + MLP(h))
       M_ts = 0 if m_s = 1 else −∞                         no position attends to padding
  pooled = tanh(h^L_1 W_p + b_p)                           the [CLS] position, W_p: [d, d]

Heads on top (`head`):
  encoder   h^L                                            last hidden states (Hugging Face's BertModel)
  mlm       logits_t = LN_m(GELU(h^L_t W_m + b_m)) Eᵀ + b_v masked-LM scores, tied to the word embeddings E
  pretrain  (mlm logits, pooled W_nsp + b_nsp)             W_nsp: [d, 2], next-sentence scores
  classify  dropout(pooled) W_c + b_c                      W_c: [d, num_classes]

Padding tokens still get hidden states, but they never change those of real tokens: every real query's
softmax gives them weight exp(−∞) = 0. The MLP is GELU(h W_1 + b_1) W_2 + b_2 with W_1: [d, 4d] (exact,
erf-based GELU, as in BERT). Dropout follows the embeddings, the attention weights and each residual
branch. Initialisation follows BERT: N(0, 0.02²) for matrices and embeddings, zero biases.

The attention, MLP and block are `layers.Block` with `pre_norm=False`: the same code as GPT's.
`to_hf` / `from_hf` at the end map parameters to and from Hugging Face's `Bert*` names.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lm_anatomy.errors import ConfigError
from lm_anatomy.models import layers
from lm_anatomy.registry import MODELS

HEADS = ('encoder', 'mlm', 'pretrain', 'classify')


@MODELS.register('bert')
class BERT(nn.Module):
  """input_ids [batch, length] int32 (+ attention_mask, token_type_ids [batch, length]) → see `head`.

  Outputs: encoder → [batch, length, d]; mlm → [batch, length or P, vocab]; pretrain → (that,
  [batch, 2]); classify → [batch, num_classes]. All float32.
  """
  vocab_size: int = 0
  num_classes: int = 0          # classify head only (from the data)
  block_size: int = 512         # positions P
  n_layer: int = 12
  n_head: int = 12
  n_embd: int = 768
  mlp_ratio: int = 4
  type_vocab_size: int = 2      # segments S
  dropout: float = 0.1
  activation: str = 'gelu'
  layer_norm_eps: float = 1e-12
  head: str = 'mlm'             # one of HEADS
  pooler: bool = True           # build the [CLS] pooler (pretrain and classify need it)
  attention_impl: str = 'auto'
  dtype: str = 'float32'

  tasks, inputs = ('masked_lm', 'classify'), 'tokens'   # class attributes (config.validate); by head below
  HEAD_TASKS = {'encoder': (), 'mlm': ('masked_lm',), 'pretrain': ('masked_lm',), 'classify': ('classify',)}

  @staticmethod
  def check_run(config) -> None:
    """The head against the task and the data: each head trains one task; the next-sentence head needs
    sentence pairs (data.next_sentence) and two segment embeddings, and pairs need that head."""
    head, task = config.model.head, config.task.name
    if task not in BERT.HEAD_TASKS[head]:
      fits = [h for h, t in BERT.HEAD_TASKS.items() if task in t]
      raise ConfigError(f'model.head={head!r} cannot train task.name={task!r}; use model.head in {fits}')
    pairs = task == 'masked_lm' and config.data.next_sentence
    if head == 'pretrain' and not pairs:
      raise ConfigError("model.head='pretrain' adds the next-sentence loss, which needs data.next_sentence=True "
                        "(or use model.head='mlm')")
    if head == 'mlm' and pairs:
      raise ConfigError("data.next_sentence=True makes sentence pairs for the next-sentence loss, which "
                        "model.head='mlm' lacks; use model.head='pretrain'")
    if pairs and config.model.type_vocab_size < 2:
      raise ConfigError(f'sentence pairs need two segment embeddings; model.type_vocab_size is '
                        f'{config.model.type_vocab_size}')

  @staticmethod
  def check_config(cfg) -> None:
    for key in ('block_size', 'n_layer', 'n_head', 'n_embd', 'mlp_ratio', 'type_vocab_size'):
      if key in cfg and cfg[key] <= 0:
        raise ConfigError(f'model.{key} must be > 0, got {cfg[key]}')
    if cfg.get('n_embd', 768) % cfg.get('n_head', 12):
      raise ConfigError(f"model.n_embd ({cfg.get('n_embd', 768)}) must be divisible by "
                        f"model.n_head ({cfg.get('n_head', 12)})")
    if cfg.get('head', 'mlm') not in HEADS:
      raise ConfigError(f'unknown model.head={cfg.head!r}; choose one of {list(HEADS)}')
    if cfg.get('head', 'mlm') in ('pretrain', 'classify') and not cfg.get('pooler', True):
      raise ConfigError(f'model.head={cfg.head!r} reads the pooled [CLS] vector; set model.pooler=True')
    if cfg.get('activation', 'gelu') not in layers.ACTIVATIONS:
      raise ConfigError(f'unknown model.activation={cfg.activation!r}; choose one of {sorted(layers.ACTIVATIONS)}')
    layers.check_attention_impl(cfg.get('attention_impl', 'auto'), cfg.get('dtype', 'float32'))
    if not 0.0 <= cfg.get('dropout', 0.1) < 1.0:
      raise ConfigError(f'model.dropout must be in [0, 1), got {cfg.dropout}')

  def setup(self):
    dtype = jnp.dtype(self.dtype)
    d = self.n_embd
    self.token_embed = nn.Embed(self.vocab_size, d, embedding_init=layers.normal(0.02))
    self.position_embed = self.param('position_embed', layers.normal(0.02), (self.block_size, d), jnp.float32)
    self.segment_embed = nn.Embed(self.type_vocab_size, d, embedding_init=layers.normal(0.02))
    self.ln_embed = layers.layer_norm(self.layer_norm_eps, True, dtype, None)
    self.drop = nn.Dropout(self.dropout)
    self.blocks = [
        layers.Block(self.n_head, causal=False, pre_norm=False, mlp_ratio=self.mlp_ratio, activation=self.activation,
                     dropout=self.dropout, layer_norm_eps=self.layer_norm_eps, attention_impl=self.attention_impl,
                     dtype=dtype)
        for _ in range(self.n_layer)]
    if self.pooler:
      self.pool_dense = layers.Dense(d, dtype=dtype)
    if self.head in ('mlm', 'pretrain'):
      self.mlm_dense = layers.Dense(d, dtype=dtype)
      self.mlm_ln = layers.layer_norm(self.layer_norm_eps, True, dtype, None)
      self.mlm_bias = self.param('mlm_bias', nn.initializers.zeros, (self.vocab_size,), jnp.float32)
    if self.head == 'pretrain':
      self.nsp = layers.Dense(2)
    if self.head == 'classify':
      self.classifier = layers.Dense(self.num_classes)

  def embed(self, input_ids, token_type_ids=None, *, train: bool = False):
    """h⁰ = dropout(LN(E[x] + P[t] + S[s])). input_ids, token_type_ids: [B, T] → [B, T, d]."""
    T = input_ids.shape[1]
    if T > self.block_size:
      raise ValueError(f'input length {T} exceeds the {self.block_size} positions of this model (block_size)')
    if token_type_ids is None:
      token_type_ids = jnp.zeros_like(input_ids)
    x = self.token_embed(input_ids) + self.position_embed[None, :T] + self.segment_embed(token_type_ids)
    return self.drop(self.ln_embed(x), deterministic=not train)

  def encode(self, input_ids, attention_mask=None, token_type_ids=None, *, train: bool = False):
    """Last hidden states h^L [B, T, d] (float32). attention_mask [B, T]: 1 for tokens, 0 for padding."""
    x = self.embed(input_ids, token_type_ids, train=train)
    mask = None if attention_mask is None else (attention_mask > 0)[:, None, None, :]  # [B, 1, 1, T]
    for block in self.blocks:
      x = block(x, mask=mask, train=train)
    return x.astype(jnp.float32)

  def pool(self, hidden):
    """tanh(h^L_[CLS] W_p + b_p): hidden [B, T, d] → [B, d]."""
    return jnp.tanh(self.pool_dense(hidden[:, 0])).astype(jnp.float32)

  def masked_lm_logits(self, hidden, masked_positions=None):
    """Scores over the vocabulary at every position, or at `masked_positions` [B, P] only.

    hidden [B, T, d] → [B, T, vocab] (or [B, P, vocab]).
    """
    if masked_positions is not None:
      hidden = jnp.take_along_axis(hidden, masked_positions[..., None].astype(jnp.int32), axis=1)
    h = self.mlm_ln(layers.ACTIVATIONS[self.activation](self.mlm_dense(hidden)))
    B, P, d = h.shape
    logits = self.token_embed.attend(h.reshape(B * P, d).astype(jnp.float32)) + self.mlm_bias
    return logits.reshape(B, P, self.vocab_size)

  def __call__(self, input_ids, attention_mask=None, token_type_ids=None, *, masked_positions=None,
               train: bool = False):
    hidden = self.encode(input_ids, attention_mask, token_type_ids, train=train)
    if self.pooler and self.head in ('encoder', 'mlm') and self.is_initializing():
      self.pool(hidden)  # create the pooler's weights, so that they load and export; unused here
    if self.head == 'encoder':
      return hidden
    if self.head == 'mlm':
      return self.masked_lm_logits(hidden, masked_positions)
    pooled = self.pool(hidden)
    if self.head == 'pretrain':
      return self.masked_lm_logits(hidden, masked_positions), self.nsp(pooled).astype(jnp.float32)
    return self.classifier(self.drop(pooled, deterministic=not train)).astype(jnp.float32)

  def num_params(self, params, exclude_embeddings: bool = True) -> int:
    n = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
    return n - (int(np.prod(params['position_embed'].shape)) if exclude_embeddings else 0)

  def context_limit(self) -> int:
    return self.block_size


# ---------------------------------------------------------------------------------------------------
# Hugging Face names. Torch's nn.Linear stores weight [out, in]; our Dense kernel is [in, out].
# Our fused c_attn kernel [d, 3d] is [W_query | W_key | W_value] (each transposed).

HF_ACTIVATIONS = {'gelu': 'gelu', 'gelu_tanh': 'gelu_new', 'relu': 'relu', 'tanh': 'tanh'}
HF_ARCHITECTURES = {'encoder': 'BertModel', 'mlm': 'BertForMaskedLM', 'pretrain': 'BertForPreTraining',
                    'classify': 'BertForSequenceClassification'}
# Per layer: our path under blocks_{i} → Hugging Face's under encoder.layer.{i}.
_LAYER_LINEAR = {('attn', 'c_proj'): 'attention.output.dense', ('mlp', 'c_fc'): 'intermediate.dense',
                 ('mlp', 'c_proj'): 'output.dense'}
_LAYER_NORMS = {'ln_1': 'attention.output.LayerNorm', 'ln_2': 'output.LayerNorm'}


def _linear_to_hf(p) -> dict:
  return {'weight': np.asarray(p['kernel']).T, 'bias': np.asarray(p['bias'])}


def _norm_to_hf(p) -> dict:
  return {'weight': np.asarray(p['scale']), 'bias': np.asarray(p['bias'])}


def to_hf(model: BERT, params) -> tuple[dict, dict[str, np.ndarray]]:
  """(config.json dict, {name: array}) of the Hugging Face class for `model.head`."""
  act = HF_ACTIVATIONS.get(model.activation)
  if act is None:
    raise ConfigError(f'model.activation={model.activation!r} has no Hugging Face BERT equivalent; '
                      f'export supports {sorted(HF_ACTIVATIONS)}')
  d = model.n_embd
  config = {
      'architectures': [HF_ARCHITECTURES[model.head]], 'model_type': 'bert', 'vocab_size': model.vocab_size,
      'hidden_size': d, 'num_hidden_layers': model.n_layer, 'num_attention_heads': model.n_head,
      'intermediate_size': model.mlp_ratio * d, 'hidden_act': act, 'hidden_dropout_prob': model.dropout,
      'attention_probs_dropout_prob': model.dropout, 'max_position_embeddings': model.block_size,
      'type_vocab_size': model.type_vocab_size, 'initializer_range': 0.02, 'layer_norm_eps': model.layer_norm_eps,
      'pad_token_id': 0, 'position_embedding_type': 'absolute'}
  if model.head == 'classify':
    config['id2label'] = {str(i): f'LABEL_{i}' for i in range(model.num_classes)}
    config['label2id'] = {f'LABEL_{i}': i for i in range(model.num_classes)}
  t = {'embeddings.word_embeddings.weight': params['token_embed']['embedding'],
       'embeddings.position_embeddings.weight': params['position_embed'],
       'embeddings.token_type_embeddings.weight': params['segment_embed']['embedding']}
  t.update({f'embeddings.LayerNorm.{k}': v for k, v in _norm_to_hf(params['ln_embed']).items()})
  for i in range(model.n_layer):
    block, pre = params[f'blocks_{i}'], f'encoder.layer.{i}.'
    qkv_w, qkv_b = np.asarray(block['attn']['c_attn']['kernel']), np.asarray(block['attn']['c_attn']['bias'])
    for j, name in enumerate(('query', 'key', 'value')):
      t[f'{pre}attention.self.{name}.weight'] = qkv_w[:, j * d:(j + 1) * d].T
      t[f'{pre}attention.self.{name}.bias'] = qkv_b[j * d:(j + 1) * d]
    for (mod, lin), hf in _LAYER_LINEAR.items():
      t.update({f'{pre}{hf}.{k}': v for k, v in _linear_to_hf(block[mod][lin]).items()})
    for ln, hf in _LAYER_NORMS.items():
      t.update({f'{pre}{hf}.{k}': v for k, v in _norm_to_hf(block[ln]).items()})
  if 'pool_dense' in params:
    t.update({f'pooler.dense.{k}': v for k, v in _linear_to_hf(params['pool_dense']).items()})
  prefix = '' if model.head == 'encoder' else 'bert.'
  out = {prefix + k: v for k, v in t.items()}
  if model.head in ('mlm', 'pretrain'):
    out.update({f'cls.predictions.transform.dense.{k}': v for k, v in _linear_to_hf(params['mlm_dense']).items()})
    out.update({f'cls.predictions.transform.LayerNorm.{k}': v for k, v in _norm_to_hf(params['mlm_ln']).items()})
    out['cls.predictions.bias'] = params['mlm_bias']
  if model.head == 'pretrain':
    out.update({f'cls.seq_relationship.{k}': v for k, v in _linear_to_hf(params['nsp']).items()})
  if model.head == 'classify':
    out.update({f'classifier.{k}': v for k, v in _linear_to_hf(params['classifier']).items()})
  return config, {k: np.ascontiguousarray(np.asarray(v, np.float32)) for k, v in out.items()}


def _head_of(config: dict, tensors: dict) -> str:
  by_arch = {v: k for k, v in HF_ARCHITECTURES.items()}
  archs = config.get('architectures') or ()
  for arch in archs:
    if arch in by_arch:
      return by_arch[arch]
  if archs:
    raise ConfigError(f'unsupported BERT architecture {list(archs)}; supported: {sorted(by_arch)}')
  if 'classifier.weight' in tensors:
    return 'classify'
  if 'cls.seq_relationship.weight' in tensors:
    return 'pretrain'
  return 'mlm' if 'cls.predictions.bias' in tensors else 'encoder'


def model_config_from_hf(config: dict, tensors: dict) -> dict:
  """Our `config.model` fields (and vocab_size, num_classes) for a Hugging Face BERT config.json."""
  acts = {v: k for k, v in HF_ACTIVATIONS.items()} | {'gelu_pytorch_tanh': 'gelu_tanh'}
  if config.get('hidden_act') not in acts:
    raise ConfigError(f"unsupported BERT hidden_act={config.get('hidden_act')!r}; supported: {sorted(acts)}")
  if config.get('position_embedding_type', 'absolute') != 'absolute':
    raise ConfigError(f"unsupported BERT position_embedding_type={config['position_embedding_type']!r}; "
                      "only 'absolute' positions are implemented")
  d, inner = config['hidden_size'], config['intermediate_size']
  if inner % d:
    raise ConfigError(f'BERT intermediate_size ({inner}) must be a multiple of hidden_size ({d})')
  head = _head_of(config, tensors)
  names = {k[len('bert.'):] if k.startswith('bert.') else k for k in tensors}
  num_classes = len(config.get('id2label') or {}) or config.get('num_labels', 2) if head == 'classify' else 0
  return {'name': 'bert', 'vocab_size': config['vocab_size'], 'num_classes': num_classes,
          'block_size': config['max_position_embeddings'], 'n_layer': config['num_hidden_layers'],
          'n_head': config['num_attention_heads'], 'n_embd': d, 'mlp_ratio': inner // d,
          'type_vocab_size': config.get('type_vocab_size', 2), 'dropout': float(config.get('hidden_dropout_prob', 0.1)),
          'activation': acts[config['hidden_act']], 'layer_norm_eps': float(config.get('layer_norm_eps', 1e-12)),
          'head': head, 'pooler': 'pooler.dense.weight' in names}


def from_hf(config: dict, tensors: dict[str, np.ndarray]) -> tuple[dict, dict]:
  """(our model fields, params) from a Hugging Face BERT config.json and its tensors (any Bert* class)."""
  fields = model_config_from_hf(config, tensors)
  t = {k[len('bert.'):] if k.startswith('bert.') else k: np.asarray(v) for k, v in tensors.items()}

  def get(name):
    if name not in t:
      raise ConfigError(f'the BERT checkpoint has no tensor {name!r}')
    return t[name].astype(np.float32)

  linear = lambda pre: {'kernel': get(f'{pre}.weight').T, 'bias': get(f'{pre}.bias')}
  norm = lambda pre: {'scale': get(f'{pre}.weight'), 'bias': get(f'{pre}.bias')}
  params = {'token_embed': {'embedding': get('embeddings.word_embeddings.weight')},
            'position_embed': get('embeddings.position_embeddings.weight'),
            'segment_embed': {'embedding': get('embeddings.token_type_embeddings.weight')},
            'ln_embed': norm('embeddings.LayerNorm')}
  for i in range(fields['n_layer']):
    pre = f'encoder.layer.{i}.'
    qkv = [linear(f'{pre}attention.self.{n}') for n in ('query', 'key', 'value')]
    block = {'attn': {'c_attn': {'kernel': np.concatenate([p['kernel'] for p in qkv], axis=1),
                                 'bias': np.concatenate([p['bias'] for p in qkv])}},
             'mlp': {}}
    for (mod, lin), hf in _LAYER_LINEAR.items():
      block[mod][lin] = linear(pre + hf)
    for ln, hf in _LAYER_NORMS.items():
      block[ln] = norm(pre + hf)
    params[f'blocks_{i}'] = block
  if fields['pooler']:
    params['pool_dense'] = linear('pooler.dense')
  head = fields['head']
  if head in ('mlm', 'pretrain'):
    if not config.get('tie_word_embeddings', True):  # our masked-LM head always scores with Eᵀ
      raise ConfigError('this BERT checkpoint has a masked-LM decoder of its own (tie_word_embeddings=False); '
                        'only a decoder tied to the word embeddings is supported')
    params['mlm_dense'] = linear('cls.predictions.transform.dense')
    params['mlm_ln'] = norm('cls.predictions.transform.LayerNorm')
    params['mlm_bias'] = get('cls.predictions.bias' if 'cls.predictions.bias' in t else 'cls.predictions.decoder.bias')
  if head == 'pretrain':
    params['nsp'] = linear('cls.seq_relationship')
  if head == 'classify':
    params['classifier'] = linear('classifier')
  return fields, params
