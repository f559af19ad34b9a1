"""DQN: the replay buffer, the TD target at episode ends, seeds in one program and split over
devices, exact resume."""

import dataclasses
import json
import tomllib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metarl_cli.algos import make_algorithm
from metarl_cli.config import resolve_config
from metarl_cli.errors import UserError
from metarl_cli.families import family_for
from metarl_cli.rl.q_learning import epsilon_greedy, make_q_network, td_loss, td_regression, td_targets, update_target
from metarl_cli.rl.replay import Transition, replay_add, replay_init, replay_sample
from metarl_cli.training.checkpoint import Checkpoints
from metarl_cli.training.final_returns import final_returns
from metarl_cli.training.runner import compile_chunks, initial_state, seed_mesh, seeded_step, train
from conftest import set_args

# A DQN that compiles in seconds: 2 environments, a gradient step every 2 env steps from step 16.
TINY_DQN = ["total_steps=160", "num_envs=2", "train_every=2", "learning_starts=16", "batch_size=8", "buffer_size=32",
            "target_update_every=10", "hidden=[8]", "chunk=20", "eval_tasks=3"]


def tiny_config(*extra):
    return resolve_config("dqn", "cartpole", None, [*TINY_DQN, *extra])


def test_replay_never_samples_unwritten_slots():
    example = Transition(jnp.zeros(2), jnp.zeros((), jnp.int32), jnp.zeros(()), jnp.zeros(2), jnp.zeros((), bool))
    buffer = replay_init(example, capacity=16)
    marked = lambda values: Transition(  # noqa: E731
        jnp.stack([values, values], 1), jnp.zeros(len(values), jnp.int32), values, jnp.zeros((len(values), 2)), jnp.zeros(len(values), bool)
    )
    buffer = replay_add(buffer, marked(jnp.arange(1.0, 6.0)))  # rewards 1..5; unwritten slots hold 0
    drawn = replay_sample(buffer, jax.random.PRNGKey(0), 2000).reward
    assert set(np.unique(drawn)) == {1.0, 2.0, 3.0, 4.0, 5.0}
    for start in range(6, 26, 5):  # wrap around the ring: only the last 16 written remain
        buffer = replay_add(buffer, marked(jnp.arange(start, start + 5.0)))
    assert int(buffer.size) == 16
    drawn = replay_sample(buffer, jax.random.PRNGKey(1), 4000).reward
    assert set(np.unique(drawn)) == set(np.arange(10.0, 26.0))


def test_td_target_bootstraps_on_terminated_only():
    q = make_q_network(2, 3, (4,))
    params = q.init(jax.random.PRNGKey(0))
    next_obs = jnp.array([[1.0, 2.0], [1.0, 2.0]])
    batch = Transition(jnp.zeros((2, 2)), jnp.zeros(2, jnp.int32), jnp.array([1.0, 1.0]), next_obs, jnp.array([True, False]))
    targets = td_targets(q, params, params, batch.reward, batch.next_obs, batch.terminated, 0.9, double=False)
    best_next = jnp.max(q.values(params, next_obs[1]))
    assert abs(best_next) > 0.1  # a next state worth something, so that bootstrapping shows
    np.testing.assert_allclose(targets, [1.0, 1.0 + 0.9 * best_next], rtol=1e-6)


def test_the_td_loss_regresses_the_online_network_onto_the_target_networks_values():
    """Q_online(s, a) against r + gamma max Q_target(s'), two networks apart; aux: the mean Q_online(s, a)."""
    q = make_q_network(2, 3, (16,))
    online, target = q.init(jax.random.PRNGKey(0)), q.init(jax.random.PRNGKey(1))
    obs, next_obs = jax.random.normal(jax.random.PRNGKey(2), (64, 2)), jax.random.normal(jax.random.PRNGKey(3), (64, 2))
    batch = Transition(obs, jnp.zeros(64, jnp.int32), jnp.ones(64), next_obs, jnp.zeros(64, bool))
    loss, q_mean = td_loss(q, online, target, batch, 0.9, double=False, huber=False)
    chosen = q.values(online, obs)[:, 0]
    np.testing.assert_allclose(loss, jnp.mean((chosen - (1.0 + 0.9 * q.values(target, next_obs).max(-1))) ** 2), rtol=1e-5)
    np.testing.assert_allclose(q_mean, jnp.mean(chosen), rtol=1e-5)
    _, q_mean = td_regression(q, online, obs, batch.action, chosen + 0.5, huber=False)
    np.testing.assert_allclose(q_mean, jnp.mean(chosen), rtol=1e-5)  # of the network's values, not the targets'


