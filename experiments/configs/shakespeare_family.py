"""Small character-level FFNN, RNN, GRU, LSTM and GPT on tiny Shakespeare, sized for a CPU in minutes.

They feed the context-length and vanishing-gradient studies (experiments/studies/). All train on
windows of 128 characters (batch 32, 2,000 steps, AdamW, cosine decay, gradients clipped at 1);
the FFNN sees 16 of them, the GPT (2 layers) has a block of 128, the recurrent models are not limited.

  python -m lm_anatomy.main --config=experiments/configs/shakespeare_family.py:ffnn --workdir=runs/shakespeare_family/ffnn
  python -m lm_anatomy.main --config=experiments/configs/shakespeare_family.py:rnn --workdir=runs/shakespeare_family/rnn
  python -m lm_anatomy.main --config=experiments/configs/shakespeare_family.py:gru --workdir=runs/shakespeare_family/gru
  python -m lm_anatomy.main --config=experiments/configs/shakespeare_family.py:lstm --workdir=runs/shakespeare_family/lstm
  python -m lm_anatomy.main --config=experiments/configs/shakespeare_family.py:gpt --workdir=runs/shakespeare_family/gpt

All five: python -m lm_anatomy.sweep --sweep=experiments/sweeps/shakespeare_family.py
"""
from lm_anatomy.config import base, complete

ARCHITECTURES = ('ffnn', 'rnn', 'gru', 'lstm', 'gpt')


def get_config(arg: str = 'lstm'):
  arch = arg or 'lstm'
  if arch not in ARCHITECTURES:
    raise ValueError(f'unknown variant {arg!r}; choose one of {list(ARCHITECTURES)}')
  config = base()
  config.seed = 1337
  config.data.corpus = 'tinyshakespeare'
  config.data.tokenizer = 'char'
  config.data.seq_len = 128
  config.steps = 2000
  config.batch_size = 32
  config.eval_every = 500
  config.eval_batches = 20
  config.checkpoint_every = 500
  config.steps_per_dispatch = 10
  o = config.optimizer
  o.name, o.lr, o.min_lr, o.warmup_steps, o.weight_decay, o.grad_clip = 'adamw', 3e-3, 3e-4, 100, 0.01, 1.0

  config.model.name = arch
  m = config.model
  if arch == 'ffnn':
    m.window, m.n_embd, m.n_hidden = 16, 32, 256
  elif arch in ('rnn', 'gru', 'lstm'):
    m.n_layer, m.n_embd, m.n_hidden = 1, 64, 128
  else:
    m.n_layer, m.n_head, m.n_embd, m.block_size, m.dropout, m.bias = 2, 4, 64, 128, 0.0, False
    o.lr, o.min_lr = 1e-3, 1e-4
  return complete(config)
