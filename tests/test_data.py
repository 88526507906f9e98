import codecs
import functools
import hashlib
import http.server
import json
import pathlib
import threading

import numpy as np
import pytest

from lm_anatomy import data, tasks
from lm_anatomy.data import corpora, tokenizers
from lm_anatomy.data.text import StreamLM
from lm_anatomy.errors import ConfigError, DataError
from conftest import TINY_TEXT


def test_char_tokenizer_round_trip_and_unknown_char():
  tok = tokenizers.CharTokenizer.fit('hello world')
  assert tok.decode(tok.encode('low hello')) == 'low hello'
  long = 'hello world ' * 40  # the vectorised ASCII path
  assert tok.decode(tok.encode(long)) == long
  with pytest.raises(DataError, match=r"character 'z' at position 3 is not in the vocabulary"):
    tok.encode('helz')
  with pytest.raises(DataError, match="'z'"):
    tok.encode('hello ' * 60 + 'z')


def test_tokenizers_save_and_load(tmp_path):
  for tok in (tokenizers.CharTokenizer.fit('abc\n', specials=['<eos>']), tokenizers.ByteTokenizer()):
    tokenizers.save(tok, tmp_path / 't.json')
    back = tokenizers.load(tmp_path / 't.json')
    assert back.vocab_size == tok.vocab_size
    np.testing.assert_array_equal(back.encode('cab'), tok.encode('cab'))


def test_byte_tokenizer_handles_any_text():
  tok = tokenizers.ByteTokenizer()
  assert tok.decode(tok.encode('héllo ✓')) == 'héllo ✓'


def test_decode_rejects_ids_outside_the_vocabulary():
  """Every tokenizer, the Hugging Face ones too (whose own decode drops an unknown id and truncates a float)."""
  from lm_anatomy.data import hf_tokenizers
  bpe = hf_tokenizers.BPETokenizer.fit('to be or not to be\n', 270)
  wordpiece = hf_tokenizers.WordPieceTokenizer.fit('to be or not to be\n', 40)
  for tok, n in ((tokenizers.CharTokenizer.fit('abc\n '), 5), (tokenizers.ByteTokenizer(), 256),
                 (tokenizers.WordTokenizer.fit('to be or not'), 5), (bpe, bpe.vocab_size),
                 (wordpiece, wordpiece.vocab_size)):
    assert len(tok.decode([n - 1])) >= 1
    for bad in (-1, n):
      with pytest.raises(DataError, match=f'token id {bad} is outside the vocabulary'):
        tok.decode([0, bad])
    with pytest.raises(DataError, match='token ids must be integers, got float64 values'):
      tok.decode([1.7])  # was read as id 1
  with pytest.raises(DataError, match='cannot fit a character tokenizer on empty text'):
    tokenizers.CharTokenizer.fit('')


def test_windows_reach_the_last_train_token():
  tok = tokenizers.CharTokenizer.fit('abcdefghij')
  ds = StreamLM({'train': np.arange(8), 'val': np.arange(10)}, tok, 4, 0)
  starts = np.concatenate([ds.train_starts(s, 64) for s in range(50)])
  assert set(starts.tolist()) == {0, 1, 2, 3}   # nanoGPT's randint(len − T): the last start is len − T − 1
  assert ds.train_batch(0, 64)['targets'].max() == 7
  one = StreamLM({'train': np.arange(5), 'val': np.arange(5)}, tok, 4, 0)  # exactly one window
  np.testing.assert_array_equal(one.train_batch(3, 2)['inputs'], [[0, 1, 2, 3]] * 2)
  with pytest.raises(ConfigError, match=r'larger than the train split \(4 tokens; a window needs 5\)'):
    StreamLM({'train': np.arange(4), 'val': np.arange(5)}, tok, 4, 0)


