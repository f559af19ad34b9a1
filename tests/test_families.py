"""Task families: derived physics fields, disjoint splits, tasks fixed across auto-resets, ranges."""

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metarl_cli.errors import UserError
from metarl_cli.families import FAMILY_NAMES, get_family
from metarl_cli.rl.rollout import rollout


@pytest.mark.parametrize("split", ["train", "test", "ood"])
def test_cartpole_derived_fields_follow_sampled_ones(split):
    p = get_family("cartpole-family").sample(jax.random.PRNGKey(3), 256, split)
    np.testing.assert_allclose(p.total_mass, p.masscart + p.masspole, rtol=1e-6)
    np.testing.assert_allclose(p.polemass_length, p.masspole * p.length, rtol=1e-6)
    assert np.std(np.asarray(p.masspole)) > 0  # really randomised, not the default


def test_acrobot_links_share_a_mass_and_length_as_in_sunblaze_and_centres_of_mass_follow_the_length():
    family = get_family("acrobot-family")
    p = family.sample(jax.random.PRNGKey(4), 128, "ood")
    np.testing.assert_array_equal(p.link_mass_2, p.link_mass_1)
    np.testing.assert_array_equal(p.link_length_2, p.link_length_1)
    np.testing.assert_allclose(p.link_com_pos_1, p.link_length_1 / 2, rtol=1e-6)
    np.testing.assert_allclose(p.link_com_pos_2, p.link_length_1 / 2, rtol=1e-6)
    assert family.describe(jax.tree.map(lambda x: x[0], p)).shape == (3,)  # mass, length, inertia: Sunblaze's three


def test_test_and_ood_draw_from_different_streams():
    """A sinusoid's phase keeps its training interval in ood: only the key streams set the splits apart."""
    family = get_family("sinusoid")
    test, ood = (family.sample(jax.random.PRNGKey(0), 64, split) for split in ("test", "ood"))
    assert not np.allclose(family.value(test, "phase"), family.value(ood, "phase"))


@pytest.mark.parametrize("name", [n for n in FAMILY_NAMES if get_family(n).ranges])  # `cartpole` is one task
def test_splits_are_disjoint(name):
    fam = get_family(name)
    key = jax.random.PRNGKey(0)
    train, test, ood = (fam.sample(key, 512, s) for s in ("train", "test", "ood"))
    for r in fam.ranges:
        lo, hi = r.train
        tr, te, od = (np.asarray(fam.value(p, r.name)) for p in (train, test, ood))
        assert np.all((tr >= lo) & (tr <= hi)) and np.all((te >= lo) & (te <= hi))
        if r.ood:  # an empty ood keeps the train range; another parameter carries the shift
            assert not np.any((od > lo) & (od < hi)), f"{r.name}: ood draws inside the train range"
    assert any(r.ood for r in fam.ranges), "the ood split must differ from train somewhere"
    as_rows = lambda p: {tuple(np.asarray(fam.value(p, r.name))[i] for r in fam.ranges) for i in range(512)}  # noqa: E731
    assert not as_rows(train) & as_rows(test), "test split reuses train tasks"


def test_task_description_is_scaled_to_train_range():
    """Each column spans [-1, 1] over the train range, in its parameter's order."""
    fam = get_family("cartpole-family")
    tasks = fam.sample(jax.random.PRNGKey(1), 300, "train")
    d = np.asarray(fam.describe(tasks))
    assert d.shape == (300, 3)
    assert d.min() >= -1.0 and d.max() <= 1.0
    assert np.all(d.min(axis=0) < -0.95) and np.all(d.max(axis=0) > 0.95)  # 300 uniform draws reach both ends
    for column, r in zip(d.T, fam.ranges):
        by_value = column[np.argsort(np.asarray(fam.value(tasks, r.name)))]
        assert np.all(np.diff(by_value) >= 0), r.name


