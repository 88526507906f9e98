"""Peak FLOP/s for MFU: per device on accelerators, per host on CPU."""
import math
import types

import jax

from lm_anatomy import flops


def test_cpu_peak_counts_each_host_once(monkeypatch):
  monkeypatch.setattr(flops, 'measured_matmul_flops', lambda: 5e10)
  cpu = jax.devices('cpu')[0]
  assert flops.peak_flops(1, 1, cpu) == 5e10
  assert flops.peak_flops(8, 1, cpu) == 5e10  # 8 virtual devices share one host's cores
  assert flops.peak_flops(8, 2, cpu) == 1e11


def test_accelerator_peak_counts_each_device():
  h100 = types.SimpleNamespace(platform='gpu', device_kind='NVIDIA H100 80GB HBM3')
  assert flops.peak_flops(4, 1, h100) == 4 * 989e12
  v5e = types.SimpleNamespace(platform='tpu', device_kind='TPU v5 lite')
  assert flops.peak_flops(8, 2, v5e) == 8 * 197e12
  assert math.isnan(flops.peak_flops(2, 1, types.SimpleNamespace(platform='gpu', device_kind='Mystery X1')))
