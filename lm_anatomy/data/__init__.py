"""Data: corpora by name, tokenizers, and datasets whose batches are pure functions of (seed, step).

A dataset offers:
  info                      sizes the model needs, e.g. {'vocab_size': 65}
  tokenizer                 with encode/decode and to_json (saved beside the run)
  train_split, eval_splits  split names
  train_batch(step, batch_size) -> dict of numpy arrays, this process's rows of global batch `step`
  eval_batches(split, batch_size, max_batches=0) -> iterator of such dicts, padded with weight 0
  example_batch(batch_size) -> a batch with the right shapes, for initialisation
  tokens_per_example(batch=None) -> positions per row (of `batch`, whose width may vary), for tokens/s
A corpus's build function may also offer `build.from_file(config, tokenizer, path)`: a dataset whose
split 'file' is that file, read in the corpus's format (used by `python -m lm_anatomy.evaluate`).
"""
from lm_anatomy.data import corpora, text, tokenizers  # noqa: F401  (registers corpora)
from lm_anatomy.data import names  # noqa: F401  (registers names)
from lm_anatomy.data import vectors  # noqa: F401  (registers xor, xor_phi, xor_noisy, sst2_bow, digits)
from lm_anatomy.data import sentences  # noqa: F401  (registers sst2_text, sst2_mlm)
from lm_anatomy.errors import ConfigError
from lm_anatomy.registry import CORPORA


def build(config, process_index: int = 0, process_count: int = 1):
  """The dataset of `config.data.corpus`, for this process."""
  corpus = CORPORA.get(config.data.corpus, 'data.corpus')
  if config.data.holdout and not corpus.holdout:
    raise ConfigError(f'data.holdout is not supported by the {corpus.name} corpus (it has its own splits); '
                      'set it to 0')
  return corpus.build(corpus, config, process_index, process_count)
