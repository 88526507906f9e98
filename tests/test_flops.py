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
  v5p = types.SimpleNamespace(platform='tpu', device_kind='TPU v5')  # JAX's name for v5p
  assert flops.peak_flops(4, 1, v5p) == 4 * 459e12
  assert math.isnan(flops.peak_flops(2, 1, types.SimpleNamespace(platform='gpu', device_kind='Mystery X1')))


def test_untied_gpt_counts_the_same_matrix_products_as_tied():
  """N in 6N counts the weights of matrix products: an untied wte is a lookup, and lm_head does the work
  that the tied wte did (XLA's cost analysis counts the same FLOPs for both)."""
  import jax.numpy as jnp
  from lm_anatomy.models.gpt import GPT
  counts = []
  for tie in (True, False):
    model = GPT(vocab_size=65, n_layer=2, n_head=2, n_embd=32, block_size=16, bias=False, tie_embeddings=tie)
    params = model.init(jax.random.key(0), jnp.ones((1, 16), jnp.int32))['params']
    counts.append(model.flops_per_token(16, params))
  n = 65 * 32 + 2 * 12 * 32 * 32 + 2 * 2 * 32 + 32  # wte, blocks (no biases), LayerNorm gains
  assert counts == [6 * n + 12 * 2 * 2 * 16 * 16] * 2
