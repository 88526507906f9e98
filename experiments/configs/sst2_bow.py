"""Sentiment with one neuron: logistic regression on SST-2 binary bags of words.

A sentence is x ∈ {0,1}^V (x_j = 1 if word j occurs; V = 14,829 words of the training sentences, with
`<unk>`); the model is ŷ = xw + b, p(positive | x) = σ(ŷ), trained with the cross-entropy and the L2
penalty λ·½‖w‖². With λ = 1/(C·N) (N = 6920 training sentences) the objective is scikit-learn's
LogisticRegression(C) divided by C·N, so C = 1 is λ = 1/6920. Reports val (the dev file) accuracy.

Default, logistic regression (one neuron):
  python -m lm_anatomy.main --config=experiments/configs/sst2_bow.py --workdir=runs/sst2_bow

`:mlp`, one hidden layer of 64 ReLU units with dropout:
  python -m lm_anatomy.main --config=experiments/configs/sst2_bow.py:mlp --workdir=runs/sst2_bow_mlp

With the scikit-learn baselines and the most positive and negative words:
  python experiments/tutorial/sentiment.py --workdir=runs/tutorial/sentiment
"""
from lm_anatomy.config import base, complete

TRAIN_SIZE = 6920


def get_config(arg: str = ''):
  if arg not in ('', 'logistic', 'mlp'):
    raise ValueError(f"unknown variant {arg!r}; choose logistic (the default) or mlp")
  config = base()
  config.seed = 0
  config.data.corpus = 'sst2_bow'
  config.data.tokenizer = 'words'
  config.task.name = 'classify'
  config.task.loss = 'cross_entropy'
  config.task.l2 = 1.0 / TRAIN_SIZE  # scikit-learn's C = 1
  config.batch_size = 256
  config.eval_batch_size = 512
  config.steps = 1350               # 50 epochs
  config.eval_every = 270
  config.checkpoint_every = 1350
  config.keep_checkpoints = 1
  config.steps_per_dispatch = 10
  o = config.optimizer
  o.name, o.lr, o.min_lr, o.schedule, o.warmup_steps = 'adam', 0.02, 0.0, 'cosine', 0
  o.weight_decay, o.grad_clip = 0.0, 0.0
  if arg != 'mlp':
    config.model.name = 'log_linear'
    config.model.init_std = 0.0     # the optimum does not depend on it: the objective is convex
  else:
    config.model.name = 'mlp'
    config.model.depth = 1
    config.model.width = 64
    config.model.activation = 'relu'
    config.model.dropout = 0.5
    config.steps = 540              # 20 epochs
    config.eval_every = 270
    config.checkpoint_every = 540
    o.lr = 1e-3
  return complete(config)
