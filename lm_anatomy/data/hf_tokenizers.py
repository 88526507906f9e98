"""Subword tokenizers through Hugging Face `tokenizers`: WordPiece (BERT) and byte-level BPE (GPT-2).

Both come two ways:
  loaded    WordPiece from a `vocab.txt` or any `tokenizer.json` (e.g. the one beside a checkpoint);
  trained   on a corpus's training text, with the special tokens BERT needs:
            [PAD] = 0, [UNK], [CLS], [SEP], [MASK].
WordPiece splits each lower-cased word greedily into the longest pieces in its vocabulary
("transporting" → "transport", "##ing"); BPE starts from the 256 bytes and applies learned merges,
so it never meets an unknown symbol and `decode(encode(s)) == s`.

`encode` returns ids without special tokens: datasets place [CLS] and [SEP] themselves. A run saves
its tokenizer as `{"type": "wordpiece" | "bpe", "tokenizer": <Hugging Face tokenizer.json>}`.
"""
from __future__ import annotations

import json
import pathlib
from typing import Iterable, Sequence

import numpy as np

from lm_anatomy.errors import DataError

# BERT's special tokens, by role. Trained tokenizers put them first, so [PAD] is id 0.
SPECIALS = {'pad': '[PAD]', 'unk': '[UNK]', 'cls': '[CLS]', 'sep': '[SEP]', 'mask': '[MASK]'}
DEFAULT_VOCAB_SIZE = 8000


class HFTokenizer:
  """A `tokenizers.Tokenizer` behind this package's tokenizer interface (encode, decode, to_json)."""
  kind = 'hf'

  def __init__(self, tokenizer):
    tokenizer.no_padding()
    tokenizer.no_truncation()
    self.tokenizer = tokenizer

  @property
  def vocab_size(self) -> int:
    return self.tokenizer.get_vocab_size(with_added_tokens=True)

  def encode(self, text: str) -> np.ndarray:
    """[n] int32 ids of `text`, without special tokens."""
    return np.asarray(self.tokenizer.encode(text, add_special_tokens=False).ids, np.int32)

  def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
    """`encode` of each text (in parallel, in Rust)."""
    out = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
    return [np.asarray(e.ids, np.int32) for e in out]

  def decode(self, ids, skip_special_tokens: bool = False) -> str:
    """The text of `ids`; a non-integer id or one outside [0, vocab_size) raises DataError, as in the
    char, byte and word tokenizers (Hugging Face's decode drops the one and truncates the other)."""
    from lm_anatomy.data.tokenizers import check_ids  # tokenizers imports this module
    return self.tokenizer.decode(check_ids(ids, self.vocab_size), skip_special_tokens=skip_special_tokens)

  def token_id(self, token: str) -> int:
    i = self.tokenizer.token_to_id(token)
    if i is None:
      raise DataError(f'the {self.kind} tokenizer has no token {token!r}')
    return i

  def special_id(self, role: str) -> int:
    """Id of a BERT special token by role: 'pad', 'unk', 'cls', 'sep' or 'mask'."""
    return self.token_id(SPECIALS[role])

  def special_ids(self) -> list[int]:
    """Ids of every special (added) token, e.g. [PAD] [UNK] [CLS] [SEP] [MASK]."""
    return sorted(i for i, t in self.tokenizer.get_added_tokens_decoder().items() if t.special)

  def hf_json(self) -> str:
    """The Hugging Face `tokenizer.json` text (what `transformers` loads)."""
    return self.tokenizer.to_str()

  def to_json(self) -> dict:
    return {'type': self.kind, 'tokenizer': json.loads(self.hf_json())}


def _bert_post_processor(tokenizer):
  """[CLS] A [SEP] (B [SEP]) when a `transformers` user asks for special tokens."""
  from tokenizers import processors
  cls, sep = SPECIALS['cls'], SPECIALS['sep']
  ids = [(t, tokenizer.token_to_id(t)) for t in (cls, sep)]
  if any(i is None for _, i in ids):
    return None
  return processors.TemplateProcessing(single=f'{cls} $A {sep}', pair=f'{cls} $A {sep} $B:1 {sep}:1',
                                       special_tokens=ids)


