"""The pre-Transformer models: PyTorch parity of the recurrent cells, carries, causality, windows, sizes."""
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lm_anatomy import config as config_lib
from lm_anatomy import engine, generate
from lm_anatomy.errors import ConfigError
from lm_anatomy.models.bigram import Bigram
from lm_anatomy.models.ffnn import FFNN
from lm_anatomy.models.rnn import GRU, LSTM, RNN
from conftest import load_config

FIXTURE = pathlib.Path(__file__).parent / 'fixtures' / 'rnn_reference.npz'
RECURRENT = {'rnn': RNN, 'lstm': LSTM, 'gru': GRU}


def _from_torch(ref, cell: str, n_layer: int) -> dict:
  """Our parameter tree from PyTorch's weights (tests/fixtures/make_rnn_reference.py)."""
  g = lambda k: jnp.asarray(ref[f'{cell}.{k}'])
  params = {'wte': {'embedding': g('embedding')},
            'lm_head': {'kernel': g('head.weight').T, 'bias': g('head.bias')},
            'h0': jnp.zeros((n_layer, g('weight_hh_l0').shape[1]))}
  if cell == 'lstm':
    params['c0'] = params['h0']
  for l in range(n_layer):
    params[f'layer_{l}'] = {'w_ih': g(f'weight_ih_l{l}').T, 'w_hh': g(f'weight_hh_l{l}').T,
                            'b_ih': g(f'bias_ih_l{l}'), 'b_hh': g(f'bias_hh_l{l}')}
  return params


@pytest.mark.parametrize('cell', ['lstm', 'gru', 'rnn'])
def test_matches_pytorch_with_the_same_weights(cell):
  ref = np.load(FIXTURE)
  V, E = ref[f'{cell}.embedding'].shape
  n_layer, _, H = ref[f'{cell}.h0'].shape
  model = RECURRENT[cell](vocab_size=V, n_layer=n_layer, n_embd=E, n_hidden=H)
  params = _from_torch(ref, cell, n_layer)
  # The tree has exactly the model's own structure and shapes.
  own = jax.eval_shape(model.init, jax.random.key(0), jnp.asarray(ref[f'{cell}.idx']))['params']
  assert jax.tree.map(jnp.shape, own) == jax.tree.map(jnp.shape, params)
  keys = ('h0', 'c0') if cell == 'lstm' else ('h0',)
  carry = tuple(jnp.asarray(ref[f'{cell}.{k}']) for k in keys)
  logits, final = model.apply({'params': params}, jnp.asarray(ref[f'{cell}.idx']), carry, method='forward')
  np.testing.assert_allclose(logits, ref[f'{cell}.logits'], atol=1e-5, rtol=0)
  for got, key in zip(final, ('h_n', 'c_n')):
    np.testing.assert_allclose(got, ref[f'{cell}.{key}'], atol=1e-5, rtol=0)


@pytest.mark.parametrize('cell', ['rnn', 'lstm', 'gru'])
def test_carry_over_chunks_equals_one_pass(cell):
  model = RECURRENT[cell](vocab_size=13, n_layer=2, n_embd=8, n_hidden=10)
  idx = jax.random.randint(jax.random.key(1), (3, 20), 0, 13)
  params = model.init(jax.random.key(0), idx)['params']
  params['h0'] = jax.random.normal(jax.random.key(2), params['h0'].shape)  # a non-trivial learned start
  whole, whole_carry = model.apply({'params': params}, idx, method='forward')
  np.testing.assert_array_equal(whole, model.apply({'params': params}, idx))
  carry, pieces = None, []
  for start, stop in ((0, 7), (7, 8), (8, 20)):
    logits, carry = model.apply({'params': params}, idx[:, start:stop], carry, method='forward')
    pieces.append(logits)
  np.testing.assert_allclose(jnp.concatenate(pieces, 1), whole, atol=1e-5)
  for a, b in zip(carry, whole_carry):
    np.testing.assert_allclose(a, b, atol=1e-5)
  assert len(carry) == (2 if cell == 'lstm' else 1) and carry[0].shape == (2, 3, 10)
  # `carry=` on __call__ starts from the given state; a zero state differs from the learned start.
  zero = model.zero_carry(3)
  assert not np.allclose(model.apply({'params': params}, idx, carry=zero), whole)
  with pytest.raises(ValueError, match=r'carry must be'):
    model.apply({'params': params}, idx, carry=model.zero_carry(2))


