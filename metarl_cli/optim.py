"""The optimiser every meta-learner's outer loop uses (MAML's, RL^2's PPO): Adam behind an optional
clip of the gradient's global norm."""

from __future__ import annotations

import optax


def clipped_adam(lr, max_grad_norm: float, eps: float = 1e-8) -> optax.GradientTransformation:
    """Adam at `lr` (a number or a schedule) on gradients clipped to global norm `max_grad_norm`
    (0: not clipped)."""
    clip = [optax.clip_by_global_norm(max_grad_norm)] if max_grad_norm > 0 else []
    return optax.chain(*clip, optax.adam(lr, eps=eps))
