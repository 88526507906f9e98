"""Optax optimisers and learning-rate schedules from `config.optimizer`.

Schedules (s = step, η = lr, η_min = min_lr, W = warmup_steps, S = decay_steps or steps):
  warmup        η_s = η · (s + o) / (W + o)                      for s < W; o = warmup_offset
                (o = 0: the first step runs at lr 0, as optax's; o = 1: nanoGPT's η·(s+1)/(W+1))
  cosine        η_s = η_min + ½(η − η_min)(1 + cos(π (s−W)/(S−W)))
  linear        η_s = η + (η_min − η)(s−W)/(S−W)
  wsd           η_s = η until D = S − ⌊f·(S−W)⌋, then η + (η_min − η)(s−D)/(S−D)    f = decay_fraction
                (warmup–stable–decay: a constant rate, annealed linearly over the last fraction f)
  constant      η_s = η
After the decay (s ≥ S, or s > W when S ≤ W) the rate stays at η_min. W is not cut to the run's length:
with W ≥ steps the run ends inside the warmup, as in nanoGPT.
Weight decay applies to matrices only (`layers.matrix_mask`: kernels and embeddings). With adamw it is
decoupled, θ ← θ − η·λ·θ beside the Adam step; with sgd, momentum and adam it is added to the gradient,
g + λθ, as PyTorch's weight_decay for those optimisers (for adam that is an L2 penalty that passes through
Adam's normalisation).
Gradients are clipped to a global norm first when grad_clip > 0.
"""
from __future__ import annotations

import optax

from lm_anatomy.models import layers


def schedule(opt, steps: int) -> optax.Schedule:
  decay_steps = opt.decay_steps or steps
  warmup = opt.warmup_steps   # W ≥ S: the run ends inside the warmup, as nanoGPT's get_lr
  start = opt.lr * opt.warmup_offset / (warmup + opt.warmup_offset) if warmup else 0.0
  if opt.schedule == 'cosine':
    return optax.warmup_cosine_decay_schedule(start, opt.lr, warmup, max(decay_steps, warmup + 1), opt.min_lr)
  if opt.schedule == 'linear':
    return optax.join_schedules([optax.linear_schedule(start, opt.lr, warmup),
                                 optax.linear_schedule(opt.lr, opt.min_lr, max(decay_steps - warmup, 1))], [warmup])
  if opt.schedule == 'wsd':
    span = max(decay_steps - warmup, 0)
    decay = min(max(int(opt.decay_fraction * span), 1), span)
    stable = span - decay
    return optax.join_schedules([optax.linear_schedule(start, opt.lr, warmup), optax.constant_schedule(opt.lr),
                                 optax.linear_schedule(opt.lr, opt.min_lr, max(decay, 1))], [warmup, warmup + stable])
  return optax.join_schedules([optax.linear_schedule(start, opt.lr, warmup), optax.constant_schedule(opt.lr)],
                              [warmup])


def decay_mask(params):
  return layers.matrix_mask(params)


def build(opt, steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """(optimizer, schedule) for `config.optimizer` and the run's total steps."""
  lr = schedule(opt, steps)
  if opt.name == 'adamw':
    core = optax.adamw(lr, b1=opt.b1, b2=opt.b2, eps=opt.eps, weight_decay=opt.weight_decay, mask=decay_mask)
  elif opt.name == 'adam':
    core = optax.adam(lr, b1=opt.b1, b2=opt.b2, eps=opt.eps)
  elif opt.name == 'momentum':
    core = optax.sgd(lr, momentum=opt.momentum, nesterov=opt.nesterov)
  else:
    core = optax.sgd(lr)
  parts = []
  if opt.grad_clip:
    parts.append(optax.clip_by_global_norm(opt.grad_clip))
  if opt.name in ('sgd', 'momentum', 'adam') and opt.weight_decay:
    parts.append(optax.add_decayed_weights(opt.weight_decay, mask=decay_mask))
  parts.append(core)
  return optax.chain(*parts), lr