@pytest.mark.parametrize('cell', ['lstm', 'gru'])
def test_sampling_carries_the_state(cell):
  """generate() feeds one token at a time through the carry; without the cache it re-runs the whole text.
  One seed gives one text either way, and the greedy text follows the full forward pass's argmax."""
  model = RECURRENT[cell](vocab_size=7, n_layer=2, n_embd=6, n_hidden=10)
  params = model.init(jax.random.key(1), jnp.zeros((1, 4), jnp.int32))['params']
  prompt = np.array([[1, 2, 3], [4, 5, 6]], np.int32)
  for temperature in (0.0, 1.0):
    a = generate.generate(model, params, prompt, 20, jax.random.key(3), temperature=temperature)
    b = generate.generate(model, params, prompt, 20, jax.random.key(3), temperature=temperature, use_cache=False)
    np.testing.assert_array_equal(a, b)
  greedy = generate.generate(model, params, prompt, 20, jax.random.key(0), temperature=0.0)
  full = model.apply({'params': params}, jnp.asarray(np.concatenate([prompt, greedy], 1)))
  np.testing.assert_array_equal(np.argmax(full[:, 2:-1], -1), greedy)


def test_window_models_sample_from_their_window():
  ffnn = FFNN(vocab_size=7, window=3, n_embd=4, n_hidden=8)
  params = ffnn.init(jax.random.key(1), jnp.zeros((1, 3), jnp.int32))['params']
  prompt = np.array([[1, 2, 3, 4, 5]], np.int32)
  a = generate.generate(ffnn, params, prompt, 12, jax.random.key(2))
  np.testing.assert_array_equal(a, generate.generate(ffnn, params, prompt, 12, jax.random.key(2), use_cache=False))
  greedy = generate.generate(ffnn, params, prompt[:, -3:], 12, jax.random.key(0), temperature=0.0)
  full = ffnn.apply({'params': params}, jnp.asarray(np.concatenate([prompt[:, -3:], greedy], 1)))
  np.testing.assert_array_equal(np.argmax(full[:, 2:-1], -1), greedy)


def test_time_runs_in_one_scan_per_layer():
  model = LSTM(vocab_size=7, n_layer=2, n_embd=4, n_hidden=4)
  idx = jnp.zeros((2, 50), jnp.int32)
  params = jax.eval_shape(model.init, jax.random.key(0), idx)['params']
  jaxpr = str(jax.make_jaxpr(lambda p: model.apply({'params': p}, idx))(params))
  assert jaxpr.count('scan[') == 2 and 'length=50' in jaxpr


ALL_MODELS = [
    Bigram(vocab_size=9),
    FFNN(vocab_size=9, window=4, n_embd=3, n_hidden=5, direct=True),
    RNN(vocab_size=9, n_layer=2, n_embd=4, n_hidden=6),
    LSTM(vocab_size=9, n_embd=4, n_hidden=6),
    GRU(vocab_size=9, n_embd=4, n_hidden=6, dropout=0.5, n_layer=2),
]


@pytest.mark.parametrize('model', ALL_MODELS, ids=lambda m: type(m).__name__)
def test_shapes_and_causality(model):
  x = jax.random.randint(jax.random.key(1), (2, 12), 0, 9)
  params = model.init(jax.random.key(0), x)['params']
  apply = jax.jit(lambda idx: model.apply({'params': params}, idx))
  a = apply(x)
  assert a.shape == (2, 12, 9) and a.dtype == jnp.float32
  y = x.at[:, 8:].set((x[:, 8:] + 3) % 9)
  b = apply(y)
  np.testing.assert_allclose(a[:, :8], b[:, :8], atol=1e-6)  # the future does not leak into the past
  if not isinstance(model, Bigram):
    assert not np.allclose(a[:, 8:], b[:, 8:])
  assert model.num_params(params) == sum(p.size for p in jax.tree.leaves(params))


