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

from metarl_cli.families import Family
from metarl_cli.meta import Learner, Model, cpu_tasks_per_pass
from metarl_cli.rl.q_learning import QNetwork, epsilon_greedy, family_q_network, td_regression, td_targets
from metarl_cli.rl.rollout import Trajectory, first_episode_return, rollout


class TDBatch(NamedTuple):
    traj: Trajectory
    targets: jax.Array  # (T, L) fixed TD targets


def q_learner(
    family: Family, q: QNetwork, width: int, lanes: int, horizon: int, gamma: float, epsilon: float, query_epsilon: float
) -> Learner:
    """`width`: the Q-network's widest hidden layer, which sizes the passes on a CPU (`cpu_tasks_per_pass`)."""

    def sampler(eps: float):
        def act(params, obs, key):
            return epsilon_greedy(q.values(params, obs), eps, key)

        def sample(params, task, key):
            traj = rollout(family.env, act, params, task, key, lanes, horizon)
            targets = td_targets(q, params, params, traj.rewards, traj.next_obs, traj.terminated, gamma, double=False)
            return TDBatch(traj, targets)

        return sample

    def loss(params, batch: TDBatch):
        return td_regression(q, params, batch.traj.obs, batch.traj.actions, batch.targets, huber=False)[0]

    return Learner(
        support=sampler(epsilon),
        query=sampler(query_epsilon),
        loss=loss,
        score=lambda params, batch: first_episode_return(batch.traj),
        tasks_per_pass=cpu_tasks_per_pass(lanes * horizon, width),
    )


def q_model(family: Family, hidden, lanes: int, horizon: int, gamma: float, epsilon: float) -> Model:
    q = family_q_network(family, hidden)
    return Model(
        init=q.init,
        learner=q_learner(family, q, max(hidden), lanes, horizon, gamma, epsilon, query_epsilon=epsilon),
        eval_learner=q_learner(family, q, max(hidden), lanes, horizon, gamma, epsilon, query_epsilon=0.0),
        score_name="return",
        maximize=True,
        env_steps_per_batch=lanes * horizon,
    )
