import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lm_anatomy import generate
from lm_anatomy.models import layers
from lm_anatomy.models.gpt import GPT


# The model is a static argument, so each (model, input shapes) compiles once for the whole file. For this
# tiny GPT on the CPU one compiled program is quicker than running each operation on its own (this
# file: 60 → 35 s on 2 cores).
@functools.partial(jax.jit, static_argnums=0)
def apply(model, params, x):
  """model.apply({'params': params}, x): logits [batch, length, vocab]."""
  return model.apply({'params': params}, x)


@functools.partial(jax.jit, static_argnums=0, static_argnames='decode')
def init(model, x, decode=False):
  """model.init(key(0), x): every collection ('params', and 'cache' with decode)."""
  return model.init(jax.random.key(0), x, decode=decode)


@pytest.fixture(scope='module')
def gpt():
  model = GPT(vocab_size=11, block_size=12, n_layer=2, n_head=2, n_embd=16, bias=True)
  params = init(model, jnp.zeros((1, 12), jnp.int32))['params']
  return model, params


def _logits_of_each_context(model, params, prompt, new):
  """The logits before each of the `new` tokens [batch, n], each from a full forward pass over its context
  as generate's docstring defines it: the prompt's last block_size tokens and those generated since, and
  once that would pass block_size, the last block_size // 2 tokens at the rebuild and those since.
  → (n arrays [batch, vocab], the number of rebuilds)."""
  T = model.block_size
  tokens, start, rebuilds, out = prompt, max(prompt.shape[1] - T, 0), 0, []
  for i in range(new.shape[1]):
    if tokens.shape[1] - start > T:  # the context would pass block_size: keep its last T // 2 tokens
      start, rebuilds = tokens.shape[1] - T // 2, rebuilds + 1
    context = tokens[:, start:]
    padded = np.zeros((tokens.shape[0], T), np.int32)  # causal: the padding after the context is inert
    padded[:, :context.shape[1]] = context
    out.append(np.asarray(apply(model, params, padded))[:, context.shape[1] - 1])
    tokens = np.concatenate([tokens, new[:, i:i + 1]], 1)
  return out, rebuilds


def test_shapes_and_param_count(gpt):
  model, params = gpt
  logits = apply(model, params, jnp.zeros((3, 7), jnp.int32))
  assert logits.shape == (3, 7, 11) and logits.dtype == jnp.float32
  d, L, V, T = 16, 2, 11, 12
  per_block = 2 * 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d)
  assert model.num_params(params, exclude_embeddings=False) == V * d + T * d + L * per_block + 2 * d


def test_makemore_transformer_size_and_pytorch_init():
  """makemore's Transformer (4 layers, 4 heads, 64 wide, block 16, 27 symbols): an untied output layer
  without bias, 204,544 parameters, and PyTorch's default initialisation."""
  model = GPT(vocab_size=27, block_size=16, n_layer=4, n_head=4, n_embd=64, weight_init='pytorch', tie_embeddings=False)
  params = init(model, jnp.zeros((1, 16), jnp.int32))['params']
  assert model.num_params(params, exclude_embeddings=False) == 204_544
  assert params['lm_head']['kernel'].shape == (64, 27) and 'bias' not in params['lm_head']
  assert 0.95 < np.std(params['wte']['embedding']) < 1.05 and 0.9 < np.std(params['wpe']) < 1.1   # N(0, 1)
  fc = params['h_0']['mlp']['c_fc']
  for w, fan_in in ((fc['kernel'], 64), (fc['bias'], 64), (params['h_0']['mlp']['c_proj']['kernel'], 256)):
    assert np.abs(w).max() <= fan_in ** -0.5 and np.abs(w).max() > 0.9 * fan_in ** -0.5   # U(±1/√in)
  logits = apply(model, params, jnp.zeros((2, 5), jnp.int32))
  assert logits.shape == (2, 5, 27)


def test_gpt2_init_scales_the_residual_projections():
  """'gpt2' init: embeddings and kernels N(0, 0.02²), the c_proj kernels N(0, (0.02 / √(2L))²), biases 0."""
  L = 2
  model = GPT(vocab_size=11, block_size=8, n_layer=L, n_head=2, n_embd=64)
  params = init(model, jnp.zeros((1, 8), jnp.int32))['params']
  def check_std(w, std):  # a sample std of n normals has std ≈ σ / √(2n): allow 5 of those
    w = np.asarray(w)
    assert abs(np.std(w) / std - 1) < 5 / np.sqrt(2 * w.size), (w.shape, np.std(w), std)
  check_std(params['wte']['embedding'], 0.02)
  check_std(params['wpe'], 0.02)
  for i in range(L):
    attn, mlp = params[f'h_{i}']['attn'], params[f'h_{i}']['mlp']
    check_std(attn['c_attn']['kernel'], 0.02)
    check_std(mlp['c_fc']['kernel'], 0.02)
    check_std(attn['c_proj']['kernel'], 0.02 / np.sqrt(2 * L))
    check_std(mlp['c_proj']['kernel'], 0.02 / np.sqrt(2 * L))
    assert not any(np.any(m[n]['bias']) for m in (attn, mlp) for n in m)


