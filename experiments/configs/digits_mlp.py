"""An MLP on scikit-learn's 8×8 digits (10 classes), a fixed 1257/180/360 train/val/test split.

x ∈ [0, 1]^64 (pixels / 16); one hidden layer of 128 ReLU units, ŷ ∈ ℝ^10, softmax cross-entropy,
Adam. Reports val and test accuracy:
  python -m lm_anatomy.main --config=experiments/configs/digits_mlp.py --workdir=runs/digits_mlp

`:linear`, multinomial logistic regression on the same pixels, for comparison:
  python -m lm_anatomy.main --config=experiments/configs/digits_mlp.py:linear --workdir=runs/digits_linear
"""
from lm_anatomy.config import base, complete


def get_config(arg: str = ''):
  if arg not in ('', 'mlp', 'linear'):
    raise ValueError(f'unknown variant {arg!r}; choose mlp (the default) or linear')
  config = base()
  config.seed = 0
  config.data.corpus = 'digits'
  config.task.name = 'classify'
  config.task.loss = 'cross_entropy'
  config.task.l2 = 1e-4
  if arg == 'linear':
    config.model.name = 'log_linear'
  else:
    config.model.name = 'mlp'
    config.model.depth = 1
    config.model.width = 128
    config.model.activation = 'relu'
  config.batch_size = 64
  config.eval_batch_size = 180
  config.steps = 2000               # about 100 epochs
  config.eval_every = 500
  config.checkpoint_every = 2000
  config.keep_checkpoints = 1
  config.steps_per_dispatch = 50
  o = config.optimizer
  o.name, o.lr, o.min_lr, o.schedule, o.warmup_steps = 'adam', 3e-3, 0.0, 'cosine', 0
  o.weight_decay, o.grad_clip = 0.0, 0.0
  return complete(config)
