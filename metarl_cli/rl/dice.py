"""Policy-gradient surrogates whose higher derivatives are meaningful: DiCE and LVC.

DiCE surrogate (Foerster et al. 2018) with the baseline of Mao et al. (2019).

    L = mean over (t, lane) of  MB(S_t) g_t r_t + (1 - MB(log pi_t)) MB(S_t - log pi_t) g_t b_t

where MB(x) = exp(x - stop_gradient(x)), S_t sums log pi over the episode up to and including step
t, g_t is gamma to the time within the episode and b_t a baseline. Its value is the mean discounted
reward and every order of its derivative is an unbiased estimate of that order of derivative of an
episode's expected discounted return. DiCE's own baseline term, (1 - MB(log pi_t)) g_t b_t, reduces
the variance of the first derivative alone; Mao et al.'s factor MB(S_t - log pi_t), over the
episode's earlier actions, adds the baseline to the second derivative's products of scores at
different steps too, where most of the meta-gradient's variance is (its first derivative is
DiCE's). (S_t restarts with each episode of a rollout window, as in rllab: the window's
later episodes count as episodes of their own, not through how long the earlier ones lasted.)
That is what makes MAML-RL's meta-gradient correct: differentiating the inner policy-gradient step
again yields the score-function term that accounts for the support episodes' dependence on the
parameters, which a plain REINFORCE surrogate (log pi * return) silently drops.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from metarl_cli.rl.rollout import Trajectory


def magic_box(x: jax.Array) -> jax.Array:
    return jnp.exp(x - jax.lax.stop_gradient(x))


def episode_cumsum(x: jax.Array, episode_time: jax.Array) -> jax.Array:
    """Cumulative sum of x along time (axis 0) restarting at each episode start, (T, L)."""
    total = jnp.cumsum(x, axis=0)
    before_start = jnp.take_along_axis(total - x, jnp.arange(x.shape[0])[:, None] - episode_time, axis=0)
    return total - before_start


def dice_objective(log_probs: jax.Array, traj: Trajectory, baseline: jax.Array, gamma: float, weights=None) -> jax.Array:
    """DiCE surrogate of the mean discounted reward per step over the lanes, or their `weights`-weighted
    sum where given (L,): the exact-gradient checks weigh each enumerated episode by its probability."""
    discount = gamma ** traj.episode_time.astype(traj.rewards.dtype)
    s = episode_cumsum(log_probs, traj.episode_time)
    per_step = magic_box(s) * discount * traj.rewards + (1.0 - magic_box(log_probs)) * magic_box(s - log_probs) * discount * baseline
    return _mean_per_step(per_step, weights)


def lvc_objective(log_probs: jax.Array, advantages: jax.Array, weights=None) -> jax.Array:
    """ProMP's low-variance curvature surrogate (Rothfuss et al. 2019): sum_t MB(log pi_t) A_t.

    With A_t the discounted advantages (`baseline.discounted_advantages`), its first derivative is
    DiCE's (its value is the summed advantages, not the return); its Hessian keeps each step's own
    score terms and drops the products of scores at different steps, trading a little bias for much
    less variance in the second-order MAML gradient. `weights` as for `dice_objective`.
    """
    return _mean_per_step(magic_box(log_probs) * jax.lax.stop_gradient(advantages), weights)


def _mean_per_step(per_step: jax.Array, weights) -> jax.Array:
    """Sum over time / T, then the mean over lanes or their `weights`-weighted sum."""
    per_lane = jnp.sum(per_step, axis=0) / per_step.shape[0]
    if weights is None:
        return jnp.mean(per_lane)
    return jnp.sum(per_lane * weights)
