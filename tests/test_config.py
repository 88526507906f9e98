import json
import os
import subprocess
import sys

import hypothesis
import hypothesis.strategies as st
import pytest

from lm_anatomy import config as config_lib
from lm_anatomy.errors import ConfigError
from conftest import ROOT, load_config


def _with(d: dict, key: str, value) -> dict:
  """`d` (a config as a plain dict) with the dotted `key` set to `value`, unchecked."""
  *path, last = key.split('.')
  section = d
  for name in path:
    section = section[name]
  section[last] = value
  return d


def test_all_configs_validate():
  for arg in ('', 'baby', 'tiny'):
    config_lib.validate(load_config('shakespeare_char.py', arg))


@pytest.mark.parametrize('change, message', [
    (lambda c: c.__setattr__('stepz', 3), "unknown config key 'stepz'"),
    (lambda c: c.data.__setattr__('corpus', 'nope'), "data.corpus='nope'"),
    (lambda c: c.model.__setattr__('name', 'nope'), "model.name='nope'"),
    (lambda c: c.optimizer.__setattr__('name', 'lion'), "optimizer.name='lion'"),
    (lambda c: c.task.__setattr__('name', 'nope'), "task.name='nope'"),
    (lambda c: c.parallel.__setattr__('mode', 'tp'), "parallel.mode='tp'"),
    (lambda c: c.model.__setattr__('n_head', 5), 'n_embd (384) must be divisible by model.n_head (5)'),
    (lambda c: c.model.__setattr__('n_embed', 5), "unknown config key 'model.n_embed'"),
    (lambda c: c.__setattr__('batch_size', 0), "'batch_size' must be > 0"),
    (lambda c: c.__setattr__('dtype', 'float8'), "dtype='float8'"),
    (lambda c: c.optimizer.__setattr__('warmup_offset', -1), 'optimizer.warmup_offset'),
    (lambda c: c.data.__setattr__('seq_len', 1000), 'data.seq_len (1000) exceeds model.block_size (256)'),
    (lambda c: c.task.__setattr__('loss', 'hinge'), "task.loss='hinge' applies to task.name='classify'"),
    (lambda c: c.task.__setattr__('l2', -1.0), 'task.l2 must be >= 0'),
    (lambda c: c.__setattr__('eval_every', 7), 'eval_every (7) must be a multiple of steps_per_dispatch'),
    (lambda c: c.optimizer.__setattr__('grad_clip', -1.0), 'optimizer.grad_clip must be >= 0'),
    (lambda c: c.optimizer.__setattr__('weight_decay', -0.1), 'optimizer.weight_decay must be >= 0'),
    (lambda c: c.optimizer.__setattr__('momentum', -0.9), 'optimizer.momentum must be >= 0'),
    (lambda c: c.optimizer.__setattr__('decay_steps', -10), 'optimizer.decay_steps must be >= 0'),
    (lambda c: c.optimizer.__setattr__('b1', 1.5), 'optimizer.b1 must be in [0, 1)'),
    (lambda c: c.optimizer.__setattr__('b2', -0.1), 'optimizer.b2 must be in [0, 1)'),
    (lambda c: c.optimizer.__setattr__('eps', -1.0), "'optimizer.eps' must be > 0"),
    (lambda c: c.model.__setattr__('layer_norm_eps', -1.0), 'model.layer_norm_eps must be > 0'),
    (lambda c: c.__setattr__('seed', -1), 'seed must be in [0, 2**32)'),
    (lambda c: c.__setattr__('seed', 2**32 + 7), 'seed must be in [0, 2**32)'),
    (lambda c: c.optimizer.__setattr__('min_lr', 1e-2), 'optimizer.min_lr (0.01) exceeds optimizer.lr (0.001)'),
    (lambda c: c.data.__setattr__('tokenizer_vocab_size', 5), 'data.tokenizer_vocab_size must exceed the 5 special tokens'),
    (lambda c: c.data.__setattr__('tokenizer', 'chars'), "unknown value data.tokenizer='chars'"),
])
def test_bad_config_names_the_key(change, message):
  config = load_config('shakespeare_char.py')
  config.steps_per_dispatch = 5 if 'eval_every' in message else config.steps_per_dispatch
  with config.unlocked() if hasattr(config, 'unlocked') else _null():
    change(config)
  with pytest.raises(ConfigError, match=_re(message)):
    config_lib.validate(config)


def test_wrong_type_names_the_key():
  config = load_config('shakespeare_char.py')
  config.model.bias = False
  d = config.to_dict()
  d['model']['n_layer'] = 'four'
  import ml_collections
  with pytest.raises(ConfigError, match="'model.n_layer' must be int"):
    config_lib.validate(ml_collections.ConfigDict(d))


