"""The one config schema every experiment shares, and its validation.

An experiment file calls `base()` and changes what it needs:

    def get_config(arg=None):
      config = base()
      config.model.n_layer = 4
      return config

`validate(config)` runs before anything compiles. Unknown or missing keys, wrong types, bad sizes,
unknown names, and a corpus, task and model that do not fit together get a `ConfigError` that names the
key and, where there is a list, the allowed values.
Keys of `config.model` are the fields of the chosen model's Flax module (minus those that come
from the data, such as `vocab_size`), so a model's dataclass is its schema.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import ml_collections

from lm_anatomy.errors import ConfigError

DTYPES = ('float32', 'bfloat16', 'float16')
OPTIMIZERS = ('sgd', 'momentum', 'adam', 'adamw')
SCHEDULES = ('constant', 'cosine', 'linear', 'wsd')
SAMPLING = ('replacement', 'epochs')
PARALLEL_MODES = ('single', 'pmap', 'data', 'fsdp')
ON_NONFINITE = ('skip', 'stop')
# Model fields filled in from the dataset, never from the config.
DATA_FIELDS = ('vocab_size', 'num_classes', 'input_dim', 'pad_id')


def base() -> ml_collections.ConfigDict:
  """Every key an experiment may set, with its default."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.steps = 5000
  c.batch_size = 64                 # global batch, summed over devices and processes
  c.eval_every = 250
  c.eval_batches = 0                # batches per periodic evaluation; 0 = the whole split
  c.eval_batch_size = 0             # 0 = batch_size
  c.eval_train = False              # final evaluation also scores the train split
  c.checkpoint_every = 1000
  c.keep_checkpoints = 3
  c.steps_per_dispatch = 1          # train steps per compiled call (lax.scan); cuts dispatch cost
  c.grad_accum_steps = 1
  c.dtype = 'float32'               # compute dtype; params and optimizer state stay float32
  c.report_mfu = True              # MFU in metrics.jsonl (on CPU the peak is a measured matmul, ~1 s)
  c.on_nonfinite = 'skip'           # NaN/inf loss or grads: skip the update, or stop the run
  c.init_from = ''                  # start from these weights: a Hugging Face checkpoint dir, a package
                                    #   holding one, or a run's workdir (lm_anatomy/hf.py, init_params)

  c.data = ml_collections.ConfigDict()
  c.data.corpus = 'tinyshakespeare'
  c.data.tokenizer = 'char'         # char | byte | words | wordpiece | bpe (lm_anatomy/data/tokenizers.py)
  c.data.train_fraction = 0.9       # nanoGPT's split: first 90% train, last 10% val
  c.data.seq_len = 0                # 0 = model.block_size
  c.data.vocab = ''                 # wordpiece/bpe: load from this tokenizer file, checkpoint dir or package
                                    #   ('' = init_from's tokenizer, else train one on the corpus)
  c.data.tokenizer_vocab_size = 8000  # vocabulary size of a wordpiece/bpe tokenizer trained on the corpus
  c.data.mask_prob = 0.15           # masked LM: share of tokens predicted (80% [MASK], 10% random, 10% kept)
  c.data.next_sentence = False      # masked LM: sentence pairs, half with a random second segment (NSP)
  c.data.pad_to_multiple = 0        # sentence batches: 0 = pad to seq_len; k = to the longest row, rounded
                                    #   up to a multiple of k (one compilation per length)
  c.data.sampling = 'replacement'   # training rows/windows drawn with replacement, or 'epochs' (each once an epoch);
                                    #   text and names only: sentence classification and vector corpora
                                    #   always go by epochs, masked LM always draws with replacement
  c.data.holdout = 0                # names: hold out this many training names as a 'val' split, for tuning
                                    #   without the test set (0 = none)
  c.data.group_by_length = 0        # sentence classification: batches from mega-batches of g batches
                                    #   sorted by length (less padding); 0 = off

  c.task = ml_collections.ConfigDict()
  c.task.name = 'causal_lm'
  c.task.label_smoothing = 0.0
  c.task.loss = 'cross_entropy'     # classification loss (tasks.CLASSIFICATION_LOSSES)
  c.task.l2 = 0.0                   # λ of the L2 penalty λ·½Σθ² over matrices

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = 'adamw'
  c.optimizer.lr = 1e-3
  c.optimizer.min_lr = 1e-4         # floor of the decay
  c.optimizer.schedule = 'cosine'
  c.optimizer.warmup_steps = 100
  c.optimizer.warmup_offset = 0     # warmup η·(s+o)/(W+o): 0 starts at lr 0 (optax); 1 is nanoGPT's (s+1)/(W+1)
  c.optimizer.decay_steps = 0       # 0 = steps
  c.optimizer.decay_fraction = 0.2  # 'wsd': the last fraction of the steps after warmup, annealed to min_lr
  c.optimizer.b1 = 0.9
  c.optimizer.b2 = 0.99
  c.optimizer.eps = 1e-8
  c.optimizer.weight_decay = 0.1    # applied to matrices (ndim >= 2) only
  c.optimizer.momentum = 0.9        # for 'momentum'
  c.optimizer.nesterov = False
  c.optimizer.grad_clip = 1.0       # global norm; 0 = off

  c.parallel = ml_collections.ConfigDict()
  c.parallel.mode = 'single'
  c.parallel.distributed = False    # call jax.distributed.initialize (multi-host)
  c.parallel.coordinator_address = ''  # host:port; '' = from the cluster's environment
  c.parallel.num_processes = 0      # 0 = from the cluster's environment
  c.parallel.process_id = -1        # -1 = from the cluster's environment
  c.parallel.cpu_collectives = 'gloo'  # cross-process collectives on the CPU backend

  c.model = ml_collections.ConfigDict()
  c.model.name = 'gpt'
  return c


