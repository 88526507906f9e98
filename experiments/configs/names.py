"""makemore on names: bigram, FFNN (MLP), RNN, GRU, LSTM and GPT, each under makemore's training setup.

Every variant: batch 32, 10,000 steps, AdamW (lr 5e-4, weight decay 0.01, betas 0.9/0.99), seed 3407,
one name per row with a start/end token, makemore's 1,000-name test split (names/test_split.txt in
$LM_ANATOMY_DATA; without it, a seeded split with a warning: see lm_anatomy/data/names.py). The neural
models hold the learning rate at 5e-4 for 8,000 steps and anneal it linearly to 0 over the last 2,000
(warmup–stable–decay), and each epoch visits every training name once in a fresh order; makemore keeps the rate
constant and draws names with replacement, which ended 0.004–0.026 higher in test loss here. The
bigram keeps makemore's setup (see below). makemore has no LSTM, so the LSTM's anneal (the last 5%) and
Adam β₂ (0.999) were chosen on 1,000 training names held out as val (experiments/sweeps/names_lstm_tuning.py),
never on test.
Sizes are makemore's defaults (n_embd 64, hidden 64, context 16; transformer 4 layers, 4 heads, with
PyTorch's default initialisation and an untied output layer, as makemore builds it: 204,544 parameters). The
final record of metrics.jsonl holds `test_loss`: the mean cross-entropy over every character of each
test name plus its end token, over the whole test set.

  python -m lm_anatomy.main --config=experiments/configs/names.py:bigram --workdir=runs/names/bigram
  python -m lm_anatomy.main --config=experiments/configs/names.py:ffnn --workdir=runs/names/ffnn
  python -m lm_anatomy.main --config=experiments/configs/names.py:rnn --workdir=runs/names/rnn
  python -m lm_anatomy.main --config=experiments/configs/names.py:gru --workdir=runs/names/gru
  python -m lm_anatomy.main --config=experiments/configs/names.py:lstm --workdir=runs/names/lstm
  python -m lm_anatomy.main --config=experiments/configs/names.py:gpt --workdir=runs/names/gpt

All six, with a results table and loss curves: python -m lm_anatomy.sweep --sweep=experiments/sweeps/names_family.py
"""
from lm_anatomy.config import base, complete

ARCHITECTURES = ('bigram', 'ffnn', 'rnn', 'gru', 'lstm', 'gpt')


def get_config(arg: str = 'gpt'):
  arch = arg or 'gpt'
  if arch not in ARCHITECTURES:
    raise ValueError(f'unknown variant {arg!r}; choose one of {list(ARCHITECTURES)}')
  config = base()
  config.seed = 3407                  # makemore's default
  config.data.corpus = 'names'
  config.data.tokenizer = 'char'
  config.data.sampling = 'epochs'
  config.steps = 10_000
  config.batch_size = 32
  config.eval_every = 500
  config.eval_batches = 0             # the whole test set, every time
  config.eval_batch_size = 1000
  config.checkpoint_every = 2000
  config.steps_per_dispatch = 10
  o = config.optimizer                # makemore's AdamW, no warmup, no clipping; lr annealed at the end
  o.name, o.lr, o.weight_decay, o.b1, o.b2, o.eps = 'adamw', 5e-4, 0.01, 0.9, 0.99, 1e-8
  o.schedule, o.decay_fraction, o.warmup_steps, o.min_lr, o.grad_clip = 'wsd', 0.2, 0, 0.0, 0.0

  config.model.name = arch
  m = config.model
  if arch == 'bigram':                # makemore's setup exactly: a constant lr, names drawn with replacement.
    # Still moving towards the count model at step 10,000, the bigram is held back by the lr: annealing
    # it ended higher here (2.4569 vs 2.4544).
    o.schedule, o.min_lr = 'constant', 5e-4
    config.data.sampling = 'replacement'
  elif arch == 'ffnn':
    m.window, m.n_embd, m.n_hidden, m.direct, m.dropout = 16, 64, 64, False, 0.0
  elif arch in ('rnn', 'gru', 'lstm'):
    m.n_layer, m.n_embd, m.n_hidden, m.dropout = 1, 64, 64, 0.0
    if arch == 'lstm':                # no makemore setup to copy: chosen on held-out val names
      o.decay_fraction, o.b2 = 0.05, 0.999   # (experiments/sweeps/names_lstm_tuning.py)
  elif arch == 'gpt':                 # makemore's Transformer: PyTorch's default init, untied output layer
    m.n_layer, m.n_head, m.n_embd, m.block_size = 4, 4, 64, 16
    m.dropout, m.bias, m.weight_init, m.tie_embeddings = 0.0, True, 'pytorch', False
  return complete(config)
