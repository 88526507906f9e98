"""BERT: heads, padding masks, masked-LM data and task, and the pretrain → fine-tune workflow (tiny sizes)."""
import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lm_anatomy
from lm_anatomy import config as config_lib
from lm_anatomy import data, engine, evaluate, hf, models, tasks
from lm_anatomy.data import hf_tokenizers
from lm_anatomy.data.sentences import IS_NEXT, NOT_NEXT, MaskedLMSentences, SentenceClassification
from lm_anatomy.errors import CheckpointError, ConfigError
from lm_anatomy.models import layers
from lm_anatomy.models.bert import BERT
from conftest import ROOT, load_config

WORDS = ('good bad movie film plot acting great boring fun dull story the a and of is was it this not very '
         'funny sad long short charming awful smart silly warm cold').split()


def sentences(n, seed=0):
  rng = np.random.default_rng(seed)
  return [' '.join(rng.choice(WORDS, rng.integers(2, 14))) for _ in range(n)]


@pytest.fixture(scope='module')
def tokenizer():
  return hf_tokenizers.WordPieceTokenizer.fit(sentences(300), vocab_size=120)


def tiny(head='mlm', **kw):
  return BERT(**dict(dict(vocab_size=40, num_classes=3, block_size=16, n_layer=2, n_head=2, n_embd=16,
                          dropout=0.0, head=head), **kw))


def init(model, T=10, B=2):
  ids = jnp.ones((B, T), jnp.int32)
  return model.init(jax.random.key(0), ids)['params']


@pytest.mark.parametrize('head, shape', [('encoder', (3, 10, 16)), ('mlm', (3, 10, 40)), ('classify', (3, 3))])
def test_head_shapes(head, shape):
  model = tiny(head)
  params = init(model)
  out = model.apply({'params': params}, jnp.ones((3, 10), jnp.int32), attention_mask=jnp.ones((3, 10)))
  assert out.shape == shape and out.dtype == jnp.float32
  mlm, nsp = tiny('pretrain').apply({'params': init(tiny('pretrain'))}, jnp.ones((3, 10), jnp.int32))
  assert mlm.shape == (3, 10, 40) and nsp.shape == (3, 2)


@pytest.mark.parametrize('impl', ['einsum', 'xla'])
def test_padding_does_not_change_real_tokens(impl):
  """A sentence alone, and padded with any tokens that the mask hides, has the same hidden states."""
  model = tiny('encoder', attention_impl=impl)
  params = init(model)
  ids = jax.random.randint(jax.random.key(1), (2, 6), 1, 40)
  alone = model.apply({'params': params}, ids)
  for pad_ids in (jnp.zeros((2, 5), jnp.int32), jax.random.randint(jax.random.key(2), (2, 5), 0, 40)):
    padded = jnp.concatenate([ids, pad_ids], 1)
    mask = jnp.concatenate([jnp.ones((2, 6)), jnp.zeros((2, 5))], 1)
    out = model.apply({'params': params}, padded, attention_mask=mask)
    np.testing.assert_allclose(out[:, :6], alone, atol=2e-5)
  # Without the mask the padding does leak in: the mask is what isolates it.
  unmasked = model.apply({'params': params}, padded)
  assert not np.allclose(unmasked[:, :6], alone, atol=1e-3)


def test_segments_change_outputs():
  model = tiny('encoder')
  params = init(model)
  ids = jnp.arange(1, 9)[None]
  a = model.apply({'params': params}, ids, token_type_ids=jnp.zeros_like(ids))
  b = model.apply({'params': params}, ids, token_type_ids=jnp.ones_like(ids))
  assert not np.allclose(a, b)


