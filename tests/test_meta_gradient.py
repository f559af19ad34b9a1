"""The MAML-RL meta-gradient against finite differences on a problem small enough to enumerate.

A two-step MDP with two actions and a tabular softmax policy. Feeding the DiCE loss every
trajectory weighted by its (stop-gradient) probability makes the loss equal the expected return
and its derivatives of every order exact, so the meta-gradient our inner/outer mechanism computes
must equal the finite-difference gradient of J(theta + alpha * grad J(theta)).
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import enable_x64

from metarl_cli.meta import Learner, adaptation_curve, inner_step
from metarl_cli.rl.baseline import discounted_advantages, reward_to_go
from metarl_cli.rl.dice import dice_objective, lvc_objective
from metarl_cli.rl.rollout import Trajectory
from conftest import one_task_meta_loss

GAMMA, ALPHA = 0.9, 0.5
REWARD = np.array([[1.0, -0.5], [0.3, 2.0], [-1.0, 0.7]])  # state x action
BASELINE = np.array([0.4, -0.2, 0.1])  # any state-dependent baseline leaves DiCE exact
PATHS = list(itertools.product([0, 1], [0, 1]))  # (a0, a1); s0 = 0, s1 = 1 + a0


def log_pi(theta, s, a):
    s, a = jnp.asarray(s), jnp.asarray(a)
    return jnp.take_along_axis(jax.nn.log_softmax(theta[s]), a[..., None], axis=-1)[..., 0]


def enumerated_batch(theta):
    states = jnp.array([[0, 1 + a0] for a0, _ in PATHS]).T  # (T=2, L=4)
    actions = jnp.array(PATHS).T
    traj = Trajectory(
        obs=states,
        actions=actions,
        rewards=jnp.asarray(REWARD)[states, actions],
        dones=jnp.array([[False] * 4, [True] * 4]),
        episode_time=jnp.array([[0] * 4, [1] * 4]),
    )
    weights = jnp.exp(jnp.sum(log_pi(theta, states, actions), axis=0))
    return traj, jax.lax.stop_gradient(weights)


def enumerated_advantages(traj):
    returns = reward_to_go(traj.rewards, traj.dones, GAMMA)
    return discounted_advantages(traj, returns, jnp.asarray(BASELINE)[traj.obs], GAMMA)


def dice_loss(theta, batch):
    traj, weights = batch
    logp = log_pi(theta, traj.obs, traj.actions)
    return -dice_objective(logp, traj, jnp.asarray(BASELINE)[traj.obs], GAMMA, weights) * traj.rewards.shape[0]


def naive_loss(theta, batch):
    """log pi * reward-to-go: right first derivative, wrong second."""
    traj, weights = batch
    logp = log_pi(theta, traj.obs, traj.actions)
    rtg = jnp.stack([traj.rewards[0] + GAMMA * traj.rewards[1], GAMMA * traj.rewards[1]])
    return -jnp.sum(jnp.sum(logp * rtg, axis=0) * weights)


def exact_return(theta):
    total = 0.0
    for a0, a1 in PATHS:
        s1 = 1 + a0
        p = jnp.exp(log_pi(theta, 0, a0) + log_pi(theta, s1, a1))
        total += p * (REWARD[0, a0] + GAMMA * REWARD[s1, a1])
    return total


def learner(loss):
    sample = lambda params, task, key: enumerated_batch(params)  # noqa: E731
    return Learner(sample, sample, loss, lambda params, batch: 0.0)


def meta_objective(loss, first_order):
    def f(theta):
        value, _ = one_task_meta_loss(learner(loss), theta, None, jax.random.PRNGKey(0), 1, ALPHA, first_order)
        return value
    return f


def finite_difference(f, theta, eps=1e-6):
    grad = np.zeros(theta.shape)
    for idx in np.ndindex(theta.shape):
        e = np.zeros(theta.shape)
        e[idx] = eps
        grad[idx] = (f(theta + e) - f(theta - e)) / (2 * eps)
    return grad


@pytest.fixture
def theta():
    with enable_x64():
        yield jnp.array(np.random.default_rng(0).normal(size=(3, 2)))


def test_dice_loss_is_exact_return_and_gradient(theta):
    with enable_x64():
        batch = enumerated_batch(theta)
        np.testing.assert_allclose(-dice_loss(theta, batch), exact_return(theta), rtol=1e-12)
        np.testing.assert_allclose(-jax.grad(dice_loss)(theta, batch), jax.grad(exact_return)(theta), rtol=1e-10)
        np.testing.assert_allclose(
            -jax.hessian(dice_loss)(theta, batch), jax.hessian(exact_return)(theta), rtol=1e-9, atol=1e-12
        )


def true_meta_gradient(theta):
    """Finite differences of the true meta-objective: the exact return after one exact gradient step."""
    return finite_difference(lambda t: -exact_return(t + ALPHA * jax.grad(exact_return)(t)), theta)


def test_second_order_meta_gradient_matches_finite_differences(theta):
    with enable_x64():
        fd = true_meta_gradient(theta)
        ours = jax.grad(meta_objective(dice_loss, first_order=False))(theta)
        np.testing.assert_allclose(ours, fd, rtol=1e-6, atol=1e-8)


def test_naive_surrogate_fails_the_same_check(theta):
    with enable_x64():
        fd = true_meta_gradient(theta)
        naive = jax.grad(meta_objective(naive_loss, first_order=False))(theta)
        assert np.max(np.abs(naive - fd)) > 1e-3


def test_first_order_drops_the_hessian_term(theta):
    with enable_x64():
        adapted = inner_step(learner(dice_loss), theta, enumerated_batch(theta), ALPHA, first_order=False)
        expected = -jax.grad(exact_return)(adapted)  # gradient at the adapted point, no chain rule
        ours = jax.grad(meta_objective(dice_loss, first_order=True))(theta)
        np.testing.assert_allclose(ours, expected, rtol=1e-9)
        second = jax.grad(meta_objective(dice_loss, first_order=False))(theta)
        assert np.max(np.abs(second - ours)) > 1e-3


def test_normalised_advantages_are_a_constant_step_scale(theta):
    """With the 1/std(advantage) scale on, the meta-gradient is exact for that scale held fixed."""
    from metarl_cli.rl.learner import advantage_scale

    def scaled_loss(t, batch):
        return advantage_scale(enumerated_advantages(batch[0])) * dice_loss(t, batch)

    with enable_x64():
        traj, _ = enumerated_batch(theta)
        c = float(advantage_scale(enumerated_advantages(traj)))
        assert c != 1.0 and np.isfinite(c)
        target = lambda t: -c * exact_return(t + ALPHA * c * jax.grad(exact_return)(t))  # noqa: E731
        fd = finite_difference(target, theta)
        ours = jax.grad(meta_objective(scaled_loss, first_order=False))(theta)
        np.testing.assert_allclose(ours, fd, rtol=1e-6, atol=1e-8)


def test_lvc_matches_dice_to_first_order_but_not_second(theta):
    """LVC keeps DiCE's gradient and changes only the curvature (by design)."""

    def lvc_loss(t, batch):
        traj, weights = batch
        logp = log_pi(t, traj.obs, traj.actions)
        return -lvc_objective(logp, enumerated_advantages(traj), weights) * traj.rewards.shape[0]

    with enable_x64():
        batch = enumerated_batch(theta)
        np.testing.assert_allclose(jax.grad(lvc_loss)(theta, batch), jax.grad(dice_loss)(theta, batch), rtol=1e-10)
        h_lvc, h_dice = jax.hessian(lvc_loss)(theta, batch), jax.hessian(dice_loss)(theta, batch)
        assert np.max(np.abs(h_lvc - h_dice)) > 1e-3


