"""Samples text from a trained run.

  python -m lm_anatomy.sample --workdir=runs/baby --prompt="ROMEO:" --num_samples=3 \\
      --max_new_tokens=500 --temperature=0.8 --top_k=200 --top_p=0.95 --seed=0

Any causal LM run samples: GPT with a KV cache, RNN / LSTM / GRU carrying their state, the FFNN and the
bigram on their window (see generate.py). A prompt longer than the model's context is cropped to its last
block_size tokens; a character the tokenizer does not know is an error. The default prompt is the run's
start token (names: '.') or, without one, a newline; a run whose tokenizer has neither (word-level runs)
needs --prompt. Each sample prints as the prompt and its new tokens, decoded together. `--no_cache`
re-runs the model on its last block_size tokens for each token; the same --seed gives the same text
either way as long as the prompt and the new tokens fit in block_size (past it the cache restarts from
the last block_size/2 tokens, while --no_cache slides its window one token at a time; see generate.py).
"""
from __future__ import annotations

from absl import flags

from lm_anatomy import cli

_WORKDIR = flags.DEFINE_string('workdir', None, 'Run folder to sample from.')
_PROMPT = flags.DEFINE_string('prompt', None, "Text to continue. Default: the run's start token, else a newline.")
_NUM = flags.DEFINE_integer('num_samples', 1, 'Samples to draw (one batch).')
_MAX_NEW = flags.DEFINE_integer('max_new_tokens', 500, 'Tokens to generate per sample.')
_TEMP = flags.DEFINE_float('temperature', 0.8, 'Softmax temperature; 0 = greedy.')
_TOP_K = flags.DEFINE_integer('top_k', 200, 'Keep the k most likely tokens; 0 = all.')
_TOP_P = flags.DEFINE_float('top_p', 1.0, 'Nucleus sampling: keep the smallest set with this mass.')
_SEED = flags.DEFINE_integer('seed', 0, 'Random seed.')
_BEST = flags.DEFINE_boolean('best', False, 'Use the best checkpoint by val loss instead of the latest.')
_NO_CACHE = flags.DEFINE_boolean('no_cache', False, 'Do not use the KV cache.')
flags.mark_flags_as_required(['workdir'])


def main(argv):
  del argv
  import jax
  import numpy as np
  import lm_anatomy
  from lm_anatomy import generate
  from lm_anatomy.errors import ConfigError
  if _NUM.value < 1 or _MAX_NEW.value < 0:
    raise ConfigError(f'need num_samples >= 1 and max_new_tokens >= 0, got {_NUM.value} and {_MAX_NEW.value}')
  generate.check_sampling(_TEMP.value, _TOP_K.value, _TOP_P.value)
  run = lm_anatomy.restore(_WORKDIR.value, best=_BEST.value)
  if run.config.task.name != 'causal_lm':
    raise ConfigError(f"{_WORKDIR.value} trains task.name={run.config.task.name!r}; sampling needs a causal "
                      "language model (task.name='causal_lm')")
  ids = _default_prompt(run.tokenizer) if _PROMPT.value is None else run.tokenizer.encode(_PROMPT.value)
  if len(ids) == 0:
    raise ConfigError('the prompt is empty')
  prompt = np.tile(ids[None], (_NUM.value, 1))
  new = generate.generate(run.model, run.params, prompt, _MAX_NEW.value, jax.random.key(_SEED.value),
                          _TEMP.value, _TOP_K.value, _TOP_P.value, use_cache=not _NO_CACHE.value)
  for i, row in enumerate(new):
    print(f'--- sample {i}')
    print(run.tokenizer.decode(np.concatenate([ids, row])))  # one decode: words keep their spaces


def _default_prompt(tokenizer):
  """The ids of the run's start token, else of a newline; a ConfigError if the tokenizer has neither."""
  from lm_anatomy.errors import ConfigError, DataError
  specials = getattr(tokenizer, 'specials', None)
  try:
    ids = tokenizer.encode(specials[0] if specials else '\n')
  except DataError:  # a character vocabulary without a newline
    ids = []
  if len(ids) == 0:
    raise ConfigError("this run's tokenizer has no start token and no newline to begin a sample from; "
                      'give --prompt')
  return ids


if __name__ == '__main__':
  cli.run(main)
