"""The sweep runner: expansion, command lines, skipping finished points, aggregation."""
import csv
import pathlib
import json
import shutil
import subprocess
import sys

import pytest

from lm_anatomy import engine, report, sweep
from lm_anatomy.errors import ConfigError, Interrupted
from conftest import ROOT
from test_names import names_data  # noqa: F401  (a fixture: a tiny names corpus)

TINY = f'{ROOT}/experiments/configs/shakespeare_char.py:tiny'
NAMES_OVERRIDES = {'steps': 10, 'eval_every': 5, 'checkpoint_every': 10, 'steps_per_dispatch': 5, 'batch_size': 4,
                   'eval_batch_size': 4}
TINY_OVERRIDES = {'steps': 10, 'eval_every': 5, 'checkpoint_every': 10, 'steps_per_dispatch': 5, 'batch_size': 4,
                  'eval_batches': 2, 'model.n_layer': 1, 'model.n_embd': 16, 'model.block_size': 16}


def test_points_are_the_product_of_points_and_axes():
  sw = sweep.expand({'config': 'base.py', 'overrides': {'steps': 7},
                     'points': [{'name': 'a', 'model.n_embd': 8}, {'config': 'other.py:big', 'tags': {'ref': 1.5}}],
                     'axes': {'optimizer.lr': [0.1, 0.01], 'seed': [0]}})
  assert [p.name for p in sw.points] == ['a,optimizer.lr=0.1,seed=0', 'a,optimizer.lr=0.01,seed=0',
                                         'config=big,optimizer.lr=0.1,seed=0', 'config=big,optimizer.lr=0.01,seed=0']
  assert sw.points[0].config == 'base.py' and sw.points[2].config == 'other.py:big'
  assert sw.points[1].overrides == {'steps': 7, 'model.n_embd': 8, 'optimizer.lr': 0.01, 'seed': 0}
  assert sw.points[3].tags == {'ref': 1.5} and sw.points[0].tags == {}
  assert sw.axes == ['model.n_embd', 'config', 'optimizer.lr', 'seed']
  assert sweep.Point('p', 'c.py:x', {'optimizer.lr': 0.001, 'model.bias': False, 'data.corpus': 'names'}).command('w') == [
      'python', '-m', 'lm_anatomy.main', '--config=c.py:x', '--workdir=w/p', '--noprogress',
      '--config.optimizer.lr=0.001', '--config.model.bias=False', '--config.data.corpus=names']


@pytest.mark.parametrize('spec, message', [
    ({'config': 'c.py', 'axis': {}}, "unknown sweep keys \\['axis'\\]"),
    ({'config': 'c.py', 'axes': {'seed': []}}, "axis 'seed' must be a config key with a non-empty list"),
    ({'config': 'c.py', 'points': [{'name': 'x'}, {'name': 'x'}]}, "share the names \\['x'\\]"),
    ({'points': [{'seed': 1}]}, 'no config file'),
])
def test_bad_sweeps_are_config_errors(spec, message):
  with pytest.raises(ConfigError, match=message):
    sweep.expand(spec)


def test_every_point_is_validated_before_any_runs(tiny_data, tmp_path):
  sw = sweep.expand({'config': TINY, 'overrides': TINY_OVERRIDES,
                     'points': [{'name': 'ok'}, {'name': 'bad', 'model.n_head': 3}]})
  with pytest.raises(ConfigError, match="sweep point 'bad': model.n_embd \\(16\\) must be divisible by model.n_head"):
    sweep.run(sw, tmp_path / 'sw', in_process=True, echo=lambda s: None)
  assert not (tmp_path / 'sw').exists()


@pytest.mark.parametrize('in_process', [True, False])
def test_a_signal_stops_the_whole_sweep(tiny_data, tmp_path, monkeypatch, in_process):
  """A point stopped by SIGTERM / Ctrl-C (its checkpoint saved) stops the sweep: it is neither 'ran' nor a
  failure to step past."""
  from lm_anatomy.errors import Interrupted
  sw = sweep.expand({'config': TINY, 'overrides': TINY_OVERRIDES, 'points': [{'name': 'a'}, {'name': 'b'}]})
  started = []
  def stopped(config, workdir, **kw):
    started.append(pathlib.Path(workdir).name)
    raise Interrupted('stopped by signal 15 at step 5, with a checkpoint; run the same command to resume', 15)
  monkeypatch.setattr(engine, 'train', stopped)
  monkeypatch.setattr(sweep, '_run_child', lambda cmd: started.append(cmd[-1]) or 128 + 15)
  with pytest.raises(Interrupted, match='signal 15'):
    sweep.run(sw, tmp_path / 'sw', in_process=in_process, echo=lambda s: None)
  assert len(started) == 1


