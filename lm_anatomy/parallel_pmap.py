"""The `pmap` strategy: SPMD over this process's devices, kept because users ask for it.

`jit` with NamedSharding (parallel.MeshStrategy) is the main path: `jax.pmap` is in maintenance mode.
State is replicated with a leading device axis [n_devices, ...]; each device gets batch rows
[b·B/n, (b+1)·B/n); inside the step, sums (loss, weight, gradients) are `lax.psum`-ed over the axis
'devices', so the update equals the single-device update on the whole batch (with dropout, each device
draws its own masks from the step's key folded with its index: the same distribution as one device's
masks, not the same bits). Checkpoints hold one
copy (device 0's), so they restore under any other mode. Uses no API that JAX 0.10 removed
(no device_put_replicated / device_put_sharded / PmapSharding).
"""
from __future__ import annotations

from typing import Callable

import jax
import numpy as np

from lm_anatomy.errors import ConfigError
from lm_anatomy.parallel import run_init

AXIS = 'devices'


class _Lowered:
  """A pmapped function, its lowering or its executable, with the engine's `.lower(...).compile()`
  interface; `post` maps the outputs. Compiling ahead of time lets the engine time the compile."""

  def __init__(self, fn: Callable, post: Callable):
    self.fn, self.post = fn, post

  def lower(self, *args):
    return _Lowered(self.fn.lower(*args), self.post)

  def compile(self):
    return _Lowered(self.fn.compile(), self.post)

  def __call__(self, *args):
    return self.post(self.fn(*args))


class PmapStrategy:
  mode = 'pmap'

  def __init__(self):
    if jax.process_count() > 1:  # pmap over local devices: gradients and eval sums would not cross processes
      raise ConfigError(f"parallel.mode='pmap' runs over the devices of one process, but {jax.process_count()} "
                        "processes were started; use parallel.mode='data' or 'fsdp'")
    self.devices = jax.local_devices()
    self.local_count = len(self.devices)
    self.num_devices = jax.device_count()
    self.process_index = jax.process_index()
    self.process_count = jax.process_count()
    self.single = jax.sharding.SingleDeviceSharding(self.devices[0])

  def check_batch(self, batch_size: int, key: str = 'batch_size', grad_accum: int = 1) -> None:
    """The batch splits over the devices, and each device's rows into grad_accum micro-batches."""
    if batch_size % self.num_devices:
      raise ConfigError(f'{key} ({batch_size}) must be divisible by the device count ({self.num_devices}) '
                        "in parallel.mode='pmap'")
    if (batch_size // self.num_devices) % grad_accum:
      raise ConfigError(f'{key} ({batch_size}) gives {batch_size // self.num_devices} rows per device, which '
                        f'grad_accum_steps ({grad_accum}) must divide in parallel.mode=\'pmap\'')

  def state_sharding(self, abstract_state):
    return jax.tree.map(lambda _: self.single, abstract_state)

  def replicate(self, tree):
    """[...] → [n_local_devices, ...] on the devices, one copy each."""
    host = jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (self.local_count, *np.shape(x))), tree)
    return jax.pmap(lambda x: x, devices=self.devices)(host)

  def init_state(self, init_fn: Callable, rng, abstract_state):
    return self.replicate(run_init(init_fn, rng)), self.state_sharding(abstract_state)

  def put_state(self, state, sharding=None):
    return self.replicate(state)

  def checkpoint_target(self, abstract_state):
    from lm_anatomy.checkpoint import abstract_like
    return abstract_like(abstract_state, self.state_sharding(abstract_state))

  def placed_abstract(self, abstract_state, sharding=None):
    """Shapes and dtypes of the replicated state: [n_local_devices, ...]."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct((self.local_count, *x.shape), x.dtype), abstract_state)

  def place_restored(self, state):
    return self.replicate(state)

  @staticmethod
  def checkpoint_view(state):
    return jax.tree.map(lambda x: x[0], state)

  def put_batch(self, batch: dict, leading_axes: int = 0) -> dict:
    """Splits the batch axis (after `leading_axes`) into [devices, rows per device] and moves devices first."""
    n = self.local_count

    def split(x):
      x = np.asarray(x)
      b = x.shape[leading_axes]
      x = x.reshape(*x.shape[:leading_axes], n, b // n, *x.shape[leading_axes + 1:])
      return np.moveaxis(x, leading_axes, 0)
    return {k: split(v) for k, v in batch.items()}

  def compile_train(self, fn: Callable, state_sharding=None, leading_axes: int = 1):
    def per_device(state, batches, base_rng):  # each device its own dropout key, so masks differ across devices
      return fn(state, batches, jax.random.fold_in(base_rng, jax.lax.axis_index(AXIS)))
    p = jax.pmap(per_device, axis_name=AXIS, in_axes=(0, 0, None), donate_argnums=(0,), devices=self.devices)
    return _Lowered(p, lambda out: out)  # metrics keep their device axis until `to_host`

  def compile_eval(self, fn: Callable, params_sharding=None):
    p = jax.pmap(fn, in_axes=(0, 0), devices=self.devices)
    return _Lowered(p, lambda out: jax.tree.map(lambda x: np.asarray(x).sum(0), out))  # on the host: no program

  @staticmethod
  def total(x):
    return jax.lax.psum(x, AXIS)

  @staticmethod
  def to_host(tree):
    """Train metrics on the host: every device holds the same totals (psum), so device 0's copy. Taken
    on the host, as slicing the device arrays would compile small programs inside the timed step."""
    return jax.tree.map(lambda x: np.asarray(x)[0], jax.device_get(tree))