class WordPieceTokenizer(HFTokenizer):
  """BERT's WordPiece: normalise (lower-case), split on spaces and punctuation, longest-match pieces."""
  kind = 'wordpiece'

  @classmethod
  def from_vocab(cls, path: str | pathlib.Path, lowercase: bool = True) -> 'WordPieceTokenizer':
    """From a BERT `vocab.txt` (one token per line; the line number is the id)."""
    from tokenizers import models
    path = pathlib.Path(path)
    if not path.is_file():
      raise DataError(f'no WordPiece vocabulary at {path}')
    tok = cls._assemble(models.WordPiece.from_file(str(path), unk_token=SPECIALS['unk']), lowercase)
    if tok.tokenizer.token_to_id(SPECIALS['unk']) is None:
      raise DataError(f'{path} has no {SPECIALS["unk"]} token; is it a BERT vocab.txt?')
    return tok

  @classmethod
  def fit(cls, text: str | Iterable[str], vocab_size: int = DEFAULT_VOCAB_SIZE,
          lowercase: bool = True) -> 'WordPieceTokenizer':
    """Trains a WordPiece vocabulary of `vocab_size` on `text` (a string, or an iterable of lines).

    The same text gives the same vocabulary and ids on every call. Hugging Face's trainer numbers the
    "##c" continuation symbols in hash-map order and breaks ties between merges by those numbers, so on
    its own it gives other ids, and at larger sizes other pieces, from call to call (tokenizers issue
    #1794). Here the continuation symbols of the text are handed to it up front, sorted, after the
    specials; the trained vocabulary is then rebuilt with only the five specials as added tokens.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    lines = list(_lines(text))
    normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    continuing = sorted({c for line in lines for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(line))
                         for c in word[1:]})
    tok = Tokenizer(models.WordPiece(unk_token=SPECIALS['unk']))
    tok.normalizer, tok.pre_tokenizer = normalizer, pre_tokenizer
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, show_progress=False,
                                        special_tokens=list(SPECIALS.values()) + ['##' + c for c in continuing])
    tok.train_from_iterator(lines, trainer)
    return cls._assemble(models.WordPiece(tok.get_vocab(with_added_tokens=False), unk_token=SPECIALS['unk']),
                         lowercase)

  @classmethod
  def _assemble(cls, model, lowercase: bool) -> 'WordPieceTokenizer':
    """BERT's pipeline around a WordPiece `model`: normaliser, pre-tokenizer, decoder, specials."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers
    tok = Tokenizer(model)
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                                lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix='##')
    tok.add_special_tokens([t for t in SPECIALS.values() if tok.token_to_id(t) is not None])
    tok.post_processor = _bert_post_processor(tok)
    return cls(tok)