def test_dropout_between_layers_only_in_training():
  model = GRU(vocab_size=9, n_embd=4, n_hidden=6, dropout=0.5, n_layer=2)
  x = jax.random.randint(jax.random.key(1), (2, 12), 0, 9)
  params = model.init(jax.random.key(0), x)['params']
  run = lambda r: model.apply({'params': params}, x, train=True, rngs={'dropout': jax.random.key(r)})
  assert not np.allclose(run(0), run(1))
  np.testing.assert_array_equal(model.apply({'params': params}, x),  # evaluation: as if there were no dropout
                                model.clone(dropout=0.0).apply({'params': params}, x))
  one_layer = GRU(vocab_size=9, n_embd=4, n_hidden=6, dropout=0.5, n_layer=1)
  p1 = one_layer.init(jax.random.key(0), x)['params']
  np.testing.assert_array_equal(one_layer.apply({'params': p1}, x, train=True, rngs={'dropout': jax.random.key(0)}),
                                one_layer.apply({'params': p1}, x))  # nothing between layers to drop


def _train_pass(model, x):
  """Initialises `model` on x [batch, time] and runs one training pass (dropout key 2) that captures every
  submodule's output → (params, params as float64 numpy, logits, intermediates)."""
  params = model.init(jax.random.key(0), x)['params']
  logits, state = model.apply({'params': params}, x, train=True, rngs={'dropout': jax.random.key(2)},
                              capture_intermediates=True, mutable=['intermediates'])
  return params, jax.tree.map(lambda a: np.asarray(a, np.float64), params), logits, state['intermediates']


def _ffnn_windows(p, x, n):
  """x [B, T] → the FFNN's inputs [B, T, n·m]: the embeddings of each window, oldest first, with the
  <blank> row (index V) before the start."""
  B, T = x.shape
  blank = p['wte']['embedding'].shape[0] - 1
  padded = np.concatenate([np.full((B, n - 1), blank), np.asarray(x)], 1)
  return np.stack([p['wte']['embedding'][padded[:, t:t + n]].reshape(B, -1) for t in range(T)], 1)


def _elman(x, p, h):
  """An Elman layer in numpy: x [B, T, in], start h [H] → outputs [B, T, H]."""
  h, out = np.broadcast_to(h, (x.shape[0], h.shape[-1])), []
  for t in range(x.shape[1]):
    h = np.tanh(x[:, t] @ p['w_ih'] + p['b_ih'] + h @ p['w_hh'] + p['b_hh'])
    out.append(h)
  return np.stack(out, 1)


