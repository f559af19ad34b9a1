"""MAML's view of an RL task family: support and query batches are rollouts of the current policy,
the loss is minus the DiCE surrogate with a linear feature baseline, the score is episode return."""

from __future__ import annotations

from metarl_cli.families import Family
from metarl_cli.meta import Learner
from metarl_cli.nets import PolicyFns
from metarl_cli.rl.baseline import linear_baseline
from metarl_cli.rl.dice import dice_objective
from metarl_cli.rl.rollout import Trajectory, first_episode_return, rollout


def policy_gradient_loss(policy: PolicyFns, gamma: float):
    def loss(params, traj: Trajectory):
        log_probs = policy.log_prob(params, traj.obs, traj.actions)
        return -dice_objective(log_probs, traj, linear_baseline(traj, gamma), gamma)

    return loss


def rl_learner(family: Family, policy: PolicyFns, lanes: int, horizon: int, gamma: float) -> Learner:
    def sample(params, task, key):
        return rollout(family.env, policy.sample, params, task, key, lanes, horizon)

    return Learner(
        support=sample,
        query=sample,
        loss=policy_gradient_loss(policy, gamma),
        score=first_episode_return,
        fresh_support_each_step=True,
    )