def test_epsilon_greedy_explores_every_action_uniformly():
    """Greedy picks the last action here; a random action is any of the three with chance 1/3."""
    q_values = jnp.tile(jnp.array([0.0, 0.0, 1.0]), (30_000, 1))
    actions = np.asarray(epsilon_greedy(q_values, jnp.float32(1.0), jax.random.PRNGKey(0)))
    np.testing.assert_allclose(np.bincount(actions, minlength=3) / actions.size, [1 / 3] * 3, atol=0.02)
    actions = np.asarray(epsilon_greedy(q_values, jnp.float32(0.5), jax.random.PRNGKey(1)))
    assert abs(np.mean(actions == 2) - (0.5 + 0.5 / 3)) < 0.02


def test_td_targets_read_the_target_network_and_double_dqn_the_online_argmax():
    q = make_q_network(2, 3, (4,))
    online, target = q.init(jax.random.PRNGKey(0)), q.init(jax.random.PRNGKey(1))
    next_obs = jax.random.normal(jax.random.PRNGKey(2), (64, 2))
    reward, terminated = jnp.zeros(64), jnp.zeros(64, bool)
    plain = td_targets(q, target, online, reward, next_obs, terminated, 1.0, double=False)
    np.testing.assert_allclose(plain, q.values(target, next_obs).max(-1), rtol=1e-6)
    double = td_targets(q, target, online, reward, next_obs, terminated, 1.0, double=True)
    chosen = q.values(online, next_obs).argmax(-1)
    np.testing.assert_allclose(double, jnp.take_along_axis(q.values(target, next_obs), chosen[:, None], -1)[:, 0], rtol=1e-6)
    assert not np.allclose(plain, double)
    soft = update_target(target, online, 0.25)  # Polyak: a quarter of the way to the online network
    for s, t, o in zip(*map(jax.tree.leaves, (soft, target, online))):
        np.testing.assert_allclose(s, 0.25 * o + 0.75 * t, rtol=1e-6)


def test_replay_stores_the_final_observation_at_episode_ends_and_the_target_follows_learning():
    """Episodes cut at 3 steps: a truncated transition's next_obs is the last state, not the reset one.
    Then, past learning_starts, the target network (updated every env step here) is the online one."""
    config = tiny_config("num_envs=1", "train_every=1", "target_update_every=1")
    family = dataclasses.replace(family_for(config), horizon=3)
    algo = make_algorithm("dqn", config, family)
    state = algo.init(jax.random.PRNGKey(0))
    run = compile_chunks(algo.step)
    state, _ = run(state, 7)
    data = jax.tree.map(np.asarray, state["replay"].data)
    for t in range(6):
        truncated_here = t % 3 == 2
        assert not data.terminated[t]  # CartPole does not fall within 3 steps
        if truncated_here:  # the next stored obs is a fresh reset; the transition keeps the true last state
            assert not np.allclose(data.next_obs[t], data.obs[t + 1])
            # ... one Euler step of the physics from obs: position and angle advance by tau * velocity.
            np.testing.assert_allclose(data.next_obs[t][[0, 2]], data.obs[t][[0, 2]] + 0.02 * data.obs[t][[1, 3]], atol=1e-6)
        else:
            np.testing.assert_array_equal(data.next_obs[t], data.obs[t + 1])
    before = state["params"]
    for _ in range(2):  # to 21 env steps: learning from the 17th, the first past learning_starts (16)
        state, metrics = run(state, 7)
    np.testing.assert_array_equal(np.flatnonzero(np.asarray(metrics["loss"])) + 15, [17, 18, 19, 20, 21])
    assert any(not np.allclose(a, b) for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(state["params"])))
    for online, target in zip(jax.tree.leaves(state["params"]), jax.tree.leaves(state["target_params"])):
        np.testing.assert_array_equal(online, target)


@pytest.mark.parametrize("env", ["tabular-mdp", "metamaze", "cartpole-family"])
def test_every_environment_draws_a_new_task_when_its_own_episode_ends(env):
    """On families whose tasks come from a draw (tabular MDP, maze; their lanes end episodes together)
    and from ranges (CartPole's lanes end theirs at different steps)."""
    config = resolve_config("dqn", env, None, TINY_DQN)
    family = family_for(config)
    algo = make_algorithm("dqn", config, family)
    state = algo.init(jax.random.PRNGKey(0))
    first = state["tasks"]
    step = jax.jit(algo.step)
    episodes = 0
    for _ in range(family.horizon):  # one env step a lane an iteration: every lane's first episode ends
        held = state["tasks"]
        state, metrics = step(state)
        episodes += int(metrics["episodes"])
        changed = np.any([np.asarray(a != b).reshape(config.num_envs, -1).any(axis=1)
                          for a, b in zip(jax.tree.leaves(held), jax.tree.leaves(state["tasks"]))], axis=0)
        assert not np.any(changed & (np.asarray(state["env_state"].time) > 0))  # only a lane just reset draws
        if env == "metamaze":  # the maze plays the goal of the task held for it (it lagged an episode behind)
            goals = family.env.available_goals[state["tasks"].goal_index]
            np.testing.assert_array_equal(state["env_state"].goal, goals)
    assert episodes == config.num_envs or env == "cartpole-family"  # (CartPole's lanes may end several)
    before, after = ([np.asarray(leaf) for leaf in jax.tree.leaves(tasks)] for tasks in (first, state["tasks"]))
    for lane in range(config.num_envs):  # each lane's task drawn anew, not kept from the first episode
        assert any(not np.array_equal(a[lane], b[lane]) for a, b in zip(before, after)), lane


