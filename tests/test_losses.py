"""Every loss against a value computed by hand, and the classification losses as the task uses them."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lm_anatomy import losses, tasks
from lm_anatomy.config import base
from lm_anatomy.errors import ConfigError

f32 = lambda x: jnp.asarray(x, jnp.float32)
i32 = lambda x: jnp.asarray(x, jnp.int32)


def test_softmax_cross_entropy_by_hand():
  # softmax([0, ln 2, ln 3]) = [1, 2, 3] / 6
  z = f32([[0.0, math.log(2), math.log(3)]] * 2)
  np.testing.assert_allclose(losses.cross_entropy(z, i32([2, 0])), [math.log(2), math.log(6)], rtol=1e-6)
  # ε = 0.3, C = 3: q = [0.1, 0.1, 0.8] for label 2
  want = 0.1 * math.log(6) + 0.1 * math.log(3) + 0.8 * math.log(2)
  np.testing.assert_allclose(losses.cross_entropy(z[:1], i32([2]), 0.3), [want], rtol=1e-6)


def test_sigmoid_cross_entropy_by_hand():
  # σ(ln 3) = 3/4
  z = f32([math.log(3), math.log(3), 0.0])
  np.testing.assert_allclose(losses.sigmoid_cross_entropy(z, i32([1, 0, 1])),
                             [math.log(4 / 3), math.log(4), math.log(2)], rtol=1e-6)
  # ε = 0.2, label 1: q = 0.9
  want = -0.9 * math.log(3 / 4) - 0.1 * math.log(1 / 4)
  np.testing.assert_allclose(losses.sigmoid_cross_entropy(z[:1], i32([1]), 0.2), [want], rtol=1e-6)
  # dℓ/dŷ = σ(ŷ) − y
  grad = jax.grad(lambda s: losses.sigmoid_cross_entropy(s, i32(1)))(f32(math.log(3)))
  assert float(grad) == pytest.approx(-0.25, rel=1e-6)


def test_squared_errors_by_hand():
  # binary: t = 2y − 1; (0.5 − 1)² and (0.5 + 1)²
  np.testing.assert_allclose(losses.binary_squared_error(f32([0.5, 0.5]), i32([1, 0])), [0.25, 2.25], rtol=1e-6)
  # C scores against onehot(2): 0.5² + (−1)² + (2 − 1)²
  np.testing.assert_allclose(losses.squared_error(f32([[0.5, -1.0, 2.0]]), i32([2])), [2.25], rtol=1e-6)


def test_hinge_losses_by_hand():
  np.testing.assert_allclose(losses.binary_hinge(f32([0.5, 0.5, 3.0, -2.0]), i32([1, 0, 1, 0])),
                             [0.5, 1.5, 0.0, 0.0], rtol=1e-6)
  # max(0, 1 − (ŷ_y − max_{c≠y} ŷ_c))
  scores = f32([[1.0, 3.0, 2.5], [1.0, 3.0, 2.5], [5.0, 1.0, 0.0]])
  np.testing.assert_allclose(losses.multiclass_hinge(scores, i32([1, 0, 0])), [0.5, 3.0, 0.0], rtol=1e-6)


def test_ranking_margin_by_hand():
  # max(0, m − (s⁺ − s⁻))
  np.testing.assert_allclose(losses.ranking_margin(f32([2.0, 0.2, 1.0]), f32([0.5, 0.5, 1.0])), [0.0, 1.3, 1.0],
                             rtol=1e-6)
  np.testing.assert_allclose(losses.ranking_margin(f32([0.2]), f32([0.5]), margin=2.0), [2.3], rtol=1e-6)


def test_ranking_margin_sees_only_score_differences():
  """A shift c added to both scores (e.g. a bias) changes nothing: dℓ/dc = 0, so a bias learns nothing."""
  pos, neg = f32([0.3, 2.0, -1.0]), f32([0.5, 0.1, -0.2])
  grad = jax.grad(lambda c: jnp.sum(losses.ranking_margin(pos + c, neg + c)))(f32(0.7))
  assert float(grad) == 0.0
  np.testing.assert_allclose(losses.ranking_margin(pos + 5.0, neg + 5.0), losses.ranking_margin(pos, neg), rtol=1e-6)


def test_triplet_by_hand():
  # ‖a − p‖ = 5; ‖a − n‖ = 1 → 5 − 1 + 1; ‖a − n‖ = 10 → max(0, 5 − 10 + 1) = 0
  a, p = f32([[0.0, 0.0]] * 2), f32([[3.0, 4.0]] * 2)
  n = f32([[0.0, 1.0], [6.0, 8.0]])
  np.testing.assert_allclose(losses.triplet(a, p, n), [5.0, 0.0], rtol=1e-6)
  np.testing.assert_allclose(losses.triplet(a[:1], p[:1], n[:1], margin=0.5), [4.5], rtol=1e-6)


def test_l2_penalty_and_task_regularizer_by_hand():
  params = {'layer': {'kernel': f32([[1.0, 2.0], [3.0, 4.0]]), 'bias': f32([5.0])}}
  assert float(losses.l2_penalty(params)) == pytest.approx(15.0)  # ½(1 + 4 + 9 + 16); biases not penalised
  config = _classify_config(l2=0.1)
  assert float(tasks.build(config, None, None).regularizer(params)) == pytest.approx(1.5)
  assert float(tasks.build(_classify_config(l2=0.0), None, None).regularizer(params)) == 0.0


def _classify_config(loss='cross_entropy', l2=0.0, label_smoothing=0.0):
  config = base()
  config.task.name, config.task.loss, config.task.l2, config.task.label_smoothing = 'classify', loss, l2, label_smoothing
  return config


@pytest.mark.parametrize('name, one_score, many_scores', [
    ('squared', [2.25], [2.25]),
    ('hinge', [1.5], [0.0]),
    ('cross_entropy', [math.log(4)], [math.log(2)]),
])
def test_classification_losses_pick_binary_or_multiclass_by_width(name, one_score, many_scores):
  fn = tasks.CLASSIFICATION_LOSSES[name]
  one = {'squared': 0.5, 'hinge': 0.5, 'cross_entropy': math.log(3)}[name]
  np.testing.assert_allclose(fn(f32([[one]]), i32([0]), 0.0), one_score, rtol=1e-6)
  many = {'squared': [[0.5, -1.0, 2.0]], 'hinge': [[5.0, 1.0, 0.0]],
          'cross_entropy': [[0.0, math.log(2), math.log(3)]]}[name]
  label = {'squared': 2, 'hinge': 0, 'cross_entropy': 2}[name]
  np.testing.assert_allclose(fn(f32(many), i32([label]), 0.0), many_scores, rtol=1e-6)


def test_label_smoothing_only_with_cross_entropy():
  tasks.build(_classify_config('cross_entropy', label_smoothing=0.1), None, None)
  with pytest.raises(ConfigError, match="task.label_smoothing applies to \\['cross_entropy'\\] only, not task.loss='hinge'"):
    tasks.build(_classify_config('hinge', label_smoothing=0.1), None, None)


def test_classify_task_scores_one_output_by_sign():
  """The task's loss and accuracy for a one-score model: loss by hand, prediction 1 iff ŷ > 0."""
  class Fixed:
    def apply(self, variables, inputs, train=False, rngs=None):
      return inputs
  task = tasks.build(_classify_config('hinge'), Fixed(), None)
  batch = {'inputs': f32([[0.5], [-2.0], [0.0], [0.0]]), 'labels': i32([1, 1, 0, 1]), 'weights': f32([1, 1, 1, 0])}
  loss_sum, sums = task.loss({}, batch, None, train=False)
  assert float(loss_sum) == pytest.approx(0.5 + 3.0 + 1.0)  # the weight-0 row counts for nothing
  assert float(sums['correct']) == 2.0 and float(sums['weight']) == 3.0  # ŷ = 0 predicts class 0
  assert task.finalize(jax.device_get(sums), 'val_') == {'val_loss': pytest.approx(1.5), 'val_accuracy': pytest.approx(2 / 3)}


