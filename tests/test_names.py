"""The names corpus: makemore's rows, split and loss counting, and the names configs."""
import json
import os
import pathlib

import numpy as np
import pytest

import lm_anatomy
from lm_anatomy import config as config_lib
from lm_anatomy import data, engine, evaluate, losses
from lm_anatomy.data import names as names_lib
from lm_anatomy.errors import ConfigError, DataError
from conftest import load_config

WORDS = ['emma', 'olivia', 'ava', 'isabella', 'sophia', 'charlotte', 'mia', 'amelia', 'harper', 'evelyn',
         'abigail', 'emily', 'ella', 'elizabeth', 'camila', 'luna', 'sofia', 'avery', 'mila', 'aria',
         'scarlett', 'penelope', 'layla', 'chloe', 'victoria', 'madison', 'eleanor', 'grace', 'nora', 'riley',
         'zoey', 'hannah', 'hazel', 'lily', 'ellie', 'violet', 'lillian', 'zoe', 'stella', 'emma']  # 'emma' twice
TEST_LINES = [3, 10, 39, 22]


@pytest.fixture
def names_data(tmp_path, monkeypatch):
  """A data folder with a 40-name names.txt (plus blank lines) and a test split of 4 lines."""
  root = tmp_path / 'data'
  (root / 'names').mkdir(parents=True)
  (root / 'names' / 'names.txt').write_text('\n'.join(WORDS[:20]) + '\n\n' + '\n'.join(WORDS[20:]))
  (root / 'names' / 'test_split.txt').write_text(''.join(f'{i}\n' for i in TEST_LINES))
  monkeypatch.setenv('LM_ANATOMY_DATA', str(root))
  monkeypatch.setenv('LM_ANATOMY_CACHE', str(tmp_path / 'cache'))
  return root


def names_config(arch='bigram'):
  return load_config('names.py', arch)


def test_rows_split_and_vocabulary(names_data):
  ds = data.build(names_config())
  assert ds.words['test'] == [WORDS[i] for i in TEST_LINES]
  assert ds.words['train'] == [w for i, w in enumerate(WORDS) if i not in TEST_LINES]
  assert 'emma' in ds.words['train'] and 'emma' in ds.words['test']  # split by line, not by name
  tok = ds.tokenizer
  assert tok.itos[0] == '.' and tok.chars == sorted(set(''.join(WORDS)))
  assert ds.info == {'vocab_size': len(tok.chars) + 1}
  assert ds.seq_len == 1 + max(len(w) for w in WORDS) and ds.tokens_per_example() == ds.seq_len
  row = {k: v[0] for k, v in ds.rows['test'].items()}  # 'isabella'
  n = len('isabella')
  assert tok.decode(row['inputs'][:n + 1]) == '.isabella' and tok.decode(row['targets'][:n + 1]) == 'isabella.'
  np.testing.assert_array_equal(row['weights'], (np.arange(ds.seq_len) < n + 1).astype(np.float32))
  np.testing.assert_array_equal(row['inputs'][1:], row['targets'][:-1])
  assert ds.eval_splits == ['test']
  assert tok.to_json() == {'type': 'char', 'chars': tok.chars, 'specials': ['.']}


def test_eval_batches_weigh_every_character_and_end_token_once(names_data):
  ds = data.build(names_config())
  batches = list(ds.eval_batches('test', 3))
  assert [b['inputs'].shape for b in batches] == [(3, ds.seq_len)] * 2
  assert sum(b['weights'].sum() for b in batches) == sum(len(WORDS[i]) + 1 for i in TEST_LINES)
  assert batches[1]['weights'][1:].sum() == 0  # padding rows
  scored = np.concatenate([b['targets'][b['weights'] > 0] for b in batches])
  assert ds.tokenizer.decode(scored) == ''.join(WORDS[i] + '.' for i in TEST_LINES)
  assert len(list(ds.eval_batches('train', 4, max_batches=2))) == 2


def test_train_batches_are_pure_and_split_across_processes(names_data):
  config = names_config()
  ds = data.build(config)
  a, b = ds.train_batch(5, 8), ds.train_batch(5, 8)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])
  assert not np.array_equal(ds.train_batch(6, 8)['inputs'], a['inputs'])
  halves = [data.build(config, p, 2).train_batch(5, 8) for p in range(2)]
  for k in a:
    np.testing.assert_array_equal(np.concatenate([h[k] for h in halves]), a[k])
  train_rows = {tuple(r) for r in ds.rows['train']['targets']}
  assert all(tuple(r) in train_rows for r in a['targets'])


