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
  """R(θ) = ½ Σ θ² over matrices (`layers.matrix_mask`); biases and gains are not penalised."""
  from lm_anatomy.models import layers
  mask = layers.matrix_mask(params)
  return 0.5 * sum(jnp.sum(jnp.square(p.astype(jnp.float32)))
                   for p, m in zip(jax.tree.leaves(params), jax.tree.leaves(mask)) if m)


# Classification losses beyond the softmax cross-entropy. Notation: ŷ are scores (one per class, or one
# for two classes), y integer labels, t = 2y − 1 ∈ {−1, +1} the sign target of a binary label y ∈ {0, 1}.
# The prediction for one score is sign(ŷ) (class 1 if ŷ > 0); for C scores, argmax_c ŷ_c.

def sign_targets(labels):
  """t = 2y − 1: labels {0, 1} → {−1.0, +1.0}."""
  return 2.0 * labels.astype(jnp.float32) - 1.0


def binary_squared_error(scores, labels):
  """ℓ = (ŷ − t)², t = 2y − 1. scores [...] (one score per example), labels [...] in {0, 1} → [...]."""
  return optax.losses.squared_error(scores.astype(jnp.float32), sign_targets(labels))


def squared_error(scores, labels):
  """ℓ = Σ_c (ŷ_c − onehot(y)_c)². scores [..., C], labels [...] → [...]."""
  scores = scores.astype(jnp.float32)
  return jnp.sum(optax.losses.squared_error(scores, jax.nn.one_hot(labels, scores.shape[-1])), axis=-1)


def binary_hinge(scores, labels):
  """ℓ = max(0, 1 − t·ŷ), t = 2y − 1. scores [...], labels [...] in {0, 1} → [...]."""
  return optax.losses.hinge_loss(scores.astype(jnp.float32), sign_targets(labels))


def multiclass_hinge(scores, labels):
  """ℓ = max(0, 1 − (ŷ_y − max_{c≠y} ŷ_c)) (Crammer and Singer). scores [..., C], labels [...] → [...]."""
  return optax.losses.multiclass_hinge_loss(scores.astype(jnp.float32), labels)


def sigmoid_cross_entropy(logits, labels, label_smoothing: float = 0.0):
  """ℓ = −q log σ(ŷ) − (1 − q) log(1 − σ(ŷ)), q = (1 − ε)·y + ε/2 (ε: label smoothing).

  The binary (logistic) cross-entropy of one logit: p(y = 1 | x) = σ(ŷ) = 1 / (1 + e^{−ŷ}).
  logits [...], labels [...] in {0, 1} → [...]. Float32 whatever the logits' dtype.
  """
  q = labels.astype(jnp.float32) * (1.0 - label_smoothing) + 0.5 * label_smoothing
  return optax.losses.sigmoid_binary_cross_entropy(logits.astype(jnp.float32), q)


def ranking_margin(positive_scores, negative_scores, margin: float = 1.0):
  """Pairwise ranking loss ℓ = max(0, m − (s⁺ − s⁻)): zero once the preferred item outscores the other by m.

  Use: learning to rank from pairs (x⁺, x⁻) where x⁺ should score higher, e.g. a positive review above a
  negative one, or a correct answer above a corrupted one, scored by the same model s = f(x).
  Only score differences matter, so it needs no labels and no calibration.
  positive_scores [...], negative_scores [...] → [...].
  """
  return jax.nn.relu(margin - (positive_scores.astype(jnp.float32) - negative_scores.astype(jnp.float32)))


def triplet(anchors, positives, negatives, margin: float = 1.0):
  """Triplet loss ℓ = max(0, ‖a − p‖ − ‖a − n‖ + m), Euclidean distances (optax adds 1e-6 under the root).

  Use: learning an embedding e = f(x) in which an anchor a is closer to an example p of its own class than
  to an example n of another class by a margin m (face recognition, sentence embeddings); classify
  afterwards by nearest neighbours in the embedding.
  anchors, positives, negatives [..., d] → [...].
  """
  f32 = lambda x: x.astype(jnp.float32)
  return optax.losses.triplet_margin_loss(f32(anchors), f32(positives), f32(negatives), margin=margin)