def test_a_range_of_one_value_samples_and_describes_it():
    fam = get_family("sinusoid", {"train": {"amplitude": [2, 2]}})
    tasks = fam.sample(jax.random.PRNGKey(1), 50, "train")
    assert np.all(np.asarray(fam.value(tasks, "amplitude")) == 2.0)
    np.testing.assert_array_equal(fam.describe(tasks)[:, [r.name for r in fam.ranges].index("amplitude")], 0.0)
    # An ood split of two single values draws both, as often as each other (to sampling noise).
    fam = get_family("cartpole-family", {"ood": {"force_mag": [[1, 1], [20, 20]]}})
    force = np.asarray(fam.sample(jax.random.PRNGKey(2), 400, "ood").force_mag)
    assert set(np.unique(force)) == {1.0, 20.0} and 150 < np.sum(force == 1.0) < 250


def test_goal_stays_fixed_across_auto_resets():
    fam = get_family("point-nav")
    task = jax.tree.map(lambda x: x[0], fam.sample(jax.random.PRNGKey(5), 1, "train"))
    task = task.replace(max_steps_in_episode=7)  # many resets inside one rollout

    def policy(params, obs, key):
        return jax.random.normal(key, obs.shape)

    traj = rollout(fam.env, policy, None, task, jax.random.PRNGKey(6), lanes=3, horizon=40)
    assert int(traj.dones.sum()) >= 3 * 5
    pos = traj.obs + 0.1 * jnp.clip(traj.actions, -1.0, 1.0)  # where each step lands
    goal = jnp.array([task.goal_x, task.goal_y])
    np.testing.assert_allclose(traj.rewards, -jnp.linalg.norm(pos - goal, axis=-1), atol=1e-5)
    # after every reset the point starts again at the origin
    starts = traj.episode_time == 0
    np.testing.assert_allclose(np.asarray(traj.obs)[np.asarray(starts)], 0.0)


def test_regression_points_are_the_tasks_own_and_fixed():
    from metarl_cli.families.regression import QUERY, SUPPORT

    fam = get_family("sinusoid")
    tasks = fam.sample(jax.random.PRNGKey(7), 3, "train")
    task = jax.tree.map(lambda x: x[0], tasks)
    x, y = fam.points(task, SUPPORT, 5)
    np.testing.assert_allclose(y, task["amplitude"] * jnp.sin(x - task["phase"]), rtol=1e-6)
    # The learner's support batch ignores the step's key: every inner step sees the same K points.
    from metarl_cli.regression_learner import regression_model

    model = regression_model(fam, (4,), shots=5, query_points=5, eval_query_points=5, task_input=False)
    assert model.score_name == "mse" and not model.maximize  # the best checkpoint and a tuned step size minimise it
    learner = model.learner
    for step_key in (jax.random.PRNGKey(11), jax.random.PRNGKey(12)):
        np.testing.assert_array_equal(learner.support(None, task, step_key)[1], x)
    assert np.all(np.abs(np.asarray(x)) <= 5.0)
    query, _ = fam.points(task, QUERY, 5)
    assert not set(np.asarray(x).tolist()) & set(np.asarray(query).tolist())
    other, _ = fam.points(jax.tree.map(lambda v: v[1], tasks), SUPPORT, 5)
    assert not np.allclose(x, other)
    line = get_family("linear")
    task = jax.tree.map(lambda v: v[0], line.sample(jax.random.PRNGKey(8), 1, "train"))
    x, y = line.points(task, SUPPORT, 5)
    np.testing.assert_allclose(y, task["slope"] * x + task["intercept"], rtol=1e-6)


