"""Supervised MAML on the sinusoid family: the meta-gradient through the real network and data,
first order against its definition, Meta-SGD against MAML.

Gradients are checked in float64 as directional derivatives against central finite differences
of the meta-objective itself, J(theta) = L_query(theta after k inner SGD steps on the support set).
"""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import enable_x64

from metarl_cli.algos import make_algorithm
from metarl_cli.config import resolve_config
from metarl_cli.families import family_for, get_family
from metarl_cli.regression_learner import regression_model
from metarl_cli.training.runner import compile_chunks, initial_state, seeded_step
from conftest import checkpoints_stub, one_task_meta_loss

ALPHA = 0.05


def setup(steps=2, hessian="autodiff"):
    family = get_family("sinusoid")
    model = regression_model(family, (8, 8), shots=5, query_points=5, eval_query_points=5, task_input=False)
    model = model._replace(learner=model.learner._replace(hessian=hessian))
    theta = jax.tree.map(lambda p: p.astype(jnp.float64), model.init(jax.random.PRNGKey(0)))
    task = jax.tree.map(lambda x: x[0], family.sample(jax.random.PRNGKey(1), 1, "train"))
    task = {k: (v.astype(jnp.float64) if k != "key" else v) for k, v in task.items()}

    def objective(params, lr=ALPHA, first_order=False):
        return one_task_meta_loss(model.learner, params, task, jax.random.PRNGKey(2), steps, lr, first_order)[0]

    return model, theta, task, objective


def directions(tree, n, seed=3):
    keys = jax.random.split(jax.random.PRNGKey(seed), n)
    leaves, treedef = jax.tree.flatten(tree)
    for key in keys:
        parts = jax.random.split(key, len(leaves))
        yield jax.tree.unflatten(treedef, [jax.random.normal(k, x.shape, x.dtype) for k, x in zip(parts, leaves)])


def along(f, x, v, eps=1e-6):
    shift = lambda s: jax.tree.map(lambda a, b: a + s * eps * b, x, v)  # noqa: E731
    return (f(shift(1.0)) - f(shift(-1.0))) / (2 * eps)


def dot(a, b):
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("steps, hessian", [(1, "autodiff"), (2, "autodiff"), (2, "hvp")])
def test_second_order_meta_gradient_matches_finite_differences(steps, hessian):
    with enable_x64():
        _, theta, _, objective = setup(steps, hessian)
        grad = jax.grad(objective)(theta)
        for v in directions(theta, 3):
            np.testing.assert_allclose(dot(grad, v), along(objective, theta, v), rtol=1e-5)


def test_first_order_is_the_query_gradient_at_the_adapted_point_and_differs_from_second_order():
    with enable_x64():
        model, theta, task, objective = setup(steps=1)
        learner = model.learner
        support = learner.support(theta, task, None)
        adapted = jax.tree.map(lambda p, g: p - ALPHA * g, theta, jax.grad(learner.loss)(theta, support))
        expected = jax.grad(learner.loss)(adapted, learner.query(adapted, task, None))
        first = jax.grad(lambda p: objective(p, first_order=True))(theta)
        second = jax.grad(objective)(theta)
        for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(expected)):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
        gap = np.sqrt(float(dot(jax.tree.map(jnp.subtract, first, second), jax.tree.map(jnp.subtract, first, second))))
        assert gap > 1e-2 * np.sqrt(float(dot(second, second))), "first order should drop a real Hessian term"


@pytest.mark.parametrize("hessian", ["autodiff", "hvp"])
def test_meta_sgd_rate_gradient_matches_finite_differences(hessian):
    with enable_x64():
        _, theta, _, objective = setup(steps=2, hessian=hessian)
        rates = jax.tree.map(lambda p: jnp.full_like(p, ALPHA), theta)
        grad = jax.grad(lambda lr: objective(theta, lr))(rates)
        for v in directions(rates, 2, seed=4):
            np.testing.assert_allclose(dot(grad, v), along(lambda lr: objective(theta, lr), rates, v), rtol=1e-5)