def test_dropout_acts_on_the_outputs_of_every_layer_but_the_last():
  """In training, layer 0 reads the embeddings as they are and layer l > 0 reads layer l−1's outputs
  dropped (kept ones scaled by 1/(1 − p)); the logits are a numpy forward pass with those masks."""
  model = RNN(vocab_size=9, n_layer=3, n_embd=4, n_hidden=6, dropout=0.5)
  x = jax.random.randint(jax.random.key(1), (2, 5), 0, 9)
  _, p, logits, inter = _train_pass(model, x)
  assert sorted(k for k in inter if k.startswith('Dropout')) == ['Dropout_0', 'Dropout_1']
  h = p['wte']['embedding'][np.asarray(x)]
  for l in range(3):
    if l > 0:
      dropped = np.asarray(inter[f'Dropout_{l - 1}']['__call__'][0], np.float64)
      keep = dropped != 0
      assert 0 < keep.mean() < 1
      np.testing.assert_allclose(dropped, np.where(keep, h / 0.5, 0.0), rtol=1e-5, atol=1e-6)
      h = np.where(keep, h / 0.5, 0.0)
    h = _elman(h, p[f'layer_{l}'], p['h0'][l])
    np.testing.assert_allclose(inter[f'layer_{l}']['__call__'][0][0], h, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(logits, h @ p['lm_head']['kernel'] + p['lm_head']['bias'], rtol=1e-5, atol=1e-6)


def test_ffnn_is_bengios_equation_with_a_blank_row():
  """y = b + U tanh(d + H x) + W x, x the window's embeddings oldest first, <blank> (row V) before the start."""
  V, n, m, H, B, T = 7, 3, 2, 5, 2, 6
  model = FFNN(vocab_size=V, window=n, n_embd=m, n_hidden=H, direct=True)
  x = jax.random.randint(jax.random.key(1), (B, T), 0, V)
  params = model.init(jax.random.key(0), x)['params']
  assert params['wte']['embedding'].shape == (V + 1, m) and params['direct']['kernel'].shape == (n * m, V)
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
  win = _ffnn_windows(p, x, n)
  hid = np.tanh(win @ p['hidden']['kernel'] + p['hidden']['bias'])
  want = hid @ p['out']['kernel'] + p['out']['bias'] + win @ p['direct']['kernel']
  np.testing.assert_allclose(model.apply({'params': params}, x), want, rtol=1e-5, atol=1e-6)
  # The <blank> row reaches the first n − 1 positions only.
  moved = {**params, 'wte': {'embedding': params['wte']['embedding'].at[V].add(1.0)}}
  diff = np.abs(model.apply({'params': moved}, x) - model.apply({'params': params}, x)).max((0, 2))
  assert (diff[:n - 1] > 1e-3).all() and (diff[n - 1:] == 0).all()


def test_bigram_starts_uniform():
  """A zero table: every row is the uniform distribution, so the initial loss is exactly log V."""
  V = 11
  model = Bigram(vocab_size=V)
  x = jax.random.randint(jax.random.key(1), (3, 8), 0, V)
  params = model.init(jax.random.key(0), x)['params']
  assert not np.any(params['logits'])
  y = jax.random.randint(jax.random.key(2), (3, 8), 0, V)
  logp = jax.nn.log_softmax(model.apply({'params': params}, x))
  loss = -float(jnp.take_along_axis(logp, y[..., None], -1).mean())
  assert abs(loss - np.log(V)) < 1e-6

def test_ffnn_sees_exactly_its_window():
  model = FFNN(vocab_size=9, window=3, n_embd=4, n_hidden=8)
  x = jax.random.randint(jax.random.key(1), (1, 10), 0, 9)
  params = model.init(jax.random.key(0), x)['params']
  apply = jax.jit(lambda idx: model.apply({'params': params}, idx))
  base = apply(x)
  far = apply(x.at[0, 5].set((x[0, 5] + 1) % 9))
  np.testing.assert_allclose(base[0, 8:], far[0, 8:], atol=1e-6)      # position 5 is 3 back from 8: outside
  assert not np.allclose(base[0, 5:8], far[0, 5:8])                     # positions 5, 6, 7 see it
  assert model.context_limit() == 3


def test_makemore_sizes():
  """The names configs' parameter counts beside makemore's (bigram and MLP identical by construction)."""
  counts = {}
  for arch in ('bigram', 'ffnn', 'rnn', 'gru', 'lstm', 'gpt'):
    from lm_anatomy import models
    config = load_config('names.py', arch)
    model = models.build(config, {'vocab_size': 27})
    params = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 16), jnp.int32))['params'])
    counts[arch] = (model.num_params(params, exclude_embeddings=False) if arch == 'gpt'
                    else model.num_params(params))
  # makemore: bigram 729, mlp 69,147, rnn 11,803, gru 28,315, transformer 204,544. Ours keep PyTorch's two
  # bias vectors per recurrent layer. makemore has no LSTM: embedding 27×64, four gate blocks of
  # w_ih, w_hh [64, 64] and b_ih, b_hh [64], start states h0, c0 [1, 64], output layer 64×27 + 27.
  lstm = 27 * 64 + 4 * (64 * 64 + 64 * 64 + 2 * 64) + 2 * 64 + 64 * 27 + 27
  assert lstm == 36_891
  assert counts == {'bigram': 729, 'ffnn': 69_147, 'rnn': 11_803 + 64, 'gru': 28_315 + 192, 'lstm': lstm,
                    'gpt': 204_544}