@pytest.mark.parametrize('layout', [dict(scan_layers=True), dict(remat=True), dict(scan_layers=True, remat=True)])
def test_matrix_mask_does_not_count_the_stacked_layer_axis(layout):
  """Weight decay and L2 see the same matrices whichever layout the blocks are stored in."""
  from flax.traverse_util import flatten_dict
  from lm_anatomy.models import layers
  from lm_anatomy.models.gpt import GPT
  plain = GPT(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8, bias=True)
  params = jax.device_get(plain.init(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))['params'])
  stored = layers.stored_blocks(params, 2, layout.get('scan_layers', False), layout.get('remat', False))
  shapes = jax.eval_shape(plain.clone(**layout).init, jax.random.key(0), jnp.zeros((1, 8), jnp.int32))['params']
  assert jax.tree.map(np.shape, stored) == jax.tree.map(lambda s: s.shape, shapes)
  want = flatten_dict(layers.matrix_mask(params))
  got = flatten_dict(layers.matrix_mask(stored))
  if layout.get('scan_layers'):
    got = {(('h_0',) + k[2:] if k[0] == 'h' else k): v for k, v in got.items()}
  else:
    got = {((k[0],) + k[2:] if k[1:2] == ('block',) else k): v for k, v in got.items()}
  want = {k: v for k, v in want.items() if k in got}
  assert got == want and sum(want.values()) >= 6
  assert not want[('h_0', 'ln_1', 'scale')] and not want[('h_0', 'attn', 'c_attn', 'bias')]
  assert want[('h_0', 'attn', 'c_attn', 'kernel')] and want[('wte', 'embedding')]
  np.testing.assert_allclose(losses.l2_penalty(stored), losses.l2_penalty(params), rtol=1e-6)


