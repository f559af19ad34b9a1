"""The classic bandit strategies against expected total rewards derived by hand, and the Gittins
index table against an independent computation and its known properties.

The hand-derived cases play the two-armed bandit probs = (0, 1): arm 0 never pays, arm 1 always
does. Every strategy's mean over 20,000 copies must be within 4 standard errors of the derivation
(exactly equal where the total is deterministic). Most of them share one compiled shape per
strategy: (20,000 tasks, 2 arms, 2 pulls).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metarl_cli.rl.bandit_strategies import STRATEGIES, TUNED, _score, gittins_offset, gittins_table, gittins_table_size, total_rewards, tune


def gittins_index(pulls: int, s, f, m) -> np.ndarray:
    """Finite-horizon Gittins index of posterior Beta(s + 1, f + 1) with m pulls left, read from the
    strategy's table for `pulls` (needs m >= 1 and s + f + m <= pulls)."""
    return gittins_table(pulls)[gittins_offset(np.asarray(s), np.asarray(f), np.asarray(m), pulls)]


COPIES = 20_000
TWO_ARMS = jnp.tile(jnp.array([[0.0, 1.0]]), (COPIES, 1))

# Expected total reward on probs = (0, 1) with 2 pulls. The first pull is uniform for every strategy
# (all arms tie), so it pays 1/2 on average; then:
#   greedy: after arm 1 paid, its posterior mean 2/3 beats arm 0's 1/2: stays, total 2; after arm 0
#     failed, its 1/3 loses to arm 1's 1/2: switches, total 1. 1.5 on average.
#   epsilon-greedy (eps = 0.1): the second pull is greedy (arm 1 either way, as above) with
#     probability 1 - eps and uniform otherwise: 1/2 + (1 - eps) + eps / 2 = 1.45.
#   ucb1: each arm once, whatever the order: exactly 1.
#   thompson: after arm 1 paid, arm 1 is pulled again when Beta(2, 1) > U, probability 2/3; after
#     arm 0 failed, arm 1 is pulled when U > Beta(1, 2), probability 2/3: (1 + 2/3) / 2 + (0 + 2/3) / 2
#     = 7/6.
#   gittins: with one pull left the index is the posterior mean, so the second pull is greedy's: 1.5.
TWO_PULLS = {
    "greedy": (None, 1.5),
    "epsilon-greedy": (0.1, 0.5 + 0.9 + 0.05),
    "ucb1": (2.0, 1.0),
    "thompson": (None, 7.0 / 6.0),
    "gittins": (None, 1.5),
}


def assert_mean(rewards: jax.Array, expected: float) -> None:
    """The sample mean is within 4 standard errors of `expected` (exactly it when they don't vary)."""
    rewards = np.asarray(rewards, np.float64)
    mean, se = rewards.mean(), rewards.std() / np.sqrt(rewards.size)
    assert abs(mean - expected) <= 4 * se + 1e-9, f"mean {mean:.4f} +- {se:.4f}, expected {expected:.4f}"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_two_pulls_on_a_sure_and_a_dead_arm(strategy):
    param, expected = TWO_PULLS[strategy]
    rewards = total_rewards(strategy, TWO_ARMS, 2, jax.random.PRNGKey(0), param)
    assert rewards.shape == (COPIES,)
    assert_mean(rewards, expected)
    if strategy == "ucb1":  # each arm once, in either order: no copy differs
        np.testing.assert_array_equal(rewards, 1.0)


@pytest.mark.parametrize("strategy", ["greedy", "gittins"])
def test_ten_pulls_on_a_sure_and_a_dead_arm(strategy):
    # First pull uniform. Greedy: once arm 1 has paid its mean beats arm 0's and only grows, so a
    # start on arm 1 earns n and a start on arm 0 (one failure, then arm 1 for good) earns n - 1:
    # n - 1/2. Gittins: the index grows with successes and falls with failures at any horizon, so
    # (1, 0) beats (0, 0) and (0, 0) beats (0, 1): the same choices, n - 1/2.
    assert_mean(total_rewards(strategy, TWO_ARMS, 10, jax.random.PRNGKey(1)), 9.5)


