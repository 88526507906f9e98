"""Classification datasets of fixed-size vectors: XOR, binary bag-of-words SST-2, scikit-learn's digits.

Each example is an input vector x ∈ ℝ^d with a class label y ∈ {0, …, C−1}. Batches are dicts of numpy
arrays, as the `classify` task expects:
  inputs  [batch, d] float32
  labels  [batch]    int32
  weights [batch]    float32   (1 for examples, 0 for padding rows)

Training batch `step` is a pure function of (seed, step): the training set is read in epochs, each in
the order of the permutation `np.random.default_rng([seed, epoch])`, and global batch `step` holds
positions `step·B … (step+1)·B − 1` of that endless stream; process `p` of `P` keeps rows
`[p·B/P, (p+1)·B/P)`. Evaluation reads a split in order, the last batch padded with rows of weight 0.

Corpora (`config.data.corpus`):
  xor         the 4 points of {0,1}², y = x1 XOR x2; train = val = the 4 points
  xor_phi     the same points under φ(x1, x2) = [x1 + x2, x1·x2]
  xor_noisy   the 4 corners plus Gaussian noise (σ = 0.2), labels of their corner; 400/200/200 points
              for train/val/test, sampled once with a fixed seed (not `config.seed`)
  sst2_bow    SST-2 sentences as binary bags of words: x_j = 1 if word j occurs; vocabulary from the
              training sentences (`data.tokenizer = 'words'`); splits train and val (= the dev file)
  digits      scikit-learn's 8×8 digits, pixels / 16; a fixed split (permutation seed DATA_SEED) of 1257/180/360
              examples for train/val/test
The inputs of all but sst2_bow are numbers; `data.tokenizer` is not used for them. Training goes through
the train split by epochs (a fresh permutation each), whatever `data.sampling` says.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from lm_anatomy.data import corpora, sst2, tokenizers
from lm_anatomy.data.text import rows_of_process
from lm_anatomy.errors import ConfigError, DataError

XOR_INPUTS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
XOR_LABELS = np.array([0, 1, 1, 0], np.int32)
XOR_NOISE_STD = 0.2
XOR_NOISY_SIZES = {'train': 400, 'val': 200, 'test': 200}
DIGITS_SIZES = {'val': 180, 'test': 360}  # the rest (1257) train
DATA_SEED = 20240101                      # fixed sampling of xor_noisy and of the digits split


def xor_phi(x: np.ndarray) -> np.ndarray:
  """φ(x1, x2) = [x1 + x2, x1·x2]. x: [N, 2] → [N, 2]. Maps XOR's classes to linearly separable points:
  (0,0) → (0,0), (0,1) and (1,0) → (1,0), (1,1) → (2,1)."""
  return np.stack([x[:, 0] + x[:, 1], x[:, 0] * x[:, 1]], axis=1).astype(np.float32)


class BinaryRows:
  """A binary matrix [N, d] stored by rows as the column indices of its ones (CSR without values).

  `rows(idx)` gives the dense float32 rows [len(idx), d]; `to_scipy()` the scipy.sparse matrix.
  """

  def __init__(self, columns: Sequence[np.ndarray], dim: int):
    self.dim = dim
    self.indptr = np.concatenate([[0], np.cumsum([len(c) for c in columns])]).astype(np.int64)
    self.indices = (np.concatenate(columns) if len(columns) else np.zeros(0)).astype(np.int64)

  @property
  def shape(self) -> tuple[int, int]:
    return (len(self.indptr) - 1, self.dim)

  def __len__(self) -> int:
    return len(self.indptr) - 1

  def rows(self, idx: np.ndarray) -> np.ndarray:
    out = np.zeros((len(idx), self.dim), np.float32)
    for r, i in enumerate(idx):
      out[r, self.indices[self.indptr[i]:self.indptr[i + 1]]] = 1.0
    return out

  def to_scipy(self):
    import scipy.sparse
    data = np.ones(len(self.indices), np.float32)
    return scipy.sparse.csr_matrix((data, self.indices, self.indptr), shape=self.shape)


def _take(x, idx: np.ndarray) -> np.ndarray:
  return x.rows(idx) if isinstance(x, BinaryRows) else np.asarray(x[idx], np.float32)


class VectorDataset:
  """Splits of (inputs [N, d], labels [N]) with the dataset interface of `lm_anatomy.data`."""

  def __init__(self, splits: dict[str, tuple], num_classes: int, tokenizer, seed: int,
               process_index: int = 0, process_count: int = 1):
    if 'train' not in splits:
      raise DataError(f'a vector dataset needs a train split; got {sorted(splits)}')
    dims = {name: x.shape[1] for name, (x, _) in splits.items()}
    for name, (x, y) in splits.items():
      if len(x) != len(y) or len(y) == 0:
        raise DataError(f'split {name!r} has {len(x)} inputs and {len(y)} labels; need as many, and at least one')
      if dims[name] != dims['train']:
        raise DataError(f'split {name!r} has {dims[name]} features, train has {dims["train"]}')
      if y.min() < 0 or y.max() >= num_classes:
        raise DataError(f'split {name!r} has labels outside 0 … {num_classes - 1}')
    self.splits = {name: (x, np.asarray(y, np.int32)) for name, (x, y) in splits.items()}
    self.tokenizer = tokenizer
    self.seed = seed
    self.process_index = process_index
    self.process_count = process_count
    self.info = {'input_dim': int(dims['train']), 'num_classes': int(num_classes)}
    self.train_split = 'train'
    self.eval_splits = [s for s in splits if s != 'train']

  def tokens_per_example(self, batch: dict | None = None) -> int:
    """One example counts as one 'token': tokens_per_sec is examples per second."""
    return 1

  def features(self, split: str):
    """(inputs, labels) of a whole split: inputs a dense [N, d] array or BinaryRows."""
    return self.splits[split]

  def _batch(self, split: str, idx: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    x, y = self.splits[split]
    return {'inputs': _take(x, idx), 'labels': y[idx], 'weights': weights.astype(np.float32)}

  def train_indices(self, step: int, batch_size: int) -> np.ndarray:
    """Training-set indices of global batch `step` (all processes' rows)."""
    n = len(self.splits[self.train_split][1])
    positions = step * batch_size + np.arange(batch_size, dtype=np.int64)
    epochs = positions // n
    idx = np.empty(batch_size, np.int64)
    for epoch in np.unique(epochs):
      order = np.random.default_rng([self.seed, int(epoch)]).permutation(n)
      here = epochs == epoch
      idx[here] = order[positions[here] % n]
    return idx

  def train_batch(self, step: int, batch_size: int) -> dict[str, np.ndarray]:
    """This process's rows of global batch `step`."""
    idx = self.train_indices(step, batch_size)[rows_of_process(batch_size, self.process_index, self.process_count)]
    return self._batch(self.train_split, idx, np.ones(len(idx)))

  def example_batch(self, batch_size: int) -> dict[str, np.ndarray]:
    return self.train_batch(0, batch_size)

  def eval_batches(self, split: str, batch_size: int, max_batches: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """Batches covering `split` in order (or a fixed, evenly spaced subset of `max_batches` batches)."""
    n = len(self.splits[split][1])
    chosen = np.arange(n)
    if max_batches and max_batches * batch_size < n:
      chosen = np.linspace(0, n - 1, max_batches * batch_size).astype(np.int64)
    rows = rows_of_process(batch_size, self.process_index, self.process_count)
    for b in range(0, len(chosen), batch_size):
      idx = chosen[b:b + batch_size]
      weights = np.arange(batch_size) < len(idx)
      idx = np.concatenate([idx, np.zeros(batch_size - len(idx), np.int64)])
      batch = self._batch(split, idx, weights)
      yield {k: v[rows] for k, v in batch.items()}


def _check_no_tokenizer_needed(config, corpus) -> None:
  if config.data.tokenizer != 'char':
    raise ConfigError(f"data.tokenizer={config.data.tokenizer!r} makes no sense for data.corpus={corpus.name!r}, "
                      "whose inputs are numbers; leave data.tokenizer at its default ('char', unused)")


def build_xor(corpus, config, process_index: int = 0, process_count: int = 1) -> VectorDataset:
  """The 4 XOR points (under φ for 'xor_phi'); train and val are the same 4 points."""
  _check_no_tokenizer_needed(config, corpus)
  phi = corpus.name == 'xor_phi'
  x = xor_phi(XOR_INPUTS) if phi else XOR_INPUTS
  names = ['x1+x2', 'x1*x2'] if phi else ['x1', 'x2']
  return VectorDataset({'train': (x, XOR_LABELS), 'val': (x, XOR_LABELS)}, 2, tokenizers.FeatureNames(names),
                       config.seed, process_index, process_count)


def sample_noisy_xor(n: int, rng: np.random.Generator, noise_std: float = XOR_NOISE_STD):
  """n points: uniformly chosen XOR corners plus N(0, σ²) noise. → (x [n, 2] float32, y [n] int32)."""
  corner = rng.integers(0, 4, size=n)
  x = XOR_INPUTS[corner] + rng.normal(0.0, noise_std, size=(n, 2)).astype(np.float32)
  return x.astype(np.float32), XOR_LABELS[corner]


def build_xor_noisy(corpus, config, process_index: int = 0, process_count: int = 1) -> VectorDataset:
  _check_no_tokenizer_needed(config, corpus)
  splits = {name: sample_noisy_xor(n, np.random.default_rng([DATA_SEED, i]))
            for i, (name, n) in enumerate(XOR_NOISY_SIZES.items())}
  return VectorDataset(splits, 2, tokenizers.FeatureNames(['x1', 'x2']), config.seed, process_index, process_count)


def load_digits_split() -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """scikit-learn's 1797 digits (8×8 pixels in 0 … 16, scaled to [0, 1]) in a fixed train/val/test split."""
  try:
    from sklearn.datasets import load_digits
  except ImportError:
    raise DataError('the digits corpus comes with scikit-learn: pip install scikit-learn') from None
  digits = load_digits()
  x = (digits.data / 16.0).astype(np.float32)
  y = digits.target.astype(np.int32)
  order = np.random.default_rng(DATA_SEED).permutation(len(y))
  n_val, n_test = DIGITS_SIZES['val'], DIGITS_SIZES['test']
  parts = {'train': order[n_val + n_test:], 'val': order[:n_val], 'test': order[n_val:n_val + n_test]}
  return {name: (x[idx], y[idx]) for name, idx in parts.items()}


def build_digits(corpus, config, process_index: int = 0, process_count: int = 1) -> VectorDataset:
  _check_no_tokenizer_needed(config, corpus)
  names = [f'pixel_{r}_{c}' for r in range(8) for c in range(8)]
  return VectorDataset(load_digits_split(), 10, tokenizers.FeatureNames(names), config.seed, process_index,
                       process_count)


def bag_of_words(sentences: Sequence[str], tokenizer: tokenizers.WordTokenizer) -> BinaryRows:
  """x_j = 1 if word j occurs in the sentence (unknown words: the `<unk>` feature, j = 0)."""
  return BinaryRows([np.unique(tokenizer.encode(s)) for s in sentences], tokenizer.vocab_size)


def build_sst2_bow(corpus, config, process_index: int = 0, process_count: int = 1) -> VectorDataset:
  if config.data.tokenizer != 'words':
    raise ConfigError(f"data.corpus='sst2_bow' needs data.tokenizer='words', got {config.data.tokenizer!r}")
  train_y, train_s = sst2.read_labelled_lines(corpora.locate(corpus.files['train']))
  dev_y, dev_s = sst2.read_labelled_lines(corpora.locate(corpus.files['dev']))
  tok = tokenizers.WordTokenizer.fit('\n'.join(train_s))
  splits = {'train': (bag_of_words(train_s, tok), train_y), 'val': (bag_of_words(dev_s, tok), dev_y)}
  return VectorDataset(splits, 2, tok, config.seed, process_index, process_count)


for _name, _build, _description in (
    ('xor', build_xor, 'The 4 XOR points of {0,1}², labels x1 XOR x2.'),
    ('xor_phi', build_xor, 'The 4 XOR points under φ(x1, x2) = [x1 + x2, x1·x2].'),
    ('xor_noisy', build_xor_noisy, 'Noisy XOR: corners plus N(0, 0.2²) noise; 400/200/200 points.'),
    ('digits', build_digits, "scikit-learn's 8×8 digits, a fixed 1257/180/360 split."),
):
  corpora.register(corpora.Corpus(name=_name, files={}, build=_build, description=_description,
                                  tasks=('classify',), inputs='vectors'))

corpora.register(corpora.Corpus(
    name='sst2_bow', files=dict(sst2.FILES), build=build_sst2_bow, tasks=('classify',), inputs='vectors',
    description='SST-2 (binary sentence sentiment) as binary bags of words; train and val (the dev file).'))