@pytest.mark.parametrize('change, message', [
    ({'name': 'lstm', 'n_hidden': 0}, 'model.n_hidden must be > 0'),
    ({'name': 'ffnn', 'window': -1}, 'model.window must be > 0'),
    ({'name': 'gru', 'dropout': 1.0}, 'model.dropout must be in [0, 1)'),
    ({'name': 'lstm', 'dropout': 0.5, 'n_layer': 1}, 'model.dropout (0.5) acts between layers, and model.n_layer is 1'),
    ({'name': 'rnn', 'n_head': 4}, "unknown config key 'model.n_head'"),
    ({'name': 'bigram', 'n_embd': 4}, "unknown config key 'model.n_embd'"),
])
def test_bad_model_config_is_a_clear_error(change, message):
  import ml_collections
  config = load_config('names.py', 'bigram')
  d = config.to_dict()
  d['model'] = change
  import re
  with pytest.raises(ConfigError, match=re.escape(message)):
    config_lib.validate(ml_collections.ConfigDict(d))


@pytest.mark.parametrize('arch', ['ffnn', 'rnn', 'lstm'])
def test_trains_through_the_engine_on_text(tiny_config, tmp_path, arch):
  """The same engine, task and text data as the GPT: only the model section changes."""
  tiny_config.model = {'name': arch, 'n_embd': 16, **({'window': 4} if arch == 'ffnn' else {'n_hidden': 16})}
  tiny_config.data.seq_len = 16
  tiny_config.optimizer.lr, tiny_config.optimizer.warmup_steps = 1e-2, 0
  record = engine.train(tiny_config, tmp_path / arch, progress=False)
  import json
  vocab = json.loads((tmp_path / arch / 'data_info.json').read_text())['vocab_size']
  records = [json.loads(l) for l in (tmp_path / arch / 'metrics.jsonl').read_text().splitlines()]
  assert record['step'] == 20 and record['val_loss'] < records[0]['val_loss'] < np.log(vocab)
  assert record['val_loss'] < np.log(vocab) - 0.3  # uniform: log(vocab)



def _check_sampled(model, params, prompt, out, key):
  """Each new token i is categorical(fold_in(key, i), logits) of one forward pass over the prompt and the
  tokens before it (teacher forcing on the output: the model itself sees only its own context)."""
  n = prompt.shape[1]
  logits = np.asarray(jax.jit(model.apply)({'params': params}, jnp.asarray(np.concatenate([prompt, out], 1))))
  for i in range(out.shape[1]):
    k = jax.random.fold_in(key, i)
    row = logits[:, n - 1 + i]
    top2 = np.sort(row + np.asarray(jax.random.gumbel(k, row.shape)), -1)[:, -2:]
    assert (top2[:, 1] - top2[:, 0] > 1e-4).all()  # no near-tie: the draw is well defined
    np.testing.assert_array_equal(out[:, i], jax.random.categorical(k, jnp.asarray(row)), err_msg=f'token {i}')
  assert min(len(set(r)) for r in out.tolist()) >= 3  # really sampled


def test_sampled_text_follows_the_full_forward_pass_from_the_learned_start(monkeypatch):
  """With the carry and without it, new token i is drawn with fold_in(key, i) from the logits of the whole
  text so far, run from the learned start h0, c0: the state reaches back over all of it. The carry path
  runs the prompt once and then feeds one token at a time (one prefill, not one per token)."""
  prefills, real_prefill = [], generate._prefill
  def counted(model, params, context, *args):
    prefills.append(context.shape)
    return real_prefill(model, params, context, *args)
  monkeypatch.setattr(generate, '_prefill', counted)
  model = LSTM(vocab_size=7, n_layer=1, n_embd=6, n_hidden=10)
  params = model.init(jax.random.key(1), jnp.zeros((1, 4), jnp.int32))['params']
  params = jax.tree.map(lambda p: 3 * p, params)   # larger weights: a longer memory
  params['h0'], params['c0'] = jax.random.normal(jax.random.key(2), (2, 1, 10))  # a non-zero learned start
  prompt = np.array([[1, 2, 3], [4, 5, 6]], np.int32)
  for use_cache in (True, False):
    out = generate.generate(model, params, prompt, 16, jax.random.key(3), use_cache=use_cache)
    _check_sampled(model, params, prompt, out, jax.random.key(3))
  assert prefills == [(2, 3)]  # the cached run's only prefill: the prompt


