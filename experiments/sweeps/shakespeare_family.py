"""The small tiny-Shakespeare models of the context-length and vanishing-gradient studies.

  python -m lm_anatomy.sweep --sweep=experiments/sweeps/shakespeare_family.py --workdir=runs/sweeps/shakespeare_family

then experiments/studies/context_length.py and experiments/studies/vanishing_gradients.py read those runs.
"""


def get_sweep():
  return dict(
      points=[{'name': arch, 'config': f'experiments/configs/shakespeare_family.py:{arch}'}
              for arch in ('ffnn', 'rnn', 'gru', 'lstm', 'gpt')],
      columns=['name', 'params', 'flops_per_token', 'context_limit', 'train_loss', 'val_loss', 'tokens_per_sec',
               'elapsed_sec', 'wall_sec'],
      metric='val_loss',
  )
