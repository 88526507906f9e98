"""The sweep runner: expansion, command lines, skipping finished points, aggregation."""
import csv
import pathlib
import json
import subprocess
import sys

import pytest

from lm_anatomy import engine, report, sweep
from lm_anatomy.errors import ConfigError
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
                   'params | flops_per_token | context_limit | wall_sec | ' + ' | '.join(finals['ffnn,optimizer.lr=0.1']) + ' |')
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
