"""The names corpus: makemore's `names.txt`, one name per example, with makemore's setup and test split.

Tokens: the 26 letters and one special token '.' (id 0) that both starts and ends a name, so the
vocabulary has 27 symbols. With T = 1 + the longest name's length (16 for names.txt), a name
c_1 … c_n is one row:

  inputs   .   c_1  c_2  …  c_n  .  …  .          [T]   '.' first, then the name, then padding
  targets  c_1 c_2  …   c_n  .   .  …  .          [T]   the name, then '.' (the end), then padding
  weights  1   1    …   1    1   0  …  0          [T]   n + 1 ones: every character and the end token

so a batch's loss Σ w ℓ / Σ w is makemore's: the mean cross-entropy over every character of each name
plus its end token. Padding scores nothing, and no model can see it from a scored position (all are causal).

Split: `names/test_split.txt` holds makemore's own 1,000 test indices (0-based, into the non-empty
lines of names.txt; see the data folder's SOURCES.md); every other line is train. Without that file
the test set is the last min(1000, 10%) entries (at least one) of a permutation seeded with `SPLIT_SEED` (makemore's
default seed; the split does not change with `config.seed`). Names repeat in names.txt, so the split
is by line, not by name. With `data.holdout` = k > 0, k training names (a permutation seeded with
(`SPLIT_SEED`, 1), the same for every `config.seed`) become a 'val' split, so that settings can be
chosen on val without looking at test; training uses the rest.

Batches are pure functions of (seed, step): train batch `step` draws its names uniformly with
replacement with `np.random.default_rng([seed, step])` (makemore samples with replacement too), or, with
`data.sampling = 'epochs'`, takes the next names of an epoch's permutation (data/text.py), and
process p of P keeps rows [p·B/P, (p+1)·B/P). Evaluation covers a split in order, the last batch padded
with rows of weight 0. The eval splits are ['test'] (['val', 'test'] with a holdout, val first: the
best checkpoint is chosen on it), so metrics.jsonl records `test_loss` (and `val_loss`).
"""
from __future__ import annotations

import logging
from typing import Iterator

import numpy as np

from lm_anatomy import config as config_lib
from lm_anatomy.data import corpora, tokenizers
from lm_anatomy.data.text import EpochOrder, rows_of_process
from lm_anatomy.errors import ConfigError, DataError

log = logging.getLogger(__name__)

BOUNDARY = '.'     # start and end of every name (id 0)
SPLIT_SEED = 3407  # makemore's default seed, for the fallback split only


