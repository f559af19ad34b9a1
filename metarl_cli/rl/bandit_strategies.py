"""Classic strategies for k-armed Bernoulli bandits: the baselines of RL^2 (Duan et al. 2016, Table 1).

A task is a vector of arm probabilities p (one row of `probs`, (tasks, k)); a trial is `pulls` pulls,
each paying a Bernoulli(p[arm]) reward drawn from the key; a strategy's score on a task is its total
reward. Every strategy sees only each arm's successes s and failures f so far, and every one breaks
ties uniformly at random (so the first pull, where all arms tie, is uniform):

- greedy: the arm with the highest posterior mean under the Beta(1, 1) prior, (s + 1) / (s + f + 2).
- epsilon-greedy: with probability epsilon a uniformly random arm, else greedy as above.
- ucb1: each untried arm first (its index is infinite), then the arm maximising
  s / n + sqrt(c * ln t / n), with n = s + f its pulls and t the pulls so far (Auer et al. 2002 use
  c = 2).
- thompson: draw theta_i ~ Beta(s_i + 1, f_i + 1) for every arm and pull the argmax.
- gittins: the finite-horizon Gittins index of the arm's posterior Beta(s + 1, f + 1) with m pulls
  left (Kaufmann 2016, "On Bayesian index policies for sequential resource allocation"). It is the
  calibration reward lambda: the largest per-pull reward of an irrevocable retirement option at which
  playing the arm (and retiring optimally later) is still at least as good as retiring now for
  lambda * m. With one pull left it is the posterior mean.

Gittins and Thompson sampling use the true prior of the uniform task distribution, p_i ~ U[0, 1].
epsilon-greedy and ucb1 have a hyperparameter; `tune` picks it from the grid in `TUNED` on
validation tasks.

Play is one jit-compiled program per (strategy, pulls, tasks, k): `lax.scan` over the pulls of one
task, `vmap` over the tasks; the hyperparameter and the Gittins table are arguments, so a grid of
hyperparameters reuses one program.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from metarl_cli.families.base import per_task

STRATEGIES: tuple[str, ...] = ("greedy", "epsilon-greedy", "ucb1", "thompson", "gittins")
TUNED: dict[str, tuple[float, ...]] = {
    "epsilon-greedy": (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3),  # epsilon
    "ucb1": (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0),  # exploration constant c
}
PARAM_NAME: dict[str, str] = {"epsilon-greedy": "epsilon", "ucb1": "c"}  # as tables label a tuned value
GITTINS_LAMBDAS = 256  # calibration rewards on the grid of the Gittins dynamic programme


def total_rewards(strategy: str, probs: jax.Array, pulls: int, key: jax.Array, param: float | None = None) -> jax.Array:
    """Total reward of `strategy` over `pulls` pulls on each task of `probs` (tasks, k), (tasks,).

    The tasks are played independently (a vmap over tasks of a lax.scan over pulls, one compiled
    program per strategy, pulls and shape of `probs`). `param` is epsilon for epsilon-greedy and c
    for ucb1, which need it (`tune` picks it); the other strategies take None.
    """
    _check(strategy, pulls)
    if (param is None) != (strategy not in TUNED):
        raise ValueError(f"{strategy} needs its hyperparameter" if param is None else f"{strategy} takes no hyperparameter, got {param}")
    probs = jnp.asarray(probs, jnp.float32)
    if probs.ndim != 2:
        raise ValueError(f"bandit probs must be (tasks, arms), got shape {probs.shape}")
    table = _device_gittins_table(pulls) if strategy == "gittins" else jnp.zeros((1,), jnp.float32)
    return _play(strategy, pulls, probs, key, jnp.float32(param or 0.0), table)


def tune(strategy: str, probs: jax.Array, pulls: int, key: jax.Array) -> float | None:
    """The value of `TUNED[strategy]` with the highest mean total reward on `probs`; None for a
    strategy without a hyperparameter.

    `probs` are validation tasks, which the caller draws from the training distribution, never the
    held-out tasks. Every grid value plays with the same key (common random numbers); ties go to the
    first value.
    """
    _check(strategy, pulls)
    if strategy not in TUNED:
        return None
    grid = TUNED[strategy]
    means = [float(jnp.mean(total_rewards(strategy, probs, pulls, key, value))) for value in grid]
    return grid[int(np.argmax(means))]


def _check(strategy: str, pulls: int) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown bandit strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
    if pulls < 1:
        raise ValueError(f"a bandit trial needs at least one pull, got {pulls}")


# Play.


@functools.partial(jax.jit, static_argnames=("strategy", "pulls"))
def _play(strategy: str, pulls: int, probs: jax.Array, key: jax.Array, param: jax.Array, table: jax.Array) -> jax.Array:
    return per_task(functools.partial(_play_task, strategy, pulls, param=param, table=table), probs, key)


def _play_task(strategy: str, pulls: int, probs: jax.Array, key: jax.Array, param: jax.Array, table: jax.Array) -> jax.Array:
    """Total reward of one trial on one task, probs (k,)."""

    def pull(counts, x):
        successes, failures = counts
        t, step_key = x
        k_score, k_tie, k_reward = jax.random.split(step_key, 3)
        score = _score(strategy, successes, failures, t, pulls, k_score, param, table)
        arm = argmax_random_ties(k_tie, score)
        reward = (jax.random.uniform(k_reward) < probs[arm]).astype(jnp.int32)
        return (successes.at[arm].add(reward), failures.at[arm].add(1 - reward)), reward

    zeros = jnp.zeros(probs.shape, jnp.int32)
    _, rewards = jax.lax.scan(pull, (zeros, zeros), (jnp.arange(pulls), jax.random.split(key, pulls)))
    return jnp.sum(rewards).astype(jnp.float32)


def _score(strategy, successes, failures, t, pulls, key, param, table) -> jax.Array:
    """The strategy's score of every arm, (k,), before pull t + 1 of `pulls`; the pull is its
    argmax, ties broken at random."""
    s, f = successes.astype(jnp.float32), failures.astype(jnp.float32)
    posterior_mean = (s + 1.0) / (s + f + 2.0)
    if strategy == "greedy":
        return posterior_mean
    if strategy == "epsilon-greedy":
        explore = jax.random.uniform(key) < param
        return jnp.where(explore, jnp.zeros_like(s), posterior_mean)
    if strategy == "ucb1":
        n = jnp.maximum(s + f, 1.0)
        index = s / n + jnp.sqrt(param * jnp.log(jnp.maximum(t, 1)) / n)
        return jnp.where(s + f == 0, jnp.inf, index)
    if strategy == "thompson":
        return jax.random.beta(key, s + 1.0, f + 1.0)
    return table[gittins_offset(successes, failures, pulls - t, pulls)]


def argmax_random_ties(key: jax.Array, score: jax.Array) -> jax.Array:
    """Index of the largest entry of `score` (k,), uniform among the entries tied for it."""
    tied = score == jnp.max(score)
    return jnp.argmax(jnp.where(tied, jax.random.uniform(key, score.shape), -1.0))


# The finite-horizon Gittins index.
#
# For posterior Beta(s + 1, f + 1), m pulls left and retirement reward lambda per pull, the value of
# the calibration problem is, with p = (s + 1) / (s + f + 2),
#
#     V(s, f, m) = max(lambda * m, p * (1 + V(s + 1, f, m - 1)) + (1 - p) * V(s, f + 1, m - 1)),
#     V(., ., 0) = 0.
#
# Subtracting lambda * m: W = V - lambda * m, the advantage of holding on to the arm over retiring
# now, and C, the advantage of pulling once more (then acting optimally), satisfy
#
#     C(s, f, m) = p - lambda + p * W(s + 1, f, m - 1) + (1 - p) * W(s, f + 1, m - 1),
#     W(s, f, m) = max(0, C(s, f, m)),  W(., ., 0) = 0.
#
# The index of (s, f, m), the largest lambda with C > 0 (pulling strictly better), is the root of C:
# C is convex, piecewise linear and decreasing (its slope, dC/dlambda = -1 + p * G(s + 1, f, m - 1)
# + (1 - p) * G(s, f + 1, m - 1) with G = dW/dlambda, is minus the expected number of pulls before
# retiring, <= -1). A trial only meets states with s + f + m <= pulls (an arm has had at most the
# pulls so far), and the transitions keep s + f + m fixed, so the recursion stays within them. It is
# swept depth by depth, d = s + f from pulls - 1 down to 0: at depth d the states are s = 0..d,
# m = 1..pulls - d, and each needs only depth d + 1. One sweep evaluates C and its slope on a whole
# grid of lambdas at once.


def gittins_table_size(pulls: int) -> int:
    """Number of states (s, f, m) with s + f + m <= pulls and m >= 1."""
    return int(gittins_offset(0, pulls, 1, pulls))


def gittins_offset(s, f, m, pulls: int):
    """Position of state (s, f, m) in `gittins_table(pulls)` (numpy or JAX integers, broadcast).

    Depth d = s + f is the block of states (s', m') for s' = 0..d, m' = 1..pulls - d, row-major; the
    blocks before it hold sum_{i=1..d} i * (pulls + 1 - i) states.
    """
    d = s + f
    tri = d * (d + 1) // 2
    before = (pulls + 1) * tri - tri * (2 * d + 1) // 3
    return before + s * (pulls - d) + m - 1


@functools.lru_cache(maxsize=8)
def gittins_table(pulls: int) -> np.ndarray:
    """The index of every state with s + f + m <= pulls, flat at `gittins_offset` (float32, read-only).

    One backward sweep over the lattice, vectorised over `GITTINS_LAMBDAS` calibration rewards evenly spaced
    on [0, 1]; each state's index is found between the two grid values where C changes sign. Two
    pairs of buffers, reused depth after depth, hold C and its slope (then W and G) of the depth
    being computed and of the one below. Cost ~ pulls^3 / 6 * GITTINS_LAMBDAS: 0.2 s for 100 pulls, 34 to 40 s
    and 0.5 GB for 500 on one CPU (two 2-core machines). With 256 lambdas the indices are within 3e-4 (100 pulls) and
    1.5e-3 (500 pulls) of a 1024-4096-point grid's, and exact where C has at most one kink between
    grid values (all states with m <= 2, most with small m).
    """
    lambdas = GITTINS_LAMBDAS
    grid = np.linspace(0.0, 1.0, lambdas, dtype=np.float32)
    table = np.empty(gittins_table_size(pulls), np.float32)
    widest = max((d + 1) * (pulls - d) for d in range(pulls))
    buffers = np.empty((2, 2, widest * lambdas), np.float32)
    below = None  # (W, G) at depth d + 1, each (d + 2, pulls - d - 1, lambdas)
    for d in range(pulls - 1, -1, -1):
        shape = (d + 1, pulls - d, lambdas)
        cont, cont_slope = (buffer[: np.prod(shape)].reshape(shape) for buffer in buffers[d % 2])
        p = (np.arange(d + 1, dtype=np.float32) + 1.0) / (d + 2.0)
        _continuation(p, grid, below, cont, cont_slope)
        play = cont > 0
        start = gittins_offset(0, d, 1, pulls)
        table[start : start + shape[0] * shape[1]] = _root(cont, cont_slope, play, grid).ravel()
        np.maximum(cont, 0.0, out=cont)  # W
        cont_slope *= play  # G
        below = cont, cont_slope
    table.flags.writeable = False
    return table


def _continuation(p, grid, below, cont, cont_slope):
    """C and dC/dlambda at one depth into `cont` and `cont_slope`, (d + 1, pulls - d, lambdas), from
    `below`, W and G one depth down. m = 1 (row 0) has nothing after the pull: C = p - lambda."""
    cont[:, 0] = p[:, None] - grid
    cont_slope[:, 0] = -1.0
    if below is not None:
        advantage, slope = below
        _expect(p, advantage, out=cont[:, 1:])
        cont[:, 1:] += cont[:, :1]
        _expect(p, slope, out=cont_slope[:, 1:])
        cont_slope[:, 1:] -= 1.0


def _expect(p, after, out):
    """p * after[s + 1] + (1 - p) * after[s]: the expectation over the pull's outcome, into `out`."""
    np.subtract(after[1:], after[:-1], out=out)
    out *= p[:, None, None]
    out += after[:-1]


