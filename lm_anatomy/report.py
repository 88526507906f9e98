"""Results tables and plots from run folders: what a sweep aggregates, usable on any set of runs.

A row describes one run folder (config.json, data_info.json, metrics.jsonl):
  name, the sweep's varying settings and tags, status ('finished' / 'partial' / 'missing'),
  model, params (all of them), flops_per_token, context_limit   from the config and the model's own methods
  wall_sec                                          wall time of the run, when the sweep runner ran it
  every field of the final metrics.jsonl record     step, train_loss, <split>_loss, tokens_per_sec, …
  best_step, best_<split>_loss                      the evaluation with the lowest first eval loss, the
                                                    one the engine keeps as the best checkpoint
Nothing here names an architecture, a corpus or a metric: the columns are whatever the runs recorded.
"""
from __future__ import annotations

import csv
import json
import logging
import math
import pathlib
import types
from typing import Any

log = logging.getLogger(__name__)

MODEL_COLUMNS = ('model', 'params', 'flops_per_token', 'context_limit')


def model_stats(run_dir: str | pathlib.Path) -> dict[str, Any]:
  """The model of a run folder: its name, parameter count, training FLOPs per token and context limit.

  Parameters are shapes only (jax.eval_shape), so nothing is computed or restored.
  """
  import jax
  from lm_anatomy import config as config_lib
  from lm_anatomy import engine, models, tasks
  run_dir = pathlib.Path(run_dir)
  config = config_lib.from_saved(json.loads((run_dir / 'config.json').read_text()))
  info = json.loads((run_dir / 'data_info.json').read_text())
  model = models.build(config, info)
  task = tasks.build(config, model, types.SimpleNamespace(info=info, chars_per_token=info.get('chars_per_token', 1.0)))
  example = engine.batch_from_spec(info['example'])
  params = jax.eval_shape(task.init, jax.random.key(0), example)
  n = sum(int(math.prod(p.shape)) for p in jax.tree.leaves(params))  # every parameter, embeddings included
  seq_len = engine.row_length(info['example'].get('inputs', [[0]])[0], config)
  flops = model.flops_per_token(seq_len, params) if hasattr(model, 'flops_per_token') else None
  limit = model.context_limit() if hasattr(model, 'context_limit') else None
  return {'model': config.model.name, 'params': n, 'flops_per_token': flops,
          'context_limit': math.inf if limit is None and hasattr(model, 'context_limit') else limit}


def run_row(run_dir: str | pathlib.Path) -> dict[str, Any]:
  """status, model stats, wall time and the final metrics record of one run folder."""
  from lm_anatomy import sweep
  run_dir = pathlib.Path(run_dir)
  row: dict[str, Any] = {'status': sweep.status(run_dir)}
  if row['status'] == 'missing':
    return row
  try:
    row.update(model_stats(run_dir))
  except Exception as e:  # a table with a blank is better than no table
    log.warning('model stats of %s: %s', run_dir, e)
  run_info = run_dir / 'sweep_run.json'
  if run_info.exists():
    row['wall_sec'] = json.loads(run_info.read_text()).get('wall_sec')
  recs = sweep.records(run_dir)
  if recs:
    row.update(recs[-1])
    row.update(best_of(recs))
  return row


def best_of(records: list[dict]) -> dict[str, Any]:
  """{'best_step': s, 'best_<split>_loss': v} for the record with the lowest first evaluation loss (the
  earliest of equals, as the engine keeps its best checkpoint), or {} if no record has a finite one."""
  metric = default_metric(records)
  if metric is None or metric == 'train_loss':
    return {}
  scored = [r for r in records if isinstance(r.get(metric), (int, float)) and math.isfinite(r[metric])]
  if not scored:
    return {}
  best = min(scored, key=lambda r: r[metric])
  return {'best_step': best.get('step'), f'best_{metric}': best[metric]}


def sweep_rows(sw, workdir: str | pathlib.Path) -> list[dict[str, Any]]:
  """One row per point of a sweep: name, varying settings, tags, then `run_row`."""
  from lm_anatomy import sweep
  rows = []
  for p in sw.points:
    row = {'name': p.name}
    for key in sw.axes:
      row[key] = sweep.config_label(p.config) if key == 'config' else p.overrides.get(key)
    row.update(p.tags)
    run_dir = pathlib.Path(workdir) / p.name
    changed = sweep.changed_settings(run_dir, p.build_config()) if (run_dir / 'config.json').exists() else []
    if changed:  # run under other settings than the point now has: its figures would mislead
      row['status'] = 'stale (' + '; '.join(changed) + ')'
    else:
      row.update(run_row(run_dir))
    rows.append(row)
  return rows


def columns_of(rows: list[dict]) -> list[str]:
  """Every key of the rows in first-seen order: name, settings, tags, status, model, wall time, metrics."""
  return list(dict.fromkeys(k for r in rows for k in r))


