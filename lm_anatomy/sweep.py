"""The sweep runner: many runs of one engine, each point in its own workdir, then one table and plots.

  python -m lm_anatomy.sweep --sweep=experiments/sweeps/names_family.py [--workdir=runs/sweeps/names_family]
      [--dry_run] [--aggregate_only] [--only=NAME ...] [--in_process]

A sweep file is a Python file with `get_sweep()` returning a dict:

  def get_sweep():
    return dict(
        config='experiments/configs/names.py:gpt',   # base config, path[:variant] (relative to the working dir)
        overrides={'steps': 2000},                    # optional: dotted config keys set in every point
        points=[                                      # optional: a list of points ...
            {'name': 'small', 'model.n_embd': 32},
            {'name': 'big', 'model.n_embd': 128, 'tags': {'note': 'wide'}},
        ],
        axes={'optimizer.lr': [1e-3, 3e-4],          # ... and/or axes whose product is taken
              'seed': [0, 1]},
        columns=['name', 'params', 'test_loss'],      # optional: columns of the markdown table (CSV has all)
        metric='test_loss',                           # optional: the metric of the summary plot
    )

Points are the product of `points` (default: one empty point) and of the axes (every combination of
one value per axis). In a point, these keys are special:
  name     the point's folder name (default: its non-default settings, e.g. `optimizer.lr=0.001,seed=1`)
  config   another config file[:variant] for this point
  tags     a dict of extra table columns (e.g. a reference figure); never passed to the run
Every other key is a dotted config key, passed as `--config.KEY=VALUE` (ints, floats, bools, strings).

Each point runs as
  python -m lm_anatomy.main --config=CONFIG --workdir=WORKDIR/NAME --noprogress --config.KEY=VALUE ...
sequentially (each in a fresh process; `--in_process` calls the engine in this process instead).
Every point's config is built and validated before anything runs. A point whose metrics.jsonl already
ends at its config's `steps` is finished and skipped; an unfinished one resumes from its checkpoint. A
point whose folder holds a run under other settings (its config.json differs from the point's config,
e.g. after the config file changed) stops the sweep before anything runs, with the changed keys named.
`--dry_run` prints the command lines (for a scheduler to run in parallel) and runs nothing;
`--aggregate_only` runs nothing and rebuilds the table and plots from the workdirs.

Aggregation (lm_anatomy/report.py) writes into WORKDIR:
  results.md, results.csv   one row per point: its settings, status, model (name, params, FLOPs per token,
                            context limit), every field of the final metrics.jsonl record, and the
                            best evaluation (best_step, best_<split>_loss: the run's best checkpoint)
  loss_curves.png           every `*_loss` metric against step, one line per point
  final_METRIC.png          the final `metric` per point (against parameter count when that varies)
"""
from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import json
import pathlib
import shlex
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable

from flax.traverse_util import flatten_dict

from lm_anatomy import config as config_lib
from lm_anatomy.errors import ConfigError, Interrupted

SPEC_KEYS = ('config', 'overrides', 'points', 'axes', 'columns', 'metric')
POINT_KEYS = ('name', 'config', 'tags')  # special keys of a point; every other key is a config key


@dataclasses.dataclass
class Point:
  """One run: a config file[:variant], dotted-key overrides, a folder name and extra table columns."""
  name: str
  config: str
  overrides: dict[str, Any]
  tags: dict[str, Any] = dataclasses.field(default_factory=dict)

  def command(self, workdir: str | pathlib.Path, python: str = 'python') -> list[str]:
    """The command line that trains this point into `workdir`/name."""
    cmd = [python, '-m', 'lm_anatomy.main', f'--config={self.config}',
           f'--workdir={pathlib.Path(workdir) / self.name}', '--noprogress']
    return cmd + [f'--config.{k}={_flag_value(k, v)}' for k, v in self.overrides.items()]

  def build_config(self):
    """The point's config: the config file's get_config(variant) with the overrides applied, validated."""
    config = load_config(self.config)
    try:
      config.update_from_flattened_dict(dict(self.overrides))
    except (TypeError, KeyError, AttributeError) as e:
      raise ConfigError(f'sweep point {self.name!r}: {e}') from None
    try:
      return config_lib.validate(config)
    except ConfigError as e:
      raise ConfigError(f'sweep point {self.name!r}: {e}') from None