def test_meta_sgd_with_rates_frozen_at_alpha_is_maml():
    config = resolve_config("maml", "sinusoid", None, ["hidden=[8,8]", "meta_batch=4"])
    maml = make_algorithm("maml", config, get_family("sinusoid"))
    meta_sgd = make_algorithm("maml", dataclasses.replace(config, learn_inner_lr=True), get_family("sinusoid"))
    key = jax.random.PRNGKey(5)
    maml_state, sgd_state = maml.init(key), meta_sgd.init(key)
    # Same initialisation, rates starting at alpha: the meta-gradients on theta agree.
    for a, b in zip(jax.tree.leaves(maml_state["params"]), jax.tree.leaves(sgd_state["params"]["init"])):
        np.testing.assert_array_equal(a, b)
    maml_next, maml_metrics = jax.jit(maml.step)(maml_state)
    sgd_next, sgd_metrics = jax.jit(meta_sgd.step)(sgd_state)
    np.testing.assert_allclose(maml_metrics["loss"], sgd_metrics["loss"], rtol=1e-6)
    for a, b in zip(jax.tree.leaves(maml_next["params"]), jax.tree.leaves(sgd_next["params"]["init"])):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    # ... and the rates themselves did move: Meta-SGD learns them.
    moved = [np.max(np.abs(np.asarray(r) - config.inner_lr)) for r in jax.tree.leaves(sgd_next["params"]["inner_lr"])]
    assert max(moved) > 0


def test_a_task_reuses_its_support_points_under_any_key_and_its_query_points_differ():
    family = get_family("sinusoid")
    learner = regression_model(family, [8], 10, 10, 10, False).learner
    task = jax.tree.map(lambda x: x[0], family.sample(jax.random.PRNGKey(0), 1, "test"))
    _, x_support, _ = learner.support(None, task, jax.random.PRNGKey(1))
    _, x_again, _ = learner.support(None, task, jax.random.PRNGKey(2))
    _, x_query, _ = learner.query(None, task, jax.random.PRNGKey(1))
    np.testing.assert_array_equal(x_support, x_again)  # every inner step sees the same K points
    assert not np.allclose(x_support, x_query)


def test_the_baselines_step_size_is_tuned_on_train_split_validation_tasks_never_the_held_out_ones(monkeypatch):
    from types import SimpleNamespace

    from metarl_cli import evaluate

    drawn = []
    monkeypatch.setattr(evaluate, "draw_tasks", lambda family, seed, tasks, split: drawn.append((seed, split)) or np.zeros(tasks))
    # A score that peaks at twice inner_lr.
    algo = SimpleNamespace(maximize=True, adaptation_curve=lambda params, tasks, key, steps, scale: np.full((len(tasks), steps + 1), -(scale - 2.0) ** 2))
    assert evaluate.tuned_lr_scale(algo, None, None, 4, 2) == 2.0
    assert drawn == [(evaluate.VALIDATION_KEY, "train")] and evaluate.VALIDATION_KEY != evaluate.EVAL_KEY
    # A step that diverges (NaN scores) is never the choice, though the grid's first.
    diverging = lambda params, tasks, key, steps, scale: np.full((len(tasks), steps + 1), np.nan if scale == evaluate.LR_GRID[0] else -(scale - 2.0) ** 2)  # noqa: E731
    assert evaluate.tuned_lr_scale(SimpleNamespace(maximize=True, adaptation_curve=diverging), None, None, 4, 2) == 2.0


@pytest.mark.parametrize("shots, query_points, baseline_points", [(5, 0, 0), (10, 10, 10), (10, 2, 6), (5, 20, 13)])
def test_the_regression_baselines_see_at_least_the_points_meta_training_drew(shots, query_points, baseline_points):
    """Meta-training draws K support and Q query points a task (Q = K where query_points is 0); a
    baseline, no inner loop and two batches a task, draws query batches alone: (K + Q) / 2 points
    each (rounded up) where Q is not K, so that it sees as many points as meta-training, or one
    more a batch, not 2Q. The default keeps its config as it was (a cached baseline stays valid)."""
    from metarl_cli.evaluate import baselines_of
    from metarl_cli.families import family_for

    config = resolve_config("maml", "sinusoid", None, [f"shots={shots}", f"query_points={query_points}", "iterations=100"])
    family = family_for(config)
    baselines = baselines_of(make_algorithm("maml", config, family), "maml", config, family)
    assert [b.name for b in baselines] == ["pretrained", "oracle"]
    drawn = config.iterations * config.meta_batch * (shots + (query_points or shots))
    for baseline in baselines:
        b = baseline.config
        seen = b.iterations * b.meta_batch * (b.query_points or b.shots)
        assert b.inner_steps == 0 and drawn <= seen <= drawn + b.iterations * b.meta_batch, (baseline.name, seen, drawn)
        assert b.query_points == baseline_points