def test_causal_future_tokens_do_not_change_past_logits(gpt):
  model, params = gpt
  x = jax.random.randint(jax.random.key(1), (2, 12), 0, 11)
  y = x.at[:, 8:].set((x[:, 8:] + 3) % 11)
  a, b = apply(model, params, x), apply(model, params, y)
  np.testing.assert_allclose(a[:, :8], b[:, :8], atol=1e-6)
  assert not np.allclose(a[:, 8:], b[:, 8:])


def test_fused_attention_path_matches_einsum(gpt):
  model, params = gpt
  x = jax.random.randint(jax.random.key(2), (2, 12), 0, 11)
  a = apply(model, params, x)
  b = apply(model.clone(attention_impl='xla'), params, x)
  np.testing.assert_allclose(a, b, atol=1e-5)


def test_causal_attention_with_fewer_queries_than_keys_agrees_across_impls():
  """Queries that are the last q_len positions see the same keys as in the full square attention."""
  q, k, v = (jax.random.normal(jax.random.key(i), (2, 3, 5, 4)) for i in range(3))
  full = layers.dot_product_attention(q, k, v, causal=True, impl='einsum')
  for impl in ('einsum', 'xla'):
    tail = layers.dot_product_attention(q[:, :, 2:], k, v, causal=True, impl=impl)
    np.testing.assert_allclose(tail, full[:, :, 2:], atol=1e-5)


def test_bfloat16_attention_scores_accumulate_in_float32():
  """In bfloat16 the einsum path takes q kᵀ in float32 (not rounded to bfloat16 first), as jax.nn's does:
  the two agree exactly."""
  q, k, v = (3 * jax.random.normal(jax.random.key(i), (2, 4, 16, 64)).astype(jnp.bfloat16) for i in range(3))
  einsum = layers.dot_product_attention(q, k, v, causal=True, impl='einsum')
  fused = layers.dot_product_attention(q, k, v, causal=True, impl='xla')
  assert einsum.dtype == jnp.bfloat16
  np.testing.assert_array_equal(np.asarray(einsum, np.float32), np.asarray(fused, np.float32))


def test_cudnn_attention_gets_a_mask_spanning_queries_and_keys(monkeypatch):
  """cuDNN's fused attention reads a mask only as a bias of full [q_len, kv_len] extent, so a padding mask
  [batch, 1, 1, kv_len] (BERT's) is broadcast before the call. jax.nn is stood in for here (no GPU)."""
  q, k, v = (jax.random.normal(jax.random.key(i), (2, 3, 5, 4)) for i in range(3))
  pad = jnp.array([[True] * 5, [True] * 3 + [False] * 2])[:, None, None, :]
  seen = []

  def fake(*args, mask=None, implementation=None, **kw):
    seen.append((implementation, mask.shape))
    return jax.nn.dot_product_attention.__wrapped__(*args, mask=mask, implementation='xla', **kw)

  fake.__wrapped__ = jax.nn.dot_product_attention
  monkeypatch.setattr(jax.nn, 'dot_product_attention', fake)
  got = layers.dot_product_attention(q, k, v, causal=False, mask=pad, impl='cudnn')
  assert seen == [('cudnn', (2, 1, 5, 5))]
  want = layers.dot_product_attention(q, k, v, causal=False, mask=pad, impl='einsum')
  np.testing.assert_allclose(got, want, atol=1e-6)


