"""MAML-RL behaviour: one inner policy-gradient step improves the policy on its own task, and so do
two; a meta-iteration's env steps are counted whole; how the meta-batch and the seeds are scheduled
over passes and devices does not change the result; a pass holds as many tasks as fit a core's L2
cache."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from metarl_cli.algos import make_algorithm
from metarl_cli.config import MamlRLConfig, resolve_config
from metarl_cli.families import family_for, get_family
from metarl_cli.optim import clipped_adam


def test_adapted_policy_improves_on_its_task():
    """Also: each task of an evaluation draws its episodes with its own key, so the last task, a copy
    of the first, gives an independent sample of that task's curve, not the same one counted twice."""
    config = MamlRLConfig(env="point-nav", lanes=20, hidden=(32, 32), inner_lr=0.1)
    family = get_family("point-nav")
    algo = make_algorithm("maml", config, family)
    params = algo.init_params(jax.random.PRNGKey(0))
    tasks = jax.tree.map(lambda x: x.at[-1].set(x[0]), family.sample(jax.random.PRNGKey(1), 64, "test"))
    scores = np.asarray(algo.adaptation_curve(params, tasks, jax.random.PRNGKey(2), 2))
    for steps in (1, 2):  # after one step, and after a second
        gain = scores[:, steps] - scores[:, 0]
        assert gain.mean() > 3 * gain.std(ddof=1) / np.sqrt(len(gain)), (steps, scores)
    assert not np.array_equal(scores[0], scores[-1]), scores[[0, -1]]


def test_maml_rl_takes_its_estimator_advantage_scaling_discount_and_clipping_from_its_config(monkeypatch):
    """The surrogates, the advantage scaling and the clipped optimiser are tested on their own; this
    checks that the algorithm hands them the run's choices."""
    import metarl_cli.algos.maml as maml

    seen = {}
    rl_model, optimizer = maml.rl_model, maml.clipped_adam
    monkeypatch.setattr(maml, "rl_model", lambda *args: seen.update(model=args[-3:]) or rl_model(*args))
    monkeypatch.setattr(maml, "clipped_adam", lambda *args: seen.update(optimizer=args) or optimizer(*args))
    for estimator, normalize, gamma, clip in (("dice", False, 0.9, 0.5), ("lvc", True, 0.95, 0.0)):
        sets = [f"estimator={estimator}", f"normalize_advantages={str(normalize).lower()}", f"gamma={gamma}",
                f"max_grad_norm={clip}", "outer_lr=0.002"]
        config = resolve_config("maml", "cartpole-family", None, sets)
        make_algorithm("maml", config, family_for(config))
        assert seen.pop("model") == (gamma, normalize, estimator) and seen.pop("optimizer") == (0.002, clip)


def test_clipped_adam_clips_the_gradients_global_norm_before_adam():
    """Adam's first step does not see a gradient's scale, so two steps: a gradient of norm 100, then
    one of norm 1. Clipped to norm 0.5 both reach Adam at norm 0.5; unclipped, the first outweighs
    the second in Adam's moments. A norm of 0 turns clipping off."""
    grads = [{"w": jnp.array([60.0, 80.0])}, {"w": jnp.array([0.6, -0.8])}]

    def updates(optimizer, grads):
        state, steps = optimizer.init(grads[0]), []
        for grad in grads:
            step, state = optimizer.update(grad, state)
            steps.append(np.asarray(step["w"]))
        return steps

    clipped = [jax.tree.map(lambda g: g * 0.5 / float(optax.tree.norm(grad)), grad) for grad in grads]
    np.testing.assert_allclose(updates(clipped_adam(0.1, 0.5), grads), updates(optax.adam(0.1), clipped), rtol=1e-6)
    np.testing.assert_allclose(updates(clipped_adam(0.1, 0.0), grads), updates(optax.adam(0.1), grads), rtol=1e-6)
    assert not np.allclose(updates(optax.adam(0.1), clipped)[1], updates(optax.adam(0.1), grads)[1])


