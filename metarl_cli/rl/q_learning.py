"""Value-based pieces every Q-learner here shares: the Q-network, epsilon-greedy acting, the
epsilon schedule, the TD loss (optionally Double DQN and Huber) and the target-network update.

The TD target bootstraps on `terminated` only: an episode cut by a time limit still bootstraps from
its true next observation, which the caller takes from gymnax's `info["final_observation"]`.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import optax

from metarl_cli.errors import UserError
from metarl_cli.nets import MLP
from metarl_cli.rl.replay import Transition


class QNetwork(NamedTuple):
    init: Callable  # key -> params
    values: Callable  # (params, obs[..., obs_dim]) -> Q[..., n_actions]


def make_q_network(obs_dim: int, n_actions: int, hidden: Sequence[int]) -> QNetwork:
    net = MLP(tuple(hidden), n_actions)
    return QNetwork(init=lambda key: net.init(key, jnp.zeros((obs_dim,))), values=net.apply)


def family_q_network(family, hidden: Sequence[int]) -> QNetwork:
    """The Q-network for a family's observations and actions; a family with continuous actions is refused."""
    if not family.discrete:
        raise UserError(f"{family.name} has continuous actions; value-based algorithms (dqn, maml-dqn) need discrete ones")
    return make_q_network(family.obs_dim, family.action_dim, hidden)


def epsilon_greedy(q_values: jax.Array, epsilon: jax.Array, key: jax.Array) -> jax.Array:
    """Greedy actions, each replaced by a uniformly random one with probability epsilon."""
    k_explore, k_random = jax.random.split(key)
    batch, n_actions = q_values.shape[:-1], q_values.shape[-1]
    random_actions = jax.random.randint(k_random, batch, 0, n_actions)
    explore = jax.random.uniform(k_explore, batch) < epsilon
    return jnp.where(explore, random_actions, jnp.argmax(q_values, axis=-1))


def linear_epsilon(step: jax.Array, start: float, end: float, decay_steps: float) -> jax.Array:
    """start -> end linearly over `decay_steps` env steps, then end."""
    frac = jnp.clip(step / jnp.maximum(decay_steps, 1.0), 0.0, 1.0)
    return start + frac * (end - start)


def td_targets(q: QNetwork, target_params, online_params, reward, next_obs, terminated, gamma: float, double: bool) -> jax.Array:
    """r + gamma * (1 - terminated) * Q_target(s', a*), a* = argmax of Q_target (or of Q_online: Double DQN)."""
    next_target = q.values(target_params, next_obs)
    if double:
        best = jnp.argmax(q.values(online_params, next_obs), axis=-1)
    else:
        best = jnp.argmax(next_target, axis=-1)
    next_value = jnp.take_along_axis(next_target, best[..., None], axis=-1)[..., 0]
    not_terminal = 1.0 - terminated.astype(jnp.float32)
    return jax.lax.stop_gradient(reward + gamma * not_terminal * next_value)


def td_regression(q: QNetwork, params, obs, action, targets, huber: bool):
    """Mean TD error (squared, or Huber) of Q(s, a) against fixed targets; aux: mean Q(s, a)."""
    chosen = jnp.take_along_axis(q.values(params, obs), action[..., None].astype(jnp.int32), axis=-1)[..., 0]
    errors = optax.huber_loss(chosen, targets) if huber else (chosen - targets) ** 2
    return jnp.mean(errors), jnp.mean(chosen)


def td_loss(q: QNetwork, params, target_params, batch: Transition, gamma: float, double: bool, huber: bool):
    """DQN's loss on a replay batch: `td_regression` onto `td_targets` from the target network."""
    targets = td_targets(q, target_params, params, batch.reward, batch.next_obs, batch.terminated, gamma, double)
    return td_regression(q, params, batch.obs, batch.action, targets, huber)


def update_target(target_params, online_params, tau: float):
    """tau * online + (1 - tau) * target (tau = 1: a hard copy)."""
    if tau == 1.0:
        return online_params
    return optax.incremental_update(online_params, target_params, tau)
