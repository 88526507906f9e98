"""Linear, log-linear, stack-of-linear-layers and MLP classifiers: equations, shapes, config checks."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from lm_anatomy import config as config_lib
from lm_anatomy.errors import ConfigError
from lm_anatomy.models import linear, mlp


def _init(model, d_in, seed=0):
  return model.init(jax.random.key(seed), jnp.zeros((1, d_in), jnp.float32))['params']


def test_linear_is_xW_plus_b_with_one_score_for_two_classes():
  x = jax.random.normal(jax.random.key(1), (5, 3))
  two = linear.Linear(input_dim=3, num_classes=2, init_std=1.0)
  params = _init(two, 3)
  assert params['linear']['kernel'].shape == (3, 1) and params['linear']['bias'].shape == (1,)
  params = {'linear': {'kernel': jnp.array([[1.0], [-2.0], [0.5]]), 'bias': jnp.array([0.25])}}
  np.testing.assert_allclose(two.apply({'params': params}, x), x @ params['linear']['kernel'] + 0.25, rtol=1e-6)
  assert _init(linear.Linear(input_dim=3, num_classes=2, binary_output=False), 3)['linear']['kernel'].shape == (3, 2)
  assert _init(linear.Linear(input_dim=3, num_classes=10), 3)['linear']['kernel'].shape == (3, 10)


def test_log_linear_probabilities_are_sigmoid_and_softmax():
  x = jax.random.normal(jax.random.key(2), (4, 3))
  binary = linear.LogLinear(input_dim=3, num_classes=2, init_std=1.0)
  params = _init(binary, 3)
  z = binary.apply({'params': params}, x)[:, 0]
  p = binary.apply({'params': params}, x, method='probabilities')
  np.testing.assert_allclose(p[:, 1], 1 / (1 + np.exp(-z)), rtol=1e-5)
  np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-6)
  multi = linear.LogLinear(input_dim=3, num_classes=4, init_std=1.0)
  params = _init(multi, 3)
  z = np.asarray(multi.apply({'params': params}, x))
  want = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
  np.testing.assert_allclose(multi.apply({'params': params}, x, method='probabilities'), want, rtol=1e-5)


def test_stack_of_linear_layers_is_exactly_one_linear_map():
  """ŷ = (((x W¹ + b¹) W² + b²) W³ + b³) = x (W¹W²W³) + (b¹W²W³ + b²W³ + b³)."""
  stack = linear.LinearStack(input_dim=4, num_classes=3, depth=3, width=5, init_std=0.7)
  params = _init(stack, 4, seed=3)
  params = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.key(p.size), p.shape), params)  # biases ≠ 0
  w, b = linear.LinearStack.collapse(params)
  k = [np.asarray(params[f'layer_{i}']['kernel'], np.float64) for i in range(3)]
  c = [np.asarray(params[f'layer_{i}']['bias'], np.float64) for i in range(3)]
  np.testing.assert_allclose(w, k[0] @ k[1] @ k[2], rtol=1e-5, atol=1e-6)  # the product of the matrices
  np.testing.assert_allclose(b, c[0] @ k[1] @ k[2] + c[1] @ k[2] + c[2], rtol=1e-5, atol=1e-6)
  x = jax.random.normal(jax.random.key(4), (7, 4))
  np.testing.assert_allclose(stack.apply({'params': params}, x), x @ w + b, rtol=1e-5, atol=1e-5)
  # ... and one Linear model with those (W, b) computes the same scores.
  one = linear.Linear(input_dim=4, num_classes=3)
  np.testing.assert_allclose(one.apply({'params': {'linear': {'kernel': w, 'bias': b}}}, x),
                             stack.apply({'params': params}, x), rtol=1e-5, atol=1e-5)


def test_log_linear_two_scores_use_softmax():
  """Two classes with `binary_output=False`: p = softmax([ŷ₀, ŷ₁]), so p₁ = σ(ŷ₁ − ŷ₀), not σ(ŷ₁)."""
  model = linear.LogLinear(input_dim=2, num_classes=2, binary_output=False)
  params = {'linear': {'kernel': jnp.array([[1.0, -1.0], [0.5, 2.0]]), 'bias': jnp.array([0.25, -0.5])}}
  x = np.array([[1.0, 2.0], [-1.0, 0.5], [0.0, 0.0]], np.float32)
  z = x.astype(np.float64) @ [[1.0, -1.0], [0.5, 2.0]] + [0.25, -0.5]
  p = model.apply({'params': params}, x, method='probabilities')
  assert p.shape == (3, 2)
  np.testing.assert_allclose(p, np.exp(z) / np.exp(z).sum(-1, keepdims=True), rtol=1e-6)
  np.testing.assert_allclose(p[:, 1], 1 / (1 + np.exp(-(z[:, 1] - z[:, 0]))), rtol=1e-6)


def test_collapse_folds_layers_in_numeric_order():
  """With 11 layers, layer_10 is the last one (not the third, as sorting the names as strings would say).
  Integer weights keep every product exact in float32."""
  stack = linear.LinearStack(input_dim=3, num_classes=3, binary_output=False, depth=11, width=3)
  rng = np.random.default_rng(0)
  k = [rng.integers(-1, 2, (3, 3)).astype(np.float32) for _ in range(11)]
  c = [rng.integers(-2, 3, 3).astype(np.float32) for _ in range(11)]
  params = {f'layer_{i}': {'kernel': jnp.asarray(k[i]), 'bias': jnp.asarray(c[i])} for i in range(11)}
  want_w, want_b = k[0].astype(np.int64), c[0].astype(np.int64)
  for i in range(1, 11):
    want_w, want_b = want_w @ k[i].astype(np.int64), want_b @ k[i].astype(np.int64) + c[i].astype(np.int64)
  w, b = linear.LinearStack.collapse(params)
  np.testing.assert_array_equal(w, want_w)
  np.testing.assert_array_equal(b, want_b)
  x = np.array([[1.0, 0.0, -1.0], [2.0, 1.0, 0.0]], np.float32)
  np.testing.assert_array_equal(stack.apply({'params': params}, x), x.astype(np.int64) @ want_w + want_b)


@pytest.mark.parametrize('activation', ['sigmoid', 'tanh', 'relu', 'gelu'])
def test_mlp_equations_and_shapes(activation):
  model = mlp.MLP(input_dim=3, num_classes=4, depth=2, width=6, activation=activation)
  params = _init(model, 3)
  assert [params[n]['kernel'].shape for n in ('hidden_0', 'hidden_1', 'output')] == [(3, 6), (6, 6), (6, 4)]
  x = jax.random.normal(jax.random.key(5), (5, 3))
  g = {'sigmoid': jax.nn.sigmoid, 'tanh': jnp.tanh, 'relu': jax.nn.relu,
       'gelu': lambda z: jax.nn.gelu(z, approximate=False)}[activation]
  dense = lambda h, name: h @ params[name]['kernel'] + params[name]['bias']
  h1 = g(dense(x, 'hidden_0'))
  h2 = g(dense(h1, 'hidden_1'))
  np.testing.assert_allclose(model.apply({'params': params}, x), dense(h2, 'output'), rtol=1e-5, atol=1e-6)
  hidden = model.apply({'params': params}, x, method='hidden')
  np.testing.assert_allclose(hidden[0], h1, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(hidden[1], h2, rtol=1e-5, atol=1e-6)


def test_mlp_init_scale_is_lecun():
  model = mlp.MLP(input_dim=400, num_classes=2, depth=1, width=300)
  params = _init(model, 400)
  assert float(jnp.std(params['hidden_0']['kernel'])) == pytest.approx(1 / 20, rel=0.02)  # 1/√400
  assert params['output']['kernel'].shape == (300, 1)


def test_mlp_init_uses_each_layers_own_fan_in():
  """std 1/√fan_in per layer: 1/20 for the 400 inputs, 1/10 for the 100-unit layers after them."""
  model = mlp.MLP(input_dim=400, num_classes=2, depth=2, width=100)
  params = _init(model, 400)
  for name, fan_in in (('hidden_0', 400), ('hidden_1', 100), ('output', 100)):
    k = params[name]['kernel']
    assert float(jnp.std(k)) == pytest.approx(fan_in ** -0.5, rel=5 / np.sqrt(2 * k.size)), name
    assert not np.any(params[name]['bias'])

def test_mlp_dropout_only_in_training():
  model = mlp.MLP(input_dim=3, num_classes=2, width=64, dropout=0.5)
  params = _init(model, 3)
  x = jnp.ones((2, 3))
  a = model.apply({'params': params}, x)
  np.testing.assert_array_equal(a, model.clone(dropout=0.0).apply({'params': params}, x))  # none in evaluation
  b = model.apply({'params': params}, x, train=True, rngs={'dropout': jax.random.key(0)})
  assert not np.allclose(a, b)


def _config(model: dict):
  config = config_lib.base()
  config.data.corpus = 'xor'
  config.task.name = 'classify'
  config.model = ml_collections.ConfigDict(model)
  return config


@pytest.mark.parametrize('model, message', [
    ({'name': 'mlp', 'activation': 'swish'}, "unknown model.activation='swish'; choose one of"),
    ({'name': 'mlp', 'depth': 0}, "model.depth must be > 0, got 0"),
    ({'name': 'mlp', 'dropout': 1.0}, 'model.dropout must be in \\[0, 1\\)'),
    ({'name': 'linear_stack', 'width': -1}, 'model.width must be > 0, got -1'),
    ({'name': 'linear', 'init_std': -1.0}, 'model.init_std must be >= 0'),
    ({'name': 'linear_stack', 'init_std': 0.0}, 'model.init_std=0 with model.depth > 1'),
    ({'name': 'linear', 'num_classes': 3}, 'model.num_classes comes from the data'),
    ({'name': 'log_linear', 'width': 3}, "unknown config key 'model.width'"),
])
def test_bad_model_configs_name_the_key(model, message):
  with pytest.raises(ConfigError, match=message):
    config_lib.validate(_config(model))
