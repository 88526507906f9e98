"""Peak FLOP/s and model FLOPs utilisation (MFU).

MFU = (training FLOPs per token × tokens/s) / peak FLOP/s of the devices. Training FLOPs per token
come from the model (`flops_per_token`, for GPT 6N + 12·L·H·Q·T). Peak figures are the vendors' dense
bf16 numbers per chip; on CPU the peak is measured: the FLOP/s of a large float32 matmul.
"""
from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp

# Dense bf16 peak FLOP/s per device (vendor datasheets; H100/H200: SXM), matched against `device_kind`,
# longest name first. JAX names v5e 'TPU v5 lite' and v5p 'TPU v5'.
PEAK_FLOPS = {
    'A100': 312e12, 'H100': 989e12, 'H200': 989e12,
    'TPU v4': 275e12, 'TPU v5 lite': 197e12, 'TPU v5e': 197e12, 'TPU v5': 459e12, 'TPU v5p': 459e12,
    'TPU v6 lite': 918e12, 'TPU v6e': 918e12,
}


@functools.cache  # once per process (~0.2 s): runs in one process (a sweep, the tests) share it
def measured_matmul_flops(n: int = 1536, repeats: int = 3, dtype=jnp.float32) -> float:
  """FLOP/s of the best of `repeats` n×n×n matmuls on the default device, after one untimed call."""
  # 1536³ ran as fast as 2048³ on the 2-core CI machine (205-214 against 195-210 GFLOP/s, 2026-11-29)
  # in half the time (0.15-0.19 against 0.35-0.51 s), which every run pays at its start.
  a = jnp.ones((n, n), dtype)
  f = jax.jit(lambda x: x @ x)
  f(a).block_until_ready()
  best = float('inf')
  for _ in range(repeats):
    t0 = time.perf_counter()
    f(a).block_until_ready()
    best = min(best, time.perf_counter() - t0)
  return 2 * n ** 3 / best


def device_peak_flops(device=None) -> tuple[float, str]:
  """(peak FLOP/s, how it was found) for one device: the table for accelerators, a measurement on CPU."""
  device = device or jax.devices()[0]
  if device.platform == 'cpu':
    return measured_matmul_flops(), 'measured float32 matmul'
  kind = device.device_kind
  for name, flops in sorted(PEAK_FLOPS.items(), key=lambda kv: -len(kv[0])):
    if name.lower() in kind.lower():
      return flops, f'{name} datasheet (bf16 dense)'
  return float('nan'), f'unknown device kind {kind!r}'


def peak_flops(num_devices: int, num_processes: int = 1, device=None) -> float:
  """Peak FLOP/s of a run on `num_devices` devices spread over `num_processes` processes.

  An accelerator's datasheet figure counts once per device. On CPU the measured figure is already the
  whole host's (one matmul uses every core), and a host's CPU devices (e.g. from
  `--xla_force_host_platform_device_count`) share those cores, so it counts once per process.
  """
  device = device or jax.devices()[0]
  per_device, _ = device_peak_flops(device)
  return per_device * (num_processes if device.platform == 'cpu' else num_devices)


def mfu(flops_per_token: float, tokens_per_sec: float, peak_flops: float) -> float:
  return flops_per_token * tokens_per_sec / peak_flops
