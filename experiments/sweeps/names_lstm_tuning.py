"""Choosing the LSTM's schedule and Adam β₂ on names without the test set.

makemore has no LSTM, so experiments/configs/names.py:lstm has no reference setup to copy. This sweep
holds 1,000 training names out as a val split (`data.holdout`, the same names for every seed), trains
on the rest, and compares learning-rate schedules (peak lr 5e-4 and weight decay 0.01 fixed, as the
names acceptance asks) and β₂ at two seeds that are not the config's own (3407). The setting with the
lowest mean val loss goes into names.py:lstm; test loss is recorded but not used for the choice.

  python -m lm_anatomy.sweep --sweep=experiments/sweeps/names_lstm_tuning.py --workdir=runs/sweeps/names_lstm_tuning
  python experiments/sweeps/names_lstm_tuning.py runs/sweeps/names_lstm_tuning   # mean val loss per setting
"""
import csv
import pathlib
import sys

SCHEDULES = {   # name → optimizer overrides
    'constant': {'optimizer.schedule': 'constant'},                       # makemore's
    'wsd05': {'optimizer.schedule': 'wsd', 'optimizer.decay_fraction': 0.05},
    'wsd10': {'optimizer.schedule': 'wsd', 'optimizer.decay_fraction': 0.1},
    'wsd20': {'optimizer.schedule': 'wsd', 'optimizer.decay_fraction': 0.2},
    'wsd30': {'optimizer.schedule': 'wsd', 'optimizer.decay_fraction': 0.3},
    'cosine': {'optimizer.schedule': 'cosine'},
}
BETA2 = [0.99, 0.999]   # makemore's, PyTorch's default
SEEDS = [1, 2]


def get_sweep():
  return dict(
      config='experiments/configs/names.py:lstm',
      overrides={'data.holdout': 1000, 'optimizer.min_lr': 0.0},
      points=[{'name': name, **overrides} for name, overrides in SCHEDULES.items()],
      axes={'optimizer.b2': BETA2, 'seed': SEEDS},
      columns=['name', 'optimizer.b2', 'seed', 'val_loss', 'test_loss', 'elapsed_sec'],
      metric='val_loss',
  )


def summarise(workdir: str) -> list[tuple[float, str, float]]:
  """(mean val loss, schedule, β₂) per setting, best first, from the sweep's results.csv."""
  by_setting: dict[tuple[str, float], list[float]] = {}
  with open(pathlib.Path(workdir) / 'results.csv') as f:
    for row in csv.DictReader(f):
      if row.get('val_loss'):
        schedule = row['name'].split(',')[0]
        by_setting.setdefault((schedule, float(row['optimizer.b2'])), []).append(float(row['val_loss']))
  return sorted((sum(v) / len(v), s, b2) for (s, b2), v in by_setting.items() if len(v) == len(SEEDS))


if __name__ == '__main__':
  for mean, schedule, b2 in summarise(sys.argv[1] if len(sys.argv) > 1 else 'runs/sweeps/names_lstm_tuning'):
    print(f'{schedule:10s} b2={b2:<6} mean val loss over seeds {SEEDS}: {mean:.4f}')
