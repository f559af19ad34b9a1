"""Batched RL^2 trials: one task per lane for `episodes` consecutive episodes, one memory per trial.

Every lane starts its trial from a reset with a zero memory state and runs `episodes * horizon`
steps; gymnax auto-resets between episodes and the task, held in EnvParams, stays the same. Once a
lane has finished its episodes, its remaining steps are marked invalid (their rewards do not count
and the losses skip them), so episodes that end early (CartPole) keep trials exact. Arrays are
time-major: (T, lanes).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from metarl_cli.families.base import task_count
from metarl_cli.rl.recurrent import RecurrentAgent


class TrialBatch(NamedTuple):
    inputs: jax.Array  # (T, L, input_dim): what the agent saw
    actions: jax.Array  # (T, L)
    log_probs: jax.Array  # (T, L): of the actions, under the acting parameters
    values: jax.Array  # (T, L)
    rewards: jax.Array  # (T, L), zero where invalid
    valid: jax.Array  # (T, L): the step belongs to the trial
    episode: jax.Array  # (T, L): which episode of the trial the step is in


def run_trials(env, agent: RecurrentAgent, params, tasks, key, episodes: int, horizon: int, uniform: bool = False) -> TrialBatch:
    """One trial per task (`tasks` batched EnvParams, lanes = its leading size). `uniform` acts at random."""
    lanes = task_count(tasks)
    key_reset, key_steps = jax.random.split(key)
    obs, env_state = jax.vmap(env.reset)(jax.random.split(key_reset, lanes), tasks)
    step_env = jax.vmap(env.step)

    def body(carry, step_key):
        obs, prev_obs, env_state, memory, prev_action, prev_reward, prev_done, episode = carry
        k_act, k_env = jax.random.split(step_key)
        inputs = agent.inputs(obs, prev_obs, prev_action, prev_reward, prev_done)
        memory, logits, values = agent.step(params, memory, inputs)
        if uniform:
            logits = jnp.zeros_like(logits)
        action = jax.random.categorical(k_act, logits)
        log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], axis=1)[:, 0]
        next_obs, env_state, reward, terminated, truncated, _ = step_env(jax.random.split(k_env, lanes), env_state, action, tasks)
        done = jnp.logical_or(terminated, truncated)
        valid = episode < episodes
        reward = jnp.where(valid, reward.astype(jnp.float32), 0.0)
        out = TrialBatch(inputs, action, log_prob, values, reward, valid, episode)
        return (next_obs, obs, env_state, memory, action, reward, done, episode + done), out

    start = (obs, jnp.zeros_like(obs), env_state, agent.initial_carry(lanes), jnp.zeros((lanes,), jnp.int32), jnp.zeros((lanes,)),
             jnp.zeros((lanes,), bool), jnp.zeros((lanes,), jnp.int32))
    _, batch = jax.lax.scan(body, start, jax.random.split(key_steps, episodes * horizon))
    return batch


def episode_returns(batch: TrialBatch, episodes: int) -> jax.Array:
    """(lanes, episodes): each episode's undiscounted return within its trial."""
    slot = jax.nn.one_hot(batch.episode, episodes)  # invalid steps fall outside the one-hot and count nowhere
    return jnp.einsum("tl,tle->le", batch.rewards, slot)