def test_range_overrides_are_validated():
    fam = get_family("cartpole-family", {"train": {"force_mag": [6, 14]}})
    assert dict((r.name, r.train) for r in fam.ranges)["force_mag"] == (6.0, 14.0)
    refused = [
        ({"train": {"force_mag": [4, 16]}}, "overlaps its train range"),
        ({"train": {"length": [0.9, 0.2]}}, "min > max"),
        ({"train": {"masspole": [-0.1, 0.2]}}, "positive"),
        ({"train": {"mass": [0.1, 0.2]}}, "unknown parameter"),
        ({"train": {"force_mag": [[6, 8], [10, 14]]}}, "train range for 'force_mag' must be one interval"),  # not cut to the first
        ({"test": {"force_mag": [[1, 2]]}}, "unknown range split 'test'"),  # test draws from train's range; not read as ood
        # ood intervals clear of train's force_mag [5, 15], checked as train's are
        ({"ood": {"force_mag": [[20, 16]]}}, "min > max"),
        ({"ood": {"force_mag": [[-1, 2]]}}, "must be positive"),
        ({"ood": {"force_mag": [[16, float("inf")]]}}, "must be finite"),
    ]
    for ranges, message in refused:
        with pytest.raises(UserError, match=re.escape(message)):
            get_family("cartpole-family", ranges)


def test_a_new_run_refuses_ood_intervals_that_overlap_but_an_older_run_with_them_still_builds_its_family(cli, tmp_path):
    from metarl_cli.config import resolve_config
    from metarl_cli.families import family_for

    chained = "ranges.ood.force_mag=[[1, 2], [1.5, 3], [2.5, 4], [16, 18]]"
    code, _, err = cli("train", "maml", "--set", chained, "--dry-run", "-o", str(tmp_path / "run"))
    assert code == 2 and ("ood ranges [1.0, 2.0] and [1.5, 3.0] for 'force_mag' overlap; give intervals apart, such as their "
                          "union: [[1.0, 4.0], [16.0, 18.0]]") in " ".join(err.split()), err
    touching = "ranges.ood.force_mag=[[1, 3], [3, 5]]"  # sharing an end, not a stretch
    code, _, err = cli("train", "maml", "--set", touching, "--dry-run", "-o", str(tmp_path / "run"))
    assert code == 0, err
    older = dataclasses.replace(resolve_config("maml", None, None, []), ranges={"ood": {"force_mag": [[1, 2], [1.5, 3]]}})
    assert dict((r.name, r.ood) for r in family_for(older).ranges)["force_mag"] == ((1.0, 2.0), (1.5, 3.0))  # as a config.toml before


def test_is_regression_names_exactly_the_regression_families():
    from metarl_cli.families import FAMILY_NAMES, RegressionFamily, get_family, is_regression

    assert {name for name in FAMILY_NAMES if is_regression(name)} == {
        name for name in FAMILY_NAMES if isinstance(get_family(name), RegressionFamily)} == {"sinusoid", "linear"}
    assert not is_regression("no-such-family")


def test_ood_draws_each_interval_of_a_union_by_its_length():
    from metarl_cli.families.base import ParamRange

    shifted = ParamRange("p", 1.0, (1.0, 2.0), ((0.1, 0.5), (3.0, 4.6)))  # lengths 0.4 and 1.6
    values = np.asarray(shifted.sample(jax.random.PRNGKey(0), 20_000, "ood"))
    assert abs(np.mean(values < 1.0) - 0.2) < 0.02


SUNBLAZE_UNIT = (1.0, (0.75, 1.25), [(0.5, 0.75), (1.25, 1.5)])
SUNBLAZE = {  # Packer et al. 2018: parameter -> (default D, train R, held-out E)
    "cartpole-family": {"force_mag": (10.0, (5.0, 15.0), [(1.0, 5.0), (15.0, 20.0)]),
                        "length": (0.5, (0.25, 0.75), [(0.05, 0.25), (0.75, 1.0)]),
                        "masspole": (0.1, (0.05, 0.5), [(0.01, 0.05), (0.5, 1.0)])},
    "mountaincar-family": {"force": (0.001, (0.0005, 0.005), [(0.0001, 0.0005), (0.005, 0.01)]),
                           "gravity": (0.0025, (0.001, 0.005), [(0.0005, 0.001), (0.005, 0.01)])},
    "acrobot-family": {"link_length_1": SUNBLAZE_UNIT, "link_mass_1": SUNBLAZE_UNIT, "link_moi": SUNBLAZE_UNIT},
    "pendulum-family": {"l": SUNBLAZE_UNIT, "m": SUNBLAZE_UNIT},
}