def test_mlm_head_is_tied_to_word_embeddings():
  model = tiny('mlm')
  params = init(model)
  assert 'mlm_bias' in params and not any('decoder' in k for k in params)
  ids = jax.random.randint(jax.random.key(3), (2, 10), 0, 40)
  logits = model.apply({'params': params}, ids)
  hidden = model.apply({'params': params}, ids, method='encode')
  d = params['mlm_dense']
  h = layers.ACTIVATIONS['gelu'](hidden @ d['kernel'] + d['bias'])
  mu, var = h.mean(-1, keepdims=True), h.var(-1, keepdims=True)
  h = (h - mu) / jnp.sqrt(var + 1e-12) * params['mlm_ln']['scale'] + params['mlm_ln']['bias']
  expected = h @ params['token_embed']['embedding'].T + params['mlm_bias']
  np.testing.assert_allclose(logits, expected, atol=2e-5)
  # Scoring only chosen positions gives the same scores there.
  positions = jnp.array([[3, 0, 9], [1, 1, 5]])
  some = model.apply({'params': params}, ids, masked_positions=positions)
  np.testing.assert_allclose(some, jnp.take_along_axis(logits, positions[..., None], 1), atol=1e-6)
  # The embedding gets gradient from the output side too (one matrix, two uses).
  grad = jax.jit(jax.grad(lambda p: model.apply({'params': p}, jnp.zeros((1, 4), jnp.int32))[..., 7].sum()))(params)
  assert np.abs(grad['token_embed']['embedding'][7]).sum() > 0


def test_pooled_heads_read_the_cls_vector():
  for head, name in (('classify', 'classifier'), ('pretrain', 'nsp')):
    model = tiny(head)
    params = init(model)
    ids = jax.random.randint(jax.random.key(4), (2, 10), 0, 40)
    out = model.apply({'params': params}, ids)
    out = out[1] if head == 'pretrain' else out
    hidden = model.apply({'params': params}, ids, method='encode')
    pooled = jnp.tanh(hidden[:, 0] @ params['pool_dense']['kernel'] + params['pool_dense']['bias'])
    np.testing.assert_allclose(out, pooled @ params[name]['kernel'] + params[name]['bias'], atol=1e-5)


def test_bad_model_configs_name_the_key():
  config = load_config('bert_pretrain.py')
  config.model.head = 'lm'
  with pytest.raises(ConfigError, match="model.head='lm'"):
    config_lib.validate(config)
  config.model.head, config.model.pooler = 'classify', False
  with pytest.raises(ConfigError, match='model.pooler=True'):
    config_lib.validate(config)
  with pytest.raises(ValueError, match='exceeds the 16 positions'):
    init(tiny(), T=17)


@pytest.mark.parametrize('change, message', [
    (dict(head='encoder'), "model.head='encoder' cannot train task.name='masked_lm'; use model.head in ['mlm', 'pretrain']"),
    (dict(head='classify'), "model.head='classify' cannot train task.name='masked_lm'"),
    (dict(head='mlm'), "data.next_sentence=True makes sentence pairs for the next-sentence loss, which model.head='mlm' lacks"),
    (dict(next_sentence=False), "model.head='pretrain' adds the next-sentence loss, which needs data.next_sentence=True"),
    (dict(type_vocab_size=1), 'sentence pairs need two segment embeddings; model.type_vocab_size is 1'),
    (dict(task='classify'), "data.corpus='sst2_mlm' gives batches for task.name in ['masked_lm'], not 'classify'"),
])
def test_head_task_and_data_must_fit(change, message):
  """Each of these once trained silently wrong (segment B read as A, an untrained pooler) or crashed in JAX."""
  config = load_config('bert_pretrain.py')
  assert config.model.head == 'pretrain' and config.data.next_sentence
  for key, value in change.items():
    if key == 'next_sentence':
      config.data.next_sentence = value
    elif key == 'task':
      config.task.name = value
    else:
      config.model[key] = value
  with pytest.raises(ConfigError) as e:
    config_lib.validate(config)
  assert message in str(e.value)


def test_configs_validate():
  for name, arg in (('bert_pretrain.py', ''), ('bert_pretrain.py', 'tiny'), ('sst2_minilm.py', ''),
                    ('sst2_minilm.py', 'tiny'), ('sst2_bert_scratch.py', ''), ('sst2_bert_scratch.py', 'noinit')):
    config_lib.validate(load_config(name, arg))


# ---------------------------------------------------------------------------------------------------
# Masked-LM data

def mlm_dataset(tokenizer, next_sentence=False, n=200, seq_len=24, seed=0):
  ids = tokenizer.encode_batch(sentences(n, seed=5))
  return MaskedLMSentences({'train': list(ids), 'val': list(ids[:50])}, tokenizer, seq_len, seed,
                           next_sentence=next_sentence)