def test_per_parameter_rates_equal_a_scalar_rate_and_get_exact_gradients(theta):
    """A pytree of rates (Meta-SGD's) all equal to alpha gives MAML's meta-gradient, and the
    gradient with respect to the rates sums to d/d alpha of the exact meta-objective, as the
    gradient with respect to one scalar rate does."""
    with enable_x64():
        rates = jnp.full_like(theta, ALPHA)

        def objective(t, lr):
            value, _ = one_task_meta_loss(learner(dice_loss), t, None, jax.random.PRNGKey(0), 1, lr, False)
            return value

        np.testing.assert_allclose(
            jax.grad(objective)(theta, rates), jax.grad(meta_objective(dice_loss, first_order=False))(theta), rtol=1e-10
        )
        d_rates = jax.grad(objective, argnums=1)(theta, rates)
        target = lambda a: -exact_return(theta + a * jax.grad(exact_return)(theta))  # noqa: E731
        eps = 1e-6
        fd = (target(ALPHA + eps) - target(ALPHA - eps)) / (2 * eps)
        np.testing.assert_allclose(jnp.sum(d_rates), fd, rtol=1e-6)
        np.testing.assert_allclose(jax.grad(objective, argnums=1)(theta, jnp.float64(ALPHA)), fd, rtol=1e-6)  # one scalar rate