def test_attention_dropout_rescales_the_kept_probabilities():
  """Training-mode attention dropout: softmax probabilities times the keep mask (bernoulli(rng, 1 − p) of
  their shape), divided by 1 − p, then times V; the fused impl falls back to it."""
  q, k, v = np.random.default_rng(0).normal(size=(3, 2, 2, 6, 4)).astype(np.float32)
  rate, rng = 0.3, jax.random.key(9)
  got = [layers.dot_product_attention(q, k, v, causal=True, impl=impl, dropout_rate=rate, dropout_rng=rng)
         for impl in ('einsum', 'xla')]
  scores = np.einsum('bhqd,bhkd->bhqk', q, k, dtype=np.float64) / 2.0  # √d_h = 2
  scores = np.where(np.tril(np.ones((6, 6), bool)), scores, -np.inf)
  probs = np.exp(scores - scores.max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  keep = np.asarray(jax.random.bernoulli(rng, 1.0 - rate, probs.shape))
  assert 0.5 < keep.mean() < 0.9
  want = np.einsum('bhqk,bhkd->bhqd', probs * keep / (1.0 - rate), v.astype(np.float64))
  for out in got:
    np.testing.assert_allclose(out, want, atol=1e-6)


def test_kv_cache_gives_the_full_forward_logits(gpt):
  model, params = gpt
  x = jax.random.randint(jax.random.key(3), (2, 12), 0, 11)
  full = apply(model, params, x)
  cache = init(model, jnp.zeros((2, 12), jnp.int32), decode=True)['cache']
  decode = jax.jit(functools.partial(model.apply, decode=True, mutable=['cache']))
  out, mut = decode({'params': params, 'cache': cache}, x[:, :5])
  steps = [out]
  cache = mut['cache']
  for t in range(5, 12):
    out, mut = decode({'params': params, 'cache': cache}, x[:, t:t + 1])
    cache = mut['cache']
    steps.append(out)
  np.testing.assert_allclose(jnp.concatenate(steps, 1), full, atol=1e-5)


def test_generate_with_and_without_cache_agree(gpt):
  model, params = gpt
  prompt = np.array([[1, 2, 3], [4, 5, 6]], np.int32)
  # Greedy, within the context window: identical tokens.
  a = generate.generate(model, params, prompt, 9, jax.random.key(0), temperature=0.0)
  b = generate.generate(model, params, prompt, 9, jax.random.key(0), temperature=0.0, use_cache=False)
  np.testing.assert_array_equal(a, b)
  # Sampled, within the window: new token i is drawn with fold_in(key, i) on both paths, so one seed
  # gives one text.
  a = generate.generate(model, params, prompt, 9, jax.random.key(7), temperature=1.0)
  b = generate.generate(model, params, prompt, 9, jax.random.key(7), temperature=1.0, use_cache=False)
  np.testing.assert_array_equal(a, b)
  assert len(np.unique(a)) > 2   # really sampled
  # Past the window (block 12): still the requested length, and a long prompt is cropped.
  long = generate.generate(model, params, np.tile(prompt, (1, 10)), 40, jax.random.key(0), top_k=3)
  assert long.shape == (2, 40) and long.min() >= 0 and long.max() < 11
  for use_cache in (True, False):
    assert generate.generate(model, params, prompt, 0, jax.random.key(0), use_cache=use_cache).shape == (2, 0)


def test_cached_generation_past_block_size_rebuilds_from_the_last_half(gpt):
  """Greedy past block_size (12): each new token is the argmax of a full forward pass over its context as
  generate's docstring defines it: the text, and once that would pass block_size, the last block_size // 2
  tokens at the rebuild followed by those generated since."""
  model, params = gpt
  params = jax.tree.map(lambda p: 20 * p, params)  # larger weights: greedy does not settle on one token
  B, T, n = 2, model.block_size, 21  # a prompt of T // 2: 7 tokens per cache, two rebuilds
  tokens = np.asarray(jax.random.randint(jax.random.key(7), (B, T // 2), 0, 11), np.int32)
  out = generate.generate(model, params, tokens, n, jax.random.key(0), temperature=0.0)
  all_logits, rebuilds = _logits_of_each_context(model, params, tokens, out)
  for i, logits in enumerate(all_logits):
    top2 = np.sort(logits, -1)[:, -2:]
    assert (top2[:, 1] - top2[:, 0] > 1e-3).all()  # no near-tie: the argmax is well defined
    np.testing.assert_array_equal(out[:, i], logits.argmax(-1), err_msg=f'token {i}')
  assert rebuilds == 2 and min(len(set(row)) for row in out.tolist()) >= 3


def test_temperature_divides_the_logits():
  """sample_logits at temperature T draws categorical(key, logits / T) with the key it is given."""
  logits = jnp.array([[2.0, 1.0, 0.5, -1.0, 0.0]])
  temps = (0.5, 2.0)
  def both(key):
    got = [generate.sample_logits(logits, key, temperature=t)[0] for t in temps]
    return jnp.stack(got), jnp.stack([jax.random.categorical(key, logits / t, -1)[0] for t in temps])
  got, want = jax.jit(jax.vmap(both))(jax.random.split(jax.random.key(3), 500))
  np.testing.assert_array_equal(got, want)
  assert all(len(set(np.asarray(g).tolist())) >= 4 for g in got.T)  # really sampled


@pytest.mark.parametrize('settings, message', [
    (dict(temperature=float('nan')), 'temperature must be a finite number >= 0'),
    (dict(temperature=-1.0), 'temperature must be'),
    (dict(top_p=0.0), r'top_p must be in \(0, 1\], got 0.0'),
    (dict(top_p=1.5), 'top_p must be'),
    (dict(top_k=-1), 'top_k must be an integer >= 0'),
    (dict(top_k=2.5), r'top_k must be an integer >= 0 \(0 = no limit\), got 2.5'),
])
def test_bad_sampling_settings_are_clear_errors(gpt, settings, message):
  model, params = gpt
  logits = jnp.zeros((1, 11))
  with pytest.raises(ValueError, match=message):
    generate.sample_logits(logits, jax.random.key(0), **settings)
  with pytest.raises(ValueError, match=message):
    generate.generate(model, params, np.array([[1, 2]]), 3, jax.random.key(0), **settings)


@pytest.mark.parametrize('prompt, message', [
    ([[1000]], r'prompt ids must lie in \[0, 11\), got 1000 … 1000'),   # gave NaN logits and token 0
    ([[-5, 2]], r'prompt ids must lie in \[0, 11\), got -5 … 2'),       # wrapped around to id 6
    ([[3.7]], 'prompt must be integer ids'),                             # was cut to 3
])
def test_prompt_ids_outside_the_vocabulary_are_clear_errors(gpt, prompt, message):
  model, params = gpt
  with pytest.raises(ValueError, match=message):
    generate.generate(model, params, np.array(prompt), 3, jax.random.key(0))


def test_a_subnormal_temperature_is_greedy():
  logits = jnp.array([[1.0, 3.0, 2.0]] * 50)
  for t in (1e-40, 1e-7):  # 1e-40 flushed to 0 on CPU, and logits / 0 made every token tie at +inf
    assert (np.asarray(generate.sample_logits(logits, jax.random.key(0), temperature=t)) == 1).all()


def test_input_longer_than_block_size_is_a_clear_error(gpt):
  model, params = gpt
  with pytest.raises(ValueError, match='input of 13 tokens is longer than block_size=12'):
    model.apply({'params': params}, jnp.zeros((1, 13), jnp.int32))


def test_top_k_and_top_p_filters():
  logits = jnp.log(jnp.array([[0.5, 0.3, 0.15, 0.05]]))
  def draws(n, **filters):  # n draws, one key each
    sample = lambda key: generate.sample_logits(logits, key, **filters)[0]
    return set(np.asarray(jax.jit(jax.vmap(sample))(jax.random.split(jax.random.key(0), n))).tolist())
  assert draws(200, top_k=2) == {0, 1}
  # cumulative 0.5, 0.8, …: the nucleus for 0.7 is exactly {0, 1} (kept 0.625 / 0.375); 200 draws miss
  # one of them with probability < 0.625²⁰⁰ + 0.375²⁰⁰ ≈ 1e-41
  assert draws(200, top_p=0.7) == {0, 1}
  assert draws(50, top_p=0.4) == {0}


def test_scanned_and_rematerialised_layers_compute_the_same_function(gpt):
  model, params = gpt
  x = jax.random.randint(jax.random.key(4), (2, 12), 0, 11)
  scanned = model.clone(scan_layers=True)
  stacked = layers.stored_blocks(params, model.n_layer, scan=True, remat=False)
  init_tree = jax.eval_shape(scanned.init, jax.random.key(0), x)['params']
  assert jax.tree.structure(init_tree) == jax.tree.structure(stacked)
  ref = apply(model, params, x)
  np.testing.assert_allclose(apply(scanned, stacked, x), ref, atol=1e-5)
  remat = model.clone(remat=True)
  remat_params = layers.stored_blocks(params, model.n_layer, scan=False, remat=True)
  np.testing.assert_allclose(apply(remat, remat_params, x), ref, atol=1e-5)
  loss = lambda m, p: jnp.mean(m.apply({'params': p}, x) ** 2)
  g_ref = jax.jit(jax.grad(functools.partial(loss, model)))(params)
  g_remat = jax.jit(jax.grad(functools.partial(loss, remat)))(remat_params)
  np.testing.assert_allclose(g_remat['h_1']['block']['mlp']['c_fc']['kernel'], g_ref['h_1']['mlp']['c_fc']['kernel'],
                             atol=1e-6)


def test_bfloat16_compute_keeps_float32_params_and_logits(gpt):
  model, params = gpt
  x = jax.random.randint(jax.random.key(5), (2, 12), 0, 11)
  bf16 = model.clone(dtype='bfloat16')
  shapes = jax.eval_shape(bf16.init, jax.random.key(0), x)['params']
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(shapes))
  logits = apply(bf16, params, x)
  assert logits.dtype == jnp.float32
  ref = apply(model, params, x)
  err, scale = float(jnp.max(jnp.abs(logits - ref))), float(jnp.max(jnp.abs(ref)))
  # bf16 rounding shows (relative step 2⁻⁸ ≈ 0.4%; here 0.44% of the largest logit), but the function is
  # the same: within 1% of the largest logit. Running LayerNorm or the residual stream in bf16 would not be.
  assert 0 < err < 0.01 * scale, (err, scale)


def test_cached_sampling_crops_the_prompt_and_draws_token_i_with_fold_in_i(gpt):
  """Sampled from a prompt longer than block_size (12): the prompt is cropped to its last 12 tokens, the
  cache is rebuilt from the last 6 whenever the context would pass 12, and new token i is
  categorical(fold_in(key, i), logits) of a full forward pass over its context, across the rebuilds."""
  model, params = gpt
  params = jax.tree.map(lambda p: 5 * p, params)  # larger weights: the context matters, the draw still varies
  B, T, n, key = 2, model.block_size, 20, jax.random.key(5)
  tokens = np.asarray(jax.random.randint(jax.random.key(8), (B, T + 3), 0, 11), np.int32)
  out = generate.generate(model, params, tokens, n, key)
  all_logits, rebuilds = _logits_of_each_context(model, params, tokens, out)
  for i, logits in enumerate(all_logits):
    k = jax.random.fold_in(key, i)
    top2 = np.sort(logits + np.asarray(jax.random.gumbel(k, logits.shape)), -1)[:, -2:]
    assert (top2[:, 1] - top2[:, 0] > 1e-3).all()  # no near-tie: the draw is well defined
    np.testing.assert_array_equal(out[:, i], jax.random.categorical(k, jnp.asarray(logits)), err_msg=f'token {i}')
  assert rebuilds == 3 and min(len(set(row)) for row in out.tolist()) >= 3


def test_block_size_one_sees_only_the_last_token():
  """block_size 1: each token is predicted from the one before it alone (the cache is rebuilt from
  max(1 // 2, 1) = 1 token), so greedy text follows a table of the model's logits after each single token."""
  model = GPT(vocab_size=11, block_size=1, n_layer=1, n_head=1, n_embd=8)
  params = jax.tree.map(lambda p: 20 * p, init(model, jnp.zeros((1, 1), jnp.int32))['params'])
  table = np.asarray(apply(model, params, jnp.arange(11)[:, None]))[:, 0]   # [token, logits of the next]
  top2 = np.sort(table, -1)[:, -2:]
  assert (top2[:, 1] - top2[:, 0] > 1e-3).all()
  prompt = np.array([[3, 1], [7, 4]], np.int32)
  want, prev = [], prompt[:, -1]
  for _ in range(8):
    prev = table[prev].argmax(-1)
    want.append(prev)
  for use_cache in (True, False):
    got = generate.generate(model, params, prompt, 8, jax.random.key(0), temperature=0.0, use_cache=use_cache)
    np.testing.assert_array_equal(got, np.stack(want, 1))


def test_top_p_set_whose_mass_equals_top_p_reaches_it():
  """Four equal logits, 0.25 each (exact in float32): top_p 0.25, 0.5, 0.75 keep exactly 1, 2, 3 tokens
  (a set whose mass equals top_p reaches it), a hair above keeps one more. Each of the 300 rows draws
  once; they miss a kept token with probability < 4 · 0.75³⁰⁰."""
  logits = jnp.zeros((300, 4))
  for top_p, kept in ((0.25, 1), (0.5, 2), (0.75, 3), (0.5001, 3), (0.7501, 4)):
    draws = generate.sample_logits(logits, jax.random.key(0), top_p=top_p)
    assert len(set(np.asarray(draws).tolist())) == kept, top_p


def test_top_k_at_or_above_the_vocabulary_keeps_every_token():
  """top_k ≥ vocab_size (the CLI's default 200 on a small vocabulary) filters nothing: the same draws as
  categorical(key, logits)."""
  logits = jnp.tile(jnp.array([[2.0, 1.0, 0.5, -1.0, 0.0]]), (300, 1))
  plain = np.asarray(jax.random.categorical(jax.random.key(1), logits))
  assert len(set(plain.tolist())) == 5
  for top_k in (5, 6, 200):
    np.testing.assert_array_equal(generate.sample_logits(logits, jax.random.key(1), top_k=top_k), plain)