def test_a_split_shorter_than_a_window_is_scored_on_the_tokens_it_has():
  """Evaluation pads its last block, so a val split (or a file to score) shorter than a window still
  scores each of its tokens after the first; with fewer than 2 tokens there is nothing to predict."""
  tok = tokenizers.CharTokenizer.fit('abcdefghij')
  ds = StreamLM({'file': np.array([3, 1, 4])}, tok, 8, 0)
  batch, = ds.eval_batches('file', 2)
  np.testing.assert_array_equal(batch['inputs'][0, :2], [3, 1])
  np.testing.assert_array_equal(batch['targets'][0, :2], [1, 4])
  np.testing.assert_array_equal(batch['weights'], [[1, 1, 0, 0, 0, 0, 0, 0], [0] * 8])
  with pytest.raises(DataError, match='the val split has 1 token; scoring it needs at least 2'):
    StreamLM({'train': np.arange(9), 'val': np.array([5])}, tok, 8, 0)


def test_epoch_sampling_needs_a_window_at_every_offset():
  tok = tokenizers.CharTokenizer.fit('abcdefghij')
  with pytest.raises(ConfigError, match="sampling='epochs' needs a train split of at least 2·seq_len = 8"):
    StreamLM({'train': np.arange(7), 'val': np.arange(10)}, tok, 4, 0, sampling='epochs')
  ds = StreamLM({'train': np.arange(8), 'val': np.arange(10)}, tok, 4, 0, sampling='epochs')
  starts = np.concatenate([ds.train_starts(s, 3) for s in range(20)])
  assert set(starts.tolist()) <= {0, 1, 2, 3} and len(set(starts.tolist())) > 1   # one window an epoch
  assert ds.train_batch(7, 3)['targets'].max() <= 7


def test_nanogpt_split_and_pure_batches(tiny_config):
  ds = data.build(tiny_config)
  n = len(TINY_TEXT)
  assert len(ds.splits['train']) == int(n * 0.9) and len(ds.splits['val']) == n - int(n * 0.9)
  a, b = ds.train_batch(7, 4), ds.train_batch(7, 4)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])
  assert not np.array_equal(ds.train_batch(8, 4)['inputs'], a['inputs'])
  np.testing.assert_array_equal(a['inputs'][:, 1:], a['targets'][:, :-1])
  # Two processes each build their half; together they are the single-process batch.
  halves = [data.build(tiny_config, p, 2).train_batch(7, 4) for p in range(2)]
  np.testing.assert_array_equal(np.concatenate([h['inputs'] for h in halves]), a['inputs'])


