"""The tabular-MDP strategies against expected returns derived by hand, played on the family's env.

The case: one episode of two steps in an MDP whose every transition leads back to state 0, with
mean rewards m = (2, -1, 0.5, -2, 1) in state 0. The first action is uniform for every strategy
(all actions tie), so it pays mean(m) = 0.1 on average. Its reward r = m_a + N(0, 1) then decides
the second:

- greedy (untried actions valued 0): keeps a when r > 0, probability Phi(m_a); otherwise the four
  untried actions tie at 0 and it picks one uniformly. Second step: the average over a of
  Phi(m_a) m_a + (1 - Phi(m_a)) mean(m without a).
- posterior greedy (prior N(mu0, v)): a's posterior mean (mu0 / v + r) / (1 / v + 1) beats the
  untried actions' mu0 exactly when r > mu0, so the same with Phi(m_a - mu0).
- epsilon-greedy: greedy's second step with probability 1 - eps, a uniform action otherwise.
- state-blind posterior greedy: as posterior greedy, every step being in state 0.

A second case, with the second step in another state, tells the state-blind strategy from
posterior greedy.

Means over 20,000 copies must be within 4 standard errors of the derivation.
"""

from __future__ import annotations

import functools
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metarl_cli.families import get_family
from metarl_cli.rl import mdp_strategies
from metarl_cli.rl.mdp_strategies import EPSILONS, _action_values, strategy_returns

COPIES = 20_000
MEANS = np.array([2.0, -1.0, 0.5, -2.0, 1.0])


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _second_step(threshold: float) -> float:
    """Expected second reward when the first action a is kept iff its reward exceeds `threshold`."""
    total = 0.0
    for a, m in enumerate(MEANS):
        keep = _phi(m - threshold)
        total += keep * m + (1.0 - keep) * np.delete(MEANS, a).mean()
    return total / len(MEANS)


def _two_step_tasks(next_state: int = 0):
    """Two-step episodes from state 0 where every transition leads to `next_state`; states 0 and 1
    both have mean rewards MEANS."""
    family = get_family("tabular-mdp")
    states, actions = family.base_params.mean_reward.shape
    mean_reward = jnp.zeros((COPIES, states, actions)).at[:, :2, :].set(MEANS)
    transitions = jnp.zeros((COPIES, states, actions, states)).at[..., next_state].set(1.0)
    return family, family.base_params.replace(mean_reward=mean_reward, transitions=transitions,
                                              max_steps_in_episode=jnp.full((COPIES,), 2))


@pytest.mark.parametrize("strategy, kwargs, expected", [
    ("greedy", {}, MEANS.mean() + _second_step(0.0)),
    ("epsilon-greedy", {"epsilon": 0.5}, MEANS.mean() + 0.5 * _second_step(0.0) + 0.5 * MEANS.mean()),
    ("epsilon-greedy", {"epsilon": 0.0}, MEANS.mean() + _second_step(0.0)),
    ("epsilon-greedy", {"epsilon": 0.1}, MEANS.mean() + 0.9 * _second_step(0.0) + 0.1 * MEANS.mean()),
    ("posterior greedy", {"prior": (1.0, 1.0)}, MEANS.mean() + _second_step(1.0)),
    ("state-blind posterior greedy", {"prior": (1.0, 1.0)}, MEANS.mean() + _second_step(1.0)),
])
def test_strategy_returns_match_their_derivation(strategy, kwargs, expected):
    family, tasks = _two_step_tasks()
    returns = np.asarray(strategy_returns(strategy, family.env, tasks, 1, 2, jax.random.PRNGKey(1), **kwargs))
    assert returns.shape == (COPIES, 1)
    stderr = returns.std() / math.sqrt(COPIES)
    assert abs(returns.mean() - expected) < 4 * stderr, (returns.mean(), expected, stderr)


def test_epsilon_greedy_explores_at_its_rate():
    """Played with the same random numbers as epsilon 0, epsilon 0.1 differs only where it explores:
    on average by 0.1 x (a uniform second step - greedy's). The difference's spread is far below
    either return's, so this tells 0.1 from 0 where the derivation's test above cannot."""
    family, tasks = _two_step_tasks()

    def play(epsilon):
        return np.asarray(strategy_returns("epsilon-greedy", family.env, tasks, 1, 2, jax.random.PRNGKey(1), epsilon=epsilon))

    difference = play(0.1) - play(0.0)
    expected, stderr = 0.1 * (MEANS.mean() - _second_step(0.0)), difference.std() / math.sqrt(COPIES)
    assert abs(difference.mean() - expected) < 4 * stderr and abs(expected) > 6 * stderr, (difference.mean(), expected, stderr)


