"""Language-model datasets over one long token stream (nanoGPT's setup).

Training batches are windows of `seq_len + 1` tokens. With `data.sampling='replacement'` (nanoGPT's)
their starts are drawn uniformly from the train split; with 'epochs', each epoch cuts the split into
non-overlapping windows at a fresh random offset in [0, seq_len) and visits every window once in a fresh
order, so each token is trained on at most once an epoch (all of them but fewer than 2·seq_len at the
ends of the split, which the offset and the last partial window leave out). Batch `step` is a pure function of (seed, step): its
starts come from `np.random.default_rng([seed, step])` (or from the epoch's seeded order), and process `p`
of `P` keeps rows `[p·B/P, (p+1)·B/P)` of the global batch, so a resumed or multi-host run sees
exactly the batches of an uninterrupted single-process run.

Evaluation covers a split with non-overlapping blocks: block i predicts tokens
`x[i·T+1 : (i+1)·T+1]` from `x[i·T : (i+1)·T]`, so every token but the first is scored once.
The last batch is padded with rows of weight 0.

Batches are dicts of numpy arrays:
  inputs  [batch, seq_len] int32
  targets [batch, seq_len] int32
  weights [batch, seq_len] float32  (1 for scored positions, 0 for padding)
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from lm_anatomy import config as config_lib
from lm_anatomy.data import corpora, tokenizers
from lm_anatomy.errors import ConfigError, DataError


def rows_of_process(batch_size: int, process_index: int, process_count: int) -> slice:
  if batch_size % process_count:
    raise ConfigError(f'batch_size ({batch_size}) must be divisible by the process count ({process_count})')
  per = batch_size // process_count
  return slice(process_index * per, (process_index + 1) * per)


class EpochOrder:
  """Epochs that each visit examples 0 … n−1 once, in a fresh permutation seeded with (seed, epoch), so
  that global batch `step` is a pure function of (seed, step). With `lengths` and `group` = g, each
  epoch's permutation is cut into mega-batches of g batches sorted by length, longest first, so that a
  batch cut from them holds rows of similar length and needs little padding (Hugging Face's
  `group_by_length`, there with g = 50)."""

  def __init__(self, seed: int, n: int, lengths: np.ndarray | None = None, group: int = 0):
    self.seed, self.n, self.lengths, self.group = seed, n, lengths, group
    self._cached: tuple | None = None   # (epoch, batch_size, order) of the last epoch asked for

  def order(self, epoch: int, batch_size: int) -> np.ndarray:
    if self._cached is None or self._cached[:2] != (epoch, batch_size):
      order = np.random.default_rng([self.seed, epoch]).permutation(self.n)
      rows = self.group * batch_size
      if rows and self.lengths is not None:
        for a in range(0, self.n, rows):
          chunk = order[a:a + rows]
          order[a:a + rows] = chunk[np.argsort(-self.lengths[chunk], kind='stable')]
      self._cached = (epoch, batch_size, order)
    return self._cached[2]

  def epochs(self, step: int, batch_size: int) -> np.ndarray:
    """The epoch of each row of global batch `step`: [batch_size] int64."""
    return (step * batch_size + np.arange(batch_size, dtype=np.int64)) // self.n

  def indices(self, step: int, batch_size: int) -> np.ndarray:
    """Indices of global batch `step` (a batch may span two epochs)."""
    positions = step * batch_size + np.arange(batch_size, dtype=np.int64)
    epochs = self.epochs(step, batch_size)
    idx = np.empty(batch_size, np.int64)
    for epoch in np.unique(epochs):
      here = epochs == epoch
      idx[here] = self.order(int(epoch), batch_size)[positions[here] % self.n]
    return idx


class StreamLM:
  """Random windows for training, non-overlapping blocks for evaluation. `chars_per_token`: each split's
  characters over its tokens, {split: ratio} (or one ratio for every split), which turns nats per token
  into bits per character."""

  def __init__(self, splits: dict[str, np.ndarray], tokenizer, seq_len: int, seed: int,
               process_index: int = 0, process_count: int = 1, chars_per_token: dict[str, float] | float = 1.0,
               sampling: str = 'replacement'):
    if seq_len <= 0:
      raise ConfigError('the sequence length (model.block_size or data.seq_len) must be > 0')
    for name, ids in splits.items():
      if name == 'train' and len(ids) < seq_len + 1:  # one window: seq_len inputs and the token after them
        raise ConfigError(f'model.block_size / data.seq_len ({seq_len}) is larger than the {name} split '
                          f'({len(ids)} tokens; a window needs {seq_len + 1})')
      if len(ids) < 2:  # evaluation pads its last block, but needs one token to predict
        raise DataError(f'the {name} split has {len(ids)} token{"s" * (len(ids) != 1)}; scoring it needs at least 2')
    if sampling == 'epochs' and 'train' in splits and len(splits['train']) < 2 * seq_len:
      raise ConfigError(f"data.sampling='epochs' needs a train split of at least 2·seq_len = {2 * seq_len} "
                        f"tokens (one window at any offset in [0, seq_len)); it has {len(splits['train'])}")
    self.splits = splits
    self.tokenizer = tokenizer
    self.seq_len = seq_len
    self.seed = seed
    self.process_index = process_index
    self.process_count = process_count
    self.chars_per_token = chars_per_token
    self.info = {'vocab_size': tokenizer.vocab_size}
    self.train_split = 'train'
    self.eval_splits = [s for s in splits if s != 'train']
    # 'epochs': window k of epoch e starts at offset_e + k·T, k < n, and ends (inclusive) at
    # offset_e + k·T + T ≤ (T − 1) + n·T, which stays inside the split when n·T + T ≤ len(train).
    self.epoch_order = None   # (a dataset built to score one file has no train split)
    if sampling == 'epochs' and self.train_split in splits:
      self.epoch_order = EpochOrder(seed, (len(splits[self.train_split]) - seq_len) // seq_len)

  def tokens_per_example(self, batch: dict | None = None) -> int:
    return self.seq_len

  def _windows(self, ids: np.ndarray, starts: np.ndarray) -> dict[str, np.ndarray]:
    idx = starts[:, None] + np.arange(self.seq_len + 1)[None, :]
    w = ids[idx]
    return {'inputs': w[:, :-1], 'targets': w[:, 1:],
            'weights': np.ones((len(starts), self.seq_len), np.float32)}

  def train_starts(self, step: int, batch_size: int) -> np.ndarray:
    """Start positions in the train split of global batch `step`'s windows: [batch_size] int64."""
    if self.epoch_order is not None:
      epochs = self.epoch_order.epochs(step, batch_size)
      offset = {e: np.random.default_rng([self.seed, e, 1]).integers(self.seq_len) for e in np.unique(epochs)}
      return np.array([offset[e] for e in epochs]) + self.epoch_order.indices(step, batch_size) * self.seq_len
    rng = np.random.default_rng([self.seed, step])
    # Starts 0 … len − T − 1 (nanoGPT's randint(len − T)): the last window ends at the split's last token.
    return rng.integers(0, len(self.splits[self.train_split]) - self.seq_len, size=batch_size)

  def train_batch(self, step: int, batch_size: int) -> dict[str, np.ndarray]:
    """This process's rows of global batch `step`."""
    starts = self.train_starts(step, batch_size)
    return self._windows(self.splits[self.train_split],
                         starts[rows_of_process(batch_size, self.process_index, self.process_count)])

  def example_batch(self, batch_size: int) -> dict[str, np.ndarray]:
    return self.train_batch(0, batch_size)

  def num_eval_blocks(self, split: str) -> int:
    return -(-(len(self.splits[split]) - 1) // self.seq_len)

  def eval_batches(self, split: str, batch_size: int, max_batches: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """Batches covering `split` (or a fixed, evenly spaced subset of `max_batches` batches)."""
    ids = self.splits[split]
    T = self.seq_len
    n_blocks = self.num_eval_blocks(split)
    blocks = np.arange(n_blocks)
    if max_batches and max_batches * batch_size < n_blocks:
      blocks = np.linspace(0, n_blocks - 1, max_batches * batch_size).astype(np.int64)
    padded = np.concatenate([ids, np.zeros(T + 1, ids.dtype)])
    rows = rows_of_process(batch_size, self.process_index, self.process_count)
    for b in range(0, len(blocks), batch_size):
      chosen = blocks[b:b + batch_size]
      n = len(chosen)
      chosen = np.concatenate([chosen, np.zeros(batch_size - n, np.int64)])
      starts = chosen * T
      batch = self._windows(padded, starts)
      # Positions past the end of the split, and padding rows, score nothing.
      pos = starts[:, None] + 1 + np.arange(T)[None, :]
      batch['weights'] = ((pos < len(ids)) & (np.arange(batch_size) < n)[:, None]).astype(np.float32)
      yield {k: v[rows] for k, v in batch.items()}


def build_stream(corpus: corpora.Corpus, config, process_index: int = 0, process_count: int = 1) -> StreamLM:
  """One text file, nanoGPT's split: the first `train_fraction` of its characters train, the rest val.

  Each part is tokenized on its own (as nanoGPT's prepare.py does for BPE). A trained subword tokenizer
  learns from the train part only; a char, byte or word vocabulary covers the whole file.
  """
  text = corpora.read_text(corpora.locate(corpus.files['text']))
  n = int(len(text) * config.data.train_fraction)
  parts = {'train': text[:n], 'val': text[n:]}
  tok = tokenizers.for_config(config, parts['train'], whole_text=text)
  splits = {name: tok.encode(part) for name, part in parts.items()}
  return StreamLM(splits, tok, config_lib.seq_len(config), config.seed, process_index, process_count,
                  chars_per_token={name: len(parts[name]) / max(len(ids), 1) for name, ids in splits.items()},
                  sampling=config.data.sampling)


corpora.register(corpora.Corpus(
    name='tinyshakespeare',
    files={'text': corpora.CorpusFile(
        path='tinyshakespeare/input.txt',
        url='https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt',
        sha256='86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed')},
    build=build_stream,
    description="Karpathy's tiny Shakespeare, 1.1M characters (char-rnn, nanoGPT)."))