def test_epoch_sampling_trains_on_every_token_once_an_epoch(tiny_config):
  tiny_config.data.sampling = 'epochs'
  ds = data.build(tiny_config)
  T, train = 16, ds.splits['train']
  n = (len(train) - T) // T                          # windows per epoch: n·T + T ≤ len(train)
  assert n >= 8
  B = 4
  steps = -(-3 * n // B)                             # three epochs, the last batch spilling over
  starts = np.concatenate([ds.train_starts(s, B) for s in range(steps)])
  for epoch in range(3):
    ep = np.sort(starts[epoch * n:(epoch + 1) * n])
    offset = ep[0]
    assert 0 <= offset < T
    np.testing.assert_array_equal(ep, offset + T * np.arange(n))   # non-overlapping, each window once
  # Windows hold the tokens they start at, and a batch is a pure function of (seed, step).
  b = ds.train_batch(5, B)
  np.testing.assert_array_equal(b['inputs'], train[ds.train_starts(5, B)[:, None] + np.arange(T)])
  np.testing.assert_array_equal(b['targets'], train[ds.train_starts(5, B)[:, None] + 1 + np.arange(T)])
  np.testing.assert_array_equal(data.build(tiny_config).train_batch(5, B)['inputs'], b['inputs'])
  # Epochs differ in order and (almost surely over three epochs) in offset.
  assert len({tuple(starts[e * n:(e + 1) * n]) for e in range(3)}) == 3
  halves = [data.build(tiny_config, p, 2).train_batch(5, B) for p in range(2)]
  np.testing.assert_array_equal(np.concatenate([h['inputs'] for h in halves]), b['inputs'])


def test_eval_batches_score_every_val_token_once(tiny_config):
  ds = data.build(tiny_config)
  val = ds.splits['val']
  seen = []
  for batch in ds.eval_batches('val', 8):
    assert batch['inputs'].shape == (8, 16)
    seen.append(batch['targets'][batch['weights'] > 0])
  np.testing.assert_array_equal(np.concatenate(seen), val[1:])


def test_subword_streams_follow_the_data_section(tiny_config, tiny_data, tmp_path):
  text = TINY_TEXT + 'zqxj ' * 100  # val: words that the train part, which the BPE learns from, never has
  (tiny_data / 'tinyshakespeare' / 'input.txt').write_text(text)
  tiny_config.data.tokenizer, tiny_config.data.tokenizer_vocab_size = 'bpe', 300
  ds = data.build(tiny_config)
  assert ds.tokenizer.kind == 'bpe' and ds.info['vocab_size'] == 300
  n = int(len(text) * 0.9)
  parts = {'train': text[:n], 'val': text[n:]}
  for name, part in parts.items():  # each part tokenized on its own, as nanoGPT's prepare.py
    np.testing.assert_array_equal(ds.splits[name], ds.tokenizer.encode(part))
  # bits per character of a split: its nats per token / ln 2 × its tokens / its characters
  task = tasks.build(tiny_config, None, ds)
  for name, part in parts.items():
    bpc = task.finalize({'loss': 2.0 * 100, 'weight': 100.0}, f'{name}_', name)[f'{name}_bpc']
    assert bpc == pytest.approx(2.0 / np.log(2) * len(ds.tokenizer.encode(part)) / len(part), rel=1e-12)
  assert ds.chars_per_token['train'] > 1.5 * ds.chars_per_token['val']
  tokenizers.save(ds.tokenizer, tmp_path / 'tokenizer.json')
  tiny_config.data.vocab = str(tmp_path / 'tokenizer.json')  # a run's saved tokenizer
  assert data.build(tiny_config).tokenizer.to_json() == ds.tokenizer.to_json()
  tiny_config.data.vocab, tiny_config.data.tokenizer_vocab_size = '', 100
  with pytest.raises(ConfigError, match=r'tokenizer_vocab_size=100 is below the 261 ids'):
    data.build(tiny_config)
  tiny_config.data.tokenizer, tiny_config.data.vocab = 'char', str(tmp_path / 'tokenizer.json')
  with pytest.raises(ConfigError, match="data.vocab applies to the wordpiece and bpe tokenizers, not data.tokenizer='char'"):
    data.build(tiny_config)


def test_init_from_gives_its_tokenizer_when_it_has_one(tiny_config, tmp_path):
  run = tmp_path / 'run'   # a run's workdir: config.json with a model section, and its tokenizer
  run.mkdir()
  (run / 'config.json').write_text(json.dumps({'model': {'name': 'gpt'}}))
  saved = tokenizers.CharTokenizer.fit(TINY_TEXT + 'XYZ')  # symbols the corpus lacks: other ids
  tokenizers.save(saved, run / 'tokenizer.json')
  tiny_config.init_from = str(run)
  assert data.build(tiny_config).tokenizer.to_json() == saved.to_json()
  export = tmp_path / 'export'  # a Hugging Face export of a char model carries no tokenizer files
  export.mkdir()
  (export / 'config.json').write_text(json.dumps({'model_type': 'gpt2'}))
  tiny_config.init_from = str(export)
  assert data.build(tiny_config).tokenizer.to_json() == tokenizers.CharTokenizer.fit(TINY_TEXT).to_json()


def test_block_size_larger_than_data(tiny_config):
  tiny_config.model.block_size = 10_000
  with pytest.raises(ConfigError, match=r'larger than the train split'):
    data.build(tiny_config)


def test_empty_and_invalid_files(tmp_path):
  (tmp_path / 'e.txt').write_text('  \n')
  with pytest.raises(DataError, match='is empty'):
    corpora.read_text(tmp_path / 'e.txt')
  (tmp_path / 'bom.txt').write_bytes(b'\xef\xbb\xbf')
  with pytest.raises(DataError, match='is empty'):
    corpora.read_text(tmp_path / 'bom.txt')
  (tmp_path / 'bom.txt').write_bytes('\ufeffabc\r\nd\u2028e\n'.encode())
  assert corpora.read_text(tmp_path / 'bom.txt') == 'abc\r\nd\u2028e\n'  # the byte-order mark dropped
  assert corpora.read_lines(tmp_path / 'bom.txt') == ['abc', 'd\u2028e', '']
  (tmp_path / 'b.txt').write_bytes(b'abc\xff\xfe')
  with pytest.raises(DataError, match=r'not valid UTF-8 \(byte 3'):
    corpora.read_text(tmp_path / 'b.txt')
  (tmp_path / 'b.txt').write_bytes(codecs.BOM_UTF8 + b'hello\xff\n')  # the offset counts the mark's 3 bytes
  with pytest.raises(DataError, match=r"not valid UTF-8 \(byte 8: b'\\xff'\)"):
    corpora.read_text(tmp_path / 'b.txt')


def test_registered_checksums_match_the_real_files():
  """Every corpus file found in $LM_ANATOMY_DATA has the sha256 that its download is checked against."""
  from lm_anatomy.registry import CORPORA
  root = corpora.data_dir()
  files = [f for name in CORPORA.names() for f in CORPORA.get(name).files.values()]
  present = [f for f in files if root is not None and (root / f.path).is_file()]
  if not present:
    pytest.skip('no corpus file in LM_ANATOMY_DATA (set it to the shared data folder)')
  for f in present:
    assert corpora.sha256_of(root / f.path) == f.sha256, f.path


def test_missing_corpus_says_where_it_looked(tmp_path, monkeypatch):
  monkeypatch.setenv('LM_ANATOMY_DATA', str(tmp_path / 'nodata'))
  monkeypatch.setenv('LM_ANATOMY_CACHE', str(tmp_path / 'cache'))
  f = corpora.CorpusFile('x/input.txt', 'http://127.0.0.1:9/none.txt', '0' * 64)
  with pytest.raises(DataError) as e:
    corpora.locate(f)
  msg = str(e.value)
  assert str(tmp_path / 'nodata' / 'x' / 'input.txt') in msg and str(tmp_path / 'cache') in msg
  assert 'http://127.0.0.1:9/none.txt' in msg and 'LM_ANATOMY_DATA' in msg


@pytest.fixture
def http_server(tmp_path):
  root = tmp_path / 'www'
  root.mkdir()
  handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
  handler.log_message = lambda *a: None
  server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  yield root, f'http://127.0.0.1:{server.server_address[1]}'
  server.shutdown()


def test_download_verifies_checksum(http_server, tmp_path, monkeypatch):
  root, url = http_server
  (root / 'corpus.txt').write_text('to be or not to be\n')
  good = hashlib.sha256(b'to be or not to be\n').hexdigest()
  monkeypatch.delenv('LM_ANATOMY_DATA', raising=False)
  monkeypatch.setenv('LM_ANATOMY_CACHE', str(tmp_path / 'cache'))
  f = corpora.CorpusFile('small/corpus.txt', f'{url}/corpus.txt', good)
  path = corpora.locate(f)
  assert path == tmp_path / 'cache' / 'small' / 'corpus.txt'
  assert path.read_text() == 'to be or not to be\n'
  # A second lookup uses the cache (the server no longer has the file).
  (root / 'corpus.txt').unlink()
  assert corpora.locate(f) == path

  bad = corpora.CorpusFile('small/other.txt', f'{url}/other.txt', good)
  (root / 'other.txt').write_text('tampered\n')
  with pytest.raises(DataError, match='checksum mismatch'):
    corpora.locate(bad)
  assert list((tmp_path / 'cache' / 'small').iterdir()) == [path]  # nothing bad left behind

  # A cached copy damaged after its download is caught by its sha256, deleted and fetched again.
  (root / 'corpus.txt').write_text('to be or not to be\n')
  path.write_text('garbage that is not the corpus\n')
  assert corpora.locate(f) == path and path.read_text() == 'to be or not to be\n'
  path.write_text('garbage that is not the corpus\n')
  with pytest.raises(DataError, match="its sha256 was wrong, so it was deleted.*downloads are off"):
    corpora.locate(f, allow_download=False)
  assert not path.exists()


def test_the_data_folder_wins_over_a_valid_cache(tmp_path, monkeypatch):
  """$LM_ANATOMY_DATA is looked in first, even when the cache holds a copy with the right sha256."""
  f = corpora.CorpusFile('small/corpus.txt', 'http://127.0.0.1:9/none.txt',
                         hashlib.sha256(b'cached copy\n').hexdigest())
  for folder, content in (('data', 'local copy\n'), ('cache', 'cached copy\n')):
    (tmp_path / folder / 'small').mkdir(parents=True)
    (tmp_path / folder / 'small' / 'corpus.txt').write_text(content)
  monkeypatch.setenv('LM_ANATOMY_DATA', str(tmp_path / 'data'))
  monkeypatch.setenv('LM_ANATOMY_CACHE', str(tmp_path / 'cache'))
  assert corpora.locate(f) == tmp_path / 'data' / 'small' / 'corpus.txt'
  monkeypatch.delenv('LM_ANATOMY_DATA')
  assert corpora.locate(f) == tmp_path / 'cache' / 'small' / 'corpus.txt'


def test_a_checksum_mismatch_is_reported_as_such(http_server, tmp_path, monkeypatch):
  """A download with the wrong sha256 raises the checksum error itself, naming both digests, not a
  'not found' error that reads like a network failure."""
  root, url = http_server
  (root / 'other.txt').write_text('tampered\n')
  monkeypatch.delenv('LM_ANATOMY_DATA', raising=False)
  monkeypatch.setenv('LM_ANATOMY_CACHE', str(tmp_path / 'cache'))
  f = corpora.CorpusFile('small/other.txt', f'{url}/other.txt', '0' * 64)
  with pytest.raises(DataError) as e:
    corpora.locate(f)
  got = hashlib.sha256(b'tampered\n').hexdigest()
  assert str(e.value).startswith(f'checksum mismatch for {url}/other.txt: expected sha256 {"0" * 64}, got {got}')
  assert 'not found' not in str(e.value)


def test_char_tokenizer_fast_path_counts_the_special_tokens():
  """Long ASCII text (the vectorised path) gets the ids of short text, specials first included."""
  tok = tokenizers.CharTokenizer.fit('ab\n', specials=['.', '<eos>'])
  assert tok.itos == ['.', '<eos>', '\n', 'a', 'b']
  np.testing.assert_array_equal(tok.encode('ab\n' * 100), [3, 4, 2] * 100)
  assert tok.decode(tok.encode('ba\n' * 100)) == 'ba\n' * 100


def test_word_tokenizer_breaks_ties_alphabetically_and_decodes_with_spaces():
  """Equal counts are ordered alphabetically, not by first appearance; decode puts the spaces back."""
  tok = tokenizers.WordTokenizer.fit('c b a b c a d')
  assert tok.itos == ['<unk>', 'a', 'b', 'c', 'd']
  np.testing.assert_array_equal(tok.encode('d c x'), [4, 3, 0])
  assert tok.decode(tok.encode('to a b')) == '<unk> a b'


def test_char_vocabulary_covers_the_val_split(tiny_config, tiny_data):
  """A character that only the val part holds is still in the vocabulary (nanoGPT's whole-file vocabulary)."""
  text = TINY_TEXT + 'XYZ' * 10
  (tiny_data / 'tinyshakespeare' / 'input.txt').write_text(text)
  ds = data.build(tiny_config)
  assert ds.tokenizer.chars == sorted(set(text)) and 'X' not in text[:int(len(text) * 0.9)]
  assert ds.tokenizer.decode(ds.splits['val']) == text[int(len(text) * 0.9):]


def test_train_batches_of_two_seeds_are_not_shifted_copies():
  """Batches depend on (seed, step) jointly: seed 1 does not replay seed 0's batches one step later."""
  tok = tokenizers.CharTokenizer.fit('abcdefghij')
  ds = {seed: StreamLM({'train': np.arange(1000)}, tok, 4, seed) for seed in (0, 1)}
  for step in range(3):
    assert not np.array_equal(ds[1].train_starts(step, 8), ds[0].train_starts(step + 1, 8))
    assert not np.array_equal(ds[0].train_starts(step, 8), ds[1].train_starts(step + 1, 8))


def test_eval_subset_is_evenly_spaced_blocks():
  """max_batches picks evenly spaced blocks, the first and the last (partial) one included."""
  tok = tokenizers.CharTokenizer.fit('abcdefghij')
  ds = StreamLM({'train': np.arange(100), 'val': np.arange(39)}, tok, 4, 0)
  assert ds.num_eval_blocks('val') == 10   # 38 predicted tokens in blocks of 4: the last has 2
  batches = list(ds.eval_batches('val', 2, max_batches=2))   # 4 of the 10 blocks: 0, 3, 6, 9
  inputs = np.concatenate([b['inputs'] for b in batches])
  weights = np.concatenate([b['weights'] for b in batches])
  np.testing.assert_array_equal(inputs[:, 0], [0, 12, 24, 36])
  np.testing.assert_array_equal(weights, [[1, 1, 1, 1]] * 3 + [[1, 1, 0, 0]])


def test_epoch_order_groups_by_the_batch_size_asked_for():
  """The grouped order of an epoch follows the batch size of the call, even after another batch size."""
  from lm_anatomy.data.text import EpochOrder
  lengths = np.array([5, 1, 9, 3, 7, 2, 8, 4, 6, 0, 11, 10])
  def expected(batch_size):  # the documented rule: mega-batches of 2 batches, longest first
    order = np.random.default_rng([7, 0]).permutation(12)
    chunks = [order[a:a + 2 * batch_size] for a in range(0, 12, 2 * batch_size)]
    return np.concatenate([c[np.argsort(-lengths[c], kind='stable')] for c in chunks])
  assert not np.array_equal(expected(2), expected(3))
  eo = EpochOrder(7, 12, lengths, group=2)
  np.testing.assert_array_equal(eo.order(0, 2), expected(2))
  np.testing.assert_array_equal(eo.order(0, 3), expected(3))
  np.testing.assert_array_equal(eo.indices(0, 3), expected(3)[:3])


def test_pack_places_specials_pads_and_segments():
  """[CLS] A [SEP] (B [SEP]) then [PAD]; an over-long A keeps its first tokens; segment 1 covers B [SEP]."""
  from lm_anatomy.data import hf_tokenizers, sentences
  specials = sentences._Specials(hf_tokenizers.WordPieceTokenizer.fit('a fine film\na dull one\n', 40))
  pad, cls, sep = specials.pad, specials.cls, specials.sep
  assert pad == 0 and len({pad, cls, sep, specials.mask}) == 4
  one = sentences.pack([np.array([11, 12, 13, 14, 15, 16])], None, 6, specials)
  np.testing.assert_array_equal(one['inputs'], [[cls, 11, 12, 13, 14, sep]])
  two = sentences.pack([np.array([11, 12])], [np.array([21])], 8, specials)
  np.testing.assert_array_equal(two['inputs'], [[cls, 11, 12, sep, 21, sep, pad, pad]])
  np.testing.assert_array_equal(two['attention_mask'], [[1, 1, 1, 1, 1, 1, 0, 0]])
  np.testing.assert_array_equal(two['token_type_ids'], [[0, 0, 0, 0, 1, 1, 0, 0]])


def test_a_tokenizer_folder_prefers_tokenizer_json(tmp_path):
  """In a folder holding both, tokenizer.json is loaded, not vocab.txt."""
  from lm_anatomy.data import hf_tokenizers
  bpe = hf_tokenizers.BPETokenizer.fit('to be or not to be\n', 270)
  (tmp_path / 'tokenizer.json').write_text(bpe.hf_json())
  (tmp_path / 'vocab.txt').write_text('[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nto\nbe\n')
  tok = hf_tokenizers.load(tmp_path)
  assert tok.kind == 'bpe' and tok.vocab_size == 270
  np.testing.assert_array_equal(tok.encode('to be'), bpe.encode('to be'))


def test_labelled_line_without_a_sentence_is_a_data_error(tmp_path):
  """A line holding only its label names its line number."""
  from lm_anatomy.data import sst2
  (tmp_path / 'l.txt').write_text('1 a fine film\n0 \n')
  with pytest.raises(DataError, match=r'l.txt, line 2: expected'):
    sst2.read_labelled_lines(tmp_path / 'l.txt')
