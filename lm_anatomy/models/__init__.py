"""Models, one architecture per file, registered by name in `lm_anatomy.registry.MODELS`.

A model is a Flax Linen module whose dataclass fields are its config (`config.model.*`); fields
named in `config.DATA_FIELDS` (such as `vocab_size`) are filled in from the dataset.
Class attributes every model sets (config.validate checks them against the task and the corpus):
  tasks                               the task.name values it serves, e.g. ('causal_lm',)
  inputs                              'tokens' (ids [batch, length]) or 'vectors' ([batch, input_dim])
Optional methods the engine and reports use when present:
  check_config(cfg)                   static; raise ConfigError for bad sizes (cfg: the model section + dtype)
  check_run(config)                   static; the same for settings across sections (the whole config)
  num_params(params)                  parameter count (for reports)
  flops_per_token(seq_len, params)    training FLOPs per token (for MFU)
  context_limit()                     tokens of context the model can see
"""
from lm_anatomy import config as config_lib
from lm_anatomy.models import gpt  # noqa: F401  (registers 'gpt')
from lm_anatomy.models import bert  # noqa: F401  (registers 'bert')
from lm_anatomy.models import bigram, ffnn, rnn  # noqa: F401  (registers 'bigram', 'ffnn', 'rnn', 'lstm', 'gru')
from lm_anatomy.models import linear, mlp  # noqa: F401  (registers 'linear', 'log_linear', 'linear_stack', 'mlp')
from lm_anatomy.registry import MODELS


def build(config, info: dict):
  """The model named by `config.model.name`, sized from the config and the data's `info`."""
  cls = MODELS.get(config.model.name, 'model.name')
  return cls(**config_lib.model_kwargs(config, cls, info))