def test_seeds_in_one_program_differ_and_each_is_reproducible():
    config = tiny_config("seed=3", "seeds=2")
    algo = make_algorithm("dqn", config, family_for(config))
    run = compile_chunks(seeded_step(algo.step, config))
    first, _ = run(initial_state(algo, config), 40)
    again, _ = run(initial_state(algo, config), 40)
    leaves = jax.tree.leaves(first["params"])
    assert all(leaf.shape[0] == 2 for leaf in leaves)
    assert not np.allclose(leaves[0][0], leaves[0][1])  # each seed its own network
    for a, b in zip(leaves, jax.tree.leaves(again["params"])):
        np.testing.assert_array_equal(a, b)
    # The seed axis carries the seeds: run i of the pair is the run of seed 3 + i alone, built from
    # its own config (to float rounding), its whole state: parameters, optimiser, replay, key.
    for i in range(2):
        single = tiny_config(f"seed={3 + i}")
        own = make_algorithm("dqn", single, family_for(single))
        alone, _ = compile_chunks(own.step)(initial_state(own, single), 40)
        for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(alone)):
            np.testing.assert_allclose(np.asarray(a)[i], np.asarray(b), atol=1e-5)


@pytest.mark.skipif(jax.device_count() < 2, reason="one device: there is nothing to split the seeds over")
def test_seeds_split_over_devices_run_as_in_one_program():
    """Each CPU core is a device; 4 seeds split 2 per device end where the 4 vmapped on one device do."""
    config = tiny_config("seeds=4")
    algo = make_algorithm("dqn", config, family_for(config))
    mesh = seed_mesh(config.seeds)
    assert mesh is not None
    together, _ = compile_chunks(seeded_step(algo.step, config))(initial_state(algo, config), 40)
    split, metrics = compile_chunks(seeded_step(algo.step, config), mesh)(initial_state(algo, config), 40)
    assert split["params"]["params"]["Dense_0"]["kernel"].sharding.device_set == set(mesh.devices.flat)
    assert metrics["loss"].shape == (40, 4)
    for a, b in zip(jax.tree.leaves(together), jax.tree.leaves(split)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


def test_resume_equals_an_uninterrupted_run(tmp_path):
    config = tiny_config("seeds=2")
    algo = make_algorithm("dqn", config, family_for(config))
    train(algo, config, tmp_path / "whole", resume=False, show_progress=False)
    half = dataclasses.replace(config, total_steps=config.total_steps // 2)
    train(algo, half, tmp_path / "split", resume=False, show_progress=False)
    train(algo, config, tmp_path / "split", resume=True, show_progress=False)
    states = []
    for name in ("whole", "split"):
        with Checkpoints(tmp_path / name, config.keep_checkpoints) as ckpt:
            assert ckpt.step() == config.iterations
            states.append(ckpt.restore_chosen(initial_state(algo, config))[1])
    for a, b in zip(jax.tree.leaves(states[0]), jax.tree.leaves(states[1])):  # replay buffer included
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(UserError, match=rf"\(total_steps = {half.total_steps}\); --set total_steps=N extends a run"):
        train(algo, half, tmp_path / "split", resume=True, show_progress=False)  # shorter than the run


def test_train_and_eval_many_seeds_through_the_cli(cli, tmp_path):
    run = tmp_path / "run"
    code, _, err = cli("train", "dqn", "--env", "cartpole", "--seeds", "2", *set_args(*TINY_DQN), "-o", str(run), "-q")
    assert code == 0, err
    # The last tenth of 160 env steps, widened to the whole last chunk of 40.
    assert "in the last 40 env steps (25% of 160): seed 0: " in " ".join(err.split()) and "mean over seeds" in err
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(r["iteration"], r["seed"]) for r in lines] == [(i, s) for i in (20, 40, 60, 80) for s in (0, 1)]
    assert all({"return", "episodes", "loss", "epsilon", "env_steps"} <= set(r) for r in lines)
    code, _, err = cli("train", "dqn", "--resume", "-o", str(run), "--dry-run")  # finished: said in the key that extends it
    assert code == 0 and "had already run its total_steps = 160; --set total_steps=N extends it" in err, err
    code, out, err = cli("eval", str(run), "--split", "test")
    assert code == 0, err
    assert "trained (seed 0)" in out and "trained (seed 1)" in out and "random init" in out
    assert "return on 3 episodes of its one task without adaptation" in " ".join(out.split())  # plain CartPole: one task
    evaluation = json.loads((run / "eval.json").read_text())["test"]
    scores = evaluation["methods"]
    assert set(scores) == {"trained (seed 0)", "trained (seed 1)", "random init"}
    assert evaluation["checkpointed"] == ["trained (seed 0)", "trained (seed 1)"]
    assert all(len(rows) == 1 for rows in scores.values())  # plain DQN does not adapt: k = 0 only
    # Made unfinished (a longer total_steps): eval says nothing of baselines, which a DQN run has none of.
    config = (run / "config.toml").read_text()
    (run / "config.toml").write_text(config.replace("total_steps = 160", "total_steps = 320"))
    code, out, err = cli("eval", str(run), "--split", "test")
    assert code == 0 and "baselines" not in err, err


def test_maml_dqn_trains_and_evals_beside_both_baselines(cli, tmp_path):
    run = tmp_path / "run"
    tiny = ["iterations=2", "meta_batch=2", "lanes=2", "horizon=20", "hidden=[8]", "eval_tasks=3", "eval_steps=2"]
    code, _, err = cli("train", "maml-dqn", "--env", "cartpole-family", *set_args(*tiny), "-o", str(run), "-q")
    assert code == 0, err
    code, out, err = cli("eval", str(run), "--split", "ood", "-q")
    assert code == 0, err
    scores = json.loads((run / "eval.json").read_text())["ood"]["methods"]
    assert set(scores) == {"meta-learned", "random init", "multi-task DQN"}
    assert "return on 3 'ood' tasks after k adaptation steps" in " ".join(out.split())
    assert all(len(rows) == 3 for rows in scores.values())  # after 0, 1 and 2 TD steps
    baseline_dir = run / "baselines" / "multi-task-dqn"
    baseline = tomllib.loads((baseline_dir / "config.toml").read_text())
    assert baseline["algo"] == "dqn" and baseline["env"] == "cartpole-family"
    assert baseline["total_steps"] == 300  # the 320 env steps meta-training drew, in whole iterations of 100
    assert baseline["horizon"] == 20  # episodes as long as the run's, which eval adapts and scores on
    # Extended, the run gets a baseline trained for its new budget from the start (its epsilon decays
    # over a share of its length, so training on from the cached one would be another schedule).
    code, _, err = cli("train", "maml-dqn", "--resume", "-o", str(run), "--set", "iterations=3", "-q")
    assert code == 0, err
    code, out, err = cli("eval", str(run), "--split", "ood", "-q")
    assert code == 0, err
    assert tomllib.loads((baseline_dir / "config.toml").read_text())["total_steps"] == 400
    assert [json.loads(line)["iteration"] for line in (baseline_dir / "metrics.jsonl").read_text().splitlines()] == [4]


def test_total_steps_a_new_length_must_be_a_multiple_of_train_every_and_old_runs_still_load(tmp_path):
    from metarl_cli.config import resumed_config
    from metarl_cli.training.rundir import load_run, write_manifest

    with pytest.raises(UserError, match=r"total_steps \(161\) must be a multiple of train_every \(2\)"):
        tiny_config("total_steps=161")
    old = dataclasses.replace(tiny_config(), total_steps=161)  # a run written before that was refused
    write_manifest(tmp_path, "dqn", old, ["metarl"])
    assert load_run(tmp_path)[1] == old and old.iterations == 80
    assert resumed_config(old, None, None, []) == old  # resumed as it was
    with pytest.raises(UserError, match=r"total_steps \(321\) must be a multiple"):
        resumed_config(old, None, None, ["total_steps=321"])
    assert resumed_config(old, None, None, ["total_steps=322"]).iterations == 161


def test_a_cached_baseline_trains_on_only_where_that_equals_training_it_for_its_new_length(tmp_path):
    from metarl_cli.evaluate import baselines_of, continues
    from metarl_cli.training.rundir import write_manifest

    def cached(algo, config):
        base_dir = tmp_path / f"{algo}-{len(list(tmp_path.iterdir()))}"
        base_dir.mkdir()
        write_manifest(base_dir, algo, config, ["metarl", "eval"])
        return base_dir

    def pretrained(iterations, *extra):  # the baseline eval trains beside a MAML run of that length
        config = resolve_config("maml", "cartpole-family", None, [f"iterations={iterations}", *extra])
        return baselines_of(make_algorithm("maml", config, family_for(config)), "maml", config, family_for(config))[0].config

    short = pretrained(100)
    assert (short.iterations, short.checkpoint_every, pretrained(200).checkpoint_every) == (200, 20, 40)  # inner step + query
    assert continues(cached("maml", short), pretrained(200))  # Adam reads no length; its saves follow it
    assert not continues(cached("maml", short), pretrained(200, "outer_lr=0.1"))
    dqn = tiny_config()
    assert continues(cached("dqn", dqn), dqn)
    assert not continues(cached("dqn", dqn), dataclasses.replace(dqn, total_steps=320))  # epsilon decays over a share of it
    constant = tiny_config("epsilon_start=0.1", "epsilon_end=0.1")
    assert continues(cached("dqn", constant), dataclasses.replace(constant, total_steps=320))
    assert not continues(tmp_path / "none", dqn)


@pytest.mark.parametrize("algo_name, env, label", [("maml", "cartpole-family", "pretrained (multi-task)"),
                                                   ("maml", "cartpole", "pretrained (its one task)"),
                                                   ("maml-dqn", "cartpole-family", "multi-task DQN"),
                                                   ("maml-dqn", "cartpole", "DQN (its one task)")])
def test_a_baseline_is_named_multi_task_only_where_the_family_has_more_than_one(algo_name, env, label):
    from metarl_cli.evaluate import baselines_of

    config = resolve_config(algo_name, env, None, [])
    assert baselines_of(make_algorithm(algo_name, config, family_for(config)), algo_name, config, family_for(config))[0].label == label


def test_a_multi_task_dqn_baseline_longer_than_its_counters_can_count_is_refused(cli):
    """eval refuses such a baseline; train says so before the run (here its --dry-run)."""
    from metarl_cli.evaluate import baselines_of

    for iterations, refused in ((268_435, False), (268_436, True)):  # 8,000 env steps an iteration by default
        code, _, err = cli("train", "maml-dqn", "--env", "cartpole-family", "--set", f"iterations={iterations}", "--dry-run")
        assert code == 0, err
        assert ("warning: `metarl eval` will refuse this run: the multi-task-dqn baseline" in err) == refused
        config = resolve_config("maml-dqn", "cartpole-family", None, [f"iterations={iterations}"])
        algo = make_algorithm("maml-dqn", config, family_for(config))
        assert algo.env_steps_after(1) == 8_000
        if refused:
            with pytest.raises(UserError, match="the multi-task-dqn baseline, trained on this run's budget: total_steps = 2147488000 is more than a run can count"):
                baselines_of(algo, "maml-dqn", config, family_for(config))
        else:
            assert baselines_of(algo, "maml-dqn", config, family_for(config))[0].config.total_steps == 2_147_480_000


def test_a_multi_task_dqn_baseline_whose_budget_holds_no_gradient_step_is_refused_naming_it():
    """A run of 2 iterations of 1 task x 1 lane x 10 steps draws 40 env steps; the baseline, counting
    in blocks of 100, would train for none: refused as the baseline's, not as a key of the run's."""
    from metarl_cli.evaluate import baselines_of

    config = resolve_config("maml-dqn", "cartpole-family", None, ["iterations=2", "meta_batch=1", "lanes=1", "horizon=10"])
    algo = make_algorithm("maml-dqn", config, family_for(config))
    with pytest.raises(UserError, match="^the multi-task-dqn baseline, trained on this run's budget: total_steps must be >= 1, got 0$"):
        baselines_of(algo, "maml-dqn", config, family_for(config))


def test_final_returns_weigh_the_last_tenth_by_episodes():
    records = [
        {"env_steps": s, "seed": seed, "return": ret, "episodes": n}
        for s, seed, ret, n in [(80, 0, 1.0, 5), (90, 0, 10.0, 1), (95, 0, 20.0, 3), (100, 0, 40.0, 1),
                                (95, 1, 7.0, 2), (100, 1, None, 0)]
    ]
    # Past 90 env steps: seed 0 has (20 * 3 + 40 * 1) / 4 = 25; seed 1 has only its 95-step chunk.
    assert final_returns(records) == ({0: 25.0, 1: 7.0}, 10, 100)
    # Past 75: the chunks ending at 80 and later, a window from 0 (no chunk ends by 75) to 100.
    assert final_returns(records, fraction=0.25) == ({0: (5 + 10 + 60 + 40) / 10, 1: 7.0}, 100, 100)
    # A seed none of whose episodes ended in the window is named, without a return.
    assert final_returns(records, fraction=0.01) == ({0: 40.0, 1: None}, 5, 100)


def test_the_end_of_training_line_names_seeds_without_an_episode():
    from metarl_cli.cli import _final_returns_line
    from metarl_cli.training.final_returns import FinalReturns

    window = "the last 100 env steps (10% of 1,000)"
    assert _final_returns_line(FinalReturns({0: 20.0, 1: 30.0}, 100, 1000)) == (
        f"mean return of the training episodes in {window}: seed 0: 20.0, seed 1: 30.0; mean over seeds 25.0")
    assert _final_returns_line(FinalReturns({0: 20.0, 1: None}, 100, 1000)) == (
        f"mean return of the training episodes in {window}: seed 0: 20.0, seed 1: no episode ended; "
        "mean over the 1 of 2 seeds with episodes 20.0")
    assert _final_returns_line(FinalReturns({0: None}, 100, 1000)) == f"no training episode ended in {window}"
    assert _final_returns_line(FinalReturns({3: 20.0}, 100, 1000)) == f"mean return of the training episodes in {window}: 20.0 (seed 3)"


def test_maml_dqn_bootstraps_its_truncated_steps_and_is_scored_greedily():
    """Its TD targets cut at terminal states only (an episode cut at 5 steps bootstraps; where every
    step terminates, a target is its reward alone); eval's query rollout acts greedily, however much
    the support rollouts explore, and its support rollouts explore as training's do."""
    from metarl_cli.families import get_family
    from metarl_cli.rl.q_learner import q_model
    from metarl_cli.rl.q_learning import family_q_network

    family = get_family("cartpole-family")
    model = q_model(family, [8], lanes=4, horizon=12, gamma=0.9, epsilon=1.0)
    values = family_q_network(family, [8]).values
    params = model.init(jax.random.PRNGKey(0))
    task = jax.tree.map(lambda x: x[0], family.sample(jax.random.PRNGKey(1), 1, "train")).replace(max_steps_in_episode=5)
    batch = model.learner.support(params, task, jax.random.PRNGKey(2))
    traj = batch.traj
    truncated = np.asarray(traj.dones & ~traj.terminated)
    assert truncated.any()
    bootstrapped = traj.rewards + 0.9 * values(params, traj.next_obs).max(-1)
    np.testing.assert_allclose(np.asarray(batch.targets)[truncated], np.asarray(bootstrapped)[truncated], rtol=1e-5)
    falling = model.learner.support(params, task.replace(theta_threshold_radians=0.0), jax.random.PRNGKey(2))
    assert np.asarray(falling.traj.terminated).all()  # any tilt at all ends the episode
    np.testing.assert_array_equal(falling.targets, falling.traj.rewards)
    query = model.eval_learner.query(params, task, jax.random.PRNGKey(3)).traj
    np.testing.assert_array_equal(query.actions, values(params, query.obs).argmax(-1))
    explored = model.eval_learner.support(params, task, jax.random.PRNGKey(2)).traj  # eval's support explores as training's
    np.testing.assert_array_equal(explored.actions, traj.actions)
    assert np.any(np.asarray(explored.actions) != np.asarray(values(params, explored.obs).argmax(-1)))
    # The inner and outer loss: the TD error squared (not Huber'd), here with errors far past 1.
    far = batch._replace(targets=batch.targets + 10.0)
    chosen = jnp.take_along_axis(values(params, traj.obs), traj.actions[..., None], axis=-1)[..., 0]
    np.testing.assert_allclose(model.learner.loss(params, far), np.mean((far.targets - chosen) ** 2), rtol=1e-5)


def test_epsilon_decays_linearly_over_its_share_of_the_env_steps_then_holds():
    from metarl_cli.rl.q_learning import linear_epsilon

    np.testing.assert_allclose([linear_epsilon(jnp.asarray(s), 1.0, 0.05, 100.0) for s in (0, 50, 100, 400)],
                               [1.0, 0.525, 0.05, 0.05], rtol=1e-6)


def test_the_td_error_is_squared_or_huber_as_asked():
    from metarl_cli.rl.q_learning import td_regression

    q = make_q_network(2, 2, [4])
    params = q.init(jax.random.PRNGKey(0))
    obs, action = jnp.zeros((3, 2)), jnp.array([0, 1, 0])
    chosen = jnp.take_along_axis(q.values(params, obs), action[:, None], axis=1)[:, 0]
    targets = chosen + jnp.array([0.5, -3.0, 4.0])  # one error inside Huber's quadratic part, two beyond it
    squared, _ = td_regression(q, params, obs, action, targets, huber=False)
    huber, _ = td_regression(q, params, obs, action, targets, huber=True)
    np.testing.assert_allclose(squared, (0.25 + 9.0 + 16.0) / 3, rtol=1e-5)
    np.testing.assert_allclose(huber, (0.125 + 2.5 + 3.5) / 3, rtol=1e-5)  # 0.5 e^2 within 1, |e| - 0.5 beyond


def test_maml_dqn_targets_carry_no_gradient_to_the_parameters_that_computed_them():
    """A batch's TD targets act as a target network's: the meta-gradient flows through the inner
    regression steps, not into the targets."""
    from metarl_cli.families import get_family
    from metarl_cli.rl.q_learner import q_model

    family = get_family("cartpole-family")
    model = q_model(family, [8], lanes=2, horizon=6, gamma=0.9, epsilon=0.5)
    params = model.init(jax.random.PRNGKey(0))
    task = jax.tree.map(lambda x: x[0], family.sample(jax.random.PRNGKey(1), 1, "train"))
    grads = jax.grad(lambda p: jnp.sum(model.learner.support(p, task, jax.random.PRNGKey(2)).targets))(params)
    for leaf in jax.tree.leaves(grads):
        np.testing.assert_array_equal(leaf, 0.0)


def test_an_episode_return_restarts_at_a_time_limit_epsilon_follows_env_steps_and_the_key_advances():
    """Episodes cut at 3 steps (CartPole does not fall in 3): each ends with a return of exactly 3,
    not the running sum of the episodes before it; each iteration's epsilon is the schedule's at its
    env step; the run's key moves on, so no iteration reuses another's draws."""
    from metarl_cli.rl.q_learning import linear_epsilon

    config = tiny_config("num_envs=1")  # two env steps an iteration
    algo = make_algorithm("dqn", config, dataclasses.replace(family_for(config), horizon=3))
    state = algo.init(jax.random.PRNGKey(0))
    run = compile_chunks(algo.step)
    keys, epsilons = [np.asarray(state["key"])], []
    for _ in range(15):  # 210 env steps, past the decay's 80
        state, metrics = run(state, 7)
        ended = np.asarray(metrics["episodes"]) > 0
        assert ended.any()
        np.testing.assert_array_equal(np.asarray(metrics["return_sum"])[ended], 3.0 * np.asarray(metrics["episodes"])[ended])
        keys.append(np.asarray(state["key"]))
        epsilons += list(np.asarray(metrics["epsilon"]))
    assert config.exploration_fraction * config.total_steps == 80.0  # the decay's span, in env steps
    # An iteration logs the epsilon of its last env step: 2 i + 1.
    expected = [linear_epsilon(jnp.asarray(2.0 * i + 1), config.epsilon_start, config.epsilon_end, 80.0) for i in range(105)]
    np.testing.assert_allclose(epsilons, expected, rtol=1e-6)
    assert len({k.tobytes() for k in keys}) == len(keys)


class SplitRecorder:
    """A family whose task draws record the split each asks for."""

    def __init__(self, family):
        self.family, self.splits = family, []

    def __getattr__(self, name):
        return getattr(self.family, name)

    def sample(self, key, n, split):
        self.splits.append(split)
        return self.family.sample(key, n, split)


@pytest.mark.parametrize("algo_name, env, sets", [("dqn", "cartpole-family", TINY_DQN),
                                                   ("rl2", "bandit", ["meta_batch=4", "hidden=8"]),
                                                   ("maml", "cartpole-family", ["meta_batch=2", "lanes=2", "horizon=5", "hidden=[8]"]),
                                                   ("maml-dqn", "cartpole-family", ["meta_batch=2", "lanes=2", "horizon=5", "hidden=[8]"])])
def test_training_draws_its_tasks_from_the_train_split_only(algo_name, env, sets):
    """Test and ood tasks are for eval alone: every draw in training asks for train tasks (traced,
    not run)."""
    config = resolve_config(algo_name, env, None, sets)
    family = SplitRecorder(family_for(config))
    algo = make_algorithm(algo_name, config, family)
    state = jax.eval_shape(algo.init, jax.random.PRNGKey(0))
    jax.eval_shape(algo.step, state)
    assert family.splits and set(family.splits) == {"train"}, family.splits


def tiny_dqn(*extra):
    """The tiny DQN's algorithm and family."""
    config = tiny_config(*extra)
    return make_algorithm("dqn", config, family_for(config)), family_for(config)


def test_dqn_epsilon_follows_the_env_steps_of_all_its_environments():
    """2 environments, 4 env steps an iteration (2 vector steps), epsilon 1 -> 0.05 over 0.5 * 160 = 80
    env steps. An iteration logs the epsilon of its last vector step, which starts at env step
    4 i + 2 (each vector step is 2 env steps): 1 - 0.95 * 2 / 80 = 0.97625, then 1 - 0.95 * 6 / 80 = 0.92875.
    (Counting vector steps as env steps would give 1 - 0.95 * 1 / 80 = 0.988125.)"""
    algo, _ = tiny_dqn("train_every=4", "target_update_every=20")
    step = jax.jit(algo.step)
    state = algo.init(jax.random.PRNGKey(0))
    logged = []
    for _ in range(2):
        state, metrics = step(state)
        logged.append(float(metrics["epsilon"]))
    np.testing.assert_allclose(logged, [0.97625, 0.92875], rtol=1e-6)


@pytest.mark.parametrize("tau", [1.0, 0.5])
def test_the_target_network_moves_every_target_update_every_env_steps_by_tau(tau):
    """2 env steps an iteration, learning after env step 16, target_update_every 10: the target moves
    at the iterations ending at env steps 20, 30 and 40, to tau * online + (1 - tau) * the old
    target, and stays put at every other one."""
    algo, _ = tiny_dqn(f"tau={tau}")
    config = tiny_config()
    step = jax.jit(algo.step)
    state = algo.init(jax.random.PRNGKey(0))
    moved = []
    for iteration in range(21):  # to env step 42, a step past the third refresh
        old = state["target_params"]
        state, _ = step(state)
        steps_after = (iteration + 1) * config.train_every
        if any(not np.array_equal(new, before) for new, before in zip(*map(jax.tree.leaves, (state["target_params"], old)))):
            moved.append(steps_after)
        if steps_after > config.learning_starts and steps_after % config.target_update_every == 0:
            for new, online, before in zip(*map(jax.tree.leaves, (state["target_params"], state["params"], old))):
                np.testing.assert_allclose(new, tau * online + (1 - tau) * before, rtol=1e-5, atol=1e-7)
        else:
            for new, before in zip(*map(jax.tree.leaves, (state["target_params"], old))):
                np.testing.assert_array_equal(new, before)
    assert moved == [20, 30, 40]
    assert any(not np.allclose(a, b) for a, b in zip(*map(jax.tree.leaves, (state["params"], state["target_params"]))))


def test_the_dqn_step_takes_double_dqn_and_huber_from_its_config(monkeypatch):
    """The TD loss is tested on its own; this checks the step hands it the run's choices (traced, not run)."""
    import metarl_cli.algos.dqn as dqn

    seen = []
    td_loss = dqn.td_loss
    monkeypatch.setattr(dqn, "td_loss", lambda *args: seen.append(args[-2:]) or td_loss(*args))
    for double, huber in ((True, False), (False, True)):
        algo, _ = tiny_dqn(f"double_dqn={str(double).lower()}", f"huber={str(huber).lower()}")
        jax.eval_shape(algo.step, jax.eval_shape(algo.init, jax.random.PRNGKey(0)))
        assert seen[-1] == (double, huber)


def test_dqn_logs_a_chunks_last_epsilon_and_the_mean_loss_of_its_gradient_steps_alone():
    """A chunk of three iterations with epsilons 0.9, 0.7, 0.5 (two seeds): the chunk's epsilon is the
    last, 0.5; its loss and Q(s, a) the means over the iterations that learned (the first did not,
    before `learning_starts`), and NaN (logged null) for a chunk in which none did."""
    algo, _ = tiny_dqn()
    chunk = {"episodes": np.array([[1, 0], [1, 0], [0, 0]]), "return_sum": np.array([[3.0, 0.0], [5.0, 0.0], [0.0, 0.0]]),
             "loss": np.array([[0.0, 0.0], [1.0, 2.0], [3.0, 4.0]]), "q_mean": np.array([[0.0, 0.0], [2.0, 1.0], [4.0, 1.0]]),
             "learned": np.array([[False, False], [True, True], [True, True]]), "epsilon": np.array([[0.9] * 2, [0.7] * 2, [0.5] * 2])}
    summary = algo.summarise(chunk)
    np.testing.assert_allclose(summary["epsilon"], [0.5, 0.5])
    np.testing.assert_allclose(summary["return"], [4.0, np.nan])  # (3 + 5) / (1 + 1); no episode ended in the second seed
    np.testing.assert_allclose(summary["loss"], [2.0, 3.0])
    np.testing.assert_allclose(summary["q_mean"], [3.0, 1.0])
    before_learning = algo.summarise({name: values[:1] for name, values in chunk.items()})
    assert np.isnan(before_learning["loss"]).all() and np.isnan(before_learning["q_mean"]).all()


def test_dqn_is_scored_by_the_greedy_policy():
    """A Q-network whose every layer is zero but the last bias, (1, 0): Q(s, left) = 1 > Q(s, right) = 0
    everywhere, so the greedy policy always pushes left. Eval's score is that policy's first-episode
    return, computed here by a rollout of it on the same keys; always pushing right scores differently."""
    from metarl_cli.rl.rollout import first_episode_return, rollout

    algo, family = tiny_dqn()
    params = jax.tree.map(jnp.zeros_like, algo.init_params(jax.random.PRNGKey(0)))
    params["params"]["Dense_1"]["bias"] = jnp.array([1.0, 0.0])
    tasks = family.sample(jax.random.PRNGKey(1), 4, "test")
    key = jax.random.PRNGKey(2)
    scores = algo.adaptation_curve(params, tasks, key, 0)
    assert scores.shape == (4, 1)

    def always(action):
        policy = lambda p, obs, k: jnp.full(obs.shape[:-1], action, jnp.int32)  # noqa: E731
        one = lambda t, k: first_episode_return(rollout(family.env, policy, None, t, k, 1, family.horizon))  # noqa: E731
        return jax.vmap(one)(tasks, jax.random.split(key, 4))

    np.testing.assert_allclose(scores[:, 0], always(0))
    assert not np.allclose(always(0), always(1))


def test_the_multi_task_dqn_baseline_takes_double_dqn_targets_and_meta_trainings_env_steps():
    from metarl_cli.evaluate import baselines_of

    config = resolve_config("maml-dqn", "cartpole-family", None, ["iterations=2", "meta_batch=2", "lanes=2", "horizon=20", "hidden=[8]"])
    family = family_for(config)
    algo = make_algorithm("maml-dqn", config, family)
    [baseline] = baselines_of(algo, "maml-dqn", config, family)
    assert baseline.config.double_dqn
    assert algo.env_steps_after(2) == 320 and baseline.config.total_steps == 300