@pytest.mark.parametrize("inner_steps", [0, 1, 2])
def test_a_meta_iteration_counts_the_env_steps_of_every_support_and_query_rollout(inner_steps):
    """inner_steps support rollouts and one query rollout a task, of lanes x horizon steps each
    (with no inner step, the pretrained baseline's plain multi-task training, the query alone)."""
    config = MamlRLConfig(env="cartpole-family", meta_batch=3, lanes=4, horizon=20, inner_steps=inner_steps, hidden=(8,))
    algo = make_algorithm("maml", config, family_for(config))
    assert algo.env_steps_per_iteration == 3 * (inner_steps + 1) * 4 * 20


def test_a_meta_iteration_gives_each_task_its_own_key_and_its_loss_the_runs_first_order(monkeypatch):
    """Tasks sharing a key would share their rollouts' resets and noise (a regression task carries its
    own points, so only an RL family shows it). The meta-batch loss is stubbed: only the step's
    wiring runs."""
    import metarl_cli.algos.maml as maml

    seen_keys, seen_orders = [], []

    def stub(learner, params, tasks, keys, steps, lr, first_order):
        jax.debug.callback(lambda k: seen_keys.extend(np.asarray(k).tolist()), keys)
        seen_orders.append(first_order)
        zero = 0.0 * sum(jnp.sum(leaf) for leaf in jax.tree.leaves(params))  # a loss of the parameters, for the gradient
        n = keys.shape[0]
        return jnp.zeros(n) + zero, (jnp.zeros(n), jnp.zeros(n))

    monkeypatch.setattr(maml, "meta_batch_loss", stub)
    for first_order in (False, True):
        config = MamlRLConfig(env="cartpole-family", meta_batch=4, lanes=2, horizon=5, hidden=(8,), first_order=first_order)
        algo = make_algorithm("maml", config, family_for(config))
        jax.block_until_ready(jax.jit(algo.step)(algo.init(jax.random.PRNGKey(0))))
        assert seen_orders[-1] is first_order
    assert len(seen_keys) == 8 and len({tuple(key) for key in seen_keys[:4]}) == 4


# (inner steps, first order, Meta-SGD rates): the default's second order over two steps, the
# pretrained baseline's plain multi-task loss, first order, and per-parameter rates.
VARIANTS = [(2, False, False), (0, False, False), (1, True, False), (1, False, True)]


@pytest.mark.parametrize("inner_steps, first_order, per_parameter_rates", VARIANTS)
def test_meta_gradient_is_the_same_however_the_meta_batch_is_split(inner_steps, first_order, per_parameter_rates):
    """Differentiating the tasks' losses a few at a time, or each device its share of the tasks, is a
    schedule: the meta-gradient (and the rates' gradient) and the scores equal those of all tasks at once."""
    from metarl_cli.algos.maml import model_for
    from metarl_cli.devices import even_mesh, split_tasks
    from metarl_cli.meta import meta_batch_loss

    config = MamlRLConfig(env="cartpole-family", lanes=4, horizon=20, hidden=(16, 16), meta_batch=4)
    family = get_family(config.env)
    model = model_for(config, family)
    theta = model.init(jax.random.PRNGKey(0))
    lr = jax.tree.map(lambda p: jnp.full_like(p, config.inner_lr), theta) if per_parameter_rates else config.inner_lr
    tasks = family.sample(jax.random.PRNGKey(1), config.meta_batch, "train")
    keys = jax.random.split(jax.random.PRNGKey(2), config.meta_batch)

    def loss_and_grads(tasks_per_pass: int):
        learner = model.learner._replace(tasks_per_pass=tasks_per_pass)

        def mean_loss(meta, t, k):
            init, rates = meta
            losses, (pre, post) = meta_batch_loss(learner, init, t, k, inner_steps, rates, first_order)
            return losses.mean(), (pre.mean(), post.mean())

        return jax.value_and_grad(mean_loss, has_aux=True)

    whole = jax.jit(loss_and_grads(0))((theta, lr), tasks, keys)
    schedules = {"one task a pass": loss_and_grads(1)}
    if VARIANTS.index((inner_steps, first_order, per_parameter_rates)) == 0:
        schedules["three, then the last one"] = loss_and_grads(3)
    mesh = even_mesh(config.meta_batch, "tasks")
    if mesh is not None:  # one CPU device per core: none to split over on a single core
        schedules["split over devices, one task a pass"] = split_tasks(loss_and_grads(1), mesh)
    # Float rounding differs with the order of the sums: a tolerance on the scale of the parameters'
    # gradient, whose products make the rates' gradient and whose centred terms make the loss (near 0).
    _, (init_grads, _) = whole
    atol = 1e-5 * max(float(np.abs(g).max()) for g in jax.tree.leaves(init_grads))
    for name, fn in schedules.items():
        split = jax.jit(fn)((theta, lr), tasks, keys)
        for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(split)):
            np.testing.assert_allclose(a, b, rtol=2e-5, atol=atol, err_msg=name)