def test_masked_lm_refuses_epoch_sampling():
  """Masked-LM batches draw sentences with replacement: data.sampling='epochs' is refused, not ignored."""
  config = load_config('bert_pretrain.py', 'tiny')
  config.data.sampling = 'epochs'
  with pytest.raises(ConfigError, match="data.sampling='epochs' is not offered for data.corpus='sst2_mlm'"):
    data.build(config)


def test_pairs_need_a_token_in_each_segment(tokenizer):
  with pytest.raises(ConfigError, match=r'data.seq_len \(4\) is too short for \[CLS\] A \[SEP\] B \[SEP\]'):
    mlm_dataset(tokenizer, next_sentence=True, seq_len=4)
  ds = mlm_dataset(tokenizer, next_sentence=True, seq_len=5)
  batch = ds.train_batch(0, 64)
  for row in batch['inputs']:  # [CLS] A [SEP] B [SEP] with A and B never empty
    seps = np.flatnonzero(row == ds.specials.sep)
    assert len(seps) == 2 and seps[0] > 1 and seps[1] > seps[0] + 1, row


def test_masking_statistics(tokenizer):
  ds = mlm_dataset(tokenizer)
  specials = set(tokenizer.special_ids())
  mask_id = tokenizer.special_id('mask')
  chosen = kept = masked = random = 0
  long_chosen = long_ordinary = 0  # rows with 0.15·n ≥ 1, where the minimum of one does not apply
  for step in range(60):
    b = ds.train_batch(step, 32)
    w = b['weights'] > 0
    rows = np.broadcast_to(np.arange(32)[:, None], w.shape)
    pos, tgt = b['masked_positions'][w], b['masked_targets'][w]
    # Original tokens: the targets where chosen, the inputs elsewhere.
    original = b['inputs'].copy()
    original[rows[w], pos] = tgt
    n_ordinary = ((b['attention_mask'] > 0) & ~np.isin(original, list(specials))).sum(1)
    low = np.maximum(1, np.floor(0.15 * n_ordinary))  # k = max(1, ⌊0.15·n + u⌋): one of two counts
    assert ((w.sum(1) == low) | (w.sum(1) == np.maximum(1, np.floor(0.15 * n_ordinary) + 1))).all()
    assert not np.isin(tgt, list(specials)).any()
    assert len(set(zip(rows[w], pos))) == len(pos)      # no position twice
    now = b['inputs'][rows[w], pos]
    masked += (now == mask_id).sum()
    kept += (now == tgt).sum()
    random += ((now != mask_id) & (now != tgt)).sum()
    chosen += w.sum()
    long = n_ordinary >= 7
    long_chosen += w[long].sum()
    long_ordinary += n_ordinary[long].sum()
  assert abs(long_chosen / long_ordinary - 0.15) < 0.01
  assert abs(masked / chosen - 0.8) < 0.03
  # "random" excludes draws that happened to hit the original token, which count as kept.
  assert abs(random / chosen - 0.1) < 0.025 and abs(kept / chosen - 0.1) < 0.025


def test_masked_batches_are_pure_and_eval_is_fixed(tokenizer):
  ds = mlm_dataset(tokenizer, next_sentence=True)
  a, b = ds.train_batch(3, 8), ds.train_batch(3, 8)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])
  assert not np.array_equal(ds.train_batch(4, 8)['inputs'], a['inputs'])
  halves = [MaskedLMSentences(ds.splits, tokenizer, 24, 0, next_sentence=True, process_index=p, process_count=2)
            .train_batch(3, 8) for p in range(2)]
  np.testing.assert_array_equal(np.concatenate([h['inputs'] for h in halves]), a['inputs'])
  first = list(ds.eval_batches('val', 16))
  again = list(ds.eval_batches('val', 16))
  for x, y in zip(first, again):
    np.testing.assert_array_equal(x['inputs'], y['inputs'])
  assert sum(float(b['weights'].sum(1).astype(bool).sum()) for b in first) == 50  # each sentence once


