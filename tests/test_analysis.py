"""Context-length losses, stateful evaluation and embedding-gradient norms (lm_anatomy/analysis.py)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lm_anatomy import analysis, losses
from lm_anatomy.models.bigram import Bigram
from lm_anatomy.models.ffnn import FFNN
from lm_anatomy.models.gpt import GPT
from lm_anatomy.models.rnn import GRU, LSTM

IDS = np.random.default_rng(0).integers(0, 11, 300).astype(np.int32)


def _init(model):
  return model.init(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))['params']


def test_stateful_losses_are_one_pass_over_the_whole_text():
  model = LSTM(vocab_size=11, n_layer=2, n_embd=8, n_hidden=12)
  params = _init(model)
  ids = IDS[:257]
  chunked = analysis.stateful_losses(model, params, ids, chunk_len=64)
  logits = model.apply({'params': params}, jnp.asarray(ids[None, :-1]))[0]
  np.testing.assert_allclose(chunked, losses.cross_entropy(logits, ids[1:]), atol=2e-5)
  assert chunked.shape == (256,) and analysis.has_carry(model) and not analysis.has_carry(GPT(vocab_size=11))
  with pytest.raises(ValueError, match='has no carry'):
    analysis.stateful_losses(FFNN(vocab_size=11), {}, IDS)
  with pytest.raises(ValueError, match='needs at least 2 tokens, got 1'):
    analysis.stateful_losses(model, params, IDS[:1])


def test_window_losses_see_exactly_c_tokens():
  model = GRU(vocab_size=11, n_embd=8, n_hidden=12)
  params = _init(model)
  positions = np.array([9, 50, 298])
  got = analysis.window_losses(model, params, IDS, positions, context=10)
  for p, g in zip(positions, got):
    logits = model.apply({'params': params}, jnp.asarray(IDS[None, p - 9:p + 1]))[0, -1]
    assert g == pytest.approx(float(losses.cross_entropy(logits, IDS[p + 1])), abs=1e-5)
  with pytest.raises(ValueError, match='positions must lie in'):
    analysis.window_losses(model, params, IDS, np.array([3]), context=10)
  assert analysis.window_losses(model, params, IDS, np.array([], np.int64), context=10).shape == (0,)


def test_embedding_gradients_vanish_outside_the_context():
  windows = np.stack([IDS[i:i + 17] for i in range(0, 200, 20)])
  ffnn = FFNN(vocab_size=11, window=5, n_embd=4, n_hidden=8)
  g = analysis.embedding_grad_norms(ffnn, _init(ffnn), windows)
  assert g.shape == (16,) and (g[:5] > 0).all() and (g[5:] == 0).all()  # the window is 5 tokens: k = 0 … 4
  lstm = LSTM(vocab_size=11, n_embd=8, n_hidden=12)
  g = analysis.embedding_grad_norms(lstm, _init(lstm), windows)
  assert (g > 0).all() and g[15] < g[0]
  assert 0 < analysis.decay_per_step(g, 15) < 1
  assert analysis.decay_per_step(np.array([8.0, 4.0, 2.0, 1.0]), 3) == pytest.approx(0.5, rel=1e-12)  # (1/8)^(1/3)
  with pytest.raises(ValueError, match=r'k_max must be in \[1, 15\]'):
    analysis.decay_per_step(g, 0)
  with pytest.raises(ValueError, match='looks up 0 embeddings'):
    analysis.embedding_grad_norms(Bigram(vocab_size=11), _init(Bigram(vocab_size=11)), windows)