def _type_ok(value: Any, default: Any) -> bool:
  if default is None:
    return True
  if value is None:
    return False
  if isinstance(default, bool):
    return isinstance(value, bool)
  if isinstance(default, float):
    return isinstance(value, (int, float)) and not isinstance(value, bool)
  if isinstance(default, int):
    return isinstance(value, int) and not isinstance(value, bool)
  if isinstance(default, (tuple, list)):
    return isinstance(value, (tuple, list))
  return isinstance(value, type(default))


def _check_section(values: dict, schema: dict, where: str, complete: bool = True) -> None:
  """Unknown keys, wrong types, non-finite floats; with `complete`, also keys the section lacks."""
  missing = sorted(set(schema) - set(values)) if complete else []
  if missing:
    raise ConfigError(f'config key {where + missing[0]!r} is missing{f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""}; '
                      'start experiment configs from lm_anatomy.config.base()')
  for key, value in values.items():
    path = f'{where}{key}'
    if key not in schema:
      raise ConfigError(f'unknown config key {path!r}; allowed keys: {sorted(schema)}')
    default = schema[key]
    if isinstance(default, dict) != isinstance(value, dict):
      raise ConfigError(f'config key {path!r} must be {"a section" if isinstance(default, dict) else "a value"}')
    if isinstance(default, dict):
      _check_section(value, default, path + '.')
    elif not _type_ok(value, default):
      raise ConfigError(
          f'config key {path!r} must be {type(default).__name__}, got {type(value).__name__} ({value!r})')
    elif isinstance(value, float) and not math.isfinite(value):
      raise ConfigError(f'config key {path!r} must be finite, got {value!r}')


def _choice(value: Any, allowed, key: str) -> None:
  if value not in allowed:
    raise ConfigError(f'unknown value {key}={value!r}; choose one of {list(allowed)}')


def _positive(config, *keys: str) -> None:
  for key in keys:
    value = config
    for part in key.split('.'):
      value = value[part]
    if value <= 0:
      raise ConfigError(f'config key {key!r} must be > 0, got {value!r}')


def model_schema(model_cls) -> dict[str, Any]:
  """The configurable fields of a Flax module and their defaults (those from the data excluded)."""
  schema = {}
  for f in dataclasses.fields(model_cls):
    if f.name in ('parent', 'name') or f.name in DATA_FIELDS or not f.init:
      continue
    if f.default is not dataclasses.MISSING:
      schema[f.name] = f.default
    elif f.default_factory is not dataclasses.MISSING:
      schema[f.name] = f.default_factory()
    else:
      schema[f.name] = None
  return schema


