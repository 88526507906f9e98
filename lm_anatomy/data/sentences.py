"""Sentence datasets for encoders (BERT): sentence classification, and masked-LM pretraining with NSP.

Both tokenize with a Hugging Face tokenizer (lm_anatomy/data/hf_tokenizers.py), chosen by `tokenizer_for`:
`data.vocab` if set, else the tokenizer of `init_from` (so that fine-tuning sees the ids the weights
were trained on), else a `data.tokenizer` ('wordpiece' or 'bpe') trained on the training sentences.

A sequence is `[CLS] A [SEP]` (or `[CLS] A [SEP] B [SEP]` for a pair), truncated and padded with [PAD]
to `data.seq_len` (default model.block_size); segment ids are 0 on `[CLS] A [SEP]` and 1 on `B [SEP]`.
Batches are dicts of numpy arrays:
  inputs, attention_mask, token_type_ids   [batch, seq_len] int32   (attention_mask 1 = token, 0 = pad)
  classification:  labels [batch] int32, weights [batch] float32 (0 for padding rows)
  masked LM:       masked_positions, masked_targets [batch, P] int32, weights [batch, P] float32
                   (+ next_sentence_labels [batch] int32: 0 = B follows A, 1 = B is random)
With `data.pad_to_multiple = k`, a batch keeps only as many columns as its longest row needs, rounded
up to a multiple of k: fewer wasted positions, one compilation per distinct length. Classification
with `data.group_by_length = g` also draws each training batch from rows of similar length (see
data/text.py's `EpochOrder`).

Masking (Devlin et al. 2019): a sequence with n ordinary tokens has k = max(1, ⌊mask_prob · n + u⌋) of
them chosen uniformly without replacement (u ~ U[0, 1): stochastic rounding, so that E[k] = mask_prob · n
exactly once mask_prob · n ≥ 1); each is replaced by [MASK] with probability 0.8, by a uniformly random
ordinary token with probability 0.1, and left as it is with probability 0.1. All k are predicted.
P = ⌊mask_prob · (seq_len − 2)⌋ + 1 slots hold the most any sequence can have.

Every train batch is a pure function of (seed, step) (`np.random.default_rng([seed, step])`, and epoch
permutations from `[seed, epoch]`): classification goes through the training sentences by epochs
whatever `data.sampling` says; masked LM draws them with replacement (and refuses 'epochs'). Evaluation
batches, their pairs and their masks are fixed, so evaluations at different steps score the same masked
tokens. Process p of P keeps its rows of the global batch, as in data/text.py.

Corpora:
  sst2_text   SST-2 sentences with their labels (train / val = the dev file), for classification
  sst2_mlm    SST-2 sentences without labels, for masked-LM (+ NSP) pretraining from scratch
"""
from __future__ import annotations

import zlib
from typing import Iterator, Sequence

import numpy as np

from lm_anatomy import config as config_lib
from lm_anatomy.data import corpora, hf_tokenizers, sst2, tokenizers
from lm_anatomy.data.text import EpochOrder, rows_of_process
from lm_anatomy.errors import ConfigError, DataError

NOT_NEXT, IS_NEXT = 1, 0  # next-sentence labels, as in Hugging Face's BertForPreTraining
PACKED = ('inputs', 'attention_mask', 'token_type_ids')  # the [batch, seq_len] arrays


def tokenizer_for(config, train_texts: Sequence[str]) -> hf_tokenizers.HFTokenizer:
  """The subword tokenizer of `config` (tokenizers.for_config), trained on `train_texts` if none is named."""
  if config.data.tokenizer not in hf_tokenizers.KINDS:
    raise ConfigError(f'data.tokenizer={config.data.tokenizer!r}: sentence datasets need a subword tokenizer; '
                      f'choose one of {sorted(hf_tokenizers.KINDS)}')
  return tokenizers.for_config(config, train_texts)


class _Specials:
  """The ids of [PAD] [CLS] [SEP] [MASK] in a tokenizer, checked once."""

  def __init__(self, tokenizer):
    try:
      self.pad, self.cls, self.sep = (tokenizer.special_id(r) for r in ('pad', 'cls', 'sep'))
      self.mask = tokenizer.special_id('mask')
    except (AttributeError, DataError) as e:
      raise DataError(f'sentence datasets need a tokenizer with [PAD] [CLS] [SEP] [MASK] tokens: {e}') from None
    self.all = np.array(sorted(set(tokenizer.special_ids()) | {self.pad, self.cls, self.sep, self.mask}), np.int32)