def test_two_inner_steps_chain_exactly(theta):
    """Second-order through two inner steps, each on trajectories of the current adapted policy."""
    with enable_x64():
        def target(t):
            t1 = t + ALPHA * jax.grad(exact_return)(t)
            return -exact_return(t1 + ALPHA * jax.grad(exact_return)(t1))

        def ours(t):
            value, _ = one_task_meta_loss(learner(dice_loss), t, None, jax.random.PRNGKey(0), 2, ALPHA, False)
            return value

        np.testing.assert_allclose(jax.grad(ours)(theta), finite_difference(target, theta), rtol=1e-6, atol=1e-8)


def test_adaptation_that_diverges_scores_nan_even_where_the_learner_would_score_it():
    """As a categorical policy with NaN logits does (it always takes its first action): a finite
    score from non-finite parameters must not reach eval's tables as an ordinary result."""
    batch = lambda params, task, key: None  # noqa: E731
    exploding = Learner(batch, batch, lambda params, _: 1e30 * jnp.sum(params**2), lambda params, _: jnp.float32(1.0))
    scores = adaptation_curve(exploding, jnp.ones(2), None, jax.random.PRNGKey(0), 1e10, jnp.ones(2))
    assert scores[0] == 1.0 and np.all(np.isnan(scores[1:])), scores  # one step overflows to inf, the next to NaN


def test_the_score_after_k_steps_is_the_same_however_many_steps_follow():
    """Support and query batches drawn at random (as RL episodes are): the first scores of a longer
    curve are those of a shorter one, so eval's row k does not depend on --steps."""
    draw = lambda params, task, key: jax.random.normal(key)  # noqa: E731
    learner = Learner(draw, draw, lambda params, batch: (params - batch) ** 2, lambda params, batch: -((params - batch) ** 2))
    curve = lambda steps: adaptation_curve(learner, jnp.float32(3.0), None, jax.random.PRNGKey(0), 0.25, jnp.ones(steps))  # noqa: E731
    short, long = np.asarray(curve(1)), np.asarray(curve(3))
    np.testing.assert_array_equal(short, long[:2])
    drawn = learner._replace(score=lambda params, batch: batch)  # the score is the query batch itself
    queries = adaptation_curve(drawn, jnp.float32(3.0), None, jax.random.PRNGKey(0), 0.25, jnp.ones(3))
    assert len(set(np.asarray(queries).tolist())) == 4  # each score its own draw


def test_each_inner_step_of_a_meta_batch_draws_its_own_support_batch():
    """keys[i] splits into task i's query key and a key that splits into one key per inner step.
    With loss p * b, a step at rate 1 moves p by -b, so the adapted parameters are minus the sum
    of the support batches drawn."""
    draw = lambda params, task, key: jax.random.normal(key)  # noqa: E731
    learner = Learner(draw, draw, lambda params, batch: params * batch, lambda params, batch: params)
    key = jax.random.PRNGKey(3)
    _, (_, adapted) = one_task_meta_loss(learner, jnp.float32(0.0), None, key, 2, 1.0, True)
    b0, b1 = (jax.random.normal(k) for k in jax.random.split(jax.random.split(key)[0], 2))
    assert b0 != b1
    np.testing.assert_allclose(adapted, -(b0 + b1), rtol=1e-6)


def test_the_query_batch_draws_from_its_own_key_not_a_support_batchs():
    """The query key is keys[i]'s second half; drawn from a support key, an RL query would replay the
    first support rollout's resets and noise. Here the score is the batch drawn itself."""
    draw = lambda params, task, key: jax.random.normal(key)  # noqa: E731
    learner = Learner(draw, draw, lambda params, batch: params * batch, lambda params, batch: batch)
    key = jax.random.PRNGKey(3)
    _, (pre, post) = one_task_meta_loss(learner, jnp.float32(0.0), None, key, 2, 1.0, True)
    k_support, k_query = jax.random.split(key)
    b0, b1 = (jax.random.normal(k) for k in jax.random.split(k_support, 2))
    np.testing.assert_allclose(pre, b0, rtol=1e-6)
    np.testing.assert_allclose(post, jax.random.normal(k_query), rtol=1e-6)
    assert float(post) not in (float(b0), float(b1))