@pytest.mark.parametrize('model', [FFNN(vocab_size=7, window=3, n_embd=4, n_hidden=8), Bigram(vocab_size=7)],
                         ids=lambda m: type(m).__name__)
def test_window_models_sample_from_the_end_of_any_prompt(model):
  """A prompt longer than the window is cropped to its last tokens, a shorter one is read after <blank>s:
  either way new token i is drawn with fold_in(key, i) from the logits of a forward pass over the text."""
  params = model.init(jax.random.key(1), jnp.zeros((1, 3), jnp.int32))['params']
  params = jax.tree.map(lambda p: jax.random.normal(jax.random.key(4), p.shape), params)  # the bigram starts at 0
  for prompt in ([[1], [4]], [[1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]]):
    prompt = np.array(prompt, np.int32)
    out = generate.generate(model, params, prompt, 12, jax.random.key(3))
    _check_sampled(model, params, prompt, out, jax.random.key(3))


def test_generate_checks_the_prompt_and_the_length():
  """Prompt ids must lie in [0, vocab_size): for the FFNN, id vocab_size is its <blank> row and would pass
  silently. An empty prompt (no tokens or no rows) and a negative max_new_tokens are clear errors too."""
  model = FFNN(vocab_size=7, window=3, n_embd=4, n_hidden=8)
  params = model.init(jax.random.key(1), jnp.zeros((1, 3), jnp.int32))['params']
  key = jax.random.key(0)
  with pytest.raises(ConfigError, match=r'prompt ids must lie in \[0, 7\), got 0 … 7'):
    generate.generate(model, params, np.array([[0, 7]]), 2, key)
  assert generate.generate(model, params, np.array([[0, 6]]), 2, key).shape == (1, 2)
  for empty in (np.zeros((2, 0), np.int32), np.zeros((0, 3), np.int32)):  # no tokens, no rows
    with pytest.raises(ConfigError, match=r'prompt must be integer ids \[batch, n\] with n >= 1 and batch >= 1'):
      generate.generate(model, params, empty, 2, key)
  with pytest.raises(ConfigError, match='max_new_tokens must be >= 0, got -1'):
    generate.generate(model, params, np.array([[1]]), -1, key)


