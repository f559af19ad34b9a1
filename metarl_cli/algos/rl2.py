"""RL^2 (Duan et al. 2016): a recurrent agent meta-trained with recurrent PPO over trials of tasks.

One iteration: draw `meta_batch` train-split tasks, run one trial on each (the memory starts at
zero and carries across the trial's `episodes` episodes), then take the PPO update over the trials;
from `large_batch_at` on, over `large_meta_batch` trials.
Fast adaptation happens inside the memory, with no gradient step at test time: `metarl eval` scores
each episode of a trial on held-out tasks (the in-context adaptation curve) and the trial's total,
beside a uniformly random policy and, on bandits, the classic strategies of the paper's Table 1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from metarl_cli.algos.base import Algorithm, Phase
from metarl_cli.optim import clipped_adam
from metarl_cli.config import Rl2Config
from metarl_cli.errors import UserError
from metarl_cli.families import Family
from metarl_cli.rl.ppo import PPOSettings, ppo_update
from metarl_cli.rl.recurrent import make_recurrent_agent
from metarl_cli.rl.trials import episode_returns, run_trials


def make_rl2(config: Rl2Config, family: Family) -> Algorithm:
    if not family.discrete:  # (regression families are refused before: rl2 has no config for them)
        raise UserError(f"rl2 needs a family with discrete actions; '{family.name}' has none")
    episodes, horizon = config.episodes, family.horizon
    # Values in units of the discounted horizon (at most the trial): returns of order one per unit reward.
    value_scale = 1.0 / max(1.0 - config.gamma, 1.0 / (episodes * horizon))
    agent = make_recurrent_agent(family.obs_dim, family.action_dim, config.hidden, config.cell, value_scale,
                                 config.multiplicative_inputs, config.gated_heads)
    optimizer = clipped_adam(config.lr, config.max_grad_norm, eps=1e-5)
    if config.entropy_anneal:  # to 0 over the first phase: by a second phase's start or the run's end
        first_phase = min(config.second_phase_at, config.iterations) if config.second_phase_at else config.iterations
        entropy_schedule = optax.linear_schedule(config.entropy_coef, 0.0, first_phase)
    else:
        entropy_schedule = optax.constant_schedule(config.entropy_coef)

    def ppo_settings(iteration):
        entropy_coef, lr_scale = entropy_schedule(iteration), None
        if config.second_phase_at:  # the second phase: Adam's step scaled to second_phase_lr
            second = iteration >= config.second_phase_at
            entropy_coef = jnp.where(second, config.second_phase_entropy_coef, entropy_coef)
            lr_scale = jnp.where(second, config.second_phase_lr / config.lr, 1.0)
        return PPOSettings(config.gamma, config.gae_lambda, config.clip, config.epochs, config.minibatches,
                           entropy_coef, config.value_coef, value_scale, lr_scale)

    def trials(params, tasks, key, uniform=False):
        return run_trials(family.env, agent, params, tasks, key, episodes, horizon, uniform)

    def init(key):
        k_params, k_run = jax.random.split(key)
        params = agent.init(k_params)
        return {"params": params, "opt_state": optimizer.init(params), "key": k_run, "iteration": jnp.zeros((), jnp.int32)}

    def step_over(meta_batch: int):
        """One iteration on `meta_batch` trials."""

        def step(state):
            key, k_tasks, k_trials, k_update = jax.random.split(state["key"], 4)
            tasks = family.sample(k_tasks, meta_batch, "train")
            batch = trials(state["params"], tasks, k_trials)
            params, opt_state, metrics = ppo_update(state["params"], state["opt_state"], optimizer, agent.unroll, batch,
                                                    k_update, ppo_settings(state["iteration"]))
            per_episode = episode_returns(batch, episodes).mean(axis=0)
            # The iteration's env_steps are every lane's episodes * horizon simulated steps; on a family whose
            # episodes end early, those after a trial's last episode are masked out: these are the ones used.
            metrics = {**metrics, "return": per_episode.sum(), "first_episode": per_episode[0], "last_episode": per_episode[-1],
                       "trial_steps": jnp.sum(batch.valid)}
            return {"params": params, "opt_state": opt_state, "key": key, "iteration": state["iteration"] + 1}, metrics

        return step

    @jax.jit
    def scores(params, tasks, key):
        return episode_returns(trials(params, tasks, key), episodes)

    @jax.jit
    def random_policy_scores(tasks, key):
        return episode_returns(trials(agent.init(key), tasks, key, uniform=True), episodes)

    def adaptation_curve(params, tasks, key, steps: int, lr_scale: float = 1.0):
        """(tasks, episodes): each episode's return within one trial per task; no gradient steps."""
        return scores(params, tasks, key)

    def reference_scores(tasks, key, validation_tasks):
        """Policies that learn nothing across tasks, scored on the same tasks: (label -> (tasks, episodes))."""
        return {"random policy": random_policy_scores(tasks, key), **family.classic_strategy_scores(tasks, key, validation_tasks, episodes)}

    steps_per_trial = episodes * horizon
    large_batch = None
    if config.large_batch_at:
        large_batch = Phase(config.large_batch_at, step_over(config.large_meta_batch), config.large_meta_batch * steps_per_trial)
    return Algorithm(
        init=init,
        step=step_over(config.meta_batch),
        adaptation_curve=adaptation_curve,
        init_params=agent.init,
        env_steps_per_iteration=config.meta_batch * steps_per_trial,
        score_name="return",
        progress_metrics=("return", "entropy", "value_loss"),
        best_metric="return",
        trial_episodes=episodes,
        reference_scores=reference_scores,
        later_phase=large_batch,
    )
