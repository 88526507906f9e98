"""XOR: a linear model cannot learn it, a hand-made feature map or a hidden layer can.

The 4 points of {0,1}² with y = x1 XOR x2, full batch (train = val = the 4 points):

`:linear` (default), ŷ = xW + b with the hinge loss; it reaches at most 3 of the 4 points:
  python -m lm_anatomy.main --config=experiments/configs/xor.py:linear --workdir=runs/xor_linear

`:phi`, the same model and loss on φ(x1, x2) = [x1 + x2, x1·x2] (corpus xor_phi), where the points are
linearly separable; it reaches all 4:
  python -m lm_anatomy.main --config=experiments/configs/xor.py:phi --workdir=runs/xor_phi

`:stack`, three linear layers without activations (8 units wide), the hinge loss; still one linear map,
so still at most 3 of 4:
  python -m lm_anatomy.main --config=experiments/configs/xor.py:stack --workdir=runs/xor_stack

`:mlp`, one hidden layer of 3 tanh units with the cross-entropy loss on the raw points; all 4:
  python -m lm_anatomy.main --config=experiments/configs/xor.py:mlp --workdir=runs/xor_mlp

`:noisy`, the MLP on the noisy variant (400 sampled points; val and test splits of 200):
  python -m lm_anatomy.main --config=experiments/configs/xor.py:noisy --workdir=runs/xor_noisy

Plots and the whole story: python experiments/tutorial/xor.py --workdir=runs/tutorial/xor
"""
from lm_anatomy.config import base, complete

VARIANTS = ('linear', 'phi', 'stack', 'mlp', 'noisy')


def get_config(arg: str = ''):
  arg = arg or 'linear'
  if arg not in VARIANTS:
    raise ValueError(f'unknown variant {arg!r}; choose one of {list(VARIANTS)}')
  config = base()
  config.seed = 0
  config.data.corpus = 'xor_phi' if arg == 'phi' else 'xor_noisy' if arg == 'noisy' else 'xor'
  config.task.name = 'classify'
  config.steps = 1000
  config.batch_size = 4             # the whole data set
  config.eval_every = 250
  config.checkpoint_every = 1000
  config.keep_checkpoints = 1
  config.steps_per_dispatch = 50
  o = config.optimizer
  o.name, o.lr, o.schedule, o.warmup_steps, o.weight_decay, o.grad_clip = 'adam', 0.05, 'constant', 0, 0.0, 0.0
  if arg in ('linear', 'phi'):
    config.model.name = 'linear'
    config.model.init_std = 0.5
    config.task.loss = 'hinge'
  elif arg == 'stack':
    config.model.name = 'linear_stack'
    config.model.depth = 3
    config.model.width = 8
    config.model.init_std = 0.5
    config.task.loss = 'hinge'
  else:
    config.model.name = 'mlp'
    config.model.depth = 1
    config.model.width = 3
    config.model.activation = 'tanh'
    config.task.loss = 'cross_entropy'
  if arg == 'noisy':
    config.model.width = 8
    config.batch_size = 40
    config.eval_batch_size = 100
  return complete(config)
