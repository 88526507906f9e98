"""Tokenizers: text ↔ integer ids. Each saves to and loads from one JSON file beside a run."""
from __future__ import annotations

import json
import pathlib
from typing import Sequence

import numpy as np

from lm_anatomy.data import hf_tokenizers
from lm_anatomy.errors import ConfigError, DataError


def check_ids(ids, vocab_size: int) -> list[int]:
  """ids as Python ints; an id outside [0, vocab_size) raises DataError naming it."""
  arr = np.asarray(ids)
  if arr.size and arr.dtype.kind not in 'iu':
    raise DataError(f'token ids must be integers, got {arr.dtype} values')
  ids = [int(i) for i in arr.reshape(-1)]
  bad = [i for i in ids if not 0 <= i < vocab_size]
  if bad:
    raise DataError(f'token id {bad[0]} is outside the vocabulary (ids 0 … {vocab_size - 1})')
  return ids


def _lookup(itos: Sequence[str], ids) -> list[str]:
  return [itos[i] for i in check_ids(ids, len(itos))]


class CharTokenizer:
  """One id per character: the sorted characters of the training text, after any special tokens."""
  kind = 'char'

  def __init__(self, chars: Sequence[str], specials: Sequence[str] = ()):
    self.specials = list(specials)
    self.chars = list(chars)
    self.itos = self.specials + self.chars
    self.stoi = {c: i for i, c in enumerate(self.itos)}
    self._lut = None

  @classmethod
  def fit(cls, text: str, specials: Sequence[str] = ()) -> 'CharTokenizer':
    if not text:
      raise DataError('cannot fit a character tokenizer on empty text')
    return cls(sorted(set(text)), specials)

  @property
  def vocab_size(self) -> int:
    return len(self.itos)

  def encode(self, text: str) -> np.ndarray:
    """[len(text)] int32 ids. A character outside the vocabulary raises DataError naming it."""
    if text.isascii() and len(text) > 256:
      if self._lut is None:
        self._lut = np.full(128, -1, np.int32)
        for c, i in self.stoi.items():
          if len(c) == 1 and ord(c) < 128:
            self._lut[ord(c)] = i
      ids = self._lut[np.frombuffer(text.encode('ascii'), np.uint8)]
      if (ids >= 0).all():
        return ids
    try:
      return np.array([self.stoi[c] for c in text], np.int32)
    except KeyError as e:
      pos = text.index(e.args[0])
      specials = f' and the special tokens {self.specials}' if self.specials else ''
      raise DataError(f'character {e.args[0]!r} at position {pos} is not in the vocabulary '
                      f'({self.vocab_size} symbols: {"".join(self.chars)!r}{specials})') from None

  def decode(self, ids) -> str:
    return ''.join(_lookup(self.itos, ids))

  def to_json(self) -> dict:
    return {'type': self.kind, 'chars': self.chars, 'specials': self.specials}


class ByteTokenizer:
  """UTF-8 bytes: 256 ids, no unknown symbols."""
  kind = 'byte'
  vocab_size = 256

  @classmethod
  def fit(cls, text: str = '') -> 'ByteTokenizer':
    return cls()

  def encode(self, text: str) -> np.ndarray:
    return np.frombuffer(text.encode('utf-8'), np.uint8).astype(np.int32)

  def decode(self, ids) -> str:
    return bytes(check_ids(ids, 256)).decode('utf-8', errors='replace')

  def to_json(self) -> dict:
    return {'type': self.kind}


class WordTokenizer:
  """One id per whitespace-separated word: `<unk>` (id 0), then the training words by falling count
  (ties alphabetical). Words seen fewer than `min_count` times, and words never seen, encode as `<unk>`."""
  kind = 'words'
  unk = '<unk>'

  def __init__(self, words: Sequence[str]):
    self.itos = [self.unk] + [w for w in words if w != self.unk]
    self.stoi = {w: i for i, w in enumerate(self.itos)}

  @classmethod
  def fit(cls, text: str, min_count: int = 1) -> 'WordTokenizer':
    counts: dict[str, int] = {}
    for w in text.split():
      counts[w] = counts.get(w, 0) + 1
    return cls(sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w)))

  @property
  def vocab_size(self) -> int:
    return len(self.itos)

  def encode(self, text: str) -> np.ndarray:
    return np.array([self.stoi.get(w, 0) for w in text.split()], np.int32)

  def decode(self, ids) -> str:
    return ' '.join(_lookup(self.itos, ids))

  def to_json(self) -> dict:
    return {'type': self.kind, 'words': self.itos[1:]}