def pack(first: Sequence[np.ndarray], second: Sequence[np.ndarray] | None, seq_len: int,
         specials: _Specials) -> dict[str, np.ndarray]:
  """[CLS] A [SEP] (B [SEP]) rows, padded to seq_len. A is cut from its end to fit (B must already fit)."""
  n = len(first)
  inputs = np.full((n, seq_len), specials.pad, np.int32)
  segments = np.zeros((n, seq_len), np.int32)
  mask = np.zeros((n, seq_len), np.int32)
  for i in range(n):
    b = second[i] if second is not None else None
    room = seq_len - 2 - (len(b) + 1 if b is not None else 0)
    a = first[i][:max(room, 0)]
    row = [specials.cls, *a, specials.sep]
    if b is not None:
      segments[i, len(row):len(row) + len(b) + 1] = 1
      row += [*b, specials.sep]
    inputs[i, :len(row)] = row
    mask[i, :len(row)] = 1
  return {'inputs': inputs, 'attention_mask': mask, 'token_type_ids': segments}


def trim(batch: dict[str, np.ndarray], seq_len: int, multiple: int) -> dict[str, np.ndarray]:
  """Cuts the padding columns of a packed batch down to its longest row, rounded up to `multiple`."""
  if not multiple:
    return batch
  longest = int(batch['attention_mask'].sum(1).max())
  length = min(seq_len, -(-max(longest, 1) // multiple) * multiple)
  return {k: v[:, :length] if k in PACKED else v for k, v in batch.items()}


def _eval_order(n: int, batch_size: int, max_batches: int) -> np.ndarray:
  if max_batches and max_batches * batch_size < n:
    return np.linspace(0, n - 1, max_batches * batch_size).astype(np.int64)
  return np.arange(n)


class SentenceClassification:
  """Labelled sentences: `[CLS] sentence [SEP]` → label. Training runs through epochs in shuffled order."""

  def __init__(self, splits: dict[str, tuple[np.ndarray, list[np.ndarray]]], tokenizer, seq_len: int, seed: int,
               num_classes: int = 0, process_index: int = 0, process_count: int = 1, pad_to_multiple: int = 0,
               group_by_length: int = 0):
    if seq_len < 3:
      raise ConfigError(f'data.seq_len ({seq_len}) must be at least 3 ([CLS] token [SEP])')
    if 'train' not in splits:
      raise DataError(f'a classification dataset needs a train split; got {sorted(splits)}')
    self.tokenizer = tokenizer
    self.specials = _Specials(tokenizer)
    self.seq_len = seq_len
    self.seed = seed
    self.pad_to_multiple = pad_to_multiple
    self.process_index, self.process_count = process_index, process_count
    all_labels = np.concatenate([labels for labels, _ in splits.values()])
    self.num_classes = num_classes or int(all_labels.max()) + 1
    if all_labels.min() < 0 or all_labels.max() >= self.num_classes:
      raise DataError(f'labels must lie in 0 … {self.num_classes - 1}')
    self.splits = {name: dict(pack(ids, None, seq_len, self.specials), labels=np.asarray(labels, np.int32))
                   for name, (labels, ids) in splits.items()}
    self.truncated = {name: int(sum(len(t) > seq_len - 2 for t in ids)) for name, (_, ids) in splits.items()}
    self.info = {'vocab_size': tokenizer.vocab_size, 'num_classes': self.num_classes}
    self.train_split = 'train'
    self.eval_splits = [s for s in splits if s != 'train']
    train = self.splits['train']
    self.epoch_order = EpochOrder(seed, len(train['labels']), train['attention_mask'].sum(1), group_by_length)

  def tokens_per_example(self, batch: dict | None = None) -> int:
    """Positions per row: seq_len, or the width of `batch` (cut to its longest row by pad_to_multiple)."""
    return self.seq_len if batch is None else batch['inputs'].shape[-1]

  def _batch(self, split: str, idx: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    data = self.splits[split]
    batch = {k: v[idx] for k, v in data.items()}
    batch['weights'] = weights.astype(np.float32)
    return trim(batch, self.seq_len, self.pad_to_multiple)

  def train_batch(self, step: int, batch_size: int) -> dict[str, np.ndarray]:
    """This process's rows of global batch `step`."""
    batch = self._batch(self.train_split, self.epoch_order.indices(step, batch_size), np.ones(batch_size))
    rows = rows_of_process(batch_size, self.process_index, self.process_count)
    return {k: v[rows] for k, v in batch.items()}

  def example_batch(self, batch_size: int) -> dict[str, np.ndarray]:
    return self.train_batch(0, batch_size)

  def eval_batches(self, split: str, batch_size: int, max_batches: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """Batches covering `split` in order (or an evenly spaced subset), the last padded with weight-0 rows."""
    chosen = _eval_order(len(self.splits[split]['labels']), batch_size, max_batches)
    rows = rows_of_process(batch_size, self.process_index, self.process_count)
    for b in range(0, len(chosen), batch_size):
      idx = chosen[b:b + batch_size]
      weights = np.arange(batch_size) < len(idx)
      idx = np.concatenate([idx, np.zeros(batch_size - len(idx), np.int64)])
      yield {k: v[rows] for k, v in self._batch(split, idx, weights).items()}


class MaskedLMSentences:
  """Masked-LM (and, with `next_sentence`, NSP) examples made from a list of sentences per split.

  Next-sentence pairs: a sentence of n ≥ 2 tokens is cut at a uniform point k ∈ [1, n): A = its first k
  tokens; with probability ½, B = the rest (IS_NEXT), otherwise B = the tail, from a uniform point, of
  another random sentence (NOT_NEXT). One-token sentences always get a random B.
  """

  def __init__(self, splits: dict[str, list[np.ndarray]], tokenizer, seq_len: int, seed: int,
               mask_prob: float = 0.15, next_sentence: bool = False, process_index: int = 0,
               process_count: int = 1, pad_to_multiple: int = 0):
    if not 0.0 < mask_prob < 1.0:
      raise ConfigError(f'data.mask_prob must be in (0, 1), got {mask_prob}')
    if seq_len < 3 + 2 * int(next_sentence):  # a pair needs a token in each segment
      raise ConfigError(f'data.seq_len ({seq_len}) is too short for [CLS] A [SEP]' + (' B [SEP]' if next_sentence else ''))
    for name, sentences in splits.items():
      sentences[:] = [s for s in sentences if len(s)]
      if len(sentences) < 2:
        raise DataError(f'split {name!r} has fewer than 2 non-empty sentences')
    self.splits = splits
    self.tokenizer = tokenizer
    self.specials = _Specials(tokenizer)
    self.seq_len = seq_len
    self.seed = seed
    self.mask_prob = mask_prob
    self.next_sentence = next_sentence
    self.pad_to_multiple = pad_to_multiple
    self.process_index, self.process_count = process_index, process_count
    self.mask_keys = {}  # split → the split name its evaluation masks and pairs are drawn under (default: its own)
    self.max_predictions = int(np.floor(mask_prob * (seq_len - 2))) + 1
    self.ordinary = np.setdiff1d(np.arange(tokenizer.vocab_size, dtype=np.int32), self.specials.all)
    self.info = {'vocab_size': tokenizer.vocab_size}
    self.train_split = 'train'
    self.eval_splits = [s for s in splits if s != 'train']

  def tokens_per_example(self, batch: dict | None = None) -> int:
    """Positions per row: seq_len, or the width of `batch` (cut to its longest row by pad_to_multiple)."""
    return self.seq_len if batch is None else batch['inputs'].shape[-1]

  def _pairs(self, rng: np.random.Generator, split: str, anchors: np.ndarray):
    sentences = self.splits[split]
    first, second, labels = [], [], np.empty(len(anchors), np.int32)
    budget = self.seq_len - 3
    for i, j in enumerate(anchors):
      t = sentences[j]
      k = int(rng.integers(1, len(t))) if len(t) >= 2 else len(t)
      if len(t) >= 2 and rng.random() < 0.5:
        a, b, labels[i] = t[:k], t[k:], IS_NEXT
      else:
        other = (j + 1 + int(rng.integers(0, len(sentences) - 1))) % len(sentences)  # any sentence but j
        u = sentences[other]
        a, b, labels[i] = t[:k], u[int(rng.integers(0, len(u))):], NOT_NEXT
      while len(a) + len(b) > budget:  # keep the junction: trim the longer part, A from its start
        if len(a) > len(b):
          a = a[1:]
        else:
          b = b[:-1]
      first.append(a)
      second.append(b)
    return first, second, labels

  def mask(self, rng: np.random.Generator, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Chooses and corrupts the predicted tokens of packed rows (see the module docstring)."""
    inputs = batch['inputs']
    B, T = inputs.shape
    P = self.max_predictions
    candidate = (batch['attention_mask'] > 0) & ~np.isin(inputs, self.specials.all)
    count = candidate.sum(1)
    chosen = np.floor(self.mask_prob * count + rng.random(B))            # stochastic rounding
    chosen = np.where(count > 0, np.clip(chosen, 1, P), 0).astype(np.int64)
    keys = np.where(candidate, rng.random((B, T)), 2.0)
    order = np.argsort(keys, axis=1, kind='stable')[:, :P]
    valid = np.arange(P)[None, :] < chosen[:, None]
    positions = np.where(valid, order, 0).astype(np.int32)
    rows = np.broadcast_to(np.arange(B)[:, None], (B, P))
    targets = np.where(valid, inputs[rows, positions], 0).astype(np.int32)
    u = rng.random((B, P))
    to_mask, to_random = valid & (u < 0.8), valid & (u >= 0.8) & (u < 0.9)
    random_ids = self.ordinary[rng.integers(0, len(self.ordinary), (B, P))]
    corrupted = inputs.copy()
    corrupted[rows[to_mask], positions[to_mask]] = self.specials.mask
    corrupted[rows[to_random], positions[to_random]] = random_ids[to_random]
    return dict(batch, inputs=corrupted, masked_positions=positions, masked_targets=targets,
                weights=valid.astype(np.float32))

  def _examples(self, rng: np.random.Generator, split: str, anchors: np.ndarray) -> dict[str, np.ndarray]:
    if self.next_sentence:
      first, second, labels = self._pairs(rng, split, anchors)
      batch = pack(first, second, self.seq_len, self.specials)
      batch['next_sentence_labels'] = labels
    else:
      batch = pack([self.splits[split][j] for j in anchors], None, self.seq_len, self.specials)
    return trim(self.mask(rng, batch), self.seq_len, self.pad_to_multiple)

  def train_batch(self, step: int, batch_size: int) -> dict[str, np.ndarray]:
    """This process's rows of global batch `step`: sentences drawn uniformly, pure in (seed, step)."""
    rng = np.random.default_rng([self.seed, step])
    anchors = rng.integers(0, len(self.splits[self.train_split]), batch_size)
    batch = self._examples(rng, self.train_split, anchors)
    rows = rows_of_process(batch_size, self.process_index, self.process_count)
    return {k: v[rows] for k, v in batch.items()}

  def example_batch(self, batch_size: int) -> dict[str, np.ndarray]:
    return self.train_batch(0, batch_size)

  def eval_batches(self, split: str, batch_size: int, max_batches: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """This process's rows of `_global_eval_batches`."""
    rows = rows_of_process(batch_size, self.process_index, self.process_count)
    for batch in self._global_eval_batches(split, batch_size, max_batches):
      yield {k: v[rows] for k, v in batch.items()}

  def _global_eval_batches(self, split: str, batch_size: int, max_batches: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """Each sentence of `split` once (or an evenly spaced subset), with fixed pairs and masks: every
    process's rows."""
    chosen = _eval_order(len(self.splits[split]), batch_size, max_batches)
    for b in range(0, len(chosen), batch_size):
      idx = chosen[b:b + batch_size]
      n = len(idx)
      idx = np.concatenate([idx, np.zeros(batch_size - n, np.int64)])
      rng = np.random.default_rng([self.seed, zlib.crc32(self.mask_keys.get(split, split).encode()), b])
      batch = self._examples(rng, split, idx)
      batch['weights'] = batch['weights'] * (np.arange(batch_size) < n)[:, None]
      yield batch

  def unigram_baseline(self, split: str, batch_size: int) -> dict[str, float]:
    """Masked-token accuracy and loss on `split` of the model that ignores the context: always the most
    frequent training token, and cross-entropy under add-one-smoothed training frequencies."""
    counts = np.bincount(np.concatenate(self.splits[self.train_split]), minlength=self.tokenizer.vocab_size)
    counts[self.specials.all] = 0
    log_q = np.log((counts + 1.0) / (counts.sum() + len(counts)))
    top = int(np.argmax(counts))
    hits = loss = weight = 0.0
    for batch in self._global_eval_batches(split, batch_size):  # the whole split, on every process
      w, y = batch['weights'], batch['masked_targets']
      hits += float(np.sum(w * (y == top)))
      loss += float(np.sum(w * -log_q[y]))
      weight += float(np.sum(w))
    return {'unigram_accuracy': hits / weight, 'unigram_loss': loss / weight,
            'unigram_token': self.tokenizer.decode([top])}


# ---------------------------------------------------------------------------------------------------
# Corpora

def _seq_len(config) -> int:
  n = config_lib.seq_len(config)
  if n <= 0:
    raise ConfigError('set data.seq_len (or model.block_size) for a sentence dataset')
  return n


def _pad_to_multiple(config) -> int:
  k = config.data.pad_to_multiple
  if k < 0:
    raise ConfigError(f'data.pad_to_multiple must be >= 0, got {k}')
  if k and config.steps_per_dispatch > 1:
    raise ConfigError(f'data.pad_to_multiple ({k}) gives batches of different lengths, which cannot share a '
                      f'compiled call: set steps_per_dispatch=1 (got {config.steps_per_dispatch})')
  return k


def classification_dataset(config, tokenizer, files: dict[str, str], process_index: int = 0,
                           process_count: int = 1) -> SentenceClassification:
  """A SentenceClassification over `label sentence` files, one split per entry of `files`."""
  splits = {}
  for split, path in files.items():
    labels, sentences = sst2.read_labelled_lines(path)
    splits[split] = (labels, tokenizer.encode_batch(sentences))
  return SentenceClassification(splits, tokenizer, _seq_len(config), config.seed, 2, process_index, process_count,
                                _pad_to_multiple(config), config.data.group_by_length)


def build_sst2_text(corpus, config, process_index: int = 0, process_count: int = 1) -> SentenceClassification:
  paths = {'train': corpora.locate(corpus.files['train']), 'val': corpora.locate(corpus.files['dev'])}
  tokenizer = tokenizer_for(config, sst2.read_labelled_lines(paths['train'])[1])
  return classification_dataset(config, tokenizer, paths, process_index, process_count)


def _sst2_text_from_file(config, tokenizer, path) -> SentenceClassification:
  """`lm_anatomy.evaluate`: one labelled file as split 'file' (a stand-in train split is not used)."""
  return classification_dataset(config, tokenizer, {'train': path, 'file': path})


build_sst2_text.from_file = _sst2_text_from_file


def build_sst2_mlm(corpus, config, process_index: int = 0, process_count: int = 1) -> MaskedLMSentences:
  if config.data.sampling != 'replacement':
    raise ConfigError(f"masked-LM batches draw their sentences with replacement (data.sampling='replacement'); "
                      f"data.sampling={config.data.sampling!r} is not offered for data.corpus={corpus.name!r}")
  train = sst2.read_labelled_lines(corpora.locate(corpus.files['train']))[1]
  val = sst2.read_labelled_lines(corpora.locate(corpus.files['dev']))[1]
  tokenizer = tokenizer_for(config, train)
  ds = MaskedLMSentences({'train': tokenizer.encode_batch(train), 'val': tokenizer.encode_batch(val)}, tokenizer,
                         _seq_len(config), config.seed, config.data.mask_prob, config.data.next_sentence,
                         process_index, process_count, _pad_to_multiple(config))
  # At the engine's eval batch size, the baseline scores the very masks the evaluation draws.
  baseline = ds.unigram_baseline('val', config.eval_batch_size or config.batch_size)
  ds.info.update({f'val_{k}': v for k, v in baseline.items()})
  return ds


def _sst2_mlm_from_file(config, tokenizer, path) -> MaskedLMSentences:
  """`lm_anatomy.evaluate`: the sentences of one `label sentence` file as split 'file'. Its masks and pairs
  are drawn as the val split's are, so the run's dev file scores exactly the run's val metrics."""
  ids = [s for s in tokenizer.encode_batch(sst2.read_labelled_lines(path)[1]) if len(s)]
  if len(ids) < 2:
    raise DataError(f'{path} has {len(ids)} non-empty sentence(s); masked-LM evaluation needs at least 2')
  ds = MaskedLMSentences({'train': list(ids), 'file': list(ids)}, tokenizer, _seq_len(config), config.seed,
                         config.data.mask_prob, config.data.next_sentence, pad_to_multiple=_pad_to_multiple(config))
  ds.mask_keys['file'] = 'val'
  return ds


build_sst2_mlm.from_file = _sst2_mlm_from_file


corpora.register(corpora.Corpus(
    name='sst2_text', files={'train': sst2.TRAIN, 'dev': sst2.DEV}, build=build_sst2_text, tasks=('classify',),
    description='SST-2 sentences and labels as subword ids for encoders; splits train and val (the dev file).'))
corpora.register(corpora.Corpus(
    name='sst2_mlm', files={'train': sst2.TRAIN, 'dev': sst2.DEV}, build=build_sst2_mlm, tasks=('masked_lm',),
    description='SST-2 sentences without labels, for masked-LM (+ NSP) pretraining; val = the dev sentences.'))
