"""MAML's view of a value-based learner (maml-dqn): batches are epsilon-greedy rollouts of the
current Q-network, the loss is the TD error, the score is episode return.

A batch's TD targets r + gamma * (1 - terminated) * max_a Q(s', a) are computed once, when it is
sampled, with the parameters that collected it (they act as the target network): an inner step is
then a regression of Q(s, a) onto fixed targets, and the meta-gradient flows through those steps,
not through the targets. At evaluation the query rollout is greedy, so the score is the adapted
Q-function's own policy.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from metarl_cli.families import Family
from metarl_cli.meta import Learner, Model
from metarl_cli.rl.q_learning import QNetwork, epsilon_greedy, family_q_network
from metarl_cli.rl.rollout import Trajectory, first_episode_return, rollout


class TDBatch(NamedTuple):
    traj: Trajectory
    targets: jax.Array  # (T, L) fixed TD targets


def q_learner(family: Family, q: QNetwork, lanes: int, horizon: int, gamma: float, epsilon: float, query_epsilon: float) -> Learner:
    def sampler(eps: float):
        def act(params, obs, key):
            return epsilon_greedy(q.values(params, obs), eps, key)

        def sample(params, task, key):
            traj = rollout(family.env, act, params, task, key, lanes, horizon)
            next_value = jnp.max(q.values(jax.lax.stop_gradient(params), traj.next_obs), axis=-1)
            targets = traj.rewards + gamma * (1.0 - traj.terminated.astype(jnp.float32)) * next_value
            return TDBatch(traj, jax.lax.stop_gradient(targets))

        return sample

    def loss(params, batch: TDBatch):
        values = q.values(params, batch.traj.obs)
        chosen = jnp.sum(jax.nn.one_hot(batch.traj.actions, values.shape[-1]) * values, axis=-1)
        return jnp.mean((chosen - batch.targets) ** 2)

    return Learner(
        support=sampler(epsilon),
        query=sampler(query_epsilon),
        loss=loss,
        score=lambda params, batch: first_episode_return(batch.traj),
    )


def q_model(family: Family, hidden, lanes: int, horizon: int, gamma: float, epsilon: float) -> Model:
    q = family_q_network(family, hidden)
    return Model(
        init=q.init,
        learner=q_learner(family, q, lanes, horizon, gamma, epsilon, query_epsilon=epsilon),
        eval_learner=q_learner(family, q, lanes, horizon, gamma, epsilon, query_epsilon=0.0),
        score_name="return",
        maximize=True,
        env_steps_per_batch=lanes * horizon,
    )
