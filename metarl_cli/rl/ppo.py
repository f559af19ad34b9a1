"""Recurrent PPO on whole trials: generalised advantage estimation and the clipped-surrogate update.

The unit of data is a trial (a sequence that starts from a zero memory state), so an update
recomputes logits and values by unrolling the agent over each trial from its start: no stored
memory states, no truncated backpropagation. Minibatches split the lanes, never the time axis.
The trial is the episode of the return (RL^2): advantages flow across the episode boundaries inside
a trial and stop at its end; invalid steps (after a trial ended) are masked out of every mean.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from metarl_cli.rl.trials import TrialBatch


class PPOSettings(NamedTuple):
    gamma: float
    gae_lambda: float
    clip: float
    epochs: int
    minibatches: int
    entropy_coef: float  # or a scalar array, when it follows a schedule
    value_coef: float
    value_scale: float  # the unit of the agent's value head: the value error is measured in it
    lr_scale: jax.Array | None = None  # multiplies the optimizer's updates (a later, smaller step)


def generalised_advantages(rewards, values, valid, gamma: float, lam: float):
    """(advantages, returns), time-major; the value after a trial's last valid step is zero."""
    next_values = jnp.concatenate([values[1:] * valid[1:], jnp.zeros_like(values[:1])], axis=0)
    deltas = rewards + gamma * next_values - values

    def body(later, x):
        delta, ok = x
        advantage = jnp.where(ok, delta + gamma * lam * later, 0.0)
        return advantage, advantage

    _, advantages = jax.lax.scan(body, jnp.zeros_like(values[0]), (deltas, valid), reverse=True)
    return advantages, advantages + values


def _masked_mean(x, mask):
    return jnp.sum(x * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def ppo_loss(params, unroll, batch: TrialBatch, advantages, returns, settings: PPOSettings):
    logits, values = unroll(params, batch.inputs)
    mask = batch.valid.astype(jnp.float32)
    log_softmax = jax.nn.log_softmax(logits)
    log_prob = jnp.take_along_axis(log_softmax, batch.actions[..., None], axis=-1)[..., 0]
    ratio = jnp.exp(log_prob - batch.log_probs)
    mean = _masked_mean(advantages, mask)
    std = jnp.sqrt(_masked_mean((advantages - mean) ** 2, mask))
    normalised = (advantages - mean) / (std + 1e-8)
    surrogate = jnp.minimum(ratio * normalised, jnp.clip(ratio, 1 - settings.clip, 1 + settings.clip) * normalised)
    policy_loss = -_masked_mean(surrogate, mask)
    value_loss = 0.5 * _masked_mean(((values - returns) / settings.value_scale) ** 2, mask)
    entropy = _masked_mean(-jnp.sum(jnp.exp(log_softmax) * log_softmax, axis=-1), mask)
    loss = policy_loss + settings.value_coef * value_loss - settings.entropy_coef * entropy
    return loss, {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy}


def ppo_update(params, opt_state, optimizer: optax.GradientTransformation, unroll, batch: TrialBatch, key,
               settings: PPOSettings):
    """`epochs` passes over the lanes in `minibatches` random groups; returns params, opt_state, mean metrics."""
    advantages, returns = generalised_advantages(batch.rewards, batch.values, batch.valid, settings.gamma, settings.gae_lambda)
    lanes = batch.actions.shape[1]
    size = lanes // settings.minibatches
    grad_fn = jax.value_and_grad(ppo_loss, has_aux=True)

    def minibatch(carry, lane_ids):
        params, opt_state = carry
        pick = lambda x: x[:, lane_ids]  # noqa: E731
        (loss, metrics), grads = grad_fn(params, unroll, jax.tree.map(pick, batch), pick(advantages), pick(returns), settings)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        if settings.lr_scale is not None:
            updates = jax.tree.map(lambda u: settings.lr_scale * u, updates)
        return (optax.apply_updates(params, updates), opt_state), {"loss": loss, **metrics}

    def epoch(carry, epoch_key):
        order = jax.random.permutation(epoch_key, lanes)[: size * settings.minibatches]
        return jax.lax.scan(minibatch, carry, order.reshape(settings.minibatches, size))

    (params, opt_state), metrics = jax.lax.scan(epoch, (params, opt_state), jax.random.split(key, settings.epochs))
    return params, opt_state, jax.tree.map(jnp.mean, metrics)