def _root(cont, cont_slope, play, grid):
    """Root in lambda of each state's C, (d + 1, m), from its values and slopes on the grid.

    `play` is C > 0. C > 0 at lambda = 0 and C < 0 at lambda = 1 and it decreases, so it changes
    sign between grid[j - 1] and grid[j], j the number of grid values where C > 0. C is convex: the
    tangents at both ends lie below it and their zeros are lower bounds of the root, the chord lies
    above it and its zero is an upper bound. The larger tangent zero, capped by the chord's, is
    exact when C has at most one kink in between.
    """
    j = np.count_nonzero(play, axis=-1)[..., None]
    lo, hi = grid[j[..., 0] - 1], grid[j[..., 0]]
    c_lo, c_hi = (np.take_along_axis(cont, i, axis=-1)[..., 0] for i in (j - 1, j))
    g_lo, g_hi = (np.take_along_axis(cont_slope, i, axis=-1)[..., 0] for i in (j - 1, j))
    tangents = np.maximum(lo - c_lo / g_lo, hi - c_hi / g_hi)
    chord = lo + (hi - lo) * c_lo / (c_lo - c_hi)
    return np.minimum(tangents, chord)


@functools.lru_cache(maxsize=2)
def _device_gittins_table(pulls: int) -> jax.Array:
    return jnp.asarray(gittins_table(pulls))
