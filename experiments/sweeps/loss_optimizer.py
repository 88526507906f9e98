"""Loss × optimizer: one linear classifier ŷ = xW + b on the digits, under every pair of
loss ∈ {squared, hinge, cross_entropy} and optimizer ∈ {sgd, momentum, adam}.

The base is experiments/configs/digits_mlp.py:linear (10 scores, 1000 steps of batch 64, λ = 1e-4 L2,
cosine decay to 0) with model.name = 'linear'. With 10 scores the losses are the multi-class ones:
  squared         Σ_c (ŷ_c − onehot(y)_c)²
  hinge           max(0, 1 − (ŷ_y − max_{c≠y} ŷ_c))
  cross_entropy   −log softmax(ŷ)_y
Each optimizer has its own learning rate (one value, not tuned per loss): SGD 0.05, momentum (0.9) 0.03,
Adam 0.01. SGD's is the smallest because of the squared loss: its Hessian 2·E[x̃x̃ᵀ] (x̃ = [x, 1]) has
largest eigenvalue 23 on these pixels, so gradient descent on it diverges for lr > 2/23 ≈ 0.087 (it
does at 0.1 and 0.3, where hinge and cross-entropy train fine).

  python -m lm_anatomy.sweep --sweep=experiments/sweeps/loss_optimizer.py --workdir=runs/sweeps/loss_optimizer

writes results.md / results.csv (val and test accuracy and loss per point), loss_curves.png and
final_test_accuracy.png.
"""

OPTIMIZERS = {'sgd': 0.05, 'momentum': 0.03, 'adam': 0.01}  # name → learning rate
LOSSES = ['squared', 'hinge', 'cross_entropy']


def get_sweep():
  return dict(
      config='experiments/configs/digits_mlp.py:linear',
      overrides={'model.name': 'linear', 'steps': 1000, 'eval_every': 250, 'checkpoint_every': 1000},
      points=[{'name': name, 'optimizer.name': name, 'optimizer.lr': lr} for name, lr in OPTIMIZERS.items()],
      axes={'task.loss': LOSSES},
      columns=['name', 'optimizer.name', 'optimizer.lr', 'task.loss', 'train_loss', 'val_loss', 'val_accuracy',
               'test_accuracy', 'elapsed_sec', 'wall_sec'],
      metric='test_accuracy',
  )