def test_the_score_before_adapting_is_of_the_support_batch_the_initial_parameters_drew():
    """What training logs as pre_return (pre_mse): the score of the first support batch, which the initial
    policy drew, not of a later inner step's, drawn by a policy already adapted. Here a batch is the
    parameters that drew it and the score is the batch; with loss p, a step at rate 1 moves p by -1."""
    draw = lambda params, task, key: params  # noqa: E731
    learner = Learner(draw, draw, lambda params, batch: params, lambda params, batch: batch)
    _, (pre, post) = one_task_meta_loss(learner, jnp.float32(0.0), None, jax.random.PRNGKey(0), 2, 1.0, True)
    assert (float(pre), float(post)) == (0.0, -2.0)


def test_dice_and_reward_to_go_restart_with_each_episode_of_a_window():
    """A window of two 2-step episodes, zero baseline: each step's score weighs the discounted rewards
    from it to its own episode's end, the discount counted from that episode's start; with a
    baseline, DiCE's and LVC's weights (their first derivatives) are the same."""
    g = 0.9
    rewards = jnp.array([[1.0], [2.0], [3.0], [4.0]])
    dones = jnp.array([[False], [True], [False], [True]])
    traj = Trajectory(jnp.zeros((4, 1)), jnp.zeros((4, 1), jnp.int32), rewards, dones, jnp.array([[0], [1], [0], [1]]))
    score_weights = jax.grad(lambda log_probs: dice_objective(log_probs, traj, jnp.zeros((4, 1)), g))(jnp.zeros((4, 1)))
    np.testing.assert_allclose(score_weights[:, 0], np.array([1 + g * 2, g * 2, 3 + g * 4, g * 4]) / 4, rtol=1e-6)
    np.testing.assert_allclose(reward_to_go(rewards, dones, g)[:, 0], [1 + g * 2, 2, 3 + g * 4, 4], rtol=1e-6)
    # A baseline b_t lowers step t's weight by its discounted value, in DiCE as in LVC's advantages.
    baseline = jnp.array([[0.5], [-1.0], [2.0], [0.25]])
    dice_weights = jax.grad(lambda log_probs: dice_objective(log_probs, traj, baseline, g))(jnp.zeros((4, 1)))
    np.testing.assert_allclose(dice_weights, score_weights - g ** traj.episode_time * baseline / 4, rtol=1e-6)
    advantages = discounted_advantages(traj, reward_to_go(rewards, dones, g), baseline, g)
    np.testing.assert_allclose(jax.grad(lambda log_probs: lvc_objective(log_probs, advantages))(jnp.zeros((4, 1))), dice_weights, rtol=1e-6)


def test_dice_baseline_lowers_the_variance_of_the_hessian_over_episodes(theta):
    """Mao et al.'s baseline term against DiCE's own, (1 - MB(log pi_t)) g_t b_t, with the policy's
    state values as the baseline: the same exact Hessian in expectation over episodes, and a smaller
    variance of one episode's estimate of it."""
    from metarl_cli.rl.dice import episode_cumsum, magic_box

    with enable_x64():
        traj, probabilities = enumerated_batch(theta)
        pi = jax.nn.softmax(theta, axis=-1)
        values = np.zeros(3)
        values[1:] = np.sum(pi[1:] * REWARD[1:], axis=1)
        values[0] = np.sum(pi[0] * (REWARD[0] + GAMMA * values[1:]))
        baseline = jnp.asarray(values)[traj.obs]
        discount = GAMMA ** traj.episode_time

        def ours(theta, lane):
            one_episode = jnp.zeros(len(PATHS)).at[lane].set(1.0)
            return dice_objective(log_pi(theta, traj.obs, traj.actions), traj, baseline, GAMMA, one_episode) * traj.rewards.shape[0]

        def dice_own_baseline(theta, lane):
            logp = log_pi(theta, traj.obs, traj.actions)
            per_step = magic_box(episode_cumsum(logp, traj.episode_time)) * discount * traj.rewards + (1.0 - magic_box(logp)) * discount * baseline
            return jnp.sum(per_step[:, lane])

        variances = []
        for objective in (ours, dice_own_baseline):
            hessians = np.stack([np.ravel(jax.hessian(objective)(theta, lane)) for lane in range(len(PATHS))])
            mean = probabilities @ hessians
            np.testing.assert_allclose(mean, np.ravel(jax.hessian(exact_return)(theta)), rtol=1e-9, atol=1e-12)
            variances.append(probabilities @ np.sum((hessians - mean) ** 2, axis=1))
        assert variances[0] < 0.8 * variances[1], variances