def test_seeds_run_one_after_another_as_they_would_vmapped():
    """On a CPU MAML-RL maps its seeds (each pass already sized to the cache); that is a schedule too:
    the seeds, each in two passes of one task, end where vmapped seeds do, and differ from each other.
    Two seeds to a device, so that each device runs seeds one after another."""
    from metarl_cli.training.runner import compile_chunks, initial_state, seed_mesh, seeded_step

    config = MamlRLConfig(env="cartpole-family", lanes=32, horizon=256, hidden=(16, 16), meta_batch=2,
                          seeds=2 * len(jax.local_devices()))
    algo = make_algorithm("maml", config, get_family(config.env))
    mesh = seed_mesh(config.seeds)
    ends = [compile_chunks(seeded_step(algo.step, config, vmap), mesh)(initial_state(algo, config), 2)[0]
            for vmap in (True, False)]
    for a, b in zip(*(jax.tree.leaves(end["params"]) for end in ends)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=1e-7)
        b = np.asarray(b)
        assert all(not np.allclose(b[i], b[j]) for i in range(len(b)) for j in range(i))


def test_passes_hold_as_many_tasks_as_fit_the_l2_cache_linux_reports(tmp_path, monkeypatch):
    """The L2 size is read from the cache directories (level 2, not the instruction cache), with a
    default where there are none; a pass holds as many tasks as one layer's activations fit in a quarter of it."""
    import metarl_cli.meta as meta

    def cache(name, level, kind, size):
        index = tmp_path / "cpu0" / name
        index.mkdir(parents=True)
        for field, value in (("level", level), ("type", kind), ("size", size)):
            (index / field).write_text(value + "\n")

    assert meta.core_cache_bytes(tmp_path / "cpu0") == meta.DEFAULT_CORE_CACHE_BYTES
    cache("index0", "1", "Data", "48K")
    cache("index1", "2", "Instruction", "64K")
    cache("index2", "2", "Unified", "2048K")
    assert meta.core_cache_bytes(tmp_path / "cpu0") == 2 << 20

    monkeypatch.setattr(meta, "core_cache_bytes", lambda: 1 << 20)
    shapes = [(4000, 64), (1000, 100), (250, 100), (100_000, 64)]  # rows a task, widest layer: 1 MB, 0.4, 0.1, 25.6
    assert [meta.cpu_tasks_per_pass(rows, width) for rows, width in shapes] == [1, 1, 2, 1]


def test_linear_baseline_takes_the_first_ridge_whose_fit_is_finite(monkeypatch):
    """Observations that are all zero make the Gram matrix singular: without a ridge the solve is not
    finite, and the next ridge's fit (the mean return, through the constant feature) is taken, not a
    later one's (a ridge of 1e3 would shrink the fit towards 0)."""
    from metarl_cli.rl import baseline
    from metarl_cli.rl.rollout import Trajectory

    monkeypatch.setattr(baseline, "RIDGES", (0.0, 1e-5, 1e3))
    time = jnp.zeros((4, 2), jnp.int32)  # the time features are constant too
    traj = Trajectory(jnp.zeros((4, 2, 3)), jnp.zeros((4, 2), jnp.int32), jnp.zeros((4, 2)), jnp.zeros((4, 2), bool), time)
    returns = jnp.arange(8.0).reshape(4, 2)
    np.testing.assert_allclose(baseline.linear_baseline(traj, returns), 3.5, rtol=1e-4)