def test_tiny_sweep_runs_skips_finished_points_and_aggregates(names_data, tmp_path):
  names = f'{ROOT}/experiments/configs/names.py'
  sw = sweep.expand({'config': f'{names}:bigram', 'overrides': NAMES_OVERRIDES, 'axes': {'optimizer.lr': [0.1]},
                     'points': [{'name': 'bigram', 'tags': {'reference': 3.0}},
                                {'name': 'ffnn', 'config': f'{names}:ffnn', 'model.n_hidden': 8, 'model.window': 3}],
                     'metric': 'test_loss'})
  out = tmp_path / 'sw'
  lines = []
  assert sweep.run(sw, out, dry_run=True, echo=lines.append) == {'bigram,optimizer.lr=0.1': 'printed',
                                                                  'ffnn,optimizer.lr=0.1': 'printed'}
  assert lines[1] == (f'python -m lm_anatomy.main --config={names}:ffnn --workdir={out}/ffnn,optimizer.lr=0.1 '
                      '--noprogress ' + ' '.join(f'--config.{k}={v}' for k, v in NAMES_OVERRIDES.items())
                      + ' --config.model.n_hidden=8 --config.model.window=3 --config.optimizer.lr=0.1')
  assert not out.exists()

  # The first point stopped half-way (as a killed job would): the sweep resumes it; the second runs afresh.
  first = out / 'bigram,optimizer.lr=0.1'
  engine.train(sw.points[0].build_config(), first, stop_after=5, progress=False)
  assert sweep.status(first) == 'partial' and sweep.status(out / 'missing') == 'missing'
  assert sweep.run(sw, out, in_process=True, echo=lines.append) == {p.name: 'ran' for p in sw.points}
  assert json.loads((first / 'config.json').read_text())['optimizer']['lr'] == 0.1
  assert [r['step'] for r in sweep.records(first)] == [5, 10]
  assert sweep.status(first) == 'finished' and json.loads((first / 'sweep_run.json').read_text())['wall_sec'] > 0
  before = {p.name: (out / p.name / 'metrics.jsonl').read_text() for p in sw.points}
  assert sweep.run(sw, out, in_process=True, echo=lines.append) == {p.name: 'skipped' for p in sw.points}
  assert {p.name: (out / p.name / 'metrics.jsonl').read_text() for p in sw.points} == before
  assert lines[-1] == '[2/2] ffnn,optimizer.lr=0.1: finished, skipped'
  # Settings changed since a point ran (e.g. its config file was edited): stop before running anything.
  changed = sweep.expand({'config': f'{names}:bigram', 'overrides': dict(NAMES_OVERRIDES, **{'optimizer.b2': 0.95}),
                          'axes': {'optimizer.lr': [0.1]}, 'points': [{'name': 'bigram'}]})
  with pytest.raises(ConfigError, match=r'bigram,optimizer.lr=0.1 \(optimizer.b2: 0.99 → 0.95\)'):
    sweep.run(changed, out, in_process=True, echo=lines.append)
  assert {p.name: (out / p.name / 'metrics.jsonl').read_text() for p in sw.points} == before
  assert sweep.run(changed, out, dry_run=True, echo=lines.append) == {'bigram,optimizer.lr=0.1': 'printed'}
  # --aggregate_only (report.write) lists such a point as stale, without the figures of the other settings.
  stale_row, = report.sweep_rows(changed, out)
  assert stale_row['status'] == 'stale (optimizer.b2: 0.99 → 0.95)' and 'test_loss' not in stale_row
  stale_out = tmp_path / 'stale'  # nor curves: its only point is stale, so there is nothing to plot
  shutil.copytree(out / 'bigram,optimizer.lr=0.1', stale_out / 'bigram,optimizer.lr=0.1')
  assert sorted(p.name for p in report.write(changed, stale_out)) == ['results.csv', 'results.md']

  paths = report.write(sw, out)
  assert sorted(p.name for p in paths) == ['final_test_loss.png', 'loss_curves.png', 'results.csv', 'results.md']
  rows = list(csv.DictReader(open(out / 'results.csv')))
  finals = {p.name: sweep.records(out / p.name)[-1] for p in sw.points}
  assert [r['name'] for r in rows] == list(finals)
  for row in rows:
    assert float(row['test_loss']) == finals[row['name']]['test_loss'] and row['status'] == 'finished'
    assert float(row['tokens_per_sec']) > 0 and int(row['step']) == 10 and float(row['optimizer.lr']) == 0.1
  V = json.loads((first / 'data_info.json').read_text())['vocab_size']
  assert [(r['model'], r['params'], r['context_limit'], r['reference']) for r in rows] == \
      [('bigram', str(V * V), '1', '3.0'), ('ffnn', str((V + 1) * 64 + 3 * 64 * 8 + 8 + 8 * V + V), '3', '')]
  assert float(rows[0]['flops_per_token']) == 0 and float(rows[1]['flops_per_token']) == 6 * (3 * 64 * 8 + 8 * V)
  md = (out / 'results.md').read_text().splitlines()
  assert md[0] == ('| name | config | model.n_hidden | model.window | optimizer.lr | reference | status | model | '
                   'params | flops_per_token | context_limit | wall_sec | ' + ' | '.join(finals['ffnn,optimizer.lr=0.1'])
                   + ' | best_step | best_test_loss |')
  for row in rows:  # each run's best evaluation by test loss (names has no val split here)
    recs = sweep.records(out / row['name'])
    best = min(recs, key=lambda r: r['test_loss'])
    assert (int(row['best_step']), float(row['best_test_loss'])) == (best['step'], best['test_loss'])
  assert len(md) == 4 and md[2].startswith('| bigram,optimizer.lr=0.1 | bigram |  |  | 0.1000 | 3.0000 | finished | bigram | 484 |')
  for png in ('loss_curves.png', 'final_test_loss.png'):
    assert (out / png).read_bytes()[:4] == b'\x89PNG'