def test_ucb1_s_index_and_constant_decide_its_pulls():
    # Four pulls on (0, 1): the first two try each arm once (an untried arm's index is infinite), the
    # third goes to arm 1 whatever c (index 1 + sqrt(c ln 2) against sqrt(c ln 2)). Before the fourth
    # arm 1 has paid twice in two pulls, arm 0 nothing in one: indices 1 + sqrt(c ln 3 / 2) and
    # sqrt(c ln 3), so arm 0 is pulled again exactly where c > 1 / (ln 3 (1 - 1/sqrt 2)^2) = 10.6.
    # Every copy then earns exactly 3 (c = 2, and c = 9.5, which would pass the threshold of 8.4 of
    # a clock one pull ahead, ln 4) or exactly 2 (c = 20, and c = 11, short of the 11.7 of an index
    # without the ln t); a random arm would earn 2 on average.
    for c, total in ((2.0, 3.0), (9.5, 3.0), (11.0, 2.0), (20.0, 2.0)):
        rewards = np.asarray(total_rewards("ucb1", TWO_ARMS, 4, jax.random.PRNGKey(5), c))
        np.testing.assert_array_equal(rewards, total)


def test_epsilon_sets_how_often_epsilon_greedy_explores():
    # Two pulls on (0, 1): epsilon = 0 plays greedy's 1.5, epsilon = 1 a random arm's 1.
    for epsilon, expected in ((0.0, 1.5), (1.0, 1.0)):
        assert_mean(total_rewards("epsilon-greedy", TWO_ARMS, 2, jax.random.PRNGKey(6), epsilon), expected)


def test_tune_picks_from_the_grid():
    key = jax.random.PRNGKey(2)
    # Every epsilon plays with the same random numbers, and on (0, 1) an exploring second pull can
    # only lose reward (greedy's second pull always takes arm 1): epsilon = 0 wins.
    assert tune("epsilon-greedy", TWO_ARMS, 2, key) == 0.0
    # UCB1's two pulls try each arm once whatever c, so every c earns exactly 1: all tie, the first wins.
    assert tune("ucb1", TWO_ARMS, 2, key) == TUNED["ucb1"][0]
    for strategy in set(STRATEGIES) - set(TUNED):
        assert tune(strategy, TWO_ARMS, 2, key) is None


@pytest.mark.parametrize("strategy, peak", [("epsilon-greedy", 0.05), ("ucb1", 0.5)])
def test_tune_returns_the_grid_value_with_the_highest_mean_every_value_played_with_one_key(monkeypatch, strategy, peak):
    from metarl_cli.rl import bandit_strategies

    played = []

    def totals_peaking(strategy, probs, pulls, key, value):
        played.append((value, tuple(np.asarray(key))))
        return jnp.full((3,), -((value - peak) ** 2))

    monkeypatch.setattr(bandit_strategies, "total_rewards", totals_peaking)
    assert tune(strategy, TWO_ARMS, 2, jax.random.PRNGKey(0)) == peak
    assert [value for value, _ in played] == list(TUNED[strategy]) and len({key for _, key in played}) == 1
    monkeypatch.setattr(bandit_strategies, "total_rewards", lambda *args: jnp.ones((3,)))  # all tie: the first
    assert tune(strategy, TWO_ARMS, 2, jax.random.PRNGKey(0)) == TUNED[strategy][0]


def test_unknown_strategy_a_trial_without_pulls_and_a_missing_hyperparameter_are_refused():
    with pytest.raises(ValueError, match="unknown bandit strategy"):
        total_rewards("softmax", TWO_ARMS, 2, jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="at least one pull"):
        total_rewards("greedy", TWO_ARMS, 0, jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="ucb1 needs its hyperparameter"):
        total_rewards("ucb1", TWO_ARMS, 2, jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="greedy takes no hyperparameter"):
        total_rewards("greedy", TWO_ARMS, 2, jax.random.PRNGKey(0), 0.1)