def test_linear_baseline_is_rllabs_ridge_regression_at_1e_5_where_that_fit_is_finite():
    """Where the first fit is finite the baseline is the ridge-1e-5 fit of the reward-to-go onto the
    features (float64 here), and visibly not the next ridge's: small observations leave directions
    of the Gram matrix that the ridge decides."""
    from metarl_cli.rl import baseline
    from metarl_cli.rl.rollout import Trajectory

    steps, lanes = 8, 4
    rng = np.random.default_rng(0)
    obs = 0.05 * rng.normal(size=(steps, lanes, 2)).astype(np.float32)
    time = np.broadcast_to(np.arange(steps, dtype=np.int32)[:, None], (steps, lanes))
    returns = rng.normal(size=(steps, lanes)).astype(np.float32)
    zeros = jnp.zeros((steps, lanes))
    traj = Trajectory(jnp.asarray(obs), zeros.astype(jnp.int32), zeros, zeros.astype(bool), jnp.asarray(time))
    x = np.asarray(baseline.features(traj), np.float64).reshape(steps * lanes, -1)

    def ridge_fit(ridge):
        w = np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ returns.reshape(-1).astype(np.float64))
        return (x @ w).reshape(steps, lanes)

    assert np.abs(ridge_fit(1e-5) - ridge_fit(1e-4)).max() > 0.1
    np.testing.assert_allclose(baseline.linear_baseline(traj, jnp.asarray(returns)), ridge_fit(1e-5), atol=1e-4)


def test_linear_baseline_stays_finite_where_observations_hold_an_angle_cos_and_sin():
    """cos^2 + sin^2 repeats the constant feature (Acrobot, Pendulum): at the first ridge the float32
    solve overflowed on some batches, MAML's loss went non-finite and training stopped."""
    from metarl_cli.rl.baseline import linear_baseline, reward_to_go
    from metarl_cli.rl.rollout import Trajectory

    steps, lanes = 500, 20
    time = jnp.broadcast_to(jnp.arange(steps)[:, None], (steps, lanes))
    rewards, dones = -jnp.ones((steps, lanes)), time == steps - 1
    returns = reward_to_go(rewards, dones, 0.99)
    for seed in (1, 8, 13):  # batches whose solve at 1e-5 overflowed on the machine this was written on
        angle_key, velocity_key = jax.random.split(jax.random.PRNGKey(seed))
        angles = jax.random.uniform(angle_key, (steps, lanes, 2), minval=-np.pi, maxval=np.pi)
        obs = jnp.concatenate([jnp.cos(angles), jnp.sin(angles), jax.random.normal(velocity_key, (steps, lanes, 2))], -1)
        fitted = linear_baseline(Trajectory(obs, jnp.zeros((steps, lanes), jnp.int32), rewards, dones, time), returns)
        assert np.all(np.isfinite(fitted)), seed
        # A fit, not just a finite number: far closer to the returns than their mean is.
        assert np.abs(fitted - returns).mean() < 0.1 * np.abs(returns - returns.mean()).mean(), seed


