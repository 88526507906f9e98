"""The tutorial toolkit end to end: vector datasets, the XOR story, bag-of-words SST-2, digits, the sweep."""
import json

import jax.numpy as jnp
import numpy as np
import pytest

import lm_anatomy
from lm_anatomy import config as config_lib
from lm_anatomy import data, engine, sweep, tutorial
from lm_anatomy.data import sst2, tokenizers, vectors
from lm_anatomy.errors import ConfigError, DataError
from conftest import ROOT, load_config

XOR_RESULTS = {'linear': (0.0, 0.75), 'stack': (0.0, 0.75), 'phi': (1.0, 1.0), 'mlp': (1.0, 1.0)}  # accuracy range


@pytest.fixture(scope='module')
def xor_runs(tmp_path_factory):
  root = tmp_path_factory.mktemp('xor')
  return {v: tutorial.Classifier.train(load_config('xor.py', v), root / v) for v in XOR_RESULTS}


@pytest.mark.parametrize('variant', list(XOR_RESULTS))
def test_xor_results_hold(xor_runs, variant):
  """Linear and stacked-linear: at most 3 of 4 points; linear on φ(x) and the MLP: all 4."""
  clf = xor_runs[variant]
  low, high = XOR_RESULTS[variant]
  record = json.loads((clf.workdir / 'metrics.jsonl').read_text().splitlines()[-1])
  assert low <= record['val_accuracy'] <= high
  assert record['val_accuracy'] == clf.accuracy('val')


def test_no_line_separates_xor_but_one_separates_phi_of_xor():
  x, y = vectors.XOR_INPUTS, vectors.XOR_LABELS
  assert tutorial.best_linear_accuracy_2d(x, y) == 0.75
  assert tutorial.best_linear_accuracy_2d(vectors.xor_phi(x), y) == 1.0
  np.testing.assert_array_equal(vectors.xor_phi(x), [[0, 0], [1, 0], [1, 0], [2, 1]])
  assert tutorial.best_linear_accuracy_2d(np.array([[0, 0], [1, 0], [2, 0]]), np.array([0, 1, 0])) == pytest.approx(2 / 3)
  rng = np.random.default_rng(0)
  pts = rng.normal(size=(30, 2))
  assert tutorial.best_linear_accuracy_2d(pts, (pts @ [1.0, -2.0] > 0.3).astype(int)) == 1.0
  with pytest.raises(DataError, match='shape \\[N, 2\\]'):
    tutorial.best_linear_accuracy_2d(np.zeros((4, 3)), np.zeros(4))


def test_stack_collapses_and_plots_are_written(xor_runs, tmp_path):
  stack = xor_runs['stack']
  w, b = stack.run.model.collapse(stack.run.params)
  x = vectors.XOR_INPUTS
  np.testing.assert_allclose(stack.scores(x), x @ np.asarray(w) + np.asarray(b), rtol=1e-5, atol=1e-6)
  png = b'\x89PNG'
  path = tutorial.plot_decision_boundaries(
      [{'title': v, 'score_fn': xor_runs[v].scores, 'x': x, 'y': vectors.XOR_LABELS} for v in ('linear', 'mlp')],
      tmp_path / 'b.png')
  assert path.read_bytes()[:4] == png
  path = tutorial.plot_hidden_representation(xor_runs['mlp'], x, vectors.XOR_LABELS, tmp_path / 'h.png')
  assert path.read_bytes()[:4] == png



@pytest.mark.parametrize('change', [{'depth': 2}, {'binary_output': False}])
def test_the_drawn_output_boundary_separates_what_the_model_predicts(tmp_path, change):
  """In the last hidden layer the output boundary puts each point on the side of its predicted class,
  for a deeper MLP and for one with two scores too."""
  config = load_config('xor.py', 'mlp')
  config.model.update(change)
  clf = tutorial.Classifier.train(config, tmp_path / 'run')
  x = np.random.default_rng(0).uniform(-0.5, 1.5, (200, 2)).astype(np.float32)
  h = np.asarray(clf.run.model.apply({'params': clf.run.params}, jnp.asarray(x), method='hidden')[-1])
  w, b = tutorial.output_boundary(clf.run.params['output'])
  np.testing.assert_array_equal((h @ w + b > 0).astype(int), clf.predict(x))
  assert 0 < clf.predict(x).mean() < 1


def _xor_noisy(seed=0, process_index=0, process_count=1):
  config = load_config('xor.py', 'noisy')
  config.seed = seed
  return data.build(config, process_index, process_count)