@dataclasses.dataclass
class Sweep:
  path: pathlib.Path
  points: list[Point]
  axes: list[str]                   # the keys that vary between points (table columns after the name)
  columns: list[str] | None = None
  metric: str | None = None


def _flag_value(key: str, value: Any) -> str:
  if isinstance(value, bool) or isinstance(value, (int, float, str)):
    return str(value) if not isinstance(value, float) else repr(value)
  raise ConfigError(f'sweep override {key}={value!r}: only int, float, bool and str values can be passed on '
                    'a command line')


CONFIG_DIR = pathlib.Path(__file__).resolve().parents[1] / 'experiments' / 'configs'


def experiment_config(name: str, arg: str = ''):
  """experiments/configs/NAME[.py], variant ARG: what `--config=experiments/configs/NAME.py:ARG` loads."""
  path = CONFIG_DIR / (name if name.endswith('.py') else f'{name}.py')
  return load_config(f'{path}:{arg}' if arg else str(path))


def load_config(spec: str):
  """`path.py[:variant]` → the file's get_config(variant) (get_config() without a variant), as config_flags does."""
  path, _, variant = spec.partition(':')
  module = _load_module(path, 'config')
  try:
    return module.get_config(variant) if variant else module.get_config()
  except (ValueError, KeyError) as e:  # e.g. an unknown variant
    raise ConfigError(f'config {spec!r}: {e}') from None