def test_the_scores_before_and_after_adapting_are_of_the_parameters_before_and_after_the_inner_steps():
    """What training logs as pre_mse and post_mse (and ranks checkpoints by): the support MSE of the
    initial parameters, and the query MSE of the parameters after the inner SGD steps, taken here by
    hand."""
    with enable_x64():
        model, theta, task, _ = setup()
        learner, key = model.learner, jax.random.PRNGKey(2)
        support, query = learner.support(theta, task, key), learner.query(theta, task, key)  # the task's own points
        adapted = theta
        for _ in range(2):
            adapted = jax.tree.map(lambda p, g: p - ALPHA * g, adapted, jax.grad(learner.loss)(adapted, support))
        _, (pre, post) = one_task_meta_loss(learner, theta, task, key, 2, ALPHA, first_order=False)
        np.testing.assert_allclose(pre, learner.score(theta, support), rtol=1e-9)
        np.testing.assert_allclose(post, learner.score(adapted, query), rtol=1e-9)
        assert abs(float(post) - float(learner.score(theta, query))) > 1e-3 * float(post)  # adapting changed it


def test_an_adaptation_curve_takes_each_step_at_its_own_rate():
    """Eval's step j at inner_lr x scales[j] (later_lr_scale, a tuned baseline step): a step at rate 0
    leaves the score as it was, a step at half the rate matches one taken by hand."""
    from metarl_cli.meta import adaptation_curve

    with enable_x64():
        model, theta, task, _ = setup()
        learner, key = model.learner, jax.random.PRNGKey(2)
        support, query = learner.support(theta, task, key), learner.query(theta, task, key)
        curve = np.asarray(adaptation_curve(learner, theta, task, key, ALPHA, jnp.array([1.0, 0.0, 0.5])))
        assert curve[1] != curve[0] and curve[2] == curve[1]
        adapted = theta
        for rate in (ALPHA, 0.5 * ALPHA):
            adapted = jax.tree.map(lambda p, g: p - rate * g, adapted, jax.grad(learner.loss)(adapted, support))
        np.testing.assert_allclose(curve[3], learner.score(adapted, query), rtol=1e-9)


def test_eval_takes_the_first_step_at_inner_lr_and_the_later_ones_at_later_lr_scale_times_it():
    """The algorithm's curve is the mechanism's (`test_an_adaptation_curve_takes_each_step_at_its_own_rate`,
    checked there by hand) at rates inner_lr, then later_lr_scale x inner_lr, each task with its own key."""
    from metarl_cli.algos.maml import model_for
    from metarl_cli.meta import adaptation_curve

    config = resolve_config("maml", "sinusoid", None, ["hidden=[8]", "inner_lr=0.01", "later_lr_scale=0.5"])
    family = get_family("sinusoid")
    algo = make_algorithm("maml", config, family)
    tasks = family.sample(jax.random.PRNGKey(1), 2, "test")
    theta, key = algo.init_params(jax.random.PRNGKey(0)), jax.random.PRNGKey(2)
    curve = np.asarray(algo.adaptation_curve(theta, tasks, key, 2))
    by_rate = jax.vmap(lambda t, k: adaptation_curve(model_for(config, family).eval_learner, theta, t, k, 0.01, jnp.array([1.0, 0.5])))
    np.testing.assert_allclose(curve, by_rate(tasks, jax.random.split(key, 2)), rtol=1e-6)
    assert np.all(np.abs(np.diff(curve, axis=1)) > 1e-4)  # both steps move the score


@pytest.mark.parametrize("query_points, drawn", [(20, 20), (0, 5)])
def test_a_task_draws_shots_support_points_and_query_points_query_points_and_eval_its_own_number(query_points, drawn):
    family = get_family("sinusoid")
    model = regression_model(family, (8,), shots=5, query_points=query_points, eval_query_points=50, task_input=False)
    task = jax.tree.map(lambda x: x[0], family.sample(jax.random.PRNGKey(1), 1, "train"))
    key = jax.random.PRNGKey(2)
    sizes = [len(learn(None, task, key)[1]) for learn in (model.learner.support, model.learner.query, model.eval_learner.query)]
    assert sizes == [5, drawn, 50]


def test_each_seed_of_a_program_is_that_seed_trained_alone():
    """Run i of `--seeds 2 --set seed=5` is the run of seed 5 + i, built from its own config, to
    rounding: its whole state (parameters, Adam's moments, key, iteration)."""
    sets = ["hidden=[8]", "meta_batch=4"]
    config = resolve_config("maml", "sinusoid", None, [*sets, "seed=5", "seeds=2"])
    algo = make_algorithm("maml", config, family_for(config))
    together, _ = compile_chunks(seeded_step(algo.step, config, algo.vmap_seeds))(initial_state(algo, config), 20)
    for i in range(2):
        single = resolve_config("maml", "sinusoid", None, [*sets, f"seed={5 + i}"])
        own = make_algorithm("maml", single, family_for(single))
        alone, _ = compile_chunks(own.step)(initial_state(own, single), 20)
        for a, b in zip(jax.tree.leaves(together), jax.tree.leaves(alone)):
            np.testing.assert_allclose(np.asarray(a)[i], np.asarray(b), rtol=1e-5, atol=1e-6)