def test_unigram_baseline_scores_the_evaluations_masks_on_every_process(tokenizer):
  ds = mlm_dataset(tokenizer)
  base = ds.unigram_baseline('val', 16)
  top = tokenizer.encode_batch([base['unigram_token']])[0][0]
  hits = weight = 0.0
  for b in ds.eval_batches('val', 16):   # the masks the engine's evaluation scores
    hits += float(np.sum(b['weights'] * (b['masked_targets'] == top)))
    weight += float(np.sum(b['weights']))
  assert weight > 0 and base['unigram_accuracy'] == pytest.approx(hits / weight, rel=1e-12)
  for p in range(2):   # each process holds half the rows, and reports the whole split's figure
    other = MaskedLMSentences(ds.splits, tokenizer, 24, 0, process_index=p, process_count=2)
    assert other.unigram_baseline('val', 16) == base


def test_next_sentence_pairs(tokenizer):
  ds = mlm_dataset(tokenizer, next_sentence=True, seq_len=40)
  cls, sep = tokenizer.special_id('cls'), tokenizer.special_id('sep')
  sentences_ = {tuple(s) for s in ds.splits['train']}
  labels = []
  for step in range(20):
    b = ds.train_batch(step, 32)
    original = b['inputs'].copy()
    rows = np.broadcast_to(np.arange(32)[:, None], b['weights'].shape)
    w = b['weights'] > 0
    original[rows[w], b['masked_positions'][w]] = b['masked_targets'][w]
    for row, seg, mask, label in zip(original, b['token_type_ids'], b['attention_mask'], b['next_sentence_labels']):
      n = int(mask.sum())
      seps = np.flatnonzero(row[:n] == sep)
      assert row[0] == cls and len(seps) == 2 and seps[1] == n - 1
      np.testing.assert_array_equal(seg[:n], (np.arange(n) > seps[0]).astype(int))
      joined = tuple(row[1:seps[0]]) + tuple(row[seps[0] + 1:n - 1])
      if label == IS_NEXT:
        assert joined in sentences_
      labels.append(label)
  assert abs(np.mean(np.array(labels) == NOT_NEXT) - 0.5) < 0.08


def unmasked(b):
  """The rows of a masked-LM batch with their chosen tokens put back."""
  original = b['inputs'].copy()
  w = b['weights'] > 0
  rows = np.broadcast_to(np.arange(len(original))[:, None], w.shape)
  original[rows[w], b['masked_positions'][w]] = b['masked_targets'][w]
  return original


def split_pair(row, sep):
  """(A, B) of a packed row [CLS] A [SEP] B [SEP] [PAD]…"""
  seps = np.flatnonzero(row == sep)
  return row[1:seps[0]], row[seps[0] + 1:seps[1]]