def test_a_missing_section_or_key_is_named():
  import ml_collections
  d = load_config('shakespeare_char.py').to_dict()
  d.pop('data')
  with pytest.raises(ConfigError, match="config key 'data' is missing"):
    config_lib.validate(ml_collections.ConfigDict(d))
  d = load_config('shakespeare_char.py').to_dict()
  d['optimizer'].pop('b2')
  with pytest.raises(ConfigError, match="config key 'optimizer.b2' is missing"):
    config_lib.validate(ml_collections.ConfigDict(d))


@pytest.mark.parametrize('config_name, arg, change, message', [
    ('xor.py', 'mlp', {'task': 'causal_lm'}, "data.corpus='xor' gives batches for task.name in ['classify'], not 'causal_lm'"),
    ('names.py', 'bigram', {'task': 'classify'}, "data.corpus='names' gives batches for task.name in ['causal_lm'], not 'classify'"),
    ('names.py', 'bigram', {'model': 'mlp'}, "model.name='mlp' serves task.name in ['classify'], not 'causal_lm'"),
    ('sst2_bert_scratch.py', 'noinit', {'model': 'mlp'}, "model.name='mlp' reads vectors, but data.corpus='sst2_text' gives tokens"),
])
def test_corpus_task_and_model_must_fit(config_name, arg, change, message):
  """These crashed with a KeyError or a JAX shape error after compiling started."""
  import ml_collections
  d = load_config(config_name, arg).to_dict()
  if 'task' in change:
    d['task']['name'] = change['task']
  if 'model' in change:
    d['model'] = {'name': change['model']}
  with pytest.raises(ConfigError) as e:
    config_lib.validate(ml_collections.ConfigDict(d))
  assert message in str(e.value)


def _re(s):
  import re
  return re.escape(s)


class _null:
  def __enter__(self):
    return self

  def __exit__(self, *a):
    return False


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(
    key=st.sampled_from(['steps', 'batch_size', 'eval_every', 'model.n_head', 'model.n_embd', 'model.block_size',
                         'model.dropout', 'optimizer.lr', 'optimizer.name', 'data.corpus', 'dtype', 'model.bias',
                         'optimizer.min_lr', 'steps_per_dispatch', 'grad_accum_steps', 'task.label_smoothing',
                         'model.activation', 'model.attention_impl', 'on_nonfinite', 'parallel.mode']),
    value=st.one_of(st.integers(-5, 1000), st.floats(allow_nan=True), st.text(max_size=8), st.booleans(),
                    st.none()))
def test_random_overrides_raise_only_config_errors(key, value):
  """Whatever value lands in whatever key, validation either passes or raises ConfigError."""
  import ml_collections
  d = _with(load_config('shakespeare_char.py').to_dict(), key, value)
  try:
    config_lib.validate(ml_collections.ConfigDict(d))
  except ConfigError:
    pass


def test_cli_reports_bad_override_without_traceback(tiny_data, tmp_path):
  cmd = [sys.executable, '-m', 'lm_anatomy.main', f'--config={ROOT}/experiments/configs/shakespeare_char.py:tiny',
         f'--workdir={tmp_path}/w', '--config.model.n_head=3']
  out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
  assert out.returncode == 2
  assert 'error: model.n_embd (32) must be divisible by model.n_head (3)' in out.stderr
  assert 'Traceback' not in out.stderr


def test_cli_reports_unknown_override_key_without_traceback(tiny_data, tmp_path):
  cmd = [sys.executable, '-m', 'lm_anatomy.main', f'--config={ROOT}/experiments/configs/shakespeare_char.py:tiny',
         f'--workdir={tmp_path}/w', '--config.model.n_heads=3']
  out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
  assert out.returncode == 2 and 'Traceback' not in out.stderr
  assert ("error: unknown config key 'n_heads' in --config.model.n_heads. "
          'Did you mean "n_head" instead of "n_heads"?') in out.stderr
  assert not (tmp_path / 'w').exists()


def test_cli_reports_a_missing_config_file_without_traceback(tmp_path):
  cmd = [sys.executable, '-m', 'lm_anatomy.main', f'--config={ROOT}/experiments/configs/nope.py:baby',
         f'--workdir={tmp_path}/w']
  out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
  assert out.returncode == 2 and 'Traceback' not in out.stderr
  assert f"error: --config: there is no file '{ROOT}/experiments/configs/nope.py'" in out.stderr
  assert not (tmp_path / 'w').exists()


def test_every_model_field_can_be_overridden():
  """Config files end with complete(): each field of the chosen model is present at its default."""
  from lm_anatomy.models.gpt import GPT
  config = load_config('shakespeare_char.py', 'baby')
  schema = config_lib.model_schema(GPT)
  assert set(config.model.keys()) == {'name'} | {k for k, v in schema.items() if k != 'dtype' and v is not None}
  assert config.model.weight_init == 'gpt2' and config.model.n_layer == 4 and config.model.block_size == 64   # defaults, and the file's own values