class BPETokenizer(HFTokenizer):
  """Byte-level BPE (GPT-2's scheme): bytes, then learned merges of frequent adjacent pairs."""
  kind = 'bpe'

  @classmethod
  def fit(cls, text: str | Iterable[str], vocab_size: int = DEFAULT_VOCAB_SIZE) -> 'BPETokenizer':
    """Trains merges on `text` until the vocabulary (256 bytes + specials + merges) has `vocab_size` ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS.values()),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_lines(text), trainer)
    tok.post_processor = _bert_post_processor(tok)
    return cls(tok)


KINDS = {'wordpiece': WordPieceTokenizer, 'bpe': BPETokenizer}


def _lines(text: str | Iterable[str]) -> Iterable[str]:
  return text.splitlines(keepends=True) if isinstance(text, str) else text


def _wrap(tok) -> HFTokenizer:
  model = json.loads(tok.to_str())['model']['type']
  if model == 'WordPiece':
    return WordPieceTokenizer(tok)
  if model == 'BPE':
    return BPETokenizer(tok)
  raise DataError(f'unsupported Hugging Face tokenizer model {model!r}; this package reads WordPiece and BPE')


def from_json(d: dict) -> HFTokenizer:
  """The tokenizer saved by `to_json` (as in a run's tokenizer.json)."""
  from tokenizers import Tokenizer
  tok = KINDS[d['type']](Tokenizer.from_str(json.dumps(d['tokenizer'])))
  return tok


def _run_tokenizer(path: pathlib.Path) -> HFTokenizer | None:
  """The tokenizer of a run's tokenizer.json (`to_json`'s wrapper), or None for any other file."""
  try:
    d = json.loads(path.read_text(encoding='utf-8'))
  except (UnicodeDecodeError, json.JSONDecodeError):
    return None
  if not (isinstance(d, dict) and isinstance(d.get('type'), str) and 'model' not in d):  # HF's has 'model'
    return None
  if d['type'] not in KINDS:
    raise DataError(f'{path} holds a run\'s {d["type"]!r} tokenizer; a subword tokenizer (wordpiece or bpe) is needed')
  return from_json(d)


def load(path: str | pathlib.Path) -> HFTokenizer:
  """From a Hugging Face `tokenizer.json`, a run's tokenizer.json, a BERT `vocab.txt`, or a directory
  holding one of them (a Hugging Face folder or a run's workdir).

  In a directory `tokenizer.json` wins. For `vocab.txt`, lower-casing follows `do_lower_case` in a
  `tokenizer_config.json` beside it (default: lower-case, as for uncased BERT).
  """
  from tokenizers import Tokenizer
  path = pathlib.Path(path)
  if path.is_dir():
    for name in ('tokenizer.json', 'vocab.txt'):
      if (path / name).is_file():
        return load(path / name)
    raise DataError(f'{path} holds no tokenizer.json or vocab.txt')
  if not path.is_file():
    raise DataError(f'no tokenizer file at {path}')
  if path.suffix == '.json':
    saved = _run_tokenizer(path)
    if saved is not None:
      return saved
    try:
      return _wrap(Tokenizer.from_file(str(path)))
    except Exception as e:  # the Rust side raises plain Exceptions for bad files
      if isinstance(e, DataError):
        raise
      raise DataError(f'{path} is not a Hugging Face tokenizer.json ({e})') from None
  lowercase = True
  config = path.parent / 'tokenizer_config.json'
  if config.is_file():
    lowercase = bool(json.loads(config.read_text()).get('do_lower_case', True))
  return WordPieceTokenizer.from_vocab(path, lowercase=lowercase)


def save_pretrained(tok: HFTokenizer, directory: str | pathlib.Path, segments: bool = False) -> None:
  """Writes `tokenizer.json` (+ `vocab.txt` for WordPiece) and a `tokenizer_config.json` for `transformers`.
  `segments`: its tokenizer also returns token_type_ids (for BERT, not for GPT-2)."""
  directory = pathlib.Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  (directory / 'tokenizer.json').write_text(tok.hf_json())
  config = {'tokenizer_class': 'PreTrainedTokenizerFast', 'model_max_length': 512}
  present = {role: t for role, t in SPECIALS.items() if tok.tokenizer.token_to_id(t) is not None}
  config.update({f'{role}_token': t for role, t in present.items()})
  if segments:
    config['model_input_names'] = ['input_ids', 'token_type_ids', 'attention_mask']
  if tok.kind == 'wordpiece':
    vocab = tok.tokenizer.get_vocab(with_added_tokens=True)
    ordered = sorted(vocab.items(), key=lambda kv: kv[1])
    if [i for _, i in ordered] == list(range(len(ordered))):
      (directory / 'vocab.txt').write_text(''.join(t + '\n' for t, _ in ordered))
    normalizer = json.loads(tok.hf_json()).get('normalizer') or {}
    config['do_lower_case'] = bool(normalizer.get('lowercase', False))
  (directory / 'tokenizer_config.json').write_text(json.dumps(config, indent=2))