def test_long_pairs_keep_the_junction(tokenizer):
  """A pair longer than seq_len loses the longer part's far end (A's start, B's end; B on a tie) until
  [CLS] A [SEP] B [SEP] fits: B still starts at the token that followed A's last one."""
  ordinary = np.setdiff1d(np.arange(tokenizer.vocab_size), tokenizer.special_ids())
  lengths = (4, 9, 10, 16, 22, 30)
  cuts = np.cumsum((0,) + lengths)
  sents = [ordinary[cuts[i]:cuts[i + 1]] for i in range(len(lengths))]  # each id in one place only
  where = {int(t): (i, p) for i, s in enumerate(sents) for p, t in enumerate(s)}
  seq_len, budget = 12, 9
  ds = MaskedLMSentences({'train': list(sents)}, tokenizer, seq_len, 0, next_sentence=True)
  sep = tokenizer.special_id('sep')
  seen = set()
  for step in range(4):
    b = ds.train_batch(step, 64)
    for row, label in zip(unmasked(b), b['next_sentence_labels']):
      if label != IS_NEXT:
        continue
      a, bb = split_pair(row, sep)
      i, k = where[int(bb[0])]    # the cut: B starts at token k of sentence i
      t = sents[i]
      assert where[int(a[-1])] == (i, k - 1)  # A ends just before it
      n = len(t)
      lb = min(n - k, max(budget - k, budget // 2))  # the shorter part whole, else an even split (A ≥ B)
      la = min(k, budget - lb)
      np.testing.assert_array_equal(a, t[k - la:k])
      np.testing.assert_array_equal(bb, t[k:k + lb])
      seen.add((la < k, lb < n - k))
  assert seen == {(False, False), (True, False), (False, True), (True, True)}  # every kind of cut happened


def test_random_second_sentences_come_from_another_sentence(tokenizer):
  ordinary = np.setdiff1d(np.arange(tokenizer.vocab_size), tokenizer.special_ids())
  sents = [ordinary[:5], ordinary[5:12]]
  ds = MaskedLMSentences({'train': list(sents)}, tokenizer, 16, 0, next_sentence=True)  # no pair is cut
  sep = tokenizer.special_id('sep')
  labels = []
  for step in range(4):
    b = ds.train_batch(step, 32)
    for row, label in zip(unmasked(b), b['next_sentence_labels']):
      a, bb = split_pair(row, sep)
      j = int(a[0] in sents[1])
      np.testing.assert_array_equal(a, sents[j][:len(a)])           # A: a prefix of the anchor
      if label == IS_NEXT:
        np.testing.assert_array_equal(bb, sents[j][len(a):])
      else:
        np.testing.assert_array_equal(bb, sents[1 - j][-len(bb):])  # B: a tail of the other sentence
      labels.append(label)
  assert 30 < sum(np.array(labels) == NOT_NEXT) < 98


@pytest.mark.parametrize('target, accuracy', [(5, 0.0), (0, 1.0)])
def test_masked_lm_accuracy_counts_masked_slots_only(target, accuracy):
  """Empty slots (weight 0, position 0, target 0) are not scored, even where the prediction is 0."""
  class Fixed:  # predicts token 0 in every slot
    def apply(self, variables, inputs, train=False, rngs=None, **kwargs):
      return jnp.zeros((1, 4, 8)).at[..., 0].set(1.0)
  task = tasks.build(load_config('bert_pretrain.py', 'tiny'), Fixed(), None)
  batch = {'inputs': np.ones((1, 6), np.int32), 'masked_positions': np.array([[3, 0, 0, 0]], np.int32),
           'masked_targets': np.array([[target, 0, 0, 0]], np.int32), 'weights': np.array([[1, 0, 0, 0]], np.float32)}
  _, sums = task.loss({}, batch, None, train=False)
  assert float(sums['correct']) == accuracy and float(sums['weight']) == 1.0
  assert task.finalize(jax.device_get(sums), 'val_')['val_accuracy'] == pytest.approx(accuracy)


def test_masked_lm_loss_counts_masked_positions_only(tokenizer):
  config = load_config('bert_pretrain.py', 'tiny')
  ds = mlm_dataset(tokenizer, next_sentence=True)
  model = BERT(vocab_size=tokenizer.vocab_size, block_size=24, n_layer=1, n_head=2, n_embd=16, head='pretrain',
               dropout=0.0)
  task = tasks.build(config, model, ds)
  batch = ds.train_batch(0, 8)
  params = task.init(jax.random.key(0), batch)
  loss_sum, sums = task.loss(params, batch, None, train=False)
  mlm, nsp = model.apply({'params': params}, batch['inputs'], attention_mask=batch['attention_mask'],
                         token_type_ids=batch['token_type_ids'], masked_positions=batch['masked_positions'])
  logp = jax.nn.log_softmax(mlm)
  per_slot = -np.take_along_axis(np.asarray(logp), batch['masked_targets'][..., None], -1)[..., 0]
  w = batch['weights']
  per_seq_nsp = -np.take_along_axis(np.asarray(jax.nn.log_softmax(nsp)), batch['next_sentence_labels'][:, None], -1)[:, 0]
  np.testing.assert_allclose(sums['mlm_loss'], (per_slot * w).sum(), rtol=1e-5)
  np.testing.assert_allclose(loss_sum, (per_slot * w).sum() + (w.sum(1) * per_seq_nsp).sum(), rtol=1e-5)
  # Targets in empty slots (weight 0) do not count.
  changed = dict(batch, masked_targets=np.where(w > 0, batch['masked_targets'], 5))
  assert float(task.loss(params, changed, None, train=False)[0]) == pytest.approx(float(loss_sum), rel=1e-6)
  # The reported loss (val_loss, train_loss, the best checkpoint) is the objective; NSP per real sequence.
  np.testing.assert_allclose(sums['loss'], loss_sum, rtol=1e-6)
  metrics = task.finalize(jax.device_get(sums), 'val_')
  assert set(metrics) >= {'val_loss', 'val_accuracy', 'val_mlm_loss', 'val_nsp_loss', 'val_nsp_accuracy'}
  real = w.sum(1) > 0
  assert metrics['val_loss'] == pytest.approx(float(loss_sum) / w.sum(), rel=1e-5)
  assert metrics['val_mlm_loss'] == pytest.approx((per_slot * w).sum() / w.sum(), rel=1e-5)
  assert metrics['val_nsp_loss'] == pytest.approx(per_seq_nsp[real].mean(), rel=1e-5)
  correct = np.argmax(np.asarray(logp), -1) == batch['masked_targets']
  assert metrics['val_accuracy'] == pytest.approx((correct * w).sum() / w.sum(), rel=1e-6)


def test_dynamic_padding_trims_batches(tokenizer):
  ids = tokenizer.encode_batch(sentences(64))
  labels = np.arange(64) % 2
  fixed = SentenceClassification({'train': (labels, ids)}, tokenizer, 40, 0)
  dynamic = SentenceClassification({'train': (labels, ids)}, tokenizer, 40, 0, pad_to_multiple=8)
  a, b = fixed.train_batch(2, 16), dynamic.train_batch(2, 16)
  T = b['inputs'].shape[1]
  assert T % 8 == 0 and T < 40 and T >= b['attention_mask'].sum(1).max()
  np.testing.assert_array_equal(a['inputs'][:, :T], b['inputs'])
  assert (a['attention_mask'][:, T:] == 0).all()
  # tokens/s counts the positions a batch really has
  assert dynamic.tokens_per_example(b) == T and fixed.tokens_per_example(a) == fixed.tokens_per_example() == 40


def test_group_by_length_visits_every_row_once_with_less_padding(tokenizer):
  ids = tokenizer.encode_batch(sentences(96, seed=3))
  labels = np.arange(96) % 2
  plain = SentenceClassification({'train': (labels, ids)}, tokenizer, 40, 0, pad_to_multiple=8)
  grouped = SentenceClassification({'train': (labels, ids)}, tokenizer, 40, 0, pad_to_multiple=8, group_by_length=3)
  lengths = grouped.splits['train']['attention_mask'].sum(1)
  one_epoch = [grouped.train_batch(s, 8) for s in range(12)]       # 12 batches of 8 = 96 rows
  # Every row once: the multiset of (length, first tokens) equals the split's.
  seen = sorted((int(b['attention_mask'][i].sum()), tuple(b['inputs'][i, :4])) for b in one_epoch for i in range(8))
  data = grouped.splits['train']
  assert seen == sorted((int(lengths[i]), tuple(data['inputs'][i, :4])) for i in range(96))
  # Each mega-batch of 3 batches (24 rows) runs longest first.
  for m in range(4):
    lens = np.concatenate([one_epoch[3 * m + j]['attention_mask'].sum(1) for j in range(3)])
    assert (np.diff(lens) <= 0).all()
  padded = lambda ds: np.mean([ds.train_batch(s, 8)['inputs'].shape[1] for s in range(24)])
  assert padded(grouped) < padded(plain)
  # A pure function of (seed, step), and the next epoch has another order.
  np.testing.assert_array_equal(grouped.train_batch(5, 8)['inputs'], one_epoch[5]['inputs'])
  assert not np.array_equal(grouped.train_batch(12, 8)['labels'], one_epoch[0]['labels']) or \
      not np.array_equal(grouped.train_batch(12, 8)['inputs'], one_epoch[0]['inputs'])


def test_group_by_length_needs_dynamic_padding():
  config = load_config('sst2_minilm.py')
  config.data.pad_to_multiple = 0
  config.data.group_by_length = 50
  with pytest.raises(ConfigError, match='group_by_length'):
    config_lib.validate(config)


# ---------------------------------------------------------------------------------------------------
# The workflow: pretrain from scratch, fine-tune from it, evaluate on a file

@pytest.fixture
def sst2_data(tmp_path, monkeypatch):
  root = tmp_path / 'data'
  (root / 'sst2').mkdir(parents=True)
  for name, n, seed in (('stsa.binary.train', 160, 1), ('stsa.binary.dev', 40, 2)):
    lines = [f'{int("good" in s.split()[:3])} {s}' for s in sentences(n, seed)]
    (root / 'sst2' / name).write_text('\n'.join(lines) + '\n')
  monkeypatch.setenv('LM_ANATOMY_DATA', str(root))
  monkeypatch.setenv('LM_ANATOMY_CACHE', str(tmp_path / 'cache'))
  return root


def test_pretrain_then_fine_tune(sst2_data, tmp_path):
  pre = load_config('bert_pretrain.py', 'tiny')
  pre.data.tokenizer_vocab_size = 300
  pre.steps, pre.eval_every, pre.checkpoint_every = 10, 10, 10
  pre.data.pad_to_multiple = 0  # one batch length, one compilation (dynamic padding: its own test)
  record = engine.train(pre, tmp_path / 'pre', progress=False)
  assert 'val_nsp_accuracy' in record
  info = json.loads((tmp_path / 'pre' / 'data_info.json').read_text())
  assert 0 < info['val_unigram_accuracy'] < 1
  # The dev file, scored by `evaluate`, gets the val split's masks and pairs: the run's val metrics exactly.
  scored = evaluate.evaluate_file(tmp_path / 'pre', sst2_data / 'sst2' / 'stsa.binary.dev')
  assert scored['loss'] == pytest.approx(record['val_loss'], rel=1e-6)
  assert scored['accuracy'] == pytest.approx(record['val_accuracy'], rel=1e-6)

  fine = load_config('sst2_bert_scratch.py')
  fine.init_from = str(tmp_path / 'pre')
  fine.model.n_layer, fine.model.n_head, fine.model.n_embd = 2, 2, 32
  fine.batch_size, fine.steps, fine.eval_every, fine.checkpoint_every = 16, 6, 3, 3
  fine.optimizer.warmup_steps = 1
  fine.data.pad_to_multiple, fine.data.group_by_length = 0, 0
  ds = data.build(fine)
  assert ds.tokenizer.to_json() == lm_anatomy.restore(tmp_path / 'pre').tokenizer.to_json()  # the run's own BPE
  model = models.build(fine, ds.info)
  fresh = tasks.build(fine, model, ds).init(jax.random.key(0), ds.example_batch(2))
  merged = hf.init_params(fine.init_from, model, fresh)
  pretrained = lm_anatomy.restore(tmp_path / 'pre', best=True).params
  np.testing.assert_array_equal(merged['blocks_1']['mlp']['c_fc']['kernel'],
                                pretrained['blocks_1']['mlp']['c_fc']['kernel'])
  np.testing.assert_array_equal(merged['classifier']['kernel'], fresh['classifier']['kernel'])
  assert 'mlm_bias' not in merged

  record = engine.train(fine, tmp_path / 'fine', progress=False)
  # What `python -m lm_anatomy.evaluate --workdir=W --file=F` prints, in-process (no second JAX start-up).
  metrics = evaluate.evaluate_file(tmp_path / 'fine', sst2_data / 'sst2' / 'stsa.binary.dev')
  assert metrics['count'] == 40 and metrics['step'] == 6
  assert metrics['accuracy'] == pytest.approx(record['val_accuracy']) and metrics['loss'] == pytest.approx(record['val_loss'])
  cmd = [sys.executable, '-m', 'lm_anatomy.evaluate', f'--workdir={tmp_path}/fine',
         f'--file={sst2_data}/sst2/stsa.binary.dev']
  out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=180)
  assert out.returncode == 0, out.stderr[-2000:]
  assert json.loads(out.stdout.strip().splitlines()[-1]) == json.loads(json.dumps(metrics))  # the command line prints it

  fine.model.n_embd = 64  # not the pretrained width
  with pytest.raises(CheckpointError, match=r'model.n_embd: 64 here, 32 in the checkpoint'):
    hf.init_params(fine.init_from, models.build(fine, ds.info), fresh)


def test_a_missing_vocab_file_is_named(tmp_path):
  from lm_anatomy.data import sentences as sentences_lib
  from lm_anatomy.errors import DataError
  config = load_config('sst2_bert_scratch.py', 'noinit')
  config.data.vocab = str(tmp_path / 'vocab.txt')  # once reported as a package to pip install
  with pytest.raises(DataError, match=f"data.vocab: there is no tokenizer file or folder at '{tmp_path}/vocab.txt'"):
    sentences_lib.tokenizer_for(config, ['a good film', 'a dull plot'])


def test_mlm_head_adds_its_bias_and_uses_the_models_activation():
  """logits_t = LN_m(act(h_t W_m + b_m)) Eᵀ + b_v with the model's own activation (here ReLU, as Hugging
  Face's BertPredictionHeadTransform uses hidden_act) and the output bias b_v: numpy in float64."""
  model = tiny('mlm', activation='relu')
  params = init(model)
  params['mlm_bias'] = jax.random.normal(jax.random.key(5), params['mlm_bias'].shape)
  ids = jax.random.randint(jax.random.key(3), (2, 10), 0, 40)
  hidden = np.asarray(model.apply({'params': params}, ids, method='encode'), np.float64)
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
  h = np.maximum(hidden @ p['mlm_dense']['kernel'] + p['mlm_dense']['bias'], 0.0)
  h = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-12)
  h = h * p['mlm_ln']['scale'] + p['mlm_ln']['bias']
  want = h @ p['token_embed']['embedding'].T + p['mlm_bias']
  np.testing.assert_allclose(model.apply({'params': params}, ids), want, rtol=1e-5, atol=1e-5)


