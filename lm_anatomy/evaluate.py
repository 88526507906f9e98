"""Evaluates a trained run on any file in the format of its data, and prints one JSON object of metrics.

  python -m lm_anatomy.evaluate --workdir=runs/sst2_minilm --file=$LM_ANATOMY_DATA/sst2/stsa.binary.dev --best
  python -m lm_anatomy.evaluate --workdir=runs/baby --file=some_text.txt

What a file holds follows the run's corpus: a corpus whose build function offers `from_file` reads it
in its own format (names: one name per line, as names.txt → loss, accuracy, count of characters and
end tokens; sst2_text: `label sentence` lines → accuracy, loss, count of sentences; sst2_mlm:
the same lines → masked-token accuracy, loss, …); a language model on a text corpus reads plain text
(→ loss, perplexity, bpc, accuracy, count of tokens scored). The run's own tokenizer is used, and the
file's sequences are scored as the run's validation split is.
"""
from __future__ import annotations

import json
import pathlib


def file_dataset(run, path: pathlib.Path):
  """A dataset whose split 'file' is `path`, tokenized as the run's data was."""
  from lm_anatomy import config as config_lib
  from lm_anatomy.data import corpora, text
  from lm_anatomy.errors import ConfigError
  from lm_anatomy.registry import CORPORA
  corpus = CORPORA.get(run.config.data.corpus, 'data.corpus')
  from_file = getattr(corpus.build, 'from_file', None)
  if from_file is not None:
    return from_file(run.config, run.tokenizer, path)
  if run.config.task.name == 'causal_lm':
    content = corpora.read_text(path)
    ids = run.tokenizer.encode(content)
    return text.StreamLM({'file': ids}, run.tokenizer, config_lib.seq_len(run.config), run.config.seed,
                         chars_per_token={'file': len(content) / max(len(ids), 1)})
  raise ConfigError(f'data.corpus={run.config.data.corpus!r} (task {run.config.task.name!r}) offers no reader '
                    'for other files')


def evaluate_file(workdir, path, best: bool = False, batch_size: int = 0) -> dict:
  """Metrics of the run in `workdir` on the file `path` (with `count`: examples or tokens scored)."""
  import jax

  import lm_anatomy
  from lm_anatomy import config as config_lib
  from lm_anatomy import engine, parallel, tasks
  from lm_anatomy.errors import DataError
  path = pathlib.Path(path)
  if not path.is_file():
    raise DataError(f'no file at {path}')
  run = lm_anatomy.restore(workdir, best=best)
  dataset = file_dataset(run, path)
  task = tasks.build(run.config, run.model, dataset)
  strategy = parallel.build(config_lib.base().parallel)  # one device
  batch_size = batch_size or run.config.eval_batch_size or run.config.batch_size
  sums = engine.evaluate(jax.jit(engine.make_eval_step(task)), run.params, dataset, 'file', batch_size, strategy)
  metrics = task.finalize(sums, split='file')
  metrics['count'] = int(round(sums['weight']))
  return dict(metrics, step=run.step, file=str(path))


def main(argv):
  del argv
  from absl import flags
  f = flags.FLAGS
  print(json.dumps(evaluate_file(f.workdir, f.file, f.best, f.batch_size)))


if __name__ == '__main__':  # flags only here, so that importing this module defines none
  from absl import flags

  from lm_anatomy import cli
  flags.DEFINE_string('workdir', None, 'Run folder to evaluate.')
  flags.DEFINE_string('file', None, "File to evaluate on, in the format of the run's data.")
  flags.DEFINE_boolean('best', False, 'Use the best checkpoint by val loss instead of the latest.')
  flags.DEFINE_integer('batch_size', 0, "Evaluation batch size; 0 = the run's eval batch size.")
  flags.mark_flags_as_required(['workdir', 'file'])
  cli.run(main)