def test_epoch_sampling_visits_every_training_name_once_an_epoch(names_data):
  config = names_config()
  config.data.sampling = 'epochs'
  ds = data.build(config)
  n = len(ds.words['train'])                          # 36 = 9 batches of 4
  epoch = np.concatenate([ds.train_batch(s, 4)['targets'] for s in range(n // 4)])
  key = lambda rows: sorted(map(tuple, rows))
  assert key(epoch) == key(ds.rows['train']['targets'])
  second = np.concatenate([ds.train_batch(s, 4)['targets'] for s in range(n // 4, 2 * n // 4)])
  assert key(second) == key(epoch) and not np.array_equal(second, epoch)
  config.data.sampling = 'shuffled'
  with pytest.raises(ConfigError, match="data.sampling='shuffled'"):
    config_lib.validate(config)


def test_without_the_split_file_a_seeded_permutation(names_data):
  (names_data / 'names' / 'test_split.txt').unlink()
  config = names_config()
  ds = data.build(config)
  assert len(ds.words['test']) == 4 and len(ds.words['train']) == 36  # min(1000, 10%)
  config.seed = 99  # the split does not follow the training seed
  assert data.build(config).words == ds.words
  # makemore's rule on a seeded permutation rp: the test names are its tail, rp[-size:]
  tail = np.random.default_rng(names_lib.SPLIT_SEED).permutation(40)[-4:]
  np.testing.assert_array_equal(names_lib.test_indices(40), np.sort(tail))
  assert sorted(ds.words['test']) == sorted(WORDS[i] for i in tail)
  assert len(names_lib.test_indices(5)) == 1   # 10% of 5 rounds to 0: still one test name
  with pytest.raises(DataError, match='at least 2'):
    names_lib.test_indices(1)


def test_holdout_moves_training_names_to_a_val_split(names_data):
  config = names_config()
  full = data.build(config)
  config.data.holdout = 6
  ds = data.build(config)
  assert ds.eval_splits == ['val', 'test'] and ds.words['test'] == full.words['test']
  assert len(ds.words['val']) == 6 and len(ds.words['train']) == len(full.words['train']) - 6
  # val and train partition the full training lines, each keeping the original order
  for part in ('val', 'train'):
    lines = iter(full.words['train'])
    assert all(w in lines for w in ds.words[part])
  assert sorted(ds.words['val'] + ds.words['train']) == sorted(full.words['train'])
  config.seed = 99  # the held-out names do not follow the training seed
  assert data.build(config).words == ds.words
  val_rows = {tuple(r) for r in ds.rows['val']['targets']}
  trained = np.concatenate([ds.train_batch(s, 8)['targets'] for s in range(20)])
  assert not val_rows & {tuple(r) for r in trained}
  config.data.holdout = 36
  with pytest.raises(ConfigError, match=r'data.holdout must be in \[1, 35\] .* got 36'):
    data.build(config)
  config.data.holdout = -1
  with pytest.raises(ConfigError, match='data.holdout must be >= 0'):
    config_lib.validate(config)


def test_holdout_on_a_corpus_with_its_own_splits_is_a_config_error():
  config = load_config('shakespeare_char.py', 'baby')
  config.data.holdout = 10
  with pytest.raises(ConfigError, match='data.holdout is not supported by the tinyshakespeare corpus'):
    data.build(config)


@pytest.mark.parametrize('content, message', [
    ('1\n2\nx\n', 'one integer line index per line'),
    ('1\n1\n', 'distinct line indices in \\[0, 40\\)'),
    ('0\n40\n', 'distinct line indices in \\[0, 40\\)'),
])
def test_bad_split_file_is_a_data_error(names_data, content, message):
  (names_data / 'names' / 'test_split.txt').write_text(content)
  with pytest.raises(DataError, match=message):
    data.build(names_config())


def test_context_shorter_than_a_name_is_a_config_error(names_data):
  config = names_config('gpt')
  config.model.block_size = 8
  with pytest.raises(ConfigError, match=r'needs sequences of 10 tokens .* is 8'):
    data.build(config)


def test_mfu_counts_the_rows_real_length(names_data, tmp_path):
  """Names rows are 1 + the longest name wide (10 here) whatever block_size says; FLOPs per token
  (whose attention term grows with the length) follow the rows the model really runs."""
  config = names_config('gpt')
  config.model.n_layer, config.model.n_head, config.model.n_embd, config.model.block_size = 1, 2, 16, 32
  config.steps, config.eval_every, config.checkpoint_every, config.eval_batch_size = 10, 10, 10, 4
  record = engine.train(config, tmp_path / 'run', progress=False)
  run = lm_anatomy.restore(tmp_path / 'run')
  fpt = run.model.flops_per_token(10, run.params)
  assert fpt != run.model.flops_per_token(32, run.params)
  assert record['mfu'] == pytest.approx(fpt * record['tokens_per_sec'] / record['peak_flops'], rel=1e-9)


def test_all_names_configs_validate():
  for arch in ('bigram', 'ffnn', 'rnn', 'gru', 'lstm', 'gpt'):
    config = config_lib.validate(names_config(arch))
    assert (config.batch_size, config.steps, config.optimizer.lr, config.optimizer.weight_decay) == \
        (32, 10_000, 5e-4, 0.01)
    assert config.model.name == arch
  with pytest.raises(ValueError, match='unknown variant'):
    names_config('mlp')


def test_test_loss_is_makemores_mean_over_characters_and_end_tokens(names_data, tmp_path):
  config = names_config('ffnn')
  config.steps, config.eval_every, config.checkpoint_every, config.eval_batch_size = 20, 20, 20, 3
  config.model.n_embd, config.model.n_hidden, config.model.window = 8, 16, 4
  record = engine.train(config, tmp_path / 'run', progress=False)
  run = lm_anatomy.restore(tmp_path / 'run')
  # makemore's count, by hand: each test name, then its end token, all characters weighed alike.
  tok, total, count = run.tokenizer, 0.0, 0
  names = [tok.encode('.' + WORDS[i] + '.') for i in TEST_LINES]
  padded = np.zeros((len(names), max(map(len, names))), np.int32)  # the model is causal: padding after is inert
  for row, ids in zip(padded, names):
    row[:len(ids)] = ids
  logits = np.asarray(run.model.apply({'params': run.params}, padded[:, :-1]))
  for row, ids, lg in zip(padded, names, logits):
    total += float(np.sum(losses.cross_entropy(lg[:len(ids) - 1], ids[1:])))
    count += len(ids) - 1
  assert record['step'] == 20 and record['test_loss'] == pytest.approx(total / count, rel=1e-5)
  # `python -m lm_anatomy.evaluate` on a file of names (one per line) scores them as the test split.
  (tmp_path / 'test_names.txt').write_text(''.join(WORDS[i] + '\n' for i in TEST_LINES))
  scored = evaluate.evaluate_file(tmp_path / 'run', tmp_path / 'test_names.txt')
  assert scored['count'] == count and scored['loss'] == pytest.approx(record['test_loss'], rel=1e-6)
  (tmp_path / 'capitals.txt').write_text('emma\n\nZoe\n')  # the error names the name, not only its character
  with pytest.raises(DataError, match=r"name 2 \('Zoe'\): character 'Z' at position 0 is not in the vocabulary"):
    evaluate.evaluate_file(tmp_path / 'run', tmp_path / 'capitals.txt')
  # `python -m lm_anatomy.sample` starts from the run's start token '.' (its default newline is unknown here).
  import subprocess, sys
  from conftest import ROOT
  out = subprocess.run([sys.executable, '-m', 'lm_anatomy.sample', f'--workdir={tmp_path}/run', '--max_new_tokens=5'],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.splitlines()[1].startswith('.') and len(out.stdout.splitlines()[1]) == 6


@pytest.mark.skipif(not (pathlib.Path(os.environ.get('LM_ANATOMY_DATA', '/nonexistent')) / 'names' / 'test_split.txt').exists(),
                    reason='the shared names data is not in LM_ANATOMY_DATA')
def test_real_names_corpus_has_makemores_split():
  ds = data.build(names_config())
  words = names_lib.read_words(pathlib.Path(os.environ['LM_ANATOMY_DATA']) / 'names' / 'names.txt')
  assert len(words) == 32_033 and len(ds.words['test']) == 1000 and len(ds.words['train']) == 31_033
  assert ds.info['vocab_size'] == 27 and ds.seq_len == 16
  assert ds.words['test'][0] == words[25859]  # the first line of test_split.txt


def test_names_are_stripped_and_blank_lines_dropped(tmp_path):
  """read_words strips each line (spaces, tabs, a CR) and drops the lines that are then empty."""
  (tmp_path / 'n.txt').write_bytes(b' emma \r\n\nava\t\n   \n mia')
  assert names_lib.read_words(tmp_path / 'n.txt') == ['emma', 'ava', 'mia']


def test_fallback_test_split_is_ten_percent_up_to_1000():
  """Without test_split.txt the test set is 10% of the names, at most 1000 of them."""
  assert len(names_lib.test_indices(5_000)) == 500
  assert len(names_lib.test_indices(20_000)) == 1000


def test_names_take_only_the_character_tokenizer(names_data):
  """makemore's names are modelled character by character: another data.tokenizer is refused, not ignored."""
  config = names_config()
  config.data.tokenizer = 'bpe'
  with pytest.raises(ConfigError, match="data.tokenizer must be 'char', got 'bpe'"):
    data.build(config)


def test_a_name_holding_the_boundary_character_is_a_data_error(names_data):
  """'.' starts and ends every name, so a name that contains it is refused."""
  (names_data / 'names' / 'names.txt').write_text('\n'.join(WORDS[:39] + ['j.r.']))
  with pytest.raises(DataError, match="names.txt holds the boundary character '.'"):
    data.build(names_config())


def test_eval_subset_is_evenly_spaced_names(names_data):
  """max_batches picks evenly spaced names of the split, its first and its last included."""
  ds = data.build(names_config())
  train = ds.words['train']
  assert len(train) == 36
  batches = list(ds.eval_batches('train', 3, max_batches=2))   # 6 of 36 names: 0, 7, …, 35
  scored = np.concatenate([b['targets'][b['weights'] > 0] for b in batches])
  assert ds.tokenizer.decode(scored) == ''.join(train[i] + '.' for i in range(0, 36, 7))
