"""Character-level GPT on tiny Shakespeare (nanoGPT's `shakespeare_char`).

Default (GPU-sized: 6 layers, 6 heads, n_embd 384, block 256, batch 64, 5000 steps, dropout 0.2):
  python -m lm_anatomy.main --config=experiments/configs/shakespeare_char.py --workdir=runs/shakespeare_char

`:baby`, nanoGPT's CPU setting (4 layers, 4 heads, n_embd 128, block 64, batch 12, 2000 steps):
  python -m lm_anatomy.main --config=experiments/configs/shakespeare_char.py:baby --workdir=runs/baby

`:tiny`, a seconds-long smoke run:
  python -m lm_anatomy.main --config=experiments/configs/shakespeare_char.py:tiny --workdir=runs/tiny
"""
from lm_anatomy.config import base, complete


def get_config(arg: str = ''):
  config = base()
  config.seed = 1337
  config.data.corpus = 'tinyshakespeare'
  config.data.tokenizer = 'char'
  config.model.name = 'gpt'
  m = config.model
  m.n_layer, m.n_head, m.n_embd, m.block_size = 6, 6, 384, 256
  m.dropout, m.bias = 0.2, False
  m.activation = 'gelu'  # exact GELU, as nanoGPT's nn.GELU()
  config.steps = 5000
  config.batch_size = 64
  config.eval_every = 250
  config.eval_batches = 200
  config.checkpoint_every = 1000
  o = config.optimizer
  o.name, o.lr, o.min_lr, o.warmup_steps = 'adamw', 1e-3, 1e-4, 100
  o.warmup_offset = 1               # nanoGPT's get_lr: η·(s+1)/(W+1) for s < W
  o.b1, o.b2, o.weight_decay, o.grad_clip = 0.9, 0.99, 0.1, 1.0
  if arg == 'baby':
    m.n_layer, m.n_head, m.n_embd, m.block_size, m.dropout = 4, 4, 128, 64, 0.0
    config.batch_size = 12
    config.steps = 2000
    config.eval_batches = 2           # periodic estimate: 128 blocks; the final eval covers all of val
    config.eval_batch_size = 64
    config.checkpoint_every = 1000
    config.steps_per_dispatch = 10
  elif arg == 'tiny':
    m.n_layer, m.n_head, m.n_embd, m.block_size, m.dropout = 2, 2, 32, 32, 0.0
    config.batch_size = 8
    config.steps = 100
    config.eval_every = 50
    config.eval_batches = 4
    config.checkpoint_every = 50
    config.steps_per_dispatch = 10
  elif arg:
    raise ValueError(f'unknown variant {arg!r}; choose baby or tiny')
  return complete(config)