def test_each_meta_iteration_moves_the_run_key_on():
    """New tasks and batches every iteration: the state's key is split, not reused."""
    config = resolve_config("maml", "sinusoid", None, ["hidden=[8]", "meta_batch=2"])
    algo = make_algorithm("maml", config, get_family("sinusoid"))
    state, step = algo.init(jax.random.PRNGKey(0)), jax.jit(algo.step)
    keys = [state["key"]]
    for _ in range(2):
        state, _ = step(state)
        keys.append(state["key"])
    assert len({tuple(np.asarray(k).ravel().tolist()) for k in keys}) == 3


def test_a_meta_iterations_loss_and_gradient_are_the_means_over_its_tasks():
    """What training logs and steps on: the mean of the meta-batch's query losses (not their sum,
    which would grow the logged loss, the step and its clipping with meta_batch), over the tasks
    and keys the run key draws."""
    import optax

    from metarl_cli.algos.maml import model_for
    from metarl_cli.meta import meta_batch_loss

    config = resolve_config("maml", "sinusoid", None, ["hidden=[8]", "meta_batch=2"])  # the previous test's: one compiled step
    family = get_family("sinusoid")
    algo, model = make_algorithm("maml", config, family), model_for(config, family)
    state = algo.init(jax.random.PRNGKey(0))
    _, metrics = jax.jit(algo.step)(state)
    _, k_tasks, k_loss = jax.random.split(state["key"], 3)
    tasks, keys = family.sample(k_tasks, config.meta_batch, "train"), jax.random.split(k_loss, config.meta_batch)

    def mean_loss(params):
        losses, _ = meta_batch_loss(model.learner, params, tasks, keys, config.inner_steps, config.inner_lr, config.first_order)
        return jnp.mean(losses)

    loss, grads = jax.jit(jax.value_and_grad(mean_loss))(state["params"])
    np.testing.assert_allclose(metrics["loss"], loss, rtol=1e-5)
    np.testing.assert_allclose(metrics["grad_norm"], optax.tree.norm(grads), rtol=1e-4)


def test_eval_adapts_every_method_with_the_same_tasks_keys_and_steps_and_tunes_on_validation_tasks(tmp_path, monkeypatch):
    """Eval's paired comparison, recorded at each adaptation_curve call: the meta-learned network, the
    random init and the pretrained baseline all adapt K steps on the same held-out tasks with the same
    key, the first two at inner_lr (scale 1), the baseline at its tuned scale; the tuning itself runs K
    steps on other (train-split validation) tasks."""
    from metarl_cli import evaluate
    from metarl_cli.config import write_config

    K = 3
    config = resolve_config("maml", "sinusoid", None, ["hidden=[8]", "eval_tasks=4", f"eval_steps={K}", "iterations=10"])
    assert config.tune_baseline_lr
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({"tool": "metarl", "algo": "maml"}))
    write_config(config, "maml", run / "config.toml")

    calls = []
    real = evaluate.make_algorithm

    def recording(name, cfg, family):
        algo = real(name, cfg, family)

        def curve(params, tasks, key, steps, lr_scale=1.0):
            leaves = [np.asarray(x) for x in jax.tree.leaves(tasks)]
            calls.append({"tasks": leaves, "key": np.asarray(key), "steps": steps, "scale": lr_scale})
            return np.full((leaves[0].shape[0], steps + 1), (lr_scale - 2.0) ** 2)  # an MSE lowest at twice inner_lr

        return algo._replace(adaptation_curve=curve)

    monkeypatch.setattr(evaluate, "make_algorithm", recording)
    monkeypatch.setattr(evaluate, "Checkpoints", checkpoints_stub(restored=10, latest=10))
    monkeypatch.setattr(evaluate, "trained_baselines", lambda run_dir, baselines, show: [None] * len(baselines))
    result = evaluate.evaluate(run, "test", None, None, "latest", show_progress=False)

    assert list(result.methods)[:3] == ["meta-learned", "random init", "pretrained (multi-task, step 0.02)"]
    tuning, scored = calls[:-4], calls[-4:]  # the baseline's step is tuned first; then each method is scored in order
    assert len(tuning) == len(evaluate.LR_GRID) and len(scored) == 4
    held_out = scored[0]
    for call in scored:
        assert call["steps"] == K
        np.testing.assert_array_equal(call["key"], held_out["key"])
        for a, b in zip(call["tasks"], held_out["tasks"]):
            np.testing.assert_array_equal(a, b)
    assert [c["scale"] for c in scored[:3]] == [1.0, 1.0, 2.0]
    for call in tuning:
        assert call["steps"] == K
        assert not any(np.array_equal(a, b) for a, b in zip(call["tasks"], held_out["tasks"]))