@pytest.mark.parametrize("name", sorted(SUNBLAZE))
def test_physics_families_have_the_sunblaze_defaults_and_ranges(name):
    ranges = {r.name: (r.default, tuple(r.train), [tuple(i) for i in r.ood]) for r in get_family(name).ranges}
    assert ranges.keys() == SUNBLAZE[name].keys()
    for parameter, (default, train, ood) in SUNBLAZE[name].items():
        assert ranges[parameter][0] == pytest.approx(default) and ranges[parameter][1] == pytest.approx(train), parameter
        assert len(ranges[parameter][2]) == len(ood) and all(a == pytest.approx(b) for a, b in zip(ranges[parameter][2], ood)), parameter


def test_rollout_counts_time_within_each_episode_and_keeps_each_final_observation():
    family = get_family("cartpole-family")
    task = jax.tree.map(lambda x: x[0], family.sample(jax.random.PRNGKey(0), 1, "train"))
    uniform = lambda params, obs, key: jax.random.randint(key, obs.shape[:-1], 0, 2)  # noqa: E731
    traj = jax.jit(lambda key: rollout(family.env, uniform, None, task, key, 4, 100))(jax.random.PRNGKey(1))
    time, dones, obs, next_obs = (np.asarray(x) for x in (traj.episode_time, traj.dones, traj.obs, traj.next_obs))
    assert dones.any() and np.all(time[0] == 0)
    assert len(np.unique(obs[0], axis=0)) == 4  # each lane starts from its own reset
    np.testing.assert_array_equal(time[1:], np.where(dones[:-1], 0, time[:-1] + 1))
    continuing = ~dones[:-1]
    np.testing.assert_array_equal(next_obs[:-1][continuing], obs[1:][continuing])
    assert not np.any(np.all(next_obs[:-1][~continuing] == obs[1:][~continuing], axis=-1))  # the last state, not the reset one


def test_first_episode_return_sums_each_lane_up_to_its_first_episode_end():
    from metarl_cli.rl.rollout import Trajectory, first_episode_return

    dones = jnp.array([[False, False], [True, False], [False, True], [False, False]])
    traj = Trajectory(jnp.zeros((4, 2, 1)), jnp.zeros((4, 2), jnp.int32), jnp.ones((4, 2)), dones, jnp.zeros((4, 2), jnp.int32))
    assert float(first_episode_return(traj)) == 2.5  # lane 0: steps 0-1, lane 1: steps 0-2


def test_tabular_mdp_next_state_follows_the_current_states_row_of_the_transition_matrix():
    """From two different states with the same action, the next states' frequencies over many keys
    match P(. | s, a) for each state (to 5 binomial standard errors), and the two rows differ."""
    from metarl_cli.families.tabular_mdp import STATES, MdpState

    fam = get_family("tabular-mdp")
    task = jax.tree.map(lambda x: x[0], fam.sample(jax.random.PRNGKey(8), 1, "train"))
    states, action, n = jnp.array([3, 7]), 2, 20_000

    @jax.jit
    def next_state_counts(keys):
        def step(s, key):
            return fam.env.step_env(key, MdpState(state=s, time=0), action, task)[1].state

        nxt = jax.vmap(lambda s: jax.vmap(lambda k: step(s, k))(keys))(states)
        return jax.vmap(lambda row: jnp.bincount(row, length=STATES))(nxt)

    freq = np.asarray(next_state_counts(jax.random.split(jax.random.PRNGKey(9), n))) / n
    rows = np.asarray(task.transitions)[np.asarray(states), action]
    assert np.abs(rows[0] - rows[1]).max() > 0.1  # two distinct distributions to tell apart
    tolerance = 5 * np.sqrt(rows * (1 - rows) / n) + 1e-3
    for s, f, p, tol in zip(np.asarray(states), freq, rows, tolerance):
        assert np.all(np.abs(f - p) < tol), f"state {s}: frequencies {f} vs P(. | s, a) {p}"