def test_label_smoothing_shapes_the_objective_not_the_reported_loss(tiny_config):
  """train_loss in metrics.jsonl was the smoothed objective, val_loss the plain cross-entropy."""
  from lm_anatomy import data, models
  tiny_config.task.label_smoothing = 0.3
  ds = data.build(tiny_config)
  task = tasks.build(tiny_config, models.build(tiny_config, ds.info), ds)
  batch = ds.train_batch(0, 4)
  params = task.init(jax.random.key(0), batch)
  objective, sums = task.loss(params, batch, None, train=True)
  logits = task.logits(params, batch)
  plain = losses.weighted_sums(losses.cross_entropy(logits, batch['targets']), batch['weights'])[0]
  smoothed = losses.weighted_sums(losses.cross_entropy(logits, batch['targets'], 0.3), batch['weights'])[0]
  assert float(sums['loss']) == pytest.approx(float(plain), rel=1e-6)
  assert float(objective) == pytest.approx(float(smoothed), rel=1e-6)
  assert abs(float(smoothed) - float(plain)) > 1e-4 * float(plain)  # far apart next to the 1e-6 checks above


def _one_step(name, grad_scale=1.0, **fields):
  """(params, grads, params after one step of optim.build) on a kernel, a bias and a LayerNorm gain."""
  from lm_anatomy import optim
  opt = base().optimizer
  opt.update(dict(name=name, lr=0.1, schedule='constant', warmup_steps=0, weight_decay=0.5, grad_clip=1.0), **fields)
  rng = np.random.default_rng(0)
  params = {'dense': {'kernel': rng.normal(size=(3, 2)), 'bias': rng.normal(size=2)}, 'ln': {'scale': rng.normal(size=2)}}
  grads = jax.tree.map(lambda p: grad_scale * rng.normal(size=p.shape), params)
  params, grads = jax.tree.map(lambda x: np.asarray(x, np.float32), (params, grads))
  tx, _ = optim.build(opt, 10)
  updates, _ = tx.update(grads, tx.init(params), params)
  return params, grads, jax.tree.map(lambda p, u: np.asarray(p + u), params, updates)


@pytest.mark.parametrize('name', ['adamw', 'adam', 'sgd', 'momentum'])
def test_one_optimizer_step_by_hand(name):
  """One update: global-norm clipping of all gradients together, then the rule, with weight decay on the
  kernel only (adamw decoupled; sgd, momentum and adam add λθ to the gradient, as PyTorch)."""
  params, grads, new = _one_step(name, grad_scale=3.0)   # ‖g‖ > 1: clipped
  lr, lam, eps = 0.1, 0.5, 1e-8
  norm = np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in jax.tree.leaves(grads)))
  assert norm > 1.0
  for path in (('dense', 'kernel'), ('dense', 'bias'), ('ln', 'scale')):
    p = np.float64(params[path[0]][path[1]])
    g = np.float64(grads[path[0]][path[1]]) / norm
    decay = lam if path[1] == 'kernel' else 0.0
    if name == 'adamw':   # first step: m̂ = g, v̂ = g², so the Adam step is g / (|g| + ε)
      want = p - lr * (g / (np.abs(g) + eps) + decay * p)
    elif name == 'adam':
      g = g + decay * p
      want = p - lr * g / (np.abs(g) + eps)
    else:                 # momentum's first step is plain SGD
      want = p - lr * (g + decay * p)
    np.testing.assert_allclose(new[path[0]][path[1]], want, rtol=1e-5, atol=1e-6, err_msg=f'{name} {path}')


