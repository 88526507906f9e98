"""Corpora by name: a local data folder first, then a verified download into a cache.

Lookup order for a file `name/file` of a corpus:
  1. `$LM_ANATOMY_DATA/name/file` (CI points this at the shared data folder);
  2. `$LM_ANATOMY_CACHE/name/file` (default `~/.cache/lm_anatomy`), if its sha256 is right (a wrong
     one is deleted and fetched again);
  3. download from the canonical URL into the cache, check its sha256, then move it into place.
A download whose checksum does not match is deleted and raises DataError.
"""
from __future__ import annotations

import codecs
import dataclasses
import hashlib
import os
import pathlib
import tempfile
import urllib.request
from typing import Callable

from lm_anatomy.errors import DataError
from lm_anatomy.registry import CORPORA


@dataclasses.dataclass(frozen=True)
class CorpusFile:
  path: str      # relative to the data folder, e.g. 'tinyshakespeare/input.txt'
  url: str
  sha256: str


@dataclasses.dataclass(frozen=True)
class Corpus:
  """A named corpus: its files by role and the function that turns them into a dataset."""
  name: str
  files: dict[str, CorpusFile]
  build: Callable  # build(corpus, config, process_index, process_count) -> dataset
  description: str = ''
  holdout: bool = False  # build() can hold out data.holdout training examples as a 'val' split
  tasks: tuple[str, ...] = ('causal_lm',)  # the task.name values its batches serve
  inputs: str = 'tokens'                   # what a batch's model input holds: token ids or vectors


def register(corpus: Corpus) -> Corpus:
  return CORPORA.register(corpus.name)(corpus)


def data_dir() -> pathlib.Path | None:
  d = os.environ.get('LM_ANATOMY_DATA')
  return pathlib.Path(d).expanduser() if d else None


def cache_dir() -> pathlib.Path:
  return pathlib.Path(os.environ.get('LM_ANATOMY_CACHE', '~/.cache/lm_anatomy')).expanduser()


def sha256_of(path: pathlib.Path) -> str:
  h = hashlib.sha256()
  with open(path, 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
      h.update(chunk)
  return h.hexdigest()


def download(file: CorpusFile, dest: pathlib.Path, timeout: float = 30.0) -> pathlib.Path:
  """Downloads `file.url` to `dest`, checking sha256. The file appears only if it is right."""
  from tqdm.auto import tqdm
  dest.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + '.', suffix='.part')
  h = hashlib.sha256()
  try:
    with os.fdopen(fd, 'wb') as out, urllib.request.urlopen(file.url, timeout=timeout) as resp:
      total = int(resp.headers.get('Content-Length') or 0) or None
      with tqdm(total=total, unit='B', unit_scale=True, desc=f'download {file.path}', leave=False) as bar:
        for chunk in iter(lambda: resp.read(1 << 16), b''):
          out.write(chunk)
          h.update(chunk)
          bar.update(len(chunk))
    if h.hexdigest() != file.sha256:
      raise DataError(f'checksum mismatch for {file.url}: expected sha256 {file.sha256}, got {h.hexdigest()}; '
                      'the download was deleted')
    os.replace(tmp, dest)
    return dest
  finally:
    if os.path.exists(tmp):
      os.unlink(tmp)


def locate(file: CorpusFile, allow_download: bool = True) -> pathlib.Path:
  """The local path of a corpus file, downloading it into the cache if it is nowhere else."""
  looked = []
  local = data_dir()
  if local is not None:
    p = local / file.path
    if p.is_file():
      return p
    looked.append(f'{p} (LM_ANATOMY_DATA)')
  else:
    looked.append('LM_ANATOMY_DATA (not set)')
  cached = cache_dir() / file.path
  if cached.is_file():
    if not file.sha256 or sha256_of(cached) == file.sha256:
      return cached
    cached.unlink()  # damaged or replaced since its checked download: fetch it again
    looked.append(f'{cached} (cache; its sha256 was wrong, so it was deleted)')
  else:
    looked.append(f'{cached} (cache)')
  reason = 'downloads are off'
  if allow_download:
    try:
      return download(file, cached)
    except DataError:
      raise
    except Exception as e:  # network errors of every kind
      reason = f'download from {file.url} failed: {e}'
  raise DataError(f'corpus file {file.path!r} not found. Looked in: {"; ".join(looked)}. {reason}. '
                  f'Get it from {file.url} (sha256 {file.sha256}) and put it at $LM_ANATOMY_DATA/{file.path}.')


def read_text(path: pathlib.Path) -> str:
  """Reads a UTF-8 text file (a leading byte-order mark is dropped); empty files and invalid UTF-8 raise
  DataError."""
  raw = pathlib.Path(path).read_bytes()
  if not raw.removeprefix(codecs.BOM_UTF8).strip():
    raise DataError(f'{path} is empty')
  try:
    return raw.decode('utf-8-sig')
  except UnicodeDecodeError as e:  # e.start counts from after a byte-order mark
    at = e.start + (len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0)
    raise DataError(f'{path} is not valid UTF-8 (byte {at}: {raw[at:at + 1]!r})') from None


def read_lines(path: pathlib.Path) -> list[str]:
  """The lines of a UTF-8 text file (`read_text`), split at '\\n' only (a trailing '\\r' is dropped): one
  line of the file is one record, even if it holds other Unicode line breaks such as U+2028."""
  return [line.removesuffix('\r') for line in read_text(path).split('\n')]
