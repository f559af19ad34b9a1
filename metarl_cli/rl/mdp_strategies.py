"""Classic strategies for random tabular MDPs: baselines of RL^2 (Duan et al. 2016, Table 2).

Each strategy keeps, for every state s and action a, the number of times it took a in s and the sum
of the rewards that paid, across the whole trial (its memory, like the agent's, carries across the
trial's episodes), and acts on the current state alone; none plans over the transitions. Ties
break uniformly at random.

- greedy: the action with the highest empirical mean reward in the current state, an untried
  action valued 0 (so an action whose first reward was positive is kept until its mean drops
  below 0). This is the reading of "greedy" that lands on the paper's figure.
- epsilon-greedy: with probability epsilon a uniformly random action, else greedy as above;
  epsilon is tuned on validation tasks (`tune_epsilon`).
- posterior greedy: the action with the highest posterior mean reward under the tasks' true prior
  (mean rewards ~ N(prior_mean, prior_var), unit reward noise), so an untried action is valued at
  the prior mean.
- state-blind posterior greedy: posterior greedy on each action's counts and rewards pooled over
  all states, so it learns which actions pay on the whole, not where. It marks what a memory of
  (action, reward) pairs alone can score.

The strategies play on the family's own gymnax environment (its `step`, auto-resets included), so
their rewards and transitions are the agent's. One jit-compiled program per (strategy, episodes,
horizon, shape): a `lax.scan` over the trial's steps, a `vmap` over the tasks.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from metarl_cli.families.base import per_task
from metarl_cli.rl.bandit_strategies import TUNED

POSTERIOR_STRATEGIES: tuple[str, ...] = ("posterior greedy", "state-blind posterior greedy")
STRATEGIES: tuple[str, ...] = ("greedy", "epsilon-greedy", *POSTERIOR_STRATEGIES)
EPSILONS: tuple[float, ...] = TUNED["epsilon-greedy"]  # the grid the bandit's epsilon-greedy is tuned on


def strategy_returns(strategy: str, env, tasks, episodes: int, horizon: int, key: jax.Array,
                     epsilon: float | None = None, prior: tuple[float, float] | None = None) -> jax.Array:
    """(tasks, episodes): the return of each episode of one trial per task (`tasks`: batched EnvParams
    with `mean_reward` (tasks, states, actions)). epsilon-greedy needs its `epsilon`, the
    posterior-greedy strategies the tasks' `prior` (mean, variance) of the mean rewards; the others
    take neither."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown tabular-MDP strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
    for name, value, used in (("epsilon", epsilon, strategy == "epsilon-greedy"), ("prior", prior, strategy in POSTERIOR_STRATEGIES)):
        if (value is None) == used:
            raise ValueError(f"{strategy} needs {name}" if used else f"{strategy} takes no {name}, got {value}")
    prior_mean, prior_var = prior or (0.0, 1.0)
    return _play(strategy, env, episodes, horizon, tasks, key, jnp.float32(epsilon or 0.0), jnp.float32(prior_mean),
                 jnp.float32(prior_var))


def tune_epsilon(env, tasks, episodes: int, horizon: int, key: jax.Array) -> float:
    """The epsilon of `EPSILONS` with the highest mean trial return on `tasks` (validation tasks drawn
    from the training distribution); every value plays with the same key, ties go to the first."""
    means = [float(jnp.mean(strategy_returns("epsilon-greedy", env, tasks, episodes, horizon, key, eps).sum(axis=1)))
             for eps in EPSILONS]
    return EPSILONS[int(np.argmax(means))]


@functools.partial(jax.jit, static_argnames=("strategy", "env", "episodes", "horizon"))
def _play(strategy, env, episodes, horizon, tasks, key, epsilon, prior_mean, prior_var):
    play = functools.partial(_play_task, strategy, env, episodes, horizon, epsilon=epsilon, prior_mean=prior_mean,
                             prior_var=prior_var)
    return per_task(play, tasks, key)


def _action_values(strategy, counts, sums, state, prior_mean, prior_var):
    """The value of each action in `state` for the strategy, from the (states, actions) counts and reward sums."""
    if strategy == "state-blind posterior greedy":
        counts, sums = counts.sum(axis=0), sums.sum(axis=0)  # one pool per action, wherever it was taken
    else:
        counts, sums = counts[state], sums[state]
    if strategy in POSTERIOR_STRATEGIES:
        # Normal prior, unit-variance rewards: the posterior mean weighs the prior as 1 / prior_var pulls.
        return (prior_mean / prior_var + sums) / (1.0 / prior_var + counts)
    return jnp.where(counts > 0, sums / jnp.maximum(counts, 1.0), 0.0)


def _play_task(strategy, env, episodes, horizon, task, key, epsilon, prior_mean, prior_var):
    states, actions = task.mean_reward.shape
    k_reset, k_steps = jax.random.split(key)
    obs, env_state = env.reset(k_reset, task)

    def body(carry, step_key):
        obs, env_state, counts, sums = carry
        k_tie, k_explore, k_random, k_env = jax.random.split(step_key, 4)
        state = jnp.argmax(obs)
        values = _action_values(strategy, counts, sums, state, prior_mean, prior_var)
        action = jax.random.categorical(k_tie, jnp.where(values == values.max(), 0.0, -jnp.inf))
        if strategy == "epsilon-greedy":
            explore = jax.random.uniform(k_explore) < epsilon
            action = jnp.where(explore, jax.random.randint(k_random, (), 0, actions), action)
        obs, env_state, reward, _, _, _ = env.step(k_env, env_state, action, task)
        counts = counts.at[state, action].add(1.0)
        sums = sums.at[state, action].add(reward)
        return (obs, env_state, counts, sums), reward

    zeros = jnp.zeros((states, actions))
    _, rewards = jax.lax.scan(body, (obs, env_state, zeros, zeros), jax.random.split(k_steps, episodes * horizon))
    return rewards.reshape(episodes, horizon).sum(axis=1)
