"""Every loss, once. Each returns per-example values; tasks weight and sum them.

Notation: z are logits [..., classes], y integer labels [...], w weights [...].
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def cross_entropy(logits, labels, label_smoothing: float = 0.0):
  """ℓ = −Σ_c q_c log softmax(z)_c, with q = (1−ε)·onehot(y) + ε/C. logits [..., C], labels [...] → [...].

  Computed in float32 whatever the logits' dtype.
  """
  logits = logits.astype(jnp.float32)
  if not label_smoothing:
    return optax.losses.softmax_cross_entropy_with_integer_labels(logits, labels)
  num_classes = logits.shape[-1]
  targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes), label_smoothing)
  return optax.losses.softmax_cross_entropy(logits, targets)


def weighted_sums(per_example, weights):
  """(Σ w ℓ, Σ w): the sums that aggregate exactly over batches, devices and micro-batches."""
  weights = weights.astype(jnp.float32)
  return jnp.sum(per_example * weights), jnp.sum(weights)


def l2_penalty(params) -> jax.Array:
  """R(θ) = ½ Σ θ² over matrices (ndim ≥ 2); biases and gains are not penalised."""
  return 0.5 * sum(jnp.sum(jnp.square(p.astype(jnp.float32))) for p in jax.tree.leaves(params) if p.ndim >= 2)