def test_a_saved_config_gains_the_settings_added_since_at_their_defaults():
  saved = config_lib.to_dict(load_config('names.py', 'lstm'))
  saved['optimizer']['b2'] = 0.9
  del saved['data']['holdout'], saved['eval_train']  # a run saved before these settings existed
  config = config_lib.from_saved(json.loads(json.dumps(saved)))
  assert config.data.holdout == 0 and config.eval_train == config_lib.base().eval_train
  assert config.optimizer.b2 == 0.9 and config.model.to_dict() == saved['model']  # saved values kept
  assert config_lib.to_dict(config_lib.validate(config))['data'] == dict(saved['data'], holdout=0)


def _cli(tmp_path, *args):
  cmd = [sys.executable, '-m', 'lm_anatomy.main', f'--config={ROOT}/experiments/configs/shakespeare_char.py:tiny', *args]
  return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_cli_reports_an_override_below_a_value_without_traceback(tiny_data, tmp_path):
  out = _cli(tmp_path, f'--workdir={tmp_path}/w', '--config.steps=10', '--config.data.corpus.x=1')
  assert out.returncode == 2 and 'Traceback' not in out.stderr, out.stderr
  assert 'error: an override names a key inside a value that is not a section' in out.stderr
  assert out.stderr.strip().endswith('in --config.data.corpus.x')
  # Below a number, ml_collections raises a KeyError whose text is a sentence, not a key.
  out = _cli(tmp_path, f'--workdir={tmp_path}/w', '--config.steps=10', '--config.optimizer.lr.x=1')
  assert out.returncode == 2 and 'Traceback' not in out.stderr, out.stderr
  assert out.stderr.strip().splitlines()[-1] == ('error: an override names a key inside a value that is not a '
                                                 'section (its value is of type float), in --config.optimizer.lr.x')


def test_cli_names_only_the_override_with_an_unknown_section(tiny_data, tmp_path):
  out = _cli(tmp_path, f'--workdir={tmp_path}/w', '--config.steps=10', '--config.foo.bar=1')
  assert out.returncode == 2 and 'Traceback' not in out.stderr, out.stderr
  assert "error: unknown config key 'foo' in --config.foo.bar." in out.stderr


def test_cli_refuses_a_workdir_below_a_file_and_a_stop_before_step_one(tiny_data, tmp_path):
  (tmp_path / 'afile').write_text('')
  out = _cli(tmp_path, f'--workdir={tmp_path}/afile/run')
  assert out.returncode == 2 and 'Traceback' not in out.stderr, out.stderr
  assert f"error: workdir '{tmp_path}/afile/run' cannot be a folder: '{tmp_path}/afile' is a file" in out.stderr
  out = _cli(tmp_path, f'--workdir={tmp_path}/w', '--stop_after=0')
  assert out.returncode == 2 and 'error: stop_after must be >= 1, got 0' in out.stderr, out.stderr
  assert not (tmp_path / 'w').exists()


@pytest.mark.parametrize('code, status, stderr', [('None', 0, ''), ('3', 3, ''), ('"bad input"', 1, 'bad input\n')])
def test_exit_now_exits_as_sys_exit_after_atexit_and_flushing(code, status, stderr):
  """exit_now skips the interpreter's teardown, but keeps what sys.exit gives: the status, a string's
  message, the atexit handlers, and output still in the buffers of a redirected stdout."""
  script = ('import atexit, jax\n'
            'from lm_anatomy import cli\n'
            'jax.numpy.ones(2).block_until_ready()\n'
            'atexit.register(print, "atexit ran")\n'
            'print("buffered " * 1000)\n'
            f'cli.exit_now({code})\n'
            'print("not reached")\n')
  buffered = {k: v for k, v in os.environ.items() if k != 'PYTHONUNBUFFERED'}  # stdout to a pipe: block-buffered
  out = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, cwd=ROOT, timeout=60,
                       env=buffered)
  assert (out.returncode, out.stderr) == (status, stderr)
  assert out.stdout == 'buffered ' * 1000 + '\natexit ran\n'


def test_exit_now_waits_for_a_running_thread():
  """A non-daemon thread still running when exit_now is called finishes its work, as under sys.exit."""
  script = ('import threading, time\n'
            'from lm_anatomy import cli\n'
            't = threading.Thread(target=lambda: (time.sleep(0.5), print("thread done", flush=True)))\n'
            't.start()\n'
            'cli.exit_now(4)\n')
  out = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, cwd=ROOT, timeout=60)
  assert (out.returncode, out.stdout, out.stderr) == (4, 'thread done\n', '')