def test_vector_batches_are_pure_epochs_and_split_by_process():
  ds = _xor_noisy()
  assert ds.info == {'input_dim': 2, 'num_classes': 2} and ds.eval_splits == ['val', 'test']
  a, b = ds.train_batch(3, 40), ds.train_batch(3, 40)
  for k in ('inputs', 'labels', 'weights'):
    np.testing.assert_array_equal(a[k], b[k])
  assert a['inputs'].shape == (40, 2) and a['labels'].dtype == np.int32 and a['weights'].sum() == 40
  assert not np.array_equal(ds.train_batch(4, 40)['inputs'], a['inputs'])
  assert not np.array_equal(_xor_noisy(seed=1).train_batch(3, 40)['inputs'], a['inputs'])
  epoch = np.concatenate([ds.train_indices(s, 40) for s in range(10)])  # 400 examples = 10 batches
  np.testing.assert_array_equal(np.sort(epoch), np.arange(400))
  halves = [_xor_noisy(0, p, 2).train_batch(3, 40) for p in range(2)]
  np.testing.assert_array_equal(np.concatenate([h['inputs'] for h in halves]), a['inputs'])


def test_vector_eval_batches_cover_each_example_once():
  ds = _xor_noisy()
  x, y = ds.features('val')
  batches = list(ds.eval_batches('val', 64))
  assert len(batches) == 4 and all(b['inputs'].shape == (64, 2) for b in batches)
  w = np.concatenate([b['weights'] for b in batches])
  assert w.sum() == 200 and (w[200:] == 0).all()
  np.testing.assert_array_equal(np.concatenate([b['inputs'] for b in batches])[w > 0], x)
  np.testing.assert_array_equal(np.concatenate([b['labels'] for b in batches])[w > 0], y)
  assert len(list(ds.eval_batches('val', 64, max_batches=2))) == 2


def test_digits_split_is_fixed_and_disjoint():
  config = load_config('digits_mlp.py')
  a, b = data.build(config), data.build(config)
  assert a.info == {'input_dim': 64, 'num_classes': 10} and a.eval_splits == ['val', 'test']
  sizes = {s: len(a.features(s)[1]) for s in ('train', 'val', 'test')}
  assert sizes == {'train': 1257, 'val': 180, 'test': 360}
  for s in sizes:
    np.testing.assert_array_equal(a.features(s)[0], b.features(s)[0])
  assert a.features('train')[0].min() == 0.0 and a.features('train')[0].max() == 1.0
  # The three splits together are the 1797 digits, each once.
  from sklearn.datasets import load_digits
  rows = lambda x, y: sorted(tuple(r) + (int(c),) for r, c in zip(np.asarray(x, np.float32).tolist(), y))
  together = sorted(r for s in sizes for r in rows(*a.features(s)))
  digits = load_digits()
  assert together == rows(digits.data / 16.0, digits.target)


def test_digits_mlp_reaches_97_percent_test_accuracy(tmp_path):
  record = engine.train(load_config('digits_mlp.py'), tmp_path / 'run', progress=False)
  assert record['step'] == 2000 and record['test_accuracy'] >= 0.97 and 'val_accuracy' in record


POSITIVE = ['good', 'great', 'fine', 'lovely']
NEGATIVE = ['bad', 'awful', 'dull', 'poor']
FILLER = ['the', 'film', 'a', 'movie', 'plot', 'is', 'was', 'acting']


def _sentences(n, seed):
  rng = np.random.default_rng(seed)
  lines = []
  for i in range(n):
    label = i % 2
    words = list(rng.choice(FILLER, 4)) + [rng.choice(POSITIVE if label else NEGATIVE)]
    rng.shuffle(words)
    lines.append(f'{label} {" ".join(words)}')
  return lines


@pytest.fixture
def tiny_sst2(tmp_path, monkeypatch):
  """LM_ANATOMY_DATA with a tiny fake SST-2 (40 train, 10 dev sentences); no cache, no downloads."""
  root = tmp_path / 'data'
  (root / 'sst2').mkdir(parents=True)
  (root / 'sst2' / 'stsa.binary.train').write_text('\n'.join(_sentences(40, 0)) + '\n')
  (root / 'sst2' / 'stsa.binary.dev').write_text('\n'.join(_sentences(10, 1) + ['1 an unseen good word']) + '\n')
  monkeypatch.setenv('LM_ANATOMY_DATA', str(root))
  monkeypatch.setenv('LM_ANATOMY_CACHE', str(tmp_path / 'cache'))
  return root


def test_read_labelled_lines(tmp_path):
  (tmp_path / 'ok.txt').write_text('1 a fine film\n0 a dull one .\n\n')
  labels, sentences = sst2.read_labelled_lines(tmp_path / 'ok.txt')
  np.testing.assert_array_equal(labels, [1, 0])
  assert labels.dtype == np.int32 and sentences == ['a fine film', 'a dull one .']
  (tmp_path / 'bad.txt').write_text('1 fine\n2 what\n')
  with pytest.raises(DataError, match='bad.txt, line 2: expected'):
    sst2.read_labelled_lines(tmp_path / 'bad.txt')
  # One line is one example: a byte-order mark, CRLF ends and other Unicode line breaks inside a line.
  (tmp_path / 'odd.txt').write_bytes('\ufeff1 good movie\u2028 0 but still bad\r\n0 bad \x85film\r\n'.encode())
  labels, sentences = sst2.read_labelled_lines(tmp_path / 'odd.txt')
  assert list(labels) == [1, 0] and sentences == ['good movie\u2028 0 but still bad', 'bad \x85film']
  assert sst2.TRAIN.path == 'sst2/stsa.binary.train' and len(sst2.DEV.sha256) == 64


