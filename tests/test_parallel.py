"""Parallel modes on 8 simulated CPU devices, in a subprocess (the device count is fixed at JAX start-up)."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.fixture(scope='module')
def parallel_results(tmp_path_factory):
  out = tmp_path_factory.mktemp('parallel') / 'result.json'
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=8', JAX_PLATFORMS='cpu')
  proc = subprocess.run([sys.executable, str(ROOT / 'tests' / 'parallel_check.py'), str(out)], env=env,
                        capture_output=True, text=True, timeout=900, cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(out.read_text())


@pytest.mark.parametrize('mode', ['pmap', 'data', 'fsdp', 'data_accum2', 'pmap_accum2'])
def test_mode_matches_single_device(parallel_results, mode):
  """50 steps of the same global batch: the loss curves and parameters of one device (and of 8 with two
  micro-batches per step, `*_accum2`) agree."""
  r = parallel_results[mode]
  assert r['records'] == 5
  assert r['train_loss'] < 1e-5 and r['val_loss'] < 1e-5, r
  assert r['params'] < 1e-5 and r['params_abs'] < 1e-6, r


@pytest.mark.parametrize('move', ['fsdp_to_single', 'single_to_fsdp', 'pmap_to_pmap', 'init_from_pmap'])
def test_checkpoints_move_between_layouts(parallel_results, move):
  r = parallel_results[move]
  assert r['params'] < 1e-5 and r['params_abs'] < 1e-6, r


def test_fsdp_checkpoint_restores_on_one_device(parallel_results):
  assert parallel_results['fsdp_restored_on'] == [1]  # every parameter array


def test_fsdp_shards_the_largest_divisible_axis_of_large_arrays(parallel_results):
  assert parallel_results['fsdp_specs'] == {
      '(64, 16)': "('data', None)", '(16, 64)': "(None, 'data')", '(3, 1024)': "(None, 'data')",
      '(8, 100)': '()',        # 800 elements: replicated
      '(12, 100)': '()',       # no axis that 8 divides
      '(2048,)': "('data',)"}


def test_data_mode_replicates_every_array(parallel_results):
  """Only fsdp shards the state; 'data' keeps one whole copy on each device, whatever the size."""
  assert set(parallel_results['data_specs']) == set(parallel_results['fsdp_specs'])
  assert set(parallel_results['data_specs'].values()) == {'()'}


def test_fsdp_state_is_sharded_at_init_and_stays_sharded_through_a_step(parallel_results):
  """init_state places, and compile_train returns, the state in fsdp's shardings; the step sees the whole batch."""
  specs = {'w': "('data', None)", 'b': '()'}
  assert parallel_results['fsdp_init_specs'] == specs and parallel_results['fsdp_step_specs'] == specs
  assert parallel_results['fsdp_step_values'] == {'w': [1.0 + 16], 'b': [0.0 + 16]}  # + the sum of 2×8 ones


def test_mesh_modes_take_any_grad_accum_and_name_the_eval_batch(parallel_results):
  """Micro-batches are cut from the global batch (8 rows, 8 devices, 2 micro-batches is fine); an eval batch
  that the devices cannot split is reported under its own key."""
  assert parallel_results['data_accum_error'] is None
  assert parallel_results['bad_eval_batch_error'] == ("eval_batch_size (12) must be divisible by the device count (8) "
                                                      "in parallel.mode='data'")


def test_pmap_gives_each_device_a_contiguous_slice_and_its_own_key(parallel_results):
  """Device d holds rows [2d, 2d + 2) of each step's 16 rows, and draws with fold_in(step key, d)."""
  assert parallel_results['pmap_rows'] == [[[16 * s + 2 * d, 16 * s + 2 * d + 1] for s in range(2)] for d in range(8)]
  keys = parallel_results['pmap_device_keys']
  assert keys == parallel_results['pmap_expected_keys'] and len({tuple(k) for k in keys}) == 8


def test_batch_not_divisible_by_the_device_count_is_a_config_error(parallel_results):
  assert parallel_results['bad_batch_error'] == ("batch_size (12) must be divisible by the device count (8) "
                                                 "in parallel.mode='data'")
  assert not parallel_results['bad_batch_workdir_made']


def test_pmap_needs_grad_accum_to_divide_each_devices_rows(parallel_results):
  assert parallel_results['bad_accum_error'] == (
      "batch_size (16) gives 2 rows per device, which grad_accum_steps (4) must divide in parallel.mode='pmap'")


@pytest.mark.parametrize('mode', ['single', 'pmap', 'data', 'fsdp'])
def test_every_mode_reports_its_compile_time(parallel_results, mode):
  # pmap once compiled inside its first call, so its records said 0 and its first window's speed held the compile
  assert parallel_results['compile_sec'][mode] > 0.1, parallel_results['compile_sec']


def test_pmap_calls_compile_nothing_inside_the_timed_steps(parallel_results):
  assert parallel_results['pmap_call_compiles'] == []
