"""The linear feature baseline of Duan et al. (2016), used by MAML-RL.

Features per step: clipped observation, its square, and a cubic in the time within the episode;
ridge regression onto the discounted reward-to-go of the batch it is applied to. The fit is not
differentiated.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from metarl_cli.rl.rollout import Trajectory


def reward_to_go(rewards: jax.Array, dones: jax.Array, gamma: float) -> jax.Array:
    """Discounted reward-to-go within each episode, (T, L); a segment cut by the window ends there."""

    def body(future, x):
        r, done = x
        value = r + gamma * future * (1.0 - done)
        return value, value

    _, rtg = jax.lax.scan(body, jnp.zeros(rewards.shape[1:]), (rewards, dones.astype(rewards.dtype)), reverse=True)
    return rtg


def features(traj: Trajectory) -> jax.Array:
    obs = jnp.clip(traj.obs.reshape(traj.obs.shape[:2] + (-1,)), -10.0, 10.0)
    t = traj.episode_time[..., None].astype(jnp.float32) / 100.0
    ones = jnp.ones_like(t)
    return jnp.concatenate([obs, obs**2, t, t**2, t**3, ones], axis=-1)


# The ridge, raised tenfold until the fit is finite, as rllab's LinearFeatureBaseline does: where
# observations hold cos and sin of an angle (Acrobot, Pendulum) their squares sum to the constant
# feature, and at 1e-5 the float32 solve of that near-singular system can overflow.
RIDGES = tuple(1e-5 * 10.0**i for i in range(5))


def linear_baseline(traj: Trajectory, returns: jax.Array) -> jax.Array:
    """Fitted values of the reward-to-go `returns` at each step, (T, L)."""
    traj, returns = jax.lax.stop_gradient((traj, returns))
    phi = features(traj)
    x = phi.reshape(-1, phi.shape[-1])
    gram, moments = x.T @ x, x.T @ returns.reshape(-1)
    fits = jnp.stack([jnp.linalg.solve(gram + ridge * jnp.eye(x.shape[1]), moments) for ridge in RIDGES])
    w = fits[jnp.argmax(jnp.all(jnp.isfinite(fits), axis=1))]  # the first finite (none: the first, and training stops)
    return jax.lax.stop_gradient((x @ w).reshape(returns.shape))


def discounted_advantages(traj: Trajectory, returns: jax.Array, baseline: jax.Array, gamma: float) -> jax.Array:
    """gamma^(time in episode) * (reward-to-go - baseline), (T, L): each step's weight on its score."""
    return gamma ** traj.episode_time.astype(returns.dtype) * (returns - baseline)