def test_sample_cli_hands_its_flags_to_generate(monkeypatch, capsys):
  """`python -m lm_anatomy.sample`'s main on a run that restore() returns: --seed is the key, the sampling
  flags, --no_cache and --best reach generate() and restore(), each sample prints as the prompt and its new
  text; without --prompt it starts from the run's start token."""
  import inspect
  import types
  import ml_collections
  from absl import flags
  import lm_anatomy
  from lm_anatomy import sample
  from lm_anatomy.data import tokenizers
  tok = tokenizers.CharTokenizer(list('abcdef'), specials=['.'])
  model = GRU(vocab_size=tok.vocab_size, n_embd=4, n_hidden=6)
  params = model.init(jax.random.key(0), jnp.zeros((1, 3), jnp.int32))['params']
  run = types.SimpleNamespace(config=ml_collections.ConfigDict({'task': {'name': 'causal_lm'}}), model=model,
                              params=params, tokenizer=tok)
  restored, calls = [], []
  monkeypatch.setattr(lm_anatomy, 'restore', lambda workdir, best=False: restored.append((workdir, best)) or run)
  real = generate.generate
  def spy(*args, **kwargs):
    call = inspect.signature(real).bind(*args, **kwargs)
    call.apply_defaults()
    calls.append(dict(call.arguments, new=real(*args, **kwargs)))
    return calls[-1]['new']
  monkeypatch.setattr(generate, 'generate', spy)
  def cli(*args):
    try:
      flags.FLAGS(['sample', '--workdir=w', *args])
      sample.main([])
    finally:
      flags.FLAGS.unparse_flags()
    return capsys.readouterr().out
  out = cli('--prompt=cab', '--num_samples=2', '--max_new_tokens=5', '--temperature=0.5', '--top_k=3',
            '--top_p=0.9', '--seed=4', '--best', '--no_cache')
  assert restored == [('w', True)] and len(calls) == 1
  got = calls[0]
  assert got['model'] is model and got['params'] is params
  np.testing.assert_array_equal(got['prompt'], np.tile(tok.encode('cab'), (2, 1)))
  np.testing.assert_array_equal(jax.random.key_data(got['rng']), jax.random.key_data(jax.random.key(4)))
  assert [got[k] for k in ('max_new_tokens', 'temperature', 'top_k', 'top_p', 'use_cache')] == [5, 0.5, 3, 0.9, False]
  assert got['new'].shape == (2, 5)
  assert out == ''.join(f'--- sample {i}\ncab{tok.decode(row)}\n' for i, row in enumerate(got['new']))
  # Defaults: the latest checkpoint, the cache, and the start token '.' as the prompt; 0 new tokens is allowed.
  assert cli('--max_new_tokens=0') == '--- sample 0\n.\n'
  assert restored[1] == ('w', False) and calls[1]['use_cache'] is True
  np.testing.assert_array_equal(calls[1]['prompt'], [tok.encode('.')])
  # Words: the prompt and the new words print with a space between them; with neither a start token nor
  # a newline in its vocabulary, a run needs --prompt.
  run.tokenizer = tok = tokenizers.WordTokenizer(['to', 'be', 'or', 'not', 'a', 'b'])
  out = cli('--prompt=to be', '--max_new_tokens=3')
  assert out == f'--- sample 0\nto be {tok.decode(calls[2]["new"][0])}\n'
  with pytest.raises(ConfigError, match='no start token and no newline to begin a sample from; give --prompt'):
    cli()
  run.tokenizer = tokenizers.CharTokenizer(list('abcdef'))  # characters, no newline among them
  with pytest.raises(ConfigError, match='no start token and no newline'):
    cli()


def _lstm(x, p, h, c):
  """An LSTM layer in numpy (gate blocks i f g o): x [B, T, in], starts h, c [H] → outputs [B, T, H]."""
  sig = lambda a: 1.0 / (1.0 + np.exp(-a))
  h, c, out = np.broadcast_to(h, (x.shape[0], h.shape[-1])), np.broadcast_to(c, (x.shape[0], c.shape[-1])), []
  for t in range(x.shape[1]):
    i, f, g, o = np.split(x[:, t] @ p['w_ih'] + p['b_ih'] + h @ p['w_hh'] + p['b_hh'], 4, axis=-1)
    c = sig(f) * c + sig(i) * np.tanh(g)
    h = sig(o) * np.tanh(c)
    out.append(h)
  return np.stack(out, 1)


def test_lstm_starts_from_the_learned_h0_and_c0():
  """Without a carry, layer l starts at h_0 = h0[l] and c_0 = c0[l]: c_1 = f_1 ⊙ c0[l] + i_1 ⊙ g_1 and
  h_1 = o_1 ⊙ tanh(c_1); the logits are a numpy pass of the gate equations from those starts."""
  model = LSTM(vocab_size=9, n_layer=2, n_embd=4, n_hidden=6)
  x = jax.random.randint(jax.random.key(1), (2, 5), 0, 9)
  params = model.init(jax.random.key(0), x)['params']
  params['h0'], params['c0'] = jax.random.normal(jax.random.key(2), (2, 2, 6))
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
  h = p['wte']['embedding'][np.asarray(x)]
  for l in range(2):
    h = _lstm(h, p[f'layer_{l}'], p['h0'][l], p['c0'][l])
  want = h @ p['lm_head']['kernel'] + p['lm_head']['bias']
  np.testing.assert_allclose(model.apply({'params': params}, x), want, rtol=1e-5, atol=1e-6)
  # A zero c0 is another start: the learned c0 reaches the logits.
  zero_c = model.apply({'params': {**params, 'c0': jnp.zeros_like(params['c0'])}}, x)
  assert np.abs(zero_c - want).max() > 1e-3


def _bound_and_std(a):
  a = np.asarray(a)
  return np.abs(a).max(), a.std()