def fmt(value: Any) -> str:
  """A table cell: integers and large floats with thousands separators, other floats to 4 decimals."""
  if value is None:
    return ''
  if isinstance(value, bool):
    return str(value)
  if isinstance(value, int):
    return f'{value:,}'
  if isinstance(value, float):
    if math.isinf(value):
      return '∞' if value > 0 else '−∞'
    if abs(value) >= 1000 or value == 0:
      return f'{value:,.0f}'
    return f'{value:.4f}' if abs(value) >= 1e-3 else f'{value:.3g}'
  return str(value)


def markdown(rows: list[dict], columns: list[str]) -> str:
  lines = ['| ' + ' | '.join(columns) + ' |', '| ' + ' | '.join('---' for _ in columns) + ' |']
  lines += ['| ' + ' | '.join(fmt(r.get(c)) for c in columns) + ' |' for r in rows]
  return '\n'.join(lines) + '\n'


def write_csv(rows: list[dict], columns: list[str], path: pathlib.Path) -> None:
  with open(path, 'w', newline='') as f:
    w = csv.writer(f)
    w.writerow(columns)
    for r in rows:
      w.writerow(['' if r.get(c) is None else r.get(c) for c in columns])


def plot_curves(runs: dict[str, pathlib.Path], path: pathlib.Path) -> bool:
  """Every `*_loss` metric of metrics.jsonl against step, one panel per metric, one line per run."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  from lm_anatomy import sweep
  curves = {name: sweep.records(d) for name, d in runs.items()}
  metrics = list(dict.fromkeys(k for recs in curves.values() for r in recs for k in r if k.endswith('_loss')))
  if not metrics:
    return False
  fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4), squeeze=False)
  for ax, metric in zip(axes[0], metrics):
    for name, recs in curves.items():
      pts = [(r['step'], r[metric]) for r in recs if isinstance(r.get(metric), (int, float)) and math.isfinite(r[metric])]
      if pts:
        ax.plot(*zip(*pts), marker='.', label=name)
    ax.set_xlabel('step')
    ax.set_ylabel(metric)
    ax.set_title(metric)
    ax.grid(alpha=0.3)
  axes[0][-1].legend(fontsize='small')
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return True


def plot_final(rows: list[dict], metric: str, path: pathlib.Path) -> bool:
  """The final `metric` of each run: against parameter count if that varies, else one bar per run."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  rows = [r for r in rows if isinstance(r.get(metric), (int, float)) and math.isfinite(r[metric])]
  if not rows:
    return False
  params = [r.get('params') for r in rows]
  fig, ax = plt.subplots(figsize=(6.5, 4.5))
  if all(isinstance(p, int) and p > 0 for p in params) and len(set(params)) > 1:
    ax.scatter(params, [r[metric] for r in rows])
    for r in rows:
      ax.annotate(r['name'], (r['params'], r[metric]), textcoords='offset points', xytext=(4, 4), fontsize='small')
    ax.set_xscale('log')
    ax.set_xlabel('parameters')
  else:
    ax.barh([r['name'] for r in rows], [r[metric] for r in rows])
    ax.invert_yaxis()
  ax.set_ylabel(metric) if ax.get_xlabel() else ax.set_xlabel(metric)
  ax.set_title(f'final {metric}')
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return True


def default_metric(rows: list[dict]) -> str | None:
  """The first evaluation loss recorded (e.g. val_loss or test_loss), else train_loss."""
  keys = list(dict.fromkeys(k for r in rows for k in r if k.endswith('_loss')))
  evals = [k for k in keys if k != 'train_loss']
  return (evals or keys or [None])[0]


def write(sw, workdir: str | pathlib.Path) -> list[pathlib.Path]:
  """results.md, results.csv, loss_curves.png and final_<metric>.png in `workdir`; returns the paths written."""
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  rows = sweep_rows(sw, workdir)
  columns = columns_of(rows)
  md_columns = [c for c in (sw.columns or columns) if c in columns]
  written = [workdir / 'results.md', workdir / 'results.csv']
  (workdir / 'results.md').write_text(markdown(rows, md_columns))
  write_csv(rows, columns, workdir / 'results.csv')
  current = [p for p, row in zip(sw.points, rows) if not row['status'].startswith('stale')]  # stale: table only
  if plot_curves({p.name: workdir / p.name for p in current}, workdir / 'loss_curves.png'):
    written.append(workdir / 'loss_curves.png')
  from lm_anatomy import sweep
  finals = [recs[-1] for p in current if (recs := sweep.records(workdir / p.name))]
  metric = sw.metric or default_metric(finals)  # a recorded metric, not a tag or setting named *_loss
  if metric and plot_final(rows, metric, workdir / f'final_{metric}.png'):
    written.append(workdir / f'final_{metric}.png')
  return written