def test_discrete_pendulum_actions_are_evenly_spaced_torques_from_minus_to_plus_max_torque():
    """Action i of n steps exactly as gymnax's continuous Pendulum does with torque
    -max_torque + 2 * max_torque * i / (n - 1); the middle action is no torque."""
    from gymnax.environments.classic_control import Pendulum
    from gymnax.environments.classic_control.pendulum import EnvState

    fam = get_family("pendulum-family")
    task = jax.tree.map(lambda x: x[0], fam.sample(jax.random.PRNGKey(10), 1, "train"))
    n = fam.env.num_actions
    assert n == 5  # as its summary, `metarl envs` and the README say
    state = EnvState(theta=jnp.float32(0.7), theta_dot=jnp.float32(-0.3), last_u=jnp.float32(0.0), time=0)
    key = jax.random.PRNGKey(0)
    torques = np.linspace(-1.0, 1.0, n) * float(task.max_torque)
    dthdot = []
    for action, torque in enumerate(torques):
        obs, new, reward, _, _ = fam.env.step_env(key, state, action, task)
        ref_obs, ref, ref_reward, _, _ = Pendulum().step_env(key, state, jnp.float32(torque), task)
        np.testing.assert_allclose(obs, ref_obs, rtol=1e-5, atol=1e-6, err_msg=f"action {action}")
        np.testing.assert_allclose(reward, ref_reward, rtol=1e-5, atol=1e-6, err_msg=f"action {action}")
        np.testing.assert_allclose(new.last_u, torque, rtol=1e-5, atol=1e-6, err_msg=f"action {action}")
        dthdot.append(float(new.theta_dot))
    # relative to no torque, the extreme actions push the pendulum equally hard in opposite directions
    middle = dthdot[n // 2]
    np.testing.assert_allclose(dthdot[0] - middle, -(dthdot[-1] - middle), rtol=1e-4)
    assert dthdot[0] < middle < dthdot[-1]


def test_point_nav_terminates_only_within_the_goal_radius_on_both_axes():
    """The episode ends when the point lands within goal_radius of the goal per axis, on x and on y
    together: near on one axis only is not the goal."""
    from metarl_cli.families.point_nav import PointNavState

    env = get_family("point-nav").env
    params = env.default_params.replace(goal_x=0.3, goal_y=-0.2)
    r = params.goal_radius
    still = jnp.zeros(2)
    key = jax.random.PRNGKey(0)

    def terminated(pos):  # (the step's verdict on landing at pos, is_terminated's on being there)
        state = PointNavState(pos=jnp.array(pos, jnp.float32), time=0)
        return bool(env.step(key, state, still, params)[3]), bool(env.is_terminated(state, params))

    assert terminated([0.3 + r / 2, -0.2 - r / 2]) == (True, True)
    assert terminated([0.3 + 0.9 * r, -0.2 - 0.9 * r]) == (True, True)  # within r on each axis, 1.27 r away
    assert terminated([0.3 + r / 2, -0.2 + 0.4]) == (False, False)  # x near, y far
    assert terminated([0.3 - 0.4, -0.2 + r / 2]) == (False, False)  # y near, x far
    assert terminated([0.3 + 2 * r, -0.2 + 2 * r]) == (False, False)


def test_point_nav_moves_by_the_clipped_action_scaled_to_max_action_and_pays_minus_the_distance_after_the_move():
    """From the origin, action (3, -0.5) clips to (1, -0.5) and moves by 0.1 times it, to (0.1, -0.05);
    the goal (0.3, -0.2) is then (0.2, 0.15) away: reward -0.25 (the Euclidean distance, after the move)."""
    from metarl_cli.families.point_nav import PointNavState

    env = get_family("point-nav").env
    params = env.default_params.replace(goal_x=0.3, goal_y=-0.2)
    state = PointNavState(pos=jnp.zeros(2), time=0)
    obs, state, reward, _, _ = env.step_env(jax.random.PRNGKey(0), state, jnp.array([3.0, -0.5]), params)
    np.testing.assert_allclose(obs, [0.1, -0.05], rtol=1e-6)
    np.testing.assert_allclose(state.pos, [0.1, -0.05], rtol=1e-6)
    np.testing.assert_allclose(reward, -0.25, rtol=1e-5)


def test_point_nav_held_out_goals_fill_the_four_corner_squares():
    """Each held-out coordinate is drawn from [-1, -0.5) or (0.5, 1]: every corner square of [-1, 1]^2
    outside the training square gets goals, out to its edge."""
    fam = get_family("point-nav")
    goals = fam.sample(jax.random.PRNGKey(0), 4000, "ood")
    x, y = (np.asarray(fam.value(goals, name)) for name in ("goal_x", "goal_y"))
    for coordinate in (x, y):
        assert np.all((np.abs(coordinate) >= 0.5) & (np.abs(coordinate) <= 1.0))
        assert coordinate.min() < -0.99 and coordinate.max() > 0.99
    assert {(bool(a), bool(b)) for a, b in zip(x > 0, y > 0)} == {(False, False), (False, True), (True, False), (True, True)}


def test_a_union_of_intervals_is_sampled_across_the_whole_of_each_interval():
    """ood = [0.1, 0.5] ∪ [3.0, 4.6] (lengths 0.4 and 1.6). Each draw is lo + u * (its own interval's
    width): the second interval is filled up to 4.6, so P(value > 3.4) = (4.6 - 3.4) / 2.0 = 0.6, and
    every value lies in the union. (Scaling every draw by the first interval's width, 0.4, would put
    no value above 3.4.)"""
    from metarl_cli.families.base import ParamRange

    shifted = ParamRange("p", 1.0, (1.0, 2.0), ((0.1, 0.5), (3.0, 4.6)))
    values = np.asarray(shifted.sample(jax.random.PRNGKey(0), 20_000, "ood"))
    assert np.all(((values >= 0.1) & (values <= 0.5)) | ((values >= 3.0) & (values <= 4.6)))
    assert abs(np.mean(values > 3.4) - 0.6) < 0.02
    assert values.max() > 4.55


def test_point_nav_follows_the_maml_protocol():
    """Training and test goals fill [-0.5, 0.5]^2; the point starts at the origin; the episode ends
    within 0.01 of the goal on both axes (an absolute radius, not the params' own), after 100 steps at most."""
    from metarl_cli.families.point_nav import PointNavState

    fam = get_family("point-nav")
    assert fam.horizon == 100
    for split in ("train", "test"):
        goals = fam.sample(jax.random.PRNGKey(0), 4000, split)
        for name in ("goal_x", "goal_y"):
            c = np.asarray(fam.value(goals, name))
            assert np.all(np.abs(c) <= 0.5) and c.min() < -0.49 and c.max() > 0.49, (split, name)
    env = fam.env
    params = env.default_params.replace(goal_x=0.3, goal_y=-0.2)
    obs, _ = env.reset(jax.random.PRNGKey(0), params)
    np.testing.assert_array_equal(obs, [0.0, 0.0])

    def ends(dx, dy):
        state = PointNavState(pos=jnp.array([0.3 + dx, -0.2 + dy], jnp.float32), time=0)
        return bool(env.step_env(jax.random.PRNGKey(0), state, jnp.zeros(2), params)[3])

    assert ends(0.009, -0.009)
    assert not ends(0.012, 0.0) and not ends(0.0, -0.012) and not ends(0.05, 0.05)