def test_bag_of_words_features(tiny_sst2):
  config = load_config('sst2_bow.py')
  ds = data.build(config)
  tok = ds.tokenizer
  assert ds.info == {'input_dim': tok.vocab_size, 'num_classes': 2} and ds.eval_splits == ['val']
  x, y = ds.features('val')
  last = x.rows(np.array([len(y) - 1]))[0]  # '1 an unseen good word': only 'good' and <unk> are known
  assert set(np.flatnonzero(last)) == {0, tok.stoi['good']} and y[-1] == 1
  dense = x.rows(np.arange(len(y)))
  np.testing.assert_array_equal(dense, x.to_scipy().toarray())
  assert set(np.unique(dense)) == {0.0, 1.0}
  config.data.tokenizer = 'char'
  with pytest.raises(ConfigError, match="needs data.tokenizer='words'"):
    data.build(config)


@pytest.mark.parametrize('name, arg', [('xor.py', 'mlp'), ('digits_mlp.py', '')])
def test_a_tokenizer_on_numeric_inputs_is_a_config_error(name, arg):
  """These corpora's inputs are numbers: a tokenizer other than the (unused) default is refused, not ignored."""
  config = load_config(name, arg)
  config.data.tokenizer = 'bpe'
  with pytest.raises(ConfigError, match=f"data.tokenizer='bpe' makes no sense for data.corpus={config.data.corpus!r}"):
    data.build(config)


def test_logistic_regression_reaches_sklearns_optimum(tiny_sst2, tmp_path):
  """λ = 1/(C·N): the engine's objective is scikit-learn's LogisticRegression(C) objective over C·N."""
  config = load_config('sst2_bow.py')
  config.task.l2 = 1.0 / 40  # C = 1 for N = 40
  config.batch_size, config.steps, config.eval_every, config.checkpoint_every = 40, 300, 300, 300
  config.optimizer.lr = 0.1
  clf = tutorial.Classifier.train(config, tmp_path / 'run')
  ours = clf.objective('train')
  theirs, lam = tutorial.logistic_objective_sklearn(clf.dataset.features('train'), C=1.0)
  assert lam == pytest.approx(1 / 40)
  assert ours == pytest.approx(theirs, rel=1e-5)
  positive, negative = tutorial.top_words(clf, 4)
  assert {w for w, _ in positive} == set(POSITIVE) and {w for w, _ in negative} == set(NEGATIVE)
  record = json.loads((tmp_path / 'run' / 'metrics.jsonl').read_text().splitlines()[-1])
  assert record['val_accuracy'] == 1.0
  # The run reads back with its word vocabulary.
  run = lm_anatomy.restore(tmp_path / 'run')
  assert isinstance(run.tokenizer, tokenizers.WordTokenizer) and run.tokenizer.itos == clf.dataset.tokenizer.itos
  baselines = tutorial.sklearn_baselines(clf.dataset.features('train'), clf.dataset.features('val'))
  assert baselines == {'LogisticRegression': 1.0, 'LinearSVC': 1.0}


def test_word_and_feature_tokenizers_save_and_load(tmp_path):
  words = tokenizers.WordTokenizer.fit('b a b c b a')
  assert words.itos == ['<unk>', 'b', 'a', 'c']
  np.testing.assert_array_equal(words.encode('a b z'), [2, 1, 0])
  names = tokenizers.FeatureNames(['x1', 'x2'])
  for tok in (words, names):
    tokenizers.save(tok, tmp_path / 't.json')
    back = tokenizers.load(tmp_path / 't.json')
    assert type(back) is type(tok) and back.to_json() == tok.to_json()
  with pytest.raises(DataError, match='numeric vectors of 2 features, not text'):
    names.encode('hello')


@pytest.mark.parametrize('name, variants', [
    ('xor.py', ['', 'linear', 'phi', 'stack', 'mlp', 'noisy']), ('sst2_bow.py', ['', 'mlp']),
    ('digits_mlp.py', ['', 'linear'])])
def test_tutorial_configs_validate(name, variants):
  for v in variants:
    config_lib.validate(load_config(name, v))
  with pytest.raises(ValueError, match='unknown variant'):
    load_config(name, 'nope')


def test_loss_optimizer_sweep_has_every_pair_and_validates(monkeypatch):
  monkeypatch.chdir(ROOT)
  sw = sweep.load('experiments/sweeps/loss_optimizer.py')
  pairs = {(p.overrides['optimizer.name'], p.overrides['task.loss']) for p in sw.points}
  assert pairs == {(o, l) for o in ('sgd', 'momentum', 'adam') for l in ('squared', 'hinge', 'cross_entropy')}
  for p in sw.points:
    assert p.build_config().model.name == 'linear'
