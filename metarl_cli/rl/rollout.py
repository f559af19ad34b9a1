"""Batched on-device rollouts of a policy on one task.

Each of `lanes` environments runs `horizon` steps from a fresh reset, auto-resetting at episode
ends, so every simulated step is a step the learner uses. Arrays are time-major: (horizon, lanes).
Sampling is not differentiated: the policy-gradient losses re-evaluate log-probabilities.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class Trajectory(NamedTuple):
    obs: jax.Array  # (T, L, obs_dim): observation the action was taken in
    actions: jax.Array  # (T, L) discrete or (T, L, action_dim) continuous
    rewards: jax.Array  # (T, L)
    dones: jax.Array  # (T, L): the episode ended at this step (terminated or truncated)
    episode_time: jax.Array  # (T, L): steps since the episode began
    next_obs: jax.Array | None = None  # (T, L, obs_dim): the true next observation (the final one at an episode's end)
    terminated: jax.Array | None = None  # (T, L): the episode ended in a terminal state, not by the time limit


def rollout(env, policy_sample, policy_params, task_params, key, lanes: int, horizon: int) -> Trajectory:
    """Roll `lanes` copies of `env` under `task_params` for `horizon` steps with the given policy."""
    policy_params = jax.lax.stop_gradient(policy_params)
    key_reset, key_steps = jax.random.split(key)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key_reset, lanes), task_params)
    step_env = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def body(carry, step_key):
        obs, state, t = carry
        k_act, k_env = jax.random.split(step_key)
        action = policy_sample(policy_params, obs, k_act)
        next_obs, state, reward, terminated, truncated, info = step_env(
            jax.random.split(k_env, lanes), state, action, task_params
        )
        done = jnp.logical_or(terminated, truncated)
        out = Trajectory(obs, action, reward.astype(jnp.float32), done, t, info["final_observation"], terminated)
        return (next_obs, state, jnp.where(done, 0, t + 1)), out

    t0 = jnp.zeros((lanes,), jnp.int32)
    _, traj = jax.lax.scan(body, (obs, state, t0), jax.random.split(key_steps, horizon))
    return traj


def first_episode_return(traj: Trajectory) -> jax.Array:
    """The undiscounted return of each lane's first episode (an unbiased sample per lane), averaged over the lanes."""
    ended_before = jnp.cumsum(traj.dones, axis=0) - traj.dones
    in_first = ended_before == 0
    return jnp.mean(jnp.sum(traj.rewards * in_first, axis=0))
