"""The names family: bigram, FFNN, RNN, GRU, LSTM and GPT on makemore's names, under one budget.

Every point is `experiments/configs/names.py:ARCH` (batch 32, 10,000 steps, AdamW lr 5e-4, weight decay
0.01); the tags carry makemore's reference figures (measured with makemore's own code) beside ours.

  python -m lm_anatomy.sweep --sweep=experiments/sweeps/names_family.py --workdir=runs/sweeps/names_family
  python -m lm_anatomy.sweep --sweep=experiments/sweeps/names_family.py --dry_run     # the six commands
"""

# ours → (makemore's model, its params, its test loss)
MAKEMORE = {
    'bigram': ('bigram', 729, 2.4545),
    'ffnn': ('mlp', 69_147, 2.0541),
    'rnn': ('rnn', 11_803, 2.0841),
    'gru': ('gru', 28_315, 2.0348),
    'lstm': ('gru', None, 2.0348),   # makemore has no LSTM: the GRU's figure is the bar
    'gpt': ('transformer', 204_544, 1.9726),
}


def get_sweep():
  return dict(
      points=[{'name': arch, 'config': f'experiments/configs/names.py:{arch}',
               'tags': {'makemore': ref, 'makemore_params': params, 'makemore_test_loss': loss}}
              for arch, (ref, params, loss) in MAKEMORE.items()],
      columns=['name', 'params', 'flops_per_token', 'context_limit', 'train_loss', 'test_loss',
               'makemore', 'makemore_params', 'makemore_test_loss', 'tokens_per_sec', 'elapsed_sec', 'wall_sec'],
      metric='test_loss',
  )