def test_an_unknown_strategy_and_a_missing_or_stray_epsilon_or_prior_are_refused():
    family, tasks = _two_step_tasks()
    play = functools.partial(strategy_returns, env=family.env, tasks=tasks, episodes=1, horizon=2, key=jax.random.PRNGKey(1))
    with pytest.raises(ValueError, match="unknown tabular-MDP strategy"):
        play("ucb1")
    for strategy, options, message in (("epsilon-greedy", {}, "epsilon-greedy needs epsilon"),
                                       ("greedy", {"epsilon": 0.1}, "greedy takes no epsilon, got 0.1"),
                                       ("posterior greedy", {}, "posterior greedy needs prior"),
                                       ("greedy", {"prior": (1.0, 1.0)}, "greedy takes no prior, got (1.0, 1.0)")):
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            play(strategy, **options)


def test_state_blind_strategy_pools_each_action_over_states():
    """The same two steps, but every transition now leads to state 1, whose mean rewards are m
    again. Posterior greedy has no data in state 1 and picks uniformly: mean(m) twice. The
    state-blind strategy pools the first step's reward with its action wherever it was taken, so its
    second step is posterior greedy's second step in the first case."""
    family, tasks = _two_step_tasks(next_state=1)
    expected = {"posterior greedy": 2 * MEANS.mean(), "state-blind posterior greedy": MEANS.mean() + _second_step(1.0)}
    for strategy, value in expected.items():
        returns = np.asarray(strategy_returns(strategy, family.env, tasks, 1, 2, jax.random.PRNGKey(2), prior=(1.0, 1.0)))
        stderr = returns.std() / math.sqrt(COPIES)
        assert abs(returns.mean() - value) < 4 * stderr, (strategy, returns.mean(), value, stderr)


def test_each_episodes_return_sums_its_own_steps():
    """Two episodes of two steps: every action pays 2 on average in state 0, where each episode
    starts, and -1 in state 1, where every transition leads, so each episode pays 2 - 1 = 1 (its
    first and second steps, not the trial's first and third)."""
    family, tasks = _two_step_tasks(next_state=1)
    tasks = tasks.replace(mean_reward=tasks.mean_reward.at[:, 0].set(2.0).at[:, 1].set(-1.0))
    returns = np.asarray(strategy_returns("greedy", family.env, tasks, 2, 2, jax.random.PRNGKey(3)))
    assert returns.shape == (COPIES, 2)
    stderr = returns.std(axis=0) / math.sqrt(COPIES)
    assert np.all(np.abs(returns.mean(axis=0) - 1.0) < 4 * stderr), (returns.mean(axis=0), stderr)


def test_posterior_greedy_values_each_action_at_its_posterior_mean():
    """Prior N(1, 4), unit reward noise: an action taken n times for a reward sum s has posterior
    mean (4 s + 1) / (4 n + 1); an untried one the prior mean 1. State-blind pools both states."""
    counts = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 2.0]])
    sums = jnp.array([[5.0, 0.0, 0.0], [0.0, 3.0, 1.0]])
    posterior = lambda n, s: (4.0 * s + 1.0) / (4.0 * n + 1.0)  # noqa: E731
    expected = {"posterior greedy": [1.0, posterior(1, 3.0), posterior(2, 1.0)],
                "state-blind posterior greedy": [posterior(1, 5.0), posterior(1, 3.0), posterior(2, 1.0)],
                "greedy": [0.0, 3.0, 0.5]}
    for strategy, values in expected.items():
        np.testing.assert_allclose(_action_values(strategy, counts, sums, 1, 1.0, 4.0), values, rtol=1e-6, err_msg=strategy)


def test_epsilon_is_tuned_to_the_grid_value_with_the_highest_validation_return(monkeypatch):
    played = []

    def returns_peaking_at_0_1(strategy, env, tasks, episodes, horizon, key, epsilon):
        played.append((strategy, epsilon, tuple(np.asarray(key))))
        return jnp.full((3, episodes), -((epsilon - 0.1) ** 2))

    monkeypatch.setattr(mdp_strategies, "strategy_returns", returns_peaking_at_0_1)
    assert mdp_strategies.tune_epsilon(None, None, 2, 4, jax.random.PRNGKey(0)) == 0.1
    assert [eps for _, eps, _ in played] == list(EPSILONS)
    assert {strategy for strategy, _, _ in played} == {"epsilon-greedy"} and len({key for _, _, key in played}) == 1