def test_the_normalised_loss_is_the_surrogate_over_the_advantages_std():
    """MAML-RL's loss, as training computes it: minus the LVC surrogate, whose gradient is the
    policy gradient with the batch's advantages, times 1/std of the advantages where `normalize` is
    on, so that its value and its gradient are the plain loss's times that constant."""
    from metarl_cli.nets import make_policy
    from metarl_cli.rl.learner import rl_model

    family = get_family("point-nav")
    task = jax.tree.map(lambda x: x[0], family.sample(jax.random.PRNGKey(1), 1, "train"))
    plain, normalised = (rl_model(family, [8], lanes=4, horizon=10, gamma=0.99, normalize=n, estimator="lvc")
                         for n in (False, True))
    params = plain.init(jax.random.PRNGKey(0))
    batches = [model.learner.support(params, task, jax.random.PRNGKey(2)) for model in (plain, normalised)]
    advantages = np.asarray(batches[0].advantages, np.float64)
    np.testing.assert_array_equal(batches[1].advantages, batches[0].advantages)
    scale = 1.0 / advantages.std()
    assert float(batches[0].scale) == 1.0 and abs(scale - 1.0) > 0.1, scale
    np.testing.assert_allclose(float(batches[1].scale), scale, rtol=1e-5)

    losses = [float(model.learner.loss(params, batch)) for model, batch in zip((plain, normalised), batches)]
    np.testing.assert_allclose(losses[1], scale * losses[0], rtol=1e-5)
    # The surrogate's gradient, written out: minus the lanes' mean of sum_t A_t grad log pi_t, over T.
    policy = make_policy(family.obs_dim, family.action_dim, family.discrete, [8])
    traj = batches[0].traj

    def reinforce(p):
        return -jnp.mean(jnp.sum(batches[0].advantages * policy.log_prob(p, traj.obs, traj.actions), axis=0)) / traj.obs.shape[0]

    expected = jax.grad(reinforce)(params)
    grads = [jax.grad(model.learner.loss)(params, batch) for model, batch in zip((plain, normalised), batches)]
    for want, g_plain, g_normalised in zip(*map(jax.tree.leaves, (expected, *grads))):
        assert np.abs(want).max() > 0
        np.testing.assert_allclose(g_plain, want, rtol=1e-4, atol=1e-6 * np.abs(want).max())
        np.testing.assert_allclose(g_normalised, scale * want, rtol=1e-4, atol=1e-6 * scale * np.abs(want).max())


def test_a_sampled_batch_is_a_constant_of_the_policy_parameters():
    """The support batch's advantages, baseline and 1/std scale carry no gradient to the parameters
    that drew it, even where its actions are a reparameterisable function of them (a Gaussian
    policy): the score-function terms of the meta-gradient come from the DiCE/LVC surrogate alone."""
    from metarl_cli.rl.learner import rl_model

    family = get_family("point-nav")
    model = rl_model(family, [8], lanes=4, horizon=10, gamma=0.99, normalize=True, estimator="lvc")
    params = model.init(jax.random.PRNGKey(0))
    task = jax.tree.map(lambda x: x[0], family.sample(jax.random.PRNGKey(1), 1, "train"))

    def batch_statistics(p):
        batch = model.learner.support(p, task, jax.random.PRNGKey(2))
        return batch.scale + jnp.sum(batch.advantages) + jnp.sum(batch.baseline)

    value, grads = jax.value_and_grad(batch_statistics)(params)
    assert np.isfinite(value)
    for leaf in jax.tree.leaves(grads):
        np.testing.assert_array_equal(leaf, 0.0)