def complete(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Adds each field of the chosen model (`model.name`) that the config leaves out, at its default.

  Experiment files end with `return complete(config)`, so that `--config.model.KEY=VALUE` can set any
  field of the model from the command line, and config.json lists every one.
  """
  from lm_anatomy import registry
  import lm_anatomy.models  # noqa: F401  (registers models)
  model_cls = registry.MODELS.get(config.model.name, 'model.name')
  for key, default in model_schema(model_cls).items():
    if key not in config.model and key != 'dtype' and default is not None:
      config.model[key] = default
  return config


def from_saved(saved: dict) -> ml_collections.ConfigDict:
  """A run's config.json as a ConfigDict, with settings added to `base()` since the run at their defaults."""
  config = ml_collections.ConfigDict(saved)

  def fill(dst, defaults):
    for key, value in defaults.items():
      if key not in dst:
        dst[key] = value
      elif isinstance(value, ml_collections.ConfigDict) and isinstance(dst[key], ml_collections.ConfigDict):
        fill(dst[key], value)

  fill(config, base())
  return config


def to_dict(config) -> dict:
  return config.to_dict() if isinstance(config, ml_collections.ConfigDict) else dict(config)


def validate(config: ml_collections.ConfigDict, training: bool = True) -> ml_collections.ConfigDict:
  """Checks keys, types, sizes and names; returns the config. Raises ConfigError naming the key.
  `training=False` (a model loaded outside any run, `hf.from_pretrained`) skips whether the corpus, the
  task and the model fit together."""
  from lm_anatomy import registry
  import lm_anatomy.data  # noqa: F401  (registers corpora)
  import lm_anatomy.models  # noqa: F401  (registers models)
  import lm_anatomy.tasks  # noqa: F401  (registers tasks)

  values = to_dict(config)
  schema = to_dict(base())
  model_values = dict(values.get('model', {}))
  schema.pop('model')
  values.pop('model', None)
  _check_section(values, schema, '')

  if 'name' not in model_values:
    raise ConfigError(f"config key 'model.name' is missing; choose one of {registry.MODELS.names()}")
  model_cls = registry.MODELS.get(model_values['name'], 'model.name')
  mschema = {'name': ''} | model_schema(model_cls)
  for key in model_values:
    if key in DATA_FIELDS:
      raise ConfigError(f'config key model.{key} comes from the data; set it through the data section')
  if 'dtype' in model_values:
    raise ConfigError("set the compute dtype with the top-level key 'dtype', not 'model.dtype'")
  _check_section(model_values, {k: v for k, v in mschema.items() if k != 'dtype'}, 'model.', complete=False)

  _positive(config, 'steps', 'batch_size', 'eval_every', 'checkpoint_every', 'keep_checkpoints',
            'steps_per_dispatch', 'grad_accum_steps')
  if config.eval_batches < 0 or config.eval_batch_size < 0:
    raise ConfigError('eval_batches and eval_batch_size must be >= 0')
  _choice(config.dtype, DTYPES, 'dtype')
  _choice(config.on_nonfinite, ON_NONFINITE, 'on_nonfinite')
  _choice(config.optimizer.name, OPTIMIZERS, 'optimizer.name')
  _choice(config.optimizer.schedule, SCHEDULES, 'optimizer.schedule')
  _choice(config.data.sampling, SAMPLING, 'data.sampling')
  from lm_anatomy.data.tokenizers import KINDS as TOKENIZERS
  _choice(config.data.tokenizer, sorted(TOKENIZERS), 'data.tokenizer')
  _choice(config.parallel.mode, PARALLEL_MODES, 'parallel.mode')
  registry.CORPORA.get(config.data.corpus, 'data.corpus')
  registry.TASKS.get(config.task.name, 'task.name')
  from lm_anatomy.tasks import CLASSIFICATION_LOSSES
  _choice(config.task.loss, list(CLASSIFICATION_LOSSES), 'task.loss')
  if config.task.name != 'classify' and config.task.loss != 'cross_entropy':
    raise ConfigError(f"task.loss={config.task.loss!r} applies to task.name='classify'; "
                      f"{config.task.name} always trains with cross-entropy")
  if not 0.0 < config.data.train_fraction < 1.0:
    raise ConfigError(f'data.train_fraction must be in (0, 1), got {config.data.train_fraction}')
  if not 0 <= config.seed < 2**32:
    raise ConfigError(f'seed must be in [0, 2**32) (JAX keys hold 32 bits), got {config.seed}')
  o = config.optimizer
  _positive(config, 'optimizer.lr', 'optimizer.eps')
  for key in ('warmup_steps', 'warmup_offset', 'decay_steps', 'min_lr', 'weight_decay', 'momentum', 'grad_clip'):
    if o[key] < 0:
      raise ConfigError(f'config key optimizer.{key} must be >= 0, got {o[key]!r}')
  for key in ('b1', 'b2'):
    if not 0 <= o[key] < 1:
      raise ConfigError(f'config key optimizer.{key} must be in [0, 1), got {o[key]!r}')
  if 'layer_norm_eps' in config.model and not config.model.layer_norm_eps > 0:
    raise ConfigError(f'config key model.layer_norm_eps must be > 0, got {config.model.layer_norm_eps!r}')
  if config.data.group_by_length < 0:
    raise ConfigError(f'data.group_by_length must be >= 0, got {config.data.group_by_length}')
  if config.data.holdout < 0:
    raise ConfigError(f'data.holdout must be >= 0, got {config.data.holdout}')
  if config.data.tokenizer_vocab_size <= 5:
    raise ConfigError('data.tokenizer_vocab_size must exceed the 5 special tokens of a trained wordpiece/bpe '
                      f'tokenizer, got {config.data.tokenizer_vocab_size}')
  if config.data.group_by_length and not config.data.pad_to_multiple:
    raise ConfigError('data.group_by_length only saves work with data.pad_to_multiple > 0 (batches cut to '
                      'their longest row); set both')
  if not 0.0 < config.optimizer.decay_fraction <= 1.0:
    raise ConfigError(f'optimizer.decay_fraction must be in (0, 1], got {config.optimizer.decay_fraction}')
  if config.optimizer.min_lr > config.optimizer.lr:
    raise ConfigError(f'optimizer.min_lr ({config.optimizer.min_lr}) exceeds optimizer.lr ({config.optimizer.lr})')
  k = config.steps_per_dispatch
  for key in ('eval_every', 'checkpoint_every'):
    if config[key] % k:
      raise ConfigError(f'{key} ({config[key]}) must be a multiple of steps_per_dispatch ({k})')
  if config.batch_size % config.grad_accum_steps:
    raise ConfigError(
        f'batch_size ({config.batch_size}) must be divisible by grad_accum_steps ({config.grad_accum_steps})')
  if config.task.l2 < 0:
    raise ConfigError(f'task.l2 must be >= 0 (λ of the penalty λ·½Σθ² over matrices), got {config.task.l2}')
  if config.task.label_smoothing < 0 or config.task.label_smoothing >= 1:
    raise ConfigError(f'task.label_smoothing must be in [0, 1), got {config.task.label_smoothing}')
  block = config.model.get('block_size', 0)
  if block and config.data.seq_len > block:
    raise ConfigError(f'data.seq_len ({config.data.seq_len}) exceeds model.block_size ({block}), the '
                      'positions the model has; lower data.seq_len or raise model.block_size')
  check = getattr(model_cls, 'check_config', None)
  if check is not None:  # the model section, with the run's compute dtype beside it
    check(ml_collections.ConfigDict(dict(config.model.to_dict(), dtype=config.dtype)))
  if training:
    _check_fit(config, model_cls)
  return config


def _check_fit(config, model_cls) -> None:
  """The corpus, the task and the model must fit together: the corpus's batches serve the task, the model
  serves the task and reads what the corpus gives (token ids or vectors)."""
  from lm_anatomy import registry
  corpus = registry.CORPORA.get(config.data.corpus, 'data.corpus')
  task, model = config.task.name, config.model.name
  if task not in corpus.tasks:
    raise ConfigError(f'data.corpus={corpus.name!r} gives batches for task.name in {list(corpus.tasks)}, '
                      f'not {task!r}')
  if task not in model_cls.tasks:
    raise ConfigError(f'model.name={model!r} serves task.name in {list(model_cls.tasks)}, not {task!r}')
  if model_cls.inputs != corpus.inputs:
    raise ConfigError(f'model.name={model!r} reads {model_cls.inputs}, but data.corpus={corpus.name!r} gives '
                      f'{corpus.inputs}')
  check = getattr(model_cls, 'check_run', None)
  if check is not None:
    check(config)


def model_kwargs(config, model_cls, info: dict) -> dict:
  """Constructor arguments for the model: its config section, the data's sizes and the dtype."""
  names = {f.name for f in dataclasses.fields(model_cls)}
  kwargs = {k: v for k, v in to_dict(config.model).items() if k != 'name'}
  kwargs.update({k: v for k, v in info.items() if k in names and k in DATA_FIELDS})
  if 'dtype' in names:
    kwargs['dtype'] = config.dtype
  return kwargs


def seq_len(config) -> int:
  """Training sequence length: data.seq_len, or the model's block_size."""
  return config.data.seq_len or config.model.get('block_size', 0)


def from_json(d: dict) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(d)