def test_greedy_scores_arms_by_their_beta_1_1_posterior_mean():
    # 2 successes and 3 failures: 3/7 (0.43), below an untried arm's 1/2, so greedy tries the new
    # arm; under a Beta(1, 2) prior the order would flip (3/8 against 1/3).
    score = _score("greedy", jnp.array([2, 0]), jnp.array([3, 0]), 5, 10, jax.random.PRNGKey(0), 0.0, jnp.zeros(1))
    np.testing.assert_allclose(score, [3 / 7, 1 / 2], rtol=1e-6)


def test_gittins_beats_greedy_near_the_published_score():
    # Duan et al. (2016), Table 1: Gittins 78.3, greedy 74.8 on 5 arms, 100 pulls, p_i ~ U[0, 1].
    probs = jax.random.uniform(jax.random.PRNGKey(3), (2000, 5))
    key = jax.random.PRNGKey(4)
    gittins = np.asarray(total_rewards("gittins", probs, 100, key))
    greedy = np.asarray(total_rewards("greedy", probs, 100, key))
    assert abs(gittins.mean() - 78.3) < 2.0
    gain = gittins - greedy
    assert gain.mean() > 4 * gain.std() / np.sqrt(gain.size)


def brute_force_index(s: int, f: int, m: int) -> float:
    """The calibration lambda by bisection, each candidate solved by plain recursion in float64."""

    def advantage_of_pulling(lam: float) -> float:
        @functools.lru_cache(maxsize=None)
        def hold(s, f, m):  # V(s, f, m) - lam * m under the optimal stopping rule
            return 0.0 if m == 0 else max(0.0, pull(s, f, m))

        def pull(s, f, m):
            p = (s + 1) / (s + f + 2)
            return p - lam + p * hold(s + 1, f, m - 1) + (1 - p) * hold(s, f + 1, m - 1)

        return pull(s, f, m)

    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if advantage_of_pulling(mid) > 0 else (lo, mid)
    return lo


def reachable_states(pulls: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """s, f, m of every state with m >= 1 and s + f + m <= pulls."""
    s, f, m = np.meshgrid(np.arange(pulls), np.arange(pulls), np.arange(1, pulls + 1), indexing="ij")
    inside = s + f + m <= pulls
    return s[inside], f[inside], m[inside]


def test_gittins_table_matches_brute_force():
    pulls = 12
    s, f, m = reachable_states(pulls)
    assert s.size == gittins_table_size(pulls)
    expected = [brute_force_index(*state) for state in zip(s.tolist(), f.tolist(), m.tolist())]
    np.testing.assert_allclose(gittins_index(pulls, s, f, m), expected, atol=1e-5)


def test_gittins_table_two_pulls_left_in_closed_form():
    # With m = 2: pull once, then keep the arm (posterior mean p1 after a success, p0 after a
    # failure) or retire. For p0 < lambda < p1 pulling is worth p + p * p1 + (1 - p) * lambda against
    # 2 lambda for retiring: they are equal at lambda = p (1 + p1) / (1 + p), which does lie in (p0, p1).
    for s, f in [(0, 0), (1, 0), (0, 1), (3, 5), (7, 2)]:
        p, p1 = (s + 1) / (s + f + 2), (s + 2) / (s + f + 3)
        assert gittins_index(20, s, f, 2) == pytest.approx(p * (1 + p1) / (1 + p), abs=1e-6)


def test_gittins_table_properties():
    pulls = 60
    s, f, m = reachable_states(pulls)
    index = gittins_index(pulls, s, f, m)
    posterior_mean = (s + 1) / (s + f + 2)
    np.testing.assert_allclose(index[m == 1], posterior_mean[m == 1], atol=1e-6)
    assert np.all(index >= posterior_mean - 1e-6)
    room = s + f + m < pulls  # the neighbour one step up in s, f or m is in the table too
    s, f, m, index = s[room], f[room], m[room], index[room]
    assert np.all(gittins_index(pulls, s, f, m + 1) >= index - 1e-6)  # nondecreasing in m
    assert np.all(gittins_index(pulls, s + 1, f, m) > index)  # increasing in s
    assert np.all(gittins_index(pulls, s, f + 1, m) < index)  # decreasing in f