def test_table_of_missing_runs_and_formatting(tmp_path):
  rows = report.sweep_rows(sweep.expand({'config': 'c.py', 'axes': {'seed': [1, 2]}}), tmp_path)
  assert rows == [{'name': 'seed=1', 'seed': 1, 'status': 'missing'}, {'name': 'seed=2', 'seed': 2, 'status': 'missing'}]
  assert [report.fmt(v) for v in (None, 12345, 0.123456, 1.5e-6, float('inf'), -float('inf'), 2e6, 0.0, 'x', True)] == \
      ['', '12,345', '0.1235', '1.5e-06', '∞', '−∞', '2,000,000', '0', 'x', 'True']


def test_a_metrics_line_cut_by_a_crash_is_skipped(tmp_path):
  (tmp_path / 'config.json').write_text(json.dumps({'steps': 20}))
  (tmp_path / 'metrics.jsonl').write_text('{"step": 10, "val_loss": 2.5}\n{"step": 20, "val_lo')
  assert sweep.records(tmp_path) == [{'step': 10, 'val_loss': 2.5}]
  assert sweep.status(tmp_path) == 'partial'


def test_cli_dry_run_prints_the_commands(tmp_path):
  path = tmp_path / 'family.py'
  path.write_text("def get_sweep():\n  return {'points': [{'name': a, 'config': 'experiments/configs/names.py:' + a}"
                  " for a in ('bigram', 'gpt')]}\n")
  out = subprocess.run([sys.executable, '-m', 'lm_anatomy.sweep', f'--sweep={path}', '--dry_run'],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
  assert out.returncode == 0, out.stderr
  assert out.stdout.splitlines() == [
      f'python -m lm_anatomy.main --config=experiments/configs/names.py:{a} --workdir=runs/sweeps/family/{a} --noprogress'
      for a in ('bigram', 'gpt')]
  bad = subprocess.run([sys.executable, '-m', 'lm_anatomy.sweep', f'--sweep={tmp_path}/none.py', '--dry_run'],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
  assert bad.returncode == 2 and 'error: sweep file' in bad.stderr and 'Traceback' not in bad.stderr


@pytest.mark.parametrize('path', sorted((ROOT / 'experiments' / 'sweeps').glob('*.py')), ids=lambda p: p.stem)
def test_committed_sweeps_expand_and_every_point_validates(path, monkeypatch):
  monkeypatch.chdir(ROOT)
  sw = sweep.load(path)
  assert sw.points and all(p.build_config() for p in sw.points)


def test_lstm_tuning_summary_averages_each_setting_over_its_seeds(tmp_path):
  tuning = sweep._load_module(ROOT / 'experiments' / 'sweeps' / 'names_lstm_tuning.py', 'sweep')
  rows = [('wsd05,optimizer.b2=0.999,seed=1', 0.999, 2.04), ('wsd05,optimizer.b2=0.999,seed=2', 0.999, 2.02),
          ('constant,optimizer.b2=0.99,seed=1', 0.99, 2.05), ('constant,optimizer.b2=0.99,seed=2', 0.99, 2.02),
          ('cosine,optimizer.b2=0.99,seed=1', 0.99, 1.90), ('cosine,optimizer.b2=0.99,seed=2', 0.99, '')]
  with open(tmp_path / 'results.csv', 'w', newline='') as f:
    w = csv.writer(f)
    w.writerow(['name', 'optimizer.b2', 'val_loss'])
    w.writerows(rows)
  summary = tuning.summarise(tmp_path)
  assert [(s, b2) for _, s, b2 in summary] == [('wsd05', 0.999), ('constant', 0.99)]  # cosine: one seed missing
  assert summary[0][0] == pytest.approx(2.03) and summary[1][0] == pytest.approx(2.035)


NAMES = f'{ROOT}/experiments/configs/names.py'


def test_point_names_slugs_and_config_labels():
  """A point without a name is named by its settings (a config by its variant, else its file's stem), each
  value slugged to a folder-safe name; a sweep of one empty point is 'base'."""
  assert [p.name for p in sweep.expand({'config': 'c.py'}).points] == ['base']
  sw = sweep.expand({'config': 'dir/c.py', 'points': [{'config': 'dir/other.py'}, {'config': 'dir/other.py:v'}],
                     'axes': {'data.corpus': ['a/b c:d=e+f-g_h.i']}})
  assert [p.name for p in sw.points] == ['config=other,data.corpus=a_b_c_d=e+f-g_h.i',
                                         'config=v,data.corpus=a_b_c_d=e+f-g_h.i']
  assert [p.config for p in sw.points] == ['dir/other.py', 'dir/other.py:v']
  assert sweep.config_label('experiments/configs/names.py') == 'names'


def test_point_command_rejects_values_a_flag_cannot_carry():
  """Only ints, floats, bools and strings become `--config.KEY=VALUE` flags; anything else is a ConfigError."""
  assert sweep.Point('p', 'c.py', {'optimizer.lr': 1e-05}).command('w')[-1] == '--config.optimizer.lr=1e-05'
  with pytest.raises(ConfigError, match=r'sweep override model.sizes=\[1, 2\]: only int, float, bool and str'):
    sweep.Point('p', 'c.py', {'model.sizes': [1, 2]}).command('w')


def test_only_runs_the_named_points_and_rejects_unknown_names(tmp_path):
  """`only` keeps the named points (in sweep order); a name that is no point stops the sweep before it runs."""
  sw = sweep.expand({'config': f'{NAMES}:bigram', 'points': [{'name': n} for n in ('a', 'b', 'c')]})
  lines = []
  assert sweep.run(sw, tmp_path, dry_run=True, only=['c', 'a'], echo=lines.append) == {'a': 'printed', 'c': 'printed'}
  assert [l.split('--workdir=')[1].split()[0] for l in lines] == [f'{tmp_path}/a', f'{tmp_path}/c']
  with pytest.raises(ConfigError, match=r"--only names \['d'\] are not points"):
    sweep.run(sw, tmp_path, dry_run=True, only=['a', 'd'], echo=lines.append)


def test_cli_only_takes_a_name_with_commas_whole(tmp_path):
  """`--only` is split on commas, except a value that is itself a point's name."""
  path = tmp_path / 'commas.py'
  path.write_text("def get_sweep():\n  return {'config': 'experiments/configs/names.py:bigram',\n"
                  "          'points': [{'name': n} for n in ('a,b', 'a', 'b', 'c')]}\n")
  out = subprocess.run([sys.executable, '-m', 'lm_anatomy.sweep', f'--sweep={path}', '--workdir=w', '--dry_run',
                        '--only=a,b', '--only=b,c'], capture_output=True, text=True, cwd=ROOT, timeout=120)
  assert out.returncode == 0, out.stderr
  assert [l.split('--workdir=')[1].split()[0] for l in out.stdout.splitlines()] == ['w/a,b', 'w/b', 'w/c']


def test_a_failed_point_does_not_stop_the_sweep(tmp_path, monkeypatch):
  """A point that fails is reported and the sweep goes on; one that failed before making its folder leaves none."""
  sw = sweep.expand({'config': f'{NAMES}:bigram', 'points': [{'name': 'a'}, {'name': 'b'}]})
  def train(config, workdir, **kw):
    if pathlib.Path(workdir).name == 'a':
      raise ValueError('boom')
    pathlib.Path(workdir).mkdir(parents=True)
  monkeypatch.setattr(engine, 'train', train)
  lines = []
  assert sweep.run(sw, tmp_path, in_process=True, echo=lines.append) == {'a': 'failed: ValueError: boom', 'b': 'ran'}
  assert '[1/2] a: failed: ValueError: boom' in lines
  assert sorted(p.name for p in tmp_path.iterdir()) == ['b']
  assert json.loads((tmp_path / 'b' / 'sweep_run.json').read_text())['sessions'] == 1


@pytest.mark.parametrize('rc, message', [(128 + 2, 'a stopped by signal 2, with a checkpoint;'),
                                         (128 + 15, 'a stopped by signal 15, with a checkpoint;'),
                                         (-2, 'a stopped by signal 2; run'), (-15, 'a stopped by signal 15; run')])
def test_ctrl_c_in_a_child_stops_the_sweep(tmp_path, monkeypatch, rc, message):
  """A child that exits with 128 + SIGINT or SIGTERM (the engine saved a checkpoint) or that the signal killed
  outright (status -n: at start-up, before the engine's handler, or a second Ctrl-C) stops the sweep."""
  sw = sweep.expand({'config': f'{NAMES}:bigram', 'points': [{'name': 'a'}, {'name': 'b'}]})
  started = []
  monkeypatch.setattr(sweep, '_run_child', lambda cmd: started.append(cmd) or rc)
  with pytest.raises(Interrupted, match=message) as stop:
    sweep.run(sw, tmp_path, echo=lambda s: None)
  assert len(started) == 1 and stop.value.signum == abs(rc) % 128


def test_a_child_killed_by_sigint_exits_with_minus_two():
  """What the sweep's check relies on: Python reports a child that SIGINT killed as status -SIGINT."""
  child = subprocess.run([sys.executable, '-c', 'import os, signal; os.kill(os.getpid(), signal.SIGINT)'],
                         capture_output=True, timeout=60)
  assert child.returncode == -2


def test_wall_time_adds_up_over_sessions(tmp_path):
  """sweep_run.json sums the wall time of a point's sessions and counts them; the table shows that sum."""
  run = tmp_path / 'run'
  sweep._add_wall_time(run, 1.5, ['python', 'x'])
  assert not run.exists()  # a point that never started gets no folder
  run.mkdir()
  sweep._add_wall_time(run, 1.5, ['python', 'x'])
  sweep._add_wall_time(run, 2.25, ['python', 'y z'])
  assert json.loads((run / 'sweep_run.json').read_text()) == {'command': "python 'y z'", 'wall_sec': 3.75,
                                                              'sessions': 2}
  (run / 'config.json').write_text(json.dumps({'steps': 10}))
  (run / 'metrics.jsonl').write_text('{"step": 10, "val_loss": 2.5}\n')
  row = report.run_row(run)  # no data_info.json: blank model columns
  assert (row['status'], row['wall_sec'], row['step'], row['val_loss']) == ('finished', 3.75, 10, 2.5)


def test_a_started_run_without_metrics_is_partial(tmp_path):
  """A run folder with a config.json but no metrics.jsonl yet has no records and is 'partial'."""
  (tmp_path / 'config.json').write_text(json.dumps({'steps': 20}))
  assert sweep.records(tmp_path) == [] and sweep.status(tmp_path) == 'partial'


def test_changed_settings_skips_keys_the_old_run_lacks(tmp_path):
  """Only keys both configs have are compared: a setting added since the run is not a change."""
  config = sweep.Point('p', f'{NAMES}:bigram', {'steps': 10}).build_config()
  old = json.loads(json.dumps(engine.config_lib.to_dict(config)))
  old['steps'] = 5
  del old['optimizer']['b2'], old['seed']
  (tmp_path / 'config.json').write_text(json.dumps(old))
  assert sweep.changed_settings(tmp_path, config) == ['steps: 5 → 10']
  assert sweep.changed_settings(tmp_path / 'none', config) == []


def test_number_formatting_thresholds():
  """Floats from 1000 up get thousands separators and no decimals; from 0.001 up, 4 decimals; below, 3 digits."""
  assert [report.fmt(v) for v in (1000.0, 999.5, -1234.4, 0.001, 0.005, 0.000987654, -0.25)] == \
      ['1,000', '999.5000', '-1,234', '0.0010', '0.0050', '0.000988', '-0.2500']


def test_default_metric_prefers_an_evaluation_loss():
  """The final plot's default metric: the first recorded loss other than train_loss, else train_loss."""
  assert report.default_metric([{'step': 1, 'train_loss': 2.0, 'val_loss': 2.1, 'test_loss': 2.2}]) == 'val_loss'
  assert report.default_metric([{'train_loss': 2.0}]) == 'train_loss'
  assert report.default_metric([{'step': 1}]) is None


def test_report_of_fake_runs_columns_metric_and_model_stats(tmp_path):
  """results.md keeps the sweep's `columns` that some row has, in that order; results.csv has every column;
  the final plot is of the sweep's `metric`; model stats come from config.json and data_info.json."""
  sw = sweep.expand({'config': f'{NAMES}:bigram', 'overrides': {'steps': 10},
                     'points': [{'name': 'bigram'}, {'name': 'rnn', 'config': f'{NAMES}:rnn'}],
                     'columns': ['name', 'test_loss', 'nope', 'params', 'context_limit', 'wall_sec'],
                     'metric': 'train_loss'})
  info = {'vocab_size': 5, 'example': {'inputs': [[2, 4], 'int32'], 'targets': [[2, 4], 'int32']}}
  for p, loss in zip(sw.points, (2.5, 2.25)):
    run = tmp_path / p.name
    run.mkdir()
    (run / 'config.json').write_text(json.dumps(engine.config_lib.to_dict(p.build_config())))
    (run / 'data_info.json').write_text(json.dumps(info))
    (run / 'metrics.jsonl').write_text(json.dumps({'step': 5, 'train_loss': 3.0, 'test_loss': 3.0}) + '\n' +
                                       json.dumps({'step': 10, 'train_loss': loss - 0.5, 'test_loss': loss}) + '\n')
  (tmp_path / 'bigram' / 'sweep_run.json').write_text(json.dumps({'wall_sec': 1000.0, 'sessions': 3}))
  paths = report.write(sw, tmp_path)
  assert sorted(p.name for p in paths) == ['final_train_loss.png', 'loss_curves.png', 'results.csv', 'results.md']
  md = (tmp_path / 'results.md').read_text().splitlines()
  assert md[0] == '| name | test_loss | params | context_limit | wall_sec |' and len(md) == 4
  assert md[2] == '| bigram | 2.5000 | 25 | 1 | 1,000 |'  # the bigram's table: vocab_size² parameters
  assert md[3].startswith('| rnn | 2.2500 | ') and md[3].endswith(' | ∞ |  |')  # a recurrent net has no context limit
  rows = list(csv.reader(open(tmp_path / 'results.csv')))
  assert rows[0] == ['name', 'config', 'status', 'model', 'params', 'flops_per_token', 'context_limit', 'wall_sec',
                     'step', 'train_loss', 'test_loss', 'best_step', 'best_test_loss']
  assert [r[:3] + r[6:] for r in rows[1:]] == [
      ['bigram', 'bigram', 'finished', '1', '1000.0', '10', '2.0', '2.5', '10', '2.5'],
      ['rnn', 'rnn', 'finished', 'inf', '', '10', '1.75', '2.25', '10', '2.25']]


def test_best_of_a_run_is_its_lowest_first_evaluation_loss():
  """best_step / best_<split>_loss: the record with the lowest loss on the first evaluated split (the one the
  engine keeps as its best checkpoint), the earliest of equals; nothing when no evaluation loss is finite."""
  overfit = [{'step': 250, 'val_loss': 2.0, 'test_loss': 1.0, 'train_loss': 2.1},
             {'step': 500, 'val_loss': 1.5, 'test_loss': 1.2, 'train_loss': 1.4},
             {'step': 750, 'val_loss': float('nan'), 'test_loss': 0.9, 'train_loss': 1.0},
             {'step': 1000, 'val_loss': 1.5, 'test_loss': 1.1, 'train_loss': 0.8},
             {'step': 1250, 'val_loss': 1.7, 'test_loss': 1.3, 'train_loss': 0.6}]
  assert report.best_of(overfit) == {'best_step': 500, 'best_val_loss': 1.5}
  assert report.best_of([{'step': 1, 'val_loss': float('inf')}, {'step': 2, 'val_loss': float('nan')}]) == {}
  assert report.best_of([{'step': 1, 'train_loss': 2.0}]) == {}
  assert report.best_of([]) == {}


def test_default_final_plot_is_of_a_recorded_metric_not_a_tag(tmp_path):
  """Without the sweep's `metric`, the final plot shows a loss that the runs recorded, never a tag (such as a
  paper's reference figure) whose name ends in _loss."""
  sw = sweep.expand({'config': f'{NAMES}:bigram', 'overrides': {'steps': 10},
                     'points': [{'name': 'a', 'tags': {'paper_test_loss': 2.45}},
                                {'name': 'b', 'seed': 1, 'tags': {'paper_test_loss': 2.4}}]})
  for p in sw.points:
    (tmp_path / p.name).mkdir()
    (tmp_path / p.name / 'config.json').write_text(json.dumps(engine.config_lib.to_dict(p.build_config())))
    final = {'step': 10, 'train_loss': 2.3, 'test_loss': 2.5}
    (tmp_path / p.name / 'metrics.jsonl').write_text(json.dumps(final) + '\n')
  assert [x.name for x in report.write(sw, tmp_path) if x.name.startswith('final')] == ['final_test_loss.png']


def test_final_plot_is_against_params_only_when_they_vary(tmp_path, monkeypatch):
  """plot_final scatters the metric against the parameter count when that differs between runs, else draws one
  bar per run; runs without a finite value of the metric are left out."""
  import matplotlib.axes
  calls = []
  for method in ('scatter', 'barh'):
    original = getattr(matplotlib.axes.Axes, method)
    def record(self, *a, _m=method, _o=original, **kw):
      calls.append((_m, [list(x) for x in a]))
      return _o(self, *a, **kw)
    monkeypatch.setattr(matplotlib.axes.Axes, method, record)
  rows = [{'name': 'a', 'params': 100, 'm': 1.5}, {'name': 'b', 'params': 100, 'm': 2.5},
          {'name': 'c', 'params': 300, 'm': float('nan')}, {'name': 'd', 'params': 400}]
  assert report.plot_final(rows, 'm', tmp_path / 'same.png')
  rows[1]['params'] = 200
  assert report.plot_final(rows, 'm', tmp_path / 'vary.png')
  assert calls == [('barh', [['a', 'b'], [1.5, 2.5]]), ('scatter', [[100, 200], [1.5, 2.5]])]
  assert not report.plot_final(rows, 'other', tmp_path / 'none.png') and not (tmp_path / 'none.png').exists()