def _load_module(path: str | pathlib.Path, what: str):
  path = pathlib.Path(path)
  if not path.is_file():
    raise ConfigError(f'{what} file {str(path)!r} not found (paths are relative to {pathlib.Path.cwd()})')
  spec = importlib.util.spec_from_file_location(f'_lm_anatomy_{what}_{path.stem}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _slug(value: Any) -> str:
  return ''.join(c if c.isalnum() or c in '.-_=+' else '_' for c in str(value))


def config_label(config: str) -> str:
  """`experiments/configs/names.py:gru` → 'gru'; without a variant, the file's stem."""
  path, _, variant = config.partition(':')
  return variant or pathlib.Path(path).stem


def expand(spec: dict, path: str | pathlib.Path = '<sweep>') -> Sweep:
  """The points of a sweep dict (see the module docstring), with unique names."""
  unknown = sorted(set(spec) - set(SPEC_KEYS))
  if unknown:
    raise ConfigError(f'unknown sweep keys {unknown} in {path}; allowed: {list(SPEC_KEYS)}')
  overrides = dict(spec.get('overrides', {}))
  points = list(spec.get('points') or [{}])
  axes = dict(spec.get('axes', {}))
  for key, values in axes.items():
    if key in POINT_KEYS or not isinstance(values, (list, tuple)) or not values:
      raise ConfigError(f'sweep axis {key!r} must be a config key with a non-empty list of values')
  out = []
  for point, combo in itertools.product(points, itertools.product(*axes.values())):
    settings = {**{k: v for k, v in point.items() if k not in ('name', 'tags')}, **dict(zip(axes, combo))}
    config = settings.pop('config', spec.get('config'))
    if not config:
      raise ConfigError(f'sweep {path}: no config file (set "config" in the sweep or in each point)')
    if 'name' in point:
      parts = [str(point['name'])]
    else:
      parts = [f'{k}={_slug(config_label(v) if k == "config" else v)}' for k, v in point.items() if k != 'tags']
    parts += [f'{k}={_slug(v)}' for k, v in zip(axes, combo)]
    out.append(Point(name=','.join(parts) or 'base', config=config, overrides={**overrides, **settings},
                     tags=dict(point.get('tags', {}))))
  names = [p.name for p in out]
  dupes = sorted({n for n in names if names.count(n) > 1})
  if dupes:
    raise ConfigError(f'sweep {path}: points share the names {dupes}; give them distinct "name"s')
  varying = [k for k in dict.fromkeys(k for p in points for k in p) if k not in ('name', 'tags')] + list(axes)
  return Sweep(path=pathlib.Path(path), points=out, axes=varying, columns=spec.get('columns'),
               metric=spec.get('metric'))


def load(path: str | pathlib.Path) -> Sweep:
  """The sweep defined by the `get_sweep()` of a sweep file."""
  module = _load_module(path, 'sweep')
  if not hasattr(module, 'get_sweep'):
    raise ConfigError(f'sweep file {path} has no get_sweep() function')
  return expand(module.get_sweep(), path)


def records(run_dir: pathlib.Path) -> list[dict]:
  """The metrics.jsonl records of a run ([] if none), without a last line cut off by a crash."""
  path = pathlib.Path(run_dir) / 'metrics.jsonl'
  if not path.exists():
    return []
  out = []
  for line in path.read_text().splitlines():
    try:
      out.append(json.loads(line))
    except json.JSONDecodeError:
      pass
  return out


def status(run_dir: pathlib.Path) -> str:
  """'finished' (the last record is at the config's `steps`), 'partial' (started) or 'missing'."""
  run_dir = pathlib.Path(run_dir)
  if not (run_dir / 'config.json').exists():
    return 'missing'
  steps = json.loads((run_dir / 'config.json').read_text()).get('steps')
  recs = records(run_dir)
  return 'finished' if recs and recs[-1].get('step') == steps else 'partial'


def changed_settings(run_dir: pathlib.Path, config) -> list[str]:
  """'key: old → new' for every setting where the run in `run_dir` (its config.json) differs from `config`.
  Keys that the run's config.json lacks (settings added since) are not compared."""
  path = pathlib.Path(run_dir) / 'config.json'
  if not path.exists():
    return []
  old = flatten_dict(json.loads(path.read_text()), sep='.')
  new = flatten_dict(json.loads(json.dumps(config_lib.to_dict(config))), sep='.')  # as the engine writes it
  return [f'{k}: {old[k]!r} → {new[k]!r}' for k in sorted(old.keys() & new.keys()) if old[k] != new[k]]


def _run_child(cmd: list[str]) -> int:
  """Runs `cmd` and returns its exit status. Ctrl-C reaches the child from the terminal, which saves a
  checkpoint and exits; meanwhile this process waits for it instead of killing it."""
  if threading.current_thread() is not threading.main_thread():
    return subprocess.run(cmd).returncode
  old = signal.signal(signal.SIGINT, lambda *_: None)
  try:
    return subprocess.run(cmd).returncode
  finally:
    signal.signal(signal.SIGINT, old)


def run(sweep: Sweep, workdir: str | pathlib.Path, *, dry_run: bool = False, in_process: bool = False,
        only: list[str] | None = None, echo: Callable[[str], None] = print) -> dict[str, str]:
  """Runs the unfinished points in order; returns {name: 'skipped' | 'ran' | 'failed: …' | 'printed'}."""
  workdir = pathlib.Path(workdir)
  points = sweep.points
  if only:
    missing = sorted(set(only) - {p.name for p in points})
    if missing:
      raise ConfigError(f'--only names {missing} are not points of {sweep.path}; points: {[p.name for p in points]}')
    points = [p for p in points if p.name in only]
  configs = {p.name: p.build_config() for p in points}  # every point validated before any runs
  if not dry_run:  # a run done under other settings would be skipped or resumed as if it were this point's
    stale = {p.name: changed_settings(workdir / p.name, configs[p.name]) for p in points}
    stale = {name: changes for name, changes in stale.items() if changes}
    if stale:
      raise ConfigError('these points were run with other settings than the sweep now gives them; remove '
                        'their folders (or use another --workdir) to rerun them: ' +
                        '; '.join(f'{workdir / name} ({", ".join(c)})' for name, c in stale.items()))
  outcome = {}
  for i, point in enumerate(points):
    cmd = point.command(workdir)
    if dry_run:
      echo(shlex.join(cmd))
      outcome[point.name] = 'printed'
      continue
    if status(workdir / point.name) == 'finished':
      echo(f'[{i + 1}/{len(points)}] {point.name}: finished, skipped')
      outcome[point.name] = 'skipped'
      continue
    echo(f'[{i + 1}/{len(points)}] {point.name}: {shlex.join(cmd)}')
    start = time.perf_counter()
    try:  # a point stopped by a signal (Interrupted) stops the sweep; its wall time counts either way
      if in_process:
        from lm_anatomy import engine
        try:
          engine.train(configs[point.name], workdir / point.name, progress=False)
          outcome[point.name] = 'ran'
        except Interrupted:
          raise
        except Exception as e:  # a failed point does not stop the sweep
          outcome[point.name] = f'failed: {type(e).__name__}: {e}'
      else:
        rc = _run_child([sys.executable] + cmd[1:])
        outcome[point.name] = 'ran' if rc == 0 else f'failed: exit status {rc}'
        # 128 + n: the engine saved a checkpoint and exited; -n: killed by signal n before its handler was
        # set (at start-up) or by a second Ctrl-C. Either way the user stopped it: stop the sweep too.
        signum = -rc if rc < 0 else rc - 128
        if signum in (signal.SIGINT, signal.SIGTERM):
          saved = ', with a checkpoint' if rc > 0 else ''
          raise Interrupted(f'{point.name} stopped by signal {signum}{saved}; run the sweep again to resume it',
                            signum)
    finally:
      _add_wall_time(workdir / point.name, time.perf_counter() - start, cmd)
    if outcome[point.name].startswith('failed'):
      echo(f'[{i + 1}/{len(points)}] {point.name}: {outcome[point.name]}')
  return outcome


def _add_wall_time(run_dir: pathlib.Path, seconds: float, cmd: list[str]) -> None:
  """Adds this session's wall time to run_dir/sweep_run.json (sessions of a resumed point add up)."""
  if not run_dir.exists():
    return
  path = run_dir / 'sweep_run.json'
  info = json.loads(path.read_text()) if path.exists() else {}
  info.update(command=shlex.join(cmd), wall_sec=info.get('wall_sec', 0.0) + seconds,
              sessions=info.get('sessions', 0) + 1)
  path.write_text(json.dumps(info, indent=2))


def main(argv):
  del argv
  from absl import flags
  f = flags.FLAGS
  sweep = load(f.sweep)
  workdir = pathlib.Path(f.workdir or pathlib.Path('runs') / 'sweeps' / sweep.path.stem)
  names = {p.name for p in sweep.points}  # a point's name may itself hold commas
  only = [n for v in f.only or [] for n in ([v] if v in names else v.split(',')) if n]
  outcome = {}
  if not f.aggregate_only:
    outcome = run(sweep, workdir, dry_run=f.dry_run, in_process=f.in_process, only=only)
  if f.dry_run:
    return
  from lm_anatomy import report
  paths = report.write(sweep, workdir)
  print('\n'.join(['wrote ' + str(p) for p in paths]))
  print((workdir / 'results.md').read_text())
  failed = {k: v for k, v in outcome.items() if v.startswith('failed')}
  if failed:
    print('failed points: ' + '; '.join(f'{k} ({v})' for k, v in failed.items()), file=sys.stderr)
    sys.exit(1)


def _define_flags():
  from absl import flags
  flags.DEFINE_string('sweep', None, 'Sweep file (a Python file with get_sweep()).')
  flags.DEFINE_string('workdir', None, 'Folder of the points\' workdirs and the results; default runs/sweeps/<sweep name>.')
  flags.DEFINE_boolean('dry_run', False, 'Print each point\'s command line; run nothing.')
  flags.DEFINE_boolean('aggregate_only', False, 'Run nothing; rebuild the table and plots from the workdirs.')
  flags.DEFINE_multi_string('only', [], 'A point name to run (repeatable, or comma-separated; default: all).')
  flags.DEFINE_boolean('in_process', False, 'Train the points in this process instead of one process each.')
  flags.mark_flags_as_required(['sweep'])


if __name__ == '__main__':
  from lm_anatomy import cli
  _define_flags()
  cli.run(main)