def test_the_linear_baseline_fits_any_return_made_of_rllabs_features_exactly():
    """Its features are rllab's: the observation (clipped to [-10, 10]), its square, time, time squared
    and cubed (time in the episode, over 100), and a constant; a return made of them is fitted but
    for the ridge's small pull."""
    from metarl_cli.rl.baseline import features, linear_baseline
    from metarl_cli.rl.rollout import Trajectory

    steps, lanes = 30, 8
    obs = jax.random.uniform(jax.random.PRNGKey(0), (steps, lanes, 2), minval=-2.0, maxval=2.0)
    time = jnp.broadcast_to((jnp.arange(steps) % 15)[:, None], (steps, lanes))  # an episode restarts at 15
    traj = Trajectory(obs, jnp.zeros((steps, lanes), jnp.int32), jnp.zeros((steps, lanes)), time == 14, time)
    t = time / 100.0
    returns = 0.5 * obs[..., 0] ** 2 - 0.3 * obs[..., 1] + 40.0 * t**3 - 2.0 * t + 1.0
    np.testing.assert_allclose(linear_baseline(traj, returns), returns, atol=0.02)  # (the ridge aside)
    # The time terms are too small in a fit to tell apart: each feature checked as written.
    t = t[..., None]
    expected = jnp.concatenate([obs, obs**2, t, t**2, t**3, jnp.ones_like(t)], axis=-1)
    np.testing.assert_allclose(features(traj), expected, rtol=1e-6)
    far = traj._replace(obs=obs * 20.0)  # observations clipped to [-10, 10] first, as rllab clips them
    clipped = jnp.clip(obs * 20.0, -10.0, 10.0)
    assert np.abs(obs * 20.0).max() > 20.0
    np.testing.assert_allclose(features(far)[..., :4], jnp.concatenate([clipped, clipped**2], axis=-1), rtol=1e-6)


def test_an_adaptation_whose_parameters_are_not_all_finite_scores_nan():
    """A categorical policy with one non-finite layer still acts (NaN logits pick the first action)
    and would earn an ordinary-looking return: eval scores it NaN, counted as diverged."""
    from metarl_cli.meta import adaptation_curve
    from metarl_cli.rl.learner import rl_model

    family = get_family("cartpole-family")
    model = rl_model(family, [8], lanes=2, horizon=10, gamma=0.99, normalize=True, estimator="lvc")
    params = model.init(jax.random.PRNGKey(0))
    leaves, treedef = jax.tree.flatten(params)
    broken = jax.tree.unflatten(treedef, [leaves[0] * jnp.nan, *leaves[1:]])
    task = jax.tree.map(lambda x: x[0], family.sample(jax.random.PRNGKey(1), 1, "train"))
    curves = [np.asarray(adaptation_curve(model.learner, p, task, jax.random.PRNGKey(2), 0.1, jnp.zeros(1))) for p in (params, broken)]
    assert np.isfinite(curves[0]).all() and np.isnan(curves[1]).all()


def test_the_gaussian_policy_samples_and_scores_with_its_standard_deviation():
    """point-nav's policy: actions ~ N(mean(obs), exp(log_std)^2), log_prob the normal log-density."""
    from scipy.stats import norm

    from metarl_cli.nets import make_policy

    policy = make_policy(obs_dim=2, action_dim=2, discrete=False, hidden=(8,))
    initial = policy.init(jax.random.PRNGKey(0))["params"]
    dense_out = {**initial["MLP_0"]["Dense_1"], "bias": jnp.array([1.5, -2.0])}  # a mean far from 0
    initial = {**initial, "MLP_0": {**initial["MLP_0"], "Dense_1": dense_out}}
    with_log_std = lambda log_std: {"params": {**initial, "log_std": log_std}}  # noqa: E731
    params = with_log_std(jnp.log(jnp.array([2.0, 0.3])))
    obs = jnp.array([0.3, -0.7])
    actions = jax.vmap(lambda k: policy.sample(params, obs, k))(jax.random.split(jax.random.PRNGKey(1), 20_000))
    mlp = initial["MLP_0"]  # the mean, by hand: Dense, ReLU, Dense
    hidden = np.maximum(np.asarray(obs) @ mlp["Dense_0"]["kernel"] + mlp["Dense_0"]["bias"], 0.0)
    mean = hidden @ mlp["Dense_1"]["kernel"] + mlp["Dense_1"]["bias"]
    np.testing.assert_allclose(actions.std(axis=0), [2.0, 0.3], rtol=0.03)
    assert np.all(np.abs(actions.mean(axis=0) - mean) < 4 * np.array([2.0, 0.3]) / np.sqrt(20_000)), (actions.mean(axis=0), mean)
    scored = policy.log_prob(params, jnp.broadcast_to(obs, (5, 2)), actions[:5])
    np.testing.assert_allclose(scored, norm.logpdf(actions[:5], mean, [2.0, 0.3]).sum(-1), rtol=1e-5)