def test_classifier_reads_the_pooled_vector_through_dropout_in_training():
  """classify: logits = dropout(tanh(h^L_[CLS] W_p + b_p)) W_c + b_c; in training the pooled vector's
  dropped units are 0 and the kept ones scaled by 1/(1 − p). Evaluation keeps every unit."""
  model = tiny('classify', dropout=0.5)
  params = init(model)
  ids = jax.random.randint(jax.random.key(4), (4, 10), 0, 40)
  logits, state = model.apply({'params': params}, ids, train=True, rngs={'dropout': jax.random.key(6)},
                              capture_intermediates=True, mutable=['intermediates'])
  inter = state['intermediates']
  pooled = np.tanh(np.asarray(inter['pool_dense']['__call__'][0], np.float64))
  dropped = np.asarray(inter['drop']['__call__'][-1], np.float64)  # the last dropout: the pooled vector's
  keep = dropped != 0
  assert dropped.shape == pooled.shape == (4, 16) and 0.2 < keep.mean() < 0.8
  np.testing.assert_allclose(dropped, np.where(keep, pooled / 0.5, 0.0), rtol=1e-5, atol=1e-6)
  c = jax.tree.map(lambda a: np.asarray(a, np.float64), params['classifier'])
  np.testing.assert_allclose(logits, dropped @ c['kernel'] + c['bias'], rtol=1e-5, atol=1e-6)
  hidden = np.asarray(model.apply({'params': params}, ids, method='encode'), np.float64)
  pd = jax.tree.map(lambda a: np.asarray(a, np.float64), params['pool_dense'])
  want = np.tanh(hidden[:, 0] @ pd['kernel'] + pd['bias']) @ c['kernel'] + c['bias']
  np.testing.assert_allclose(model.apply({'params': params}, ids), want, rtol=1e-5, atol=1e-6)


def test_embeddings_are_the_layer_normed_sum_of_token_position_and_segment():
  """h⁰_t = LN_emb(E[x_t] + P[t] + S[s_t]) with the model's ε (BERT's 1e-12: at initialisation the sum's
  variance is ~1e-3, so GPT-2's 1e-5 would move it by ~0.5%); numpy in float64."""
  model = tiny('encoder')
  params = init(model)
  ids = jax.random.randint(jax.random.key(3), (2, 10), 0, 40)
  segments = jnp.array([[0] * 4 + [1] * 6, [0] * 7 + [1] * 3])
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
  x = p['token_embed']['embedding'][np.asarray(ids)] + p['position_embed'][:10] + \
      p['segment_embed']['embedding'][np.asarray(segments)]
  assert x.var(-1).max() < 5e-3
  want = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-12)
  want = want * p['ln_embed']['scale'] + p['ln_embed']['bias']
  got = model.apply({'params': params}, ids, segments, method='embed')
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
