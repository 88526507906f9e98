"""The Python API for notebooks and analysis: `restore(workdir)` → config, model, params, step, tokenizer."""
from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any

import jax
import ml_collections

from lm_anatomy import checkpoint as ckpt_lib
from lm_anatomy import config as config_lib
from lm_anatomy import models, optim, tasks
from lm_anatomy.data import tokenizers
from lm_anatomy.errors import CheckpointError


@dataclasses.dataclass
class Pretrained:
  """A model with its weights: what `restore` and `from_pretrained` return."""
  config: ml_collections.ConfigDict
  model: Any
  params: Any
  tokenizer: Any = None
  step: int | None = None
  info: dict | None = None
  task: Any = None


def restore(workdir: str | pathlib.Path, step: int | None = None, best: bool = False) -> Pretrained:
  """The run in `workdir` at `step` (default: its newest checkpoint; `best=True`: best by val loss)."""
  from lm_anatomy import engine
  workdir = pathlib.Path(workdir)
  if not (workdir / 'config.json').exists():
    raise CheckpointError(f'{workdir} holds no run (no config.json)')
  if not ckpt_lib.has_checkpoint(workdir, best):
    raise CheckpointError(f'{workdir} has no {"best " if best else ""}checkpoint yet')
  config = config_lib.from_saved(json.loads((workdir / 'config.json').read_text()))
  info = json.loads((workdir / 'data_info.json').read_text())
  tokenizer = tokenizers.load(workdir / 'tokenizer.json')
  model = models.build(config, info)
  task = tasks.build(config, model, _InfoDataset(info))
  tx, _ = optim.build(config.optimizer, config.steps)
  example = engine.batch_from_spec(info['example'])
  abstract = jax.eval_shape(lambda r: engine.create_state(task, tx, r, example), jax.random.key(0))
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  checkpointer = ckpt_lib.Checkpointer(workdir, config.keep_checkpoints, reader=True)
  try:
    out = checkpointer.restore(ckpt_lib.abstract_like(abstract, jax.tree.map(lambda _: device, abstract)), step, best)
  finally:
    checkpointer.close()
  if out is None:
    raise CheckpointError(f'{workdir} has no checkpoint yet')
  state, _, found = out
  return Pretrained(config=config, model=model, params=state.params, tokenizer=tokenizer, step=found, info=info,
                    task=task)


def from_pretrained(path: str | pathlib.Path) -> Pretrained:
  """A Hugging Face checkpoint directory (config.json + model.safetensors), or an installed package
  holding one, as the same kind of object as `restore` gives. See lm_anatomy/hf.py."""
  from lm_anatomy import hf
  return hf.from_pretrained(path)


class _InfoDataset:
  """Stands in for a dataset where a task only needs the sizes saved beside the run."""

  def __init__(self, info: dict):
    self.info = info
    self.chars_per_token = info.get('chars_per_token', 1.0)
