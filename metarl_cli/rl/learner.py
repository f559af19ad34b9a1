"""MAML's view of an RL task family: support and query batches are rollouts of the current policy,
the loss is minus a DiCE or LVC surrogate with a linear feature baseline, the score is episode return.

What does not depend on the parameters being differentiated (reward-to-go, the baseline fit, the
advantages and their scale) is computed once when a batch is sampled, not in every pass of the
loss."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from metarl_cli.families import Family
from metarl_cli.meta import Learner, Model, cpu_tasks_per_pass
from metarl_cli.nets import PolicyFns, make_policy
from metarl_cli.rl.baseline import discounted_advantages, linear_baseline, reward_to_go
from metarl_cli.rl.dice import dice_objective, lvc_objective
from metarl_cli.rl.rollout import Trajectory, first_episode_return, rollout


def advantage_scale(advantages: jax.Array) -> jax.Array:
    """1 / std of the batch's discounted advantages, as a constant (not differentiated).

    Multiplying the surrogate by it normalises the step size across tasks whose returns differ in
    scale, as rllab's normalised advantages do for MAML (which rllab also centres; here the baseline
    does); every derivative stays exact for the objective scaled by that constant.
    """
    return jax.lax.stop_gradient(1.0 / (jnp.std(advantages) + 1e-8))


class PolicyGradientBatch(NamedTuple):
    traj: Trajectory
    baseline: jax.Array  # (T, L) fitted reward-to-go
    advantages: jax.Array  # (T, L) discounted advantages
    scale: jax.Array  # () constant multiplying the surrogate


def policy_gradient_loss(policy: PolicyFns, gamma: float, estimator: str):
    def surrogate(log_probs, batch: PolicyGradientBatch):
        if estimator == "dice":
            return dice_objective(log_probs, batch.traj, batch.baseline, gamma)
        return lvc_objective(log_probs, batch.advantages)

    def loss(params, batch: PolicyGradientBatch):
        log_probs = policy.log_prob(params, batch.traj.obs, batch.traj.actions)
        return -batch.scale * surrogate(log_probs, batch)

    return loss


def rl_learner(
    family: Family, policy: PolicyFns, width: int, lanes: int, horizon: int, gamma: float, normalize: bool, estimator: str
) -> Learner:
    """`width`: the policy's widest hidden layer, which sizes the passes on a CPU (`cpu_tasks_per_pass`)."""

    def sample(params, task, key):
        traj = rollout(family.env, policy.sample, params, task, key, lanes, horizon)
        returns = reward_to_go(traj.rewards, traj.dones, gamma)
        baseline = linear_baseline(traj, returns)
        advantages = discounted_advantages(traj, returns, baseline, gamma)
        scale = advantage_scale(advantages) if normalize else jnp.ones(())
        return PolicyGradientBatch(traj, baseline, advantages, scale)

    return Learner(
        support=sample,
        query=sample,
        loss=policy_gradient_loss(policy, gamma, estimator),
        score=lambda params, batch: first_episode_return(batch.traj),
        tasks_per_pass=cpu_tasks_per_pass(lanes * horizon, width),
    )


def rl_model(family: Family, hidden, lanes: int, horizon: int, gamma: float, normalize: bool, estimator: str) -> Model:
    policy = make_policy(family.obs_dim, family.action_dim, family.discrete, hidden)
    learner = rl_learner(family, policy, max(hidden), lanes, horizon, gamma, normalize, estimator)
    return Model(
        init=policy.init, learner=learner, eval_learner=learner, score_name="return", maximize=True, env_steps_per_batch=lanes * horizon
    )