class NamesDataset:
  """One name per row, a start token before it and an end token after it (see the module docstring)."""

  def __init__(self, words: dict[str, list[str]], tokenizer, seq_len: int, seed: int,
               process_index: int = 0, process_count: int = 1, sampling: str = 'replacement'):
    self.words = words
    self.epoch_order = EpochOrder(seed, len(words['train'])) if sampling == 'epochs' else None
    self.tokenizer = tokenizer
    self.seq_len = seq_len
    self.seed = seed
    self.process_index = process_index
    self.process_count = process_count
    self.chars_per_token = 1.0
    self.info = {'vocab_size': tokenizer.vocab_size}
    self.train_split = 'train'
    self.eval_splits = [s for s in ('val', 'test') if s in words]
    self.rows = {split: self._encode(ws) for split, ws in words.items()}

  def _encode(self, words: list[str]) -> dict[str, np.ndarray]:
    """All of a split's rows: inputs, targets [n, T] int32 and weights [n, T] float32."""
    T, n = self.seq_len, len(words)
    end = self.tokenizer.stoi[BOUNDARY]
    inputs = np.full((n, T), end, np.int32)
    targets = np.full((n, T), end, np.int32)
    weights = np.zeros((n, T), np.float32)
    for i, w in enumerate(words):
      try:
        ids = self.tokenizer.encode(w)
      except DataError as e:
        raise DataError(f'name {i + 1} ({w!r}): {e}') from None
      inputs[i, 1:1 + len(ids)] = ids
      targets[i, :len(ids)] = ids
      weights[i, :len(ids) + 1] = 1.0
    return {'inputs': inputs, 'targets': targets, 'weights': weights}

  def tokens_per_example(self, batch: dict | None = None) -> int:
    return self.seq_len

  def _take(self, split: str, index: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[index] for k, v in self.rows[split].items()}

  def train_batch(self, step: int, batch_size: int) -> dict[str, np.ndarray]:
    """This process's rows of global batch `step`: names drawn uniformly with replacement, or (sampling
    'epochs') each epoch visiting every training name once in a fresh order."""
    if self.epoch_order is not None:
      index = self.epoch_order.indices(step, batch_size)
    else:
      n = len(self.words[self.train_split])
      index = np.random.default_rng([self.seed, step]).integers(0, n, size=batch_size)
    return self._take(self.train_split, index[rows_of_process(batch_size, self.process_index, self.process_count)])

  def example_batch(self, batch_size: int) -> dict[str, np.ndarray]:
    return self.train_batch(0, batch_size)

  def eval_batches(self, split: str, batch_size: int, max_batches: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """Batches covering `split` in order (or `max_batches` batches of evenly spaced names)."""
    n = len(self.words[split])
    index = np.arange(n)
    if max_batches and max_batches * batch_size < n:
      index = np.linspace(0, n - 1, max_batches * batch_size).astype(np.int64)
    rows = rows_of_process(batch_size, self.process_index, self.process_count)
    for b in range(0, len(index), batch_size):
      chosen = index[b:b + batch_size]
      k = len(chosen)
      batch = self._take(split, np.concatenate([chosen, np.zeros(batch_size - k, np.int64)]))
      batch['weights'] = batch['weights'] * (np.arange(batch_size) < k)[:, None]  # padding rows score nothing
      yield {key: v[rows] for key, v in batch.items()}


def read_words(path) -> list[str]:
  """The non-empty, stripped lines of names.txt (makemore's reading)."""
  words = [w.strip() for w in corpora.read_lines(path)]
  words = [w for w in words if w]
  if not words:
    raise DataError(f'{path} holds no names')
  return words


def test_indices(n_words: int, path=None) -> np.ndarray:
  """makemore's test lines from `path` (test_split.txt), or, with no path, the seeded fallback."""
  if path is None:
    if n_words < 2:
      raise DataError(f'names.txt holds {n_words} name; the split needs at least 2 (one to train, one to test)')
    size = max(1, min(1000, int(n_words * 0.1)))
    return np.sort(np.random.default_rng(SPLIT_SEED).permutation(n_words)[n_words - size:])
  try:
    index = np.array([int(line) for line in corpora.read_text(path).split()], np.int64)
  except ValueError:
    raise DataError(f'{path} must hold one integer line index per line') from None
  if index.min() < 0 or index.max() >= n_words or len(np.unique(index)) != len(index):
    raise DataError(f'{path} must hold distinct line indices in [0, {n_words}); '
                    f'got {len(index)} indices in [{index.min()}, {index.max()}] for {n_words} names')
  return index


def hold_out(splits: dict[str, list[str]], k: int) -> dict[str, list[str]]:
  """`splits` with k of its training names (seeded, in their original order) moved to a 'val' split."""
  train = splits['train']
  if not 0 < k < len(train):
    raise ConfigError(f'data.holdout must be in [1, {len(train) - 1}] (there are {len(train)} training names), '
                      f'got {k}')
  held = np.zeros(len(train), bool)
  held[np.random.default_rng([SPLIT_SEED, 1]).permutation(len(train))[:k]] = True
  return dict(splits, train=[w for w, h in zip(train, held) if not h], val=[w for w, h in zip(train, held) if h])


def build_names(corpus: corpora.Corpus, config, process_index: int = 0, process_count: int = 1) -> NamesDataset:
  if config.data.tokenizer != 'char':
    raise ConfigError(f"data.corpus='names' models names character by character (makemore): data.tokenizer "
                      f"must be 'char', got {config.data.tokenizer!r}")
  words = read_words(corpora.locate(corpus.files['names']))
  try:
    split_path = corpora.locate(corpus.files['test_split'], allow_download=False)
  except DataError:
    log.warning('names/test_split.txt not found: using a permutation seeded with %d for the test split', SPLIT_SEED)
    split_path = None
  test = test_indices(len(words), split_path)
  is_test = np.zeros(len(words), bool)
  is_test[test] = True
  split_words = {'train': [w for w, t in zip(words, is_test) if not t], 'test': [words[i] for i in test]}
  if config.data.holdout:
    split_words = hold_out(split_words, config.data.holdout)
  tok = tokenizers.CharTokenizer.fit(''.join(words), specials=[BOUNDARY])
  if BOUNDARY in tok.chars:
    raise DataError(f'names.txt holds the boundary character {BOUNDARY!r}')
  T = row_length(words, config, 'the names corpus')
  return NamesDataset(split_words, tok, T, config.seed, process_index, process_count, config.data.sampling)


def row_length(words: list[str], config, source: str) -> int:
  """T = the longest name + 1 (its start or end token); ConfigError if the model takes fewer tokens."""
  T = 1 + max(len(w) for w in words)
  wanted = config_lib.seq_len(config)
  if wanted and wanted < T:
    raise ConfigError(f'{source} needs sequences of {T} tokens (the longest name + 1), but '
                      f'model.block_size / data.seq_len is {wanted}')
  return T


def _names_from_file(config, tokenizer, path) -> NamesDataset:
  """`lm_anatomy.evaluate`: a file of names, one per line as in names.txt, as split 'file', scored as the
  test split is (every character and each end token)."""
  words = read_words(path)
  return NamesDataset({'train': words, 'file': words}, tokenizer, row_length(words, config, str(path)), config.seed)


build_names.from_file = _names_from_file


corpora.register(corpora.Corpus(
    name='names',
    files={
        'names': corpora.CorpusFile(
            path='names/names.txt',
            url='https://raw.githubusercontent.com/karpathy/makemore/master/names.txt',
            sha256='0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d'),
        # makemore's test split as line indices; never downloaded (no canonical URL): missing → fallback.
        'test_split': corpora.CorpusFile(
            path='names/test_split.txt', url='',
            sha256='c34d723aa3c881c67905aceb450094a080e8f773f285bd9f8fb25551496e265e'),
    },
    build=build_names,
    description="makemore's names.txt: 32,033 US baby names of 2018, one per line (a-z).",
    holdout=True))
