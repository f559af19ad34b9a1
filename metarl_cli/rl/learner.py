"""MAML's view of an RL task family: support and query batches are rollouts of the current policy,
the loss is minus a DiCE or LVC surrogate with a linear feature baseline, the score is episode return."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from metarl_cli.families import Family
from metarl_cli.meta import Learner
from metarl_cli.nets import PolicyFns
from metarl_cli.rl.baseline import linear_baseline, reward_to_go
from metarl_cli.rl.dice import OBJECTIVES
from metarl_cli.rl.rollout import Trajectory, first_episode_return, rollout


def advantage_scale(traj: Trajectory, baseline: jax.Array, gamma: float) -> jax.Array:
    """1 / std of the batch's discounted advantages, as a constant (not differentiated).

    Multiplying the surrogate by it normalises the step size across tasks whose returns differ in
    scale, as rllab's centred advantages do for MAML; every derivative stays exact for the
    objective scaled by that constant.
    """
    returns = reward_to_go(traj.rewards, traj.dones, gamma)
    advantages = gamma ** traj.episode_time.astype(returns.dtype) * (returns - baseline)
    return jax.lax.stop_gradient(1.0 / (jnp.std(advantages) + 1e-8))


def policy_gradient_loss(policy: PolicyFns, gamma: float, normalize: bool, estimator: str):
    objective = OBJECTIVES[estimator]

    def loss(params, traj: Trajectory):
        log_probs = policy.log_prob(params, traj.obs, traj.actions)
        baseline = linear_baseline(traj, gamma)
        scale = advantage_scale(traj, baseline, gamma) if normalize else 1.0
        return -scale * objective(log_probs, traj, baseline, gamma)

    return loss


def rl_learner(
    family: Family, policy: PolicyFns, lanes: int, horizon: int, gamma: float, normalize: bool, estimator: str
) -> Learner:
    def sample(params, task, key):
        return rollout(family.env, policy.sample, params, task, key, lanes, horizon)

    return Learner(
        support=sample,
        query=sample,
        loss=policy_gradient_loss(policy, gamma, normalize, estimator),
        score=first_episode_return,
        fresh_support_each_step=True,
    )
