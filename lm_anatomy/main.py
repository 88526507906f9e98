"""Trains a run from a config file; running it again on the same workdir resumes.

  python -m lm_anatomy.main --config=experiments/configs/shakespeare_char.py:baby \\
      --workdir=runs/baby [--config.steps=1000] [--stop_after=500]
"""
from __future__ import annotations

from absl import flags
from ml_collections import config_flags

from lm_anatomy import cli

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Experiment config file, path.py[:variant].',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Run folder: config, checkpoints, metrics.')
_STOP_AFTER = flags.DEFINE_integer('stop_after', None,
                                   'End at this step with a checkpoint; the config (steps, schedule) is unchanged.')
_PROGRESS = flags.DEFINE_boolean('progress', True, 'Show a progress bar.')
_TUNE_MALLOC = flags.DEFINE_boolean('tune_malloc', True, 'Let glibc reuse large buffers (faster CPU steps).')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  del argv
  if _TUNE_MALLOC.value:
    from lm_anatomy import _cpu
    _cpu.tune_malloc()
  import pathlib
  from lm_anatomy import engine
  from lm_anatomy.errors import ConfigError
  path = config_flags.get_config_filename(flags.FLAGS['config'])  # path.py[:variant]
  if not pathlib.Path(path).is_file() and not pathlib.Path(path.split(':', 1)[0]).is_file():
    raise ConfigError(f"--config: there is no file {path.split(':', 1)[0]!r}")
  record = engine.train(_CONFIG.value, _WORKDIR.value, stop_after=_STOP_AFTER.value, progress=_PROGRESS.value)
  if record:
    best_step, best_loss = record.pop('best_step', None), record.pop('best_val_loss', None)
    print('final: ' + ', '.join(f'{k}={v:.4f}' if isinstance(v, float) else f'{k}={v}' for k, v in record.items()))
    if best_step is not None:
      print(f'best: step={best_step}, val_loss={best_loss:.4f} (its checkpoint: {_WORKDIR.value}/best)')


if __name__ == '__main__':
  cli.run(main)