def test_the_categorical_policy_scores_with_the_log_probabilities_it_samples_from():
    """A discrete action space's policy (cartpole's, with three actions here): log_prob is the log of a
    distribution over the actions (the log-softmax of the logits, not the logits), the one its samples follow."""
    from metarl_cli.nets import make_policy

    policy = make_policy(obs_dim=4, action_dim=3, discrete=True, hidden=(8,))
    params = policy.init(jax.random.PRNGKey(0))
    obs = jnp.array([3.0, -7.0, 12.0, 5.0])
    log_probs = policy.log_prob(params, jnp.broadcast_to(obs, (3, 4)), jnp.arange(3))
    np.testing.assert_allclose(float(jnp.exp(log_probs).sum()), 1.0, rtol=1e-5)
    actions = jax.vmap(lambda k: policy.sample(params, obs, k))(jax.random.split(jax.random.PRNGKey(1), 20_000))
    np.testing.assert_allclose(np.bincount(np.asarray(actions), minlength=3) / 20_000, np.exp(log_probs), atol=0.015)


def test_a_policy_gradient_batch_holds_each_episodes_returns_its_baseline_and_its_advantages():
    """Episodes cut at 5 steps in a window of 12: the episode clock and the discounted reward-to-go
    restart after every episode end (a truncation too), the baseline is the linear fit to those
    returns, each advantage is gamma^(time in episode) (return - baseline); the loss is minus the
    chosen estimator's surrogate."""
    import dataclasses

    from metarl_cli.nets import make_policy
    from metarl_cli.rl.baseline import linear_baseline
    from metarl_cli.rl.dice import dice_objective, lvc_objective
    from metarl_cli.rl.learner import rl_model

    gamma, family = 0.9, dataclasses.replace(get_family("cartpole-family"), horizon=5)
    models = {estimator: rl_model(family, [8], lanes=3, horizon=12, gamma=gamma, normalize=False, estimator=estimator)
              for estimator in ("dice", "lvc")}
    task = jax.tree.map(lambda x: x[0], family.sample(jax.random.PRNGKey(1), 1, "train"))
    params = models["lvc"].init(jax.random.PRNGKey(0))
    batch = models["lvc"].learner.support(params, task, jax.random.PRNGKey(2))
    traj = batch.traj
    dones, rewards = np.asarray(traj.dones), np.asarray(traj.rewards, np.float64)
    assert (dones & ~np.asarray(traj.terminated)).any()  # time limits inside the window
    time, returns = np.zeros(dones.shape), np.zeros(dones.shape)
    for t in range(1, len(dones)):
        time[t] = np.where(dones[t - 1], 0, time[t - 1] + 1)
    future = np.zeros(dones.shape[1])
    for t in reversed(range(len(dones))):
        returns[t] = future = rewards[t] + gamma * future * (1 - dones[t])
    np.testing.assert_array_equal(traj.episode_time, time)
    np.testing.assert_allclose(batch.baseline, linear_baseline(traj, jnp.asarray(returns, jnp.float32)), rtol=1e-5, atol=1e-5)
    assert np.abs(np.asarray(batch.baseline)).min() > 0.1
    np.testing.assert_allclose(batch.advantages, gamma**time * (returns - np.asarray(batch.baseline)), rtol=1e-5, atol=1e-5)

    policy = make_policy(family.obs_dim, family.action_dim, family.discrete, [8])
    log_probs = policy.log_prob(params, traj.obs, traj.actions)
    surrogates = {"dice": dice_objective(log_probs, traj, batch.baseline, gamma), "lvc": lvc_objective(log_probs, batch.advantages)}
    assert abs(float(surrogates["dice"]) - float(surrogates["lvc"])) > 0.1
    for estimator, surrogate in surrogates.items():
        np.testing.assert_allclose(models[estimator].learner.loss(params, batch), -surrogate, rtol=1e-5, err_msg=estimator)