@pytest.mark.parametrize('cell', ['rnn', 'lstm', 'gru'])
def test_recurrent_initialisation_is_pytorchs(cell):
  """Every cell weight and bias ~ U(−1/√H, 1/√H) (whatever the input size), the output layer
  ~ U(−1/√H, 1/√H), embeddings ~ N(0, 1): max |w| just under the bound, std bound/√3."""
  V, E, H = 50, 64, 16
  model = RECURRENT[cell](vocab_size=V, n_layer=2, n_embd=E, n_hidden=H)
  params = model.init(jax.random.key(0), jnp.zeros((1, 3), jnp.int32))['params']
  bound = H ** -0.5
  for l in range(2):
    for name, w in params[f'layer_{l}'].items():
      top, std = _bound_and_std(w)
      assert top <= bound, (l, name, top)
      if w.ndim == 2:  # enough draws to reach the bound
        assert top > 0.97 * bound and abs(std - bound / np.sqrt(3)) < 0.1 * bound, (l, name, top, std)
  top, std = _bound_and_std(params['lm_head']['kernel'])
  assert 0.97 * bound < top <= bound and abs(std - bound / np.sqrt(3)) < 0.1 * bound
  _, std = _bound_and_std(params['wte']['embedding'])
  assert abs(std - 1.0) < 0.05


def test_ffnn_initialisation_is_bengios_in_pytorchs_defaults():
  """C ~ N(0, 1); H, d ~ U(−1/√(n·m), 1/√(n·m)); U, b ~ U(−1/√h, 1/√h); direct W ~ N(0, 1/(n·m))."""
  V, n, m, h = 50, 4, 16, 32
  model = FFNN(vocab_size=V, window=n, n_embd=m, n_hidden=h, direct=True)
  params = model.init(jax.random.key(0), jnp.zeros((1, 3), jnp.int32))['params']
  for name, fan_in in (('hidden', n * m), ('out', h)):
    bound = fan_in ** -0.5
    assert np.abs(params[name]['bias']).max() <= bound
    top, std = _bound_and_std(params[name]['kernel'])
    assert 0.97 * bound < top <= bound and abs(std - bound / np.sqrt(3)) < 0.1 * bound, (name, top, std)
  assert 'bias' not in params['direct']
  _, std = _bound_and_std(params['direct']['kernel'])
  assert abs(std - (n * m) ** -0.5) < 0.05 * (n * m) ** -0.5
  _, std = _bound_and_std(params['wte']['embedding'])
  assert abs(std - 1.0) < 0.05


def test_ffnn_dropout_follows_the_tanh_layer():
  """In training, y = b + U dropout(tanh(d + H x)) + W x: the dropped units are the tanh layer's, kept ones
  scaled by 1/(1 − p), and the direct connections read the undropped x."""
  V, n, m, H, B, T = 7, 3, 2, 8, 2, 6
  model = FFNN(vocab_size=V, window=n, n_embd=m, n_hidden=H, direct=True, dropout=0.5)
  x = jax.random.randint(jax.random.key(1), (B, T), 0, V)
  params, p, logits, inter = _train_pass(model, x)
  win = _ffnn_windows(p, x, n)
  hid = np.tanh(win @ p['hidden']['kernel'] + p['hidden']['bias'])
  dropped = np.asarray(inter['Dropout_0']['__call__'][0], np.float64)
  keep = dropped != 0
  assert dropped.shape == hid.shape and 0.2 < keep.mean() < 0.8
  np.testing.assert_allclose(dropped, np.where(keep, hid / 0.5, 0.0), rtol=1e-5, atol=1e-6)
  want = np.where(keep, hid / 0.5, 0.0) @ p['out']['kernel'] + p['out']['bias'] + win @ p['direct']['kernel']
  np.testing.assert_allclose(logits, want, rtol=1e-5, atol=1e-6)
  # Evaluation keeps every unit.
  np.testing.assert_allclose(model.apply({'params': params}, x),
                             hid @ p['out']['kernel'] + p['out']['bias'] + win @ p['direct']['kernel'],
                             rtol=1e-5, atol=1e-6)