def test_cross_entropy_is_float32_for_bfloat16_logits():
  """bfloat16 logits are scored in float32: −log softmax(z)_y = logsumexp(z) − z_y to float32 precision."""
  z = jnp.asarray([[0.0, 3.0, 5.0, 7.25]], jnp.bfloat16)  # each value exact in bfloat16
  got = losses.cross_entropy(z, i32([0]))
  assert got.dtype == jnp.float32
  zz = np.asarray([0.0, 3.0, 5.0, 7.25])
  np.testing.assert_allclose(got, [np.log(np.exp(zz).sum()) - zz[0]], rtol=1e-6)


class _Fixed:
  """A model whose scores (or logits) are its inputs."""
  def apply(self, variables, inputs, train=False, rngs=None):
    return inputs


def test_classify_accuracy_counts_weighted_rows_only():
  """A weight-0 (padding) row that the model gets right adds nothing to `correct`, for one score and for C."""
  task = tasks.build(_classify_config('cross_entropy'), _Fixed(), None)
  one = {'inputs': f32([[2.0], [-1.0], [3.0]]), 'labels': i32([1, 1, 1]), 'weights': f32([1, 1, 0])}
  _, sums = task.loss({}, one, None, train=False)
  assert float(sums['correct']) == 1.0 and float(sums['weight']) == 2.0
  many = {'inputs': f32([[0.0, 2.0, 1.0], [3.0, 0.0, 1.0], [0.0, 0.0, 5.0]]), 'labels': i32([1, 2, 2]),
          'weights': f32([1, 1, 0])}
  _, sums = task.loss({}, many, None, train=False)
  assert float(sums['correct']) == 1.0 and float(sums['weight']) == 2.0


def test_causal_lm_metrics_by_hand():
  """Loss = Σ w ℓ / Σ w over scored tokens, perplexity = e^loss, bpc = loss / ln 2 / (chars per token of
  the split), accuracy over scored tokens only."""
  from types import SimpleNamespace
  logits = np.array([[[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0], [1.0, 0.0, 0.0]]], np.float32)
  targets, weights = np.array([[0, 2, 2, 0]]), np.array([[1.0, 1.0, 1.0, 0.0]])  # last token: padding, right
  dataset = SimpleNamespace(chars_per_token={'train': 4.0, 'val': 2.5})
  task = tasks.build(base(), _Fixed(), dataset)
  _, sums = task.loss({}, {'inputs': f32(logits), 'targets': i32(targets), 'weights': f32(weights)}, None, False)
  z = logits.astype(np.float64)[0]
  nll = np.log(np.exp(z).sum(-1)) - z[np.arange(4), targets[0]]
  mean = (nll * weights[0]).sum() / 3
  assert float(sums['loss']) == pytest.approx((nll * weights[0]).sum(), rel=1e-6)
  assert float(sums['weight']) == 3.0 and float(sums['correct']) == 2.0
  for split, ratio in (('val', 2.5), ('train', 4.0)):
    out = task.finalize(jax.device_get(sums), f'{split}_', split)
    assert out[f'{split}_loss'] == pytest.approx(mean, rel=1e-6)
    assert out[f'{split}_perplexity'] == pytest.approx(np.exp(mean), rel=1e-6)
    assert out[f'{split}_bpc'] == pytest.approx(mean / np.log(2) / ratio, rel=1e-6)
    assert out[f'{split}_accuracy'] == pytest.approx(2 / 3, rel=1e-6)


def test_evaluated_file_knows_its_characters_per_token(tmp_path):
  """`evaluate` on a text file: its bpc divides by the file's characters over its tokens (here words)."""
  from types import SimpleNamespace
  from lm_anatomy import evaluate
  from lm_anatomy.data import tokenizers
  content = 'the film was good and the plot was fine'   # 39 characters, 9 words
  (tmp_path / 'f.txt').write_text(content)
  config = base()
  config.data.seq_len = 2
  run = SimpleNamespace(config=config, tokenizer=tokenizers.WordTokenizer.fit(content))
  ds = evaluate.file_dataset(run, tmp_path / 'f.txt')
  assert len(ds.splits['file']) == 9 and ds.chars_per_token == {'file': 39 / 9}
  out = tasks.build(config, None, ds).finalize({'loss': 6.0, 'weight': 3.0}, '', 'file')
  assert out['bpc'] == pytest.approx(2.0 / math.log(2) * 9 / 39, rel=1e-6)