class FeatureNames:
  """For datasets whose inputs are numeric vectors, not text: the names of the input features."""
  kind = 'features'

  def __init__(self, names: Sequence[str]):
    self.names = list(names)

  def encode(self, text: str) -> np.ndarray:
    raise DataError(f'this dataset takes numeric vectors of {len(self.names)} features, not text')

  def decode(self, ids) -> str:
    raise DataError(f'this dataset takes numeric vectors of {len(self.names)} features, not text')

  def to_json(self) -> dict:
    return {'type': self.kind, 'names': self.names}


KINDS = {'char': CharTokenizer, 'byte': ByteTokenizer, 'words': WordTokenizer}
KINDS.update(hf_tokenizers.KINDS)  # 'wordpiece', 'bpe': Hugging Face `tokenizers`


def for_config(config, train_text: str | Sequence[str], whole_text: str | None = None):
  """The tokenizer of a run's data section (`data.tokenizer`).

  wordpiece / bpe: loaded from `data.vocab` (a tokenizer.json, a vocab.txt, a Hugging Face folder or
  package, or a run's workdir), else init_from's, else trained on `train_text` (a string or lines) with
  `data.tokenizer_vocab_size` ids. char / byte / words: init_from's if it has one (a run's workdir
  does; a Hugging Face export of a char model has none), else fit on `whole_text` (default
  `train_text`): nanoGPT's character vocabulary covers the whole file, so that no symbol of the val
  split is unknown.
  """
  from lm_anatomy import hf
  kind = config.data.tokenizer
  if kind not in KINDS or kind == 'features':
    raise ConfigError(f'unknown tokenizer data.tokenizer={kind!r}; choose one of {sorted(set(KINDS) - {"features"})}')
  subword = kind in hf_tokenizers.KINDS
  if config.data.vocab and not subword:
    raise ConfigError(f'data.vocab applies to the wordpiece and bpe tokenizers, not data.tokenizer={kind!r}')
  if config.data.vocab:
    path = pathlib.Path(config.data.vocab).expanduser()
    if not path.exists() and (path.suffix or '/' in config.data.vocab):  # a file path, not a package name
      raise DataError(f'data.vocab: there is no tokenizer file or folder at {str(path)!r}')
    tok = hf_tokenizers.load(path if path.exists() else hf.resolve(config.data.vocab))
  elif config.get('init_from') and (subword or hf.has_tokenizer(config.init_from)):
    tok = hf.load_tokenizer(config.init_from)
  elif subword:
    tok = hf_tokenizers.KINDS[kind].fit(train_text, config.data.tokenizer_vocab_size)
    if tok.vocab_size > config.data.tokenizer_vocab_size:
      raise ConfigError(f'data.tokenizer_vocab_size={config.data.tokenizer_vocab_size} is below the {tok.vocab_size} '
                        f'ids that the {kind} tokenizer needs before any merge (the specials and the alphabet)')
    return tok
  else:
    return KINDS[kind].fit(train_text if whole_text is None else whole_text)
  if getattr(tok, 'kind', None) != kind:
    raise ConfigError(f'data.tokenizer={kind!r}, but the tokenizer loaded from '
                      f'{config.data.vocab or config.init_from!r} is {getattr(tok, "kind", type(tok).__name__)!r}')
  return tok


def from_json(d: dict):
  kind = d['type']
  if kind == 'char':
    return CharTokenizer(d['chars'], d.get('specials', ()))
  if kind == 'byte':
    return ByteTokenizer()
  if kind == 'words':
    return WordTokenizer(d['words'])
  if kind == 'features':
    return FeatureNames(d['names'])
  if kind in hf_tokenizers.KINDS:
    return hf_tokenizers.from_json(d)
  raise DataError(f'unknown tokenizer type {kind!r} in saved tokenizer')


def save(tok, path: pathlib.Path) -> None:
  pathlib.Path(path).write_text(json.dumps(tok.to_json(), ensure_ascii=False))


def load(path: pathlib.Path):
  return from_json(json.loads(pathlib.Path(path).read_text()))