@pytest.mark.skipif(__import__('jax').default_backend() == 'gpu', reason='cudnn attention is valid on a GPU')
@pytest.mark.parametrize('config_name', ['shakespeare_char.py', 'bert_pretrain.py'])
def test_cudnn_attention_without_a_gpu_is_a_config_error(config_name):
  """It passed validation, then crashed in a background compile thread ('cuDNN is not detected')."""
  config = load_config(config_name)
  config.model.attention_impl, config.dtype = 'cudnn', 'bfloat16'
  with pytest.raises(ConfigError, match="model.attention_impl='cudnn' needs a GPU"):
    config_lib.validate(config)


@pytest.mark.parametrize('config_name', ['shakespeare_char.py', 'bert_pretrain.py'])
def test_cudnn_attention_in_float32_is_a_config_error(config_name):
  """cuDNN's fused attention has no float32 kernel: JAX raised at the first step, on any GPU."""
  config = load_config(config_name)
  config.model.attention_impl = 'cudnn'
  assert config.dtype == 'float32'
  with pytest.raises(ConfigError, match="model.attention_impl='cudnn' needs dtype='bfloat16' or 'float16'"):
    config_lib.validate(config)


def test_a_saved_config_gains_a_whole_section_added_since():
  """A run saved before a section existed gets the whole section at its defaults, not only new keys."""
  saved = config_lib.to_dict(load_config('names.py', 'lstm'))
  del saved['parallel']
  config = config_lib.from_saved(json.loads(json.dumps(saved)))
  assert config.parallel.to_dict() == config_lib.base().parallel.to_dict()
  config_lib.validate(config)


@pytest.mark.parametrize('key, value, message', [
    ('batch_size', True, "config key 'batch_size' must be int, got bool (True)"),
    ('optimizer.lr', True, "config key 'optimizer.lr' must be float, got bool (True)"),
    ('model.n_layer', None, "config key 'model.n_layer' must be int, got NoneType (None)"),
    ('optimizer.lr', float('inf'), "config key 'optimizer.lr' must be finite, got inf"),
    ('model.dropout', float('nan'), "config key 'model.dropout' must be finite, got nan"),
    ('data', 'tinyshakespeare', "config key 'data' must be a section"),
    ('steps', {'n': 1}, "config key 'steps' must be a value"),
    ('model.vocab_size', 65, 'config key model.vocab_size comes from the data; set it through the data section'),
    ('model.dtype', 'bfloat16', "set the compute dtype with the top-level key 'dtype', not 'model.dtype'"),
])
def test_bad_types_and_misplaced_keys_are_named(key, value, message):
  """bool is not a number, None and non-finite floats are refused, sections and values do not swap."""
  import ml_collections
  d = _with(load_config('shakespeare_char.py', 'tiny').to_dict(), key, value)
  with pytest.raises(ConfigError) as e:
    config_lib.validate(ml_collections.ConfigDict(d))
  assert str(e.value) == message


def test_an_int_is_a_valid_float():
  """Float settings take ints (optimizer.lr=1 on the command line); the value is kept as given."""
  import ml_collections
  d = load_config('shakespeare_char.py', 'tiny').to_dict()
  d['optimizer']['lr'], d['task']['label_smoothing'] = 1, 0
  config = config_lib.validate(ml_collections.ConfigDict(d))
  assert config.optimizer.lr == 1 and config.task.label_smoothing == 0


def test_model_kwargs_are_the_model_section_the_data_sizes_and_the_dtype():
  """Only the data's sizes the model has a field for; the compute dtype from the top-level key."""
  from lm_anatomy.models.gpt import GPT
  config = load_config('shakespeare_char.py', 'tiny')
  config.dtype = 'bfloat16'
  kwargs = config_lib.model_kwargs(config, GPT, {'vocab_size': 65, 'num_classes': 2, 'val_loss': 1.5})
  model = {k: v for k, v in config.model.to_dict().items() if k != 'name'}
  assert kwargs == dict(model, vocab_size=65, dtype='bfloat16')
  assert GPT(**kwargs).dtype == 'bfloat16'


def test_seq_len_is_data_seq_len_or_else_the_block_size():
  config = load_config('shakespeare_char.py', 'tiny')
  assert config.model.block_size == 32 and config_lib.seq_len(config) == 32
  config.data.seq_len = 8
  assert config_lib.seq_len(config) == 8


def test_complete_adds_only_fields_that_have_a_default(monkeypatch):
  """A field without a default has no value to add: the model itself reports it missing."""
  import flax.linen as nn
  from lm_anatomy import registry

  class Toy(nn.Module):
    width: int
    depth: int = 2

  monkeypatch.setitem(registry.MODELS._entries, 'toy', Toy)
  config = config_lib.base()
  config.model.name = 'toy'
  assert config_lib.complete(config).model.to_dict() == {'name': 'toy', 'depth': 2}
