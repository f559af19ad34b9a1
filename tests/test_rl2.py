"""RL^2: families drawn per task, memory across a trial's episodes, advantages, learning, eval tables."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import assert_same_final_state, latest_state, set_args
from metarl_cli.algos import make_algorithm
from metarl_cli.config import resolve_config, resumed_config
from metarl_cli.errors import UserError
from metarl_cli.families import family_for, get_family
from metarl_cli.families.bandit import bandit_family
from metarl_cli.rl.ppo import PPOSettings, generalised_advantages, ppo_loss
from metarl_cli.rl.recurrent import make_recurrent_agent
from metarl_cli.rl.trials import TrialBatch, episode_returns, run_trials


def test_drawn_families_keep_their_task_and_splits():
    bandit = get_family("bandit")
    train, test = (bandit.sample(jax.random.PRNGKey(0), 256, s).probs for s in ("train", "test"))
    assert train.shape == (256, 10) and float(train.min()) >= 0.0 and float(train.max()) <= 1.0
    assert not {tuple(row) for row in np.asarray(train)} & {tuple(row) for row in np.asarray(test)}
    with pytest.raises(UserError, match="no 'ood' split"):
        bandit.sample(jax.random.PRNGKey(0), 4, "ood")
    mdp = get_family("tabular-mdp").sample(jax.random.PRNGKey(1), 64, "train")
    np.testing.assert_allclose(mdp.transitions.sum(-1), 1.0, rtol=1e-5)
    assert abs(float(mdp.mean_reward.mean()) - 1.0) < 0.1 and abs(float(mdp.mean_reward.std()) - 1.0) < 0.1
    maze = get_family("metamaze")
    # Its goals are few: test goals are cells training never drew (a fresh draw from the train cells would repeat them).
    train_goals, test_goals = (set(np.asarray(maze.sample(jax.random.PRNGKey(2), 500, s).goal_index).tolist()) for s in ("train", "test"))
    assert len(train_goals) == 52 and len(test_goals) == 13 and not train_goals & test_goals


def test_drawn_tasks_follow_the_papers_distributions():
    """Bandit arms p ~ U[0, 1] (20,000 draws); an MDP's mean rewards N(1, 1) and its transition rows
    flat Dirichlet over 10 states, so each entry Beta(1, 9), variance 9/1100 (a concentration of 1.1
    instead fails both checks); the maze's held-out goals every fifth cell."""
    from scipy import stats

    p = np.asarray(get_family("bandit").sample(jax.random.PRNGKey(0), 2000, "train").probs)
    assert abs(p.mean() - 0.5) < 0.01 and abs(p.var() - 1 / 12) < 0.005 and abs((p < 0.25).mean() - 0.25) < 0.015
    mdps = get_family("tabular-mdp").sample(jax.random.PRNGKey(1), 400, "train")
    mu = np.asarray(mdps.mean_reward)  # 20,000 draws: standard errors 0.007 (mean) and 0.01 (variance)
    assert abs(mu.mean() - 1.0) < 0.03 and abs(mu.var() - 1.0) < 0.04
    rows = np.asarray(mdps.transitions)
    np.testing.assert_allclose(rows.sum(axis=-1), 1.0, rtol=1e-5)
    assert abs(rows.var() - 9 / 1100) < 1.5e-4  # about 4 standard errors
    assert stats.kstest(rows.ravel(), stats.beta(1, 9).cdf).pvalue > 1e-3
    test_goals = get_family("metamaze").sample(jax.random.PRNGKey(2), 500, "test").goal_index
    assert set(np.asarray(test_goals).tolist()) == set(range(0, 65, 5))


def test_an_arm_pays_with_its_own_probability_and_the_maze_observes_its_clock_from_minus_one():
    family = bandit_family(arms=2, pulls=4)
    task = family.env.default_params.replace(probs=jnp.array([0.0, 1.0]))
    _, state = family.env.reset(jax.random.PRNGKey(1), task)
    for i, (arm, paid) in enumerate([(0, 0.0), (1, 1.0), (1, 1.0), (0, 0.0)]):
        _, state, reward, *_ = family.env.step(jax.random.PRNGKey(10 + i), state, arm, task)
        assert float(reward) == paid
    maze = get_family("metamaze")
    task = jax.tree.map(lambda x: x[0], maze.sample(jax.random.PRNGKey(0), 1, "train"))
    obs, state = maze.env.reset(jax.random.PRNGKey(1), task)
    assert float(obs[-1]) == -1.0  # gymnax's normalised time, 2 t / 100 - 1
    obs, *_ = maze.env.step(jax.random.PRNGKey(2), state, 0, task)
    np.testing.assert_allclose(obs[-1], -0.98, rtol=1e-6)
    long_task = task.replace(max_steps_in_episode=200)  # over the episode's length, not gymnax's fixed 100 steps
    obs, *_ = maze.env.step(jax.random.PRNGKey(2), state.replace(time=99.0), 0, long_task)
    assert float(obs[-1]) == 0.0


def test_the_maze_restarts_the_agent_off_the_goal_so_only_the_time_limit_ends_an_episode():
    """gymnax draws the restart after the goal from every open cell, the goal's own included, and a
    restart there ended the episode (about one goal in 65)."""
    maze = get_family("metamaze")
    task = jax.tree.map(lambda x: x[0], maze.sample(jax.random.PRNGKey(0), 1, "train"))
    _, state = maze.env.reset(jax.random.PRNGKey(1), task)
    open_cells = {tuple(cell) for cell in np.asarray(maze.env.coords).tolist()}
    action, step = next((a, d) for a, d in enumerate(np.asarray(maze.env.directions))
                        if tuple(np.asarray(state.goal) - d) in open_cells)  # a move from an open cell into the goal
    beside_goal = state.replace(pos=state.goal - step)
    keys = jax.random.split(jax.random.PRNGKey(2), 4000)
    _, after, reward, terminated, truncated, _ = jax.vmap(maze.env.step, in_axes=(0, None, None, None))(keys, beside_goal, action, task)
    assert np.all(np.asarray(reward) == 10.0) and not np.any(terminated) and not np.any(truncated)
    restarts = {tuple(cell) for cell in np.asarray(after.pos).tolist()}
    assert tuple(np.asarray(state.goal)) not in restarts and len(restarts) == len(open_cells) - 1  # every other cell


def test_the_classic_baselines_are_tuned_on_the_validation_tasks_and_scored_on_the_held_out_ones(monkeypatch):
    import metarl_cli.families.bandit as bandit
    import metarl_cli.families.tabular_mdp as tabular_mdp

    tuned_on, scored_on = [], []
    monkeypatch.setattr(bandit, "tune", lambda name, probs, pulls, key: tuned_on.append(probs) or None)
    monkeypatch.setattr(bandit, "total_rewards", lambda name, probs, *rest: scored_on.append(probs) or jnp.zeros(len(probs)))
    family = bandit_family(arms=3, pulls=5)
    tasks, validation = family.sample(jax.random.PRNGKey(0), 4, "test"), family.sample(jax.random.PRNGKey(1), 4, "train")
    family.classic_strategy_scores(tasks, jax.random.PRNGKey(2), validation, 1)
    assert len(tuned_on) == 5 and all(probs is validation.probs for probs in tuned_on)  # every strategy but random
    assert len(scored_on) == 5 and all(probs is tasks.probs for probs in scored_on)

    tuned_on, scored_on = [], []
    monkeypatch.setattr(tabular_mdp, "tune_epsilon", lambda env, tasks, *rest: tuned_on.append(tasks) or 0.1)
    monkeypatch.setattr(tabular_mdp, "strategy_returns", lambda name, env, tasks, *rest, **kw: scored_on.append(tasks))
    family = get_family("tabular-mdp")
    tasks, validation = family.sample(jax.random.PRNGKey(0), 4, "test"), family.sample(jax.random.PRNGKey(1), 4, "train")
    family.classic_strategy_scores(tasks, jax.random.PRNGKey(2), validation, 1)
    assert len(tuned_on) == 1 and tuned_on[0] is validation and len(scored_on) == 4 and all(t is tasks for t in scored_on)


def test_bandit_observes_its_clock_and_restarts_it_with_the_next_episode():
    family = bandit_family(arms=3, pulls=4)
    task = jax.tree.map(lambda x: x[0], family.sample(jax.random.PRNGKey(0), 1, "train"))
    obs, state = family.env.reset(jax.random.PRNGKey(1), task)
    seen = [float(obs[0])]
    for key in jax.random.split(jax.random.PRNGKey(2), 5):
        obs, state, *_ = family.env.step(key, state, 0, task)
        seen.append(float(obs[0]))
    assert seen == [0.0, 0.25, 0.5, 0.75, 0.0, 0.25]  # the fourth pull ends the episode: a new one starts at 0


def test_maze_goal_stays_fixed_across_the_episodes_of_a_trial():
    maze = get_family("metamaze")
    tasks = maze.sample(jax.random.PRNGKey(3), 4, "train").replace(max_steps_in_episode=jnp.full((4,), 5))
    obs, state = jax.vmap(maze.env.reset)(jax.random.split(jax.random.PRNGKey(4), 4), tasks)
    goals = state.goal
    for i in range(12):  # two auto-resets
        keys = jax.random.split(jax.random.PRNGKey(10 + i), 4)
        obs, state, *_ = jax.vmap(maze.env.step)(keys, state, jnp.full((4,), i % 4), tasks)
        np.testing.assert_array_equal(state.goal, goals)
    np.testing.assert_array_equal(goals, maze.env.available_goals[tasks.goal_index])


def two_episode_trials(params_scale=1.0, cell="gru", multiplicative_inputs=False, gated_heads=False):
    fam = get_family("tabular-mdp")
    agent = make_recurrent_agent(fam.obs_dim, fam.action_dim, 16, cell, value_scale=10.0,
                                 multiplicative_inputs=multiplicative_inputs, gated_heads=gated_heads)
    params = jax.tree.map(lambda x: x * params_scale, agent.init(jax.random.PRNGKey(0)))
    tasks = fam.sample(jax.random.PRNGKey(1), 3, "train")
    batch = run_trials(fam.env, agent, params, tasks, jax.random.PRNGKey(2), 2, fam.horizon)
    return fam, agent, params, batch


def test_an_iteration_plays_its_trials_with_a_key_apart_from_the_one_that_drew_its_tasks(monkeypatch):
    """One key for both would tie each trial's noise to the task it plays."""
    import metarl_cli.algos.rl2 as rl2

    seen = {}
    run_trials_ = rl2.run_trials

    def recording_trials(env, agent, params, tasks, key, *rest):
        jax.debug.callback(lambda k: seen.setdefault("trials", np.asarray(k)), key)
        return run_trials_(env, agent, params, tasks, key, *rest)

    class RecordingFamily:
        def __init__(self, family):
            self.family = family

        def __getattr__(self, name):
            return getattr(self.family, name)

        def sample(self, key, n, split):
            jax.debug.callback(lambda k: seen.setdefault("tasks", np.asarray(k)), key)
            return self.family.sample(key, n, split)

    monkeypatch.setattr(rl2, "run_trials", recording_trials)
    config = resolve_config("rl2", "bandit", None, ["meta_batch=4", "hidden=8"])
    algo = make_algorithm("rl2", config, RecordingFamily(family_for(config)))
    jax.block_until_ready(jax.jit(algo.step)(algo.init(jax.random.PRNGKey(0))))
    assert not np.array_equal(seen["trials"], seen["tasks"])


@pytest.mark.parametrize("cell, options", [("gru", False), ("lstm", False), ("gru", True)])
def test_memory_carries_across_episodes_and_resets_between_trials(cell, options):
    fam, agent, params, batch = two_episode_trials(params_scale=3.0, cell=cell, multiplicative_inputs=options,
                                                   gated_heads=options)
    gated_rows = 16 * (1 + fam.obs_dim) if options else 16  # the memory, and with gated heads a copy per observation entry
    assert params["params"]["policy"]["kernel"].shape[0] == params["params"]["value"]["kernel"].shape[0] == gated_rows
    steps = fam.horizon
    np.testing.assert_array_equal(batch.episode[:steps], 0)
    np.testing.assert_array_equal(batch.episode[steps:], 1)
    assert bool(batch.inputs[steps, :, -1].all())  # the done flag marks the new episode
    # The stored log-probabilities and values are those of one memory unrolled over the whole trial ...
    logits, values = agent.unroll(params, batch.inputs)
    chosen = jnp.take_along_axis(jax.nn.log_softmax(logits), batch.actions[..., None], -1)[..., 0]
    np.testing.assert_allclose(chosen, batch.log_probs, atol=1e-5)
    np.testing.assert_allclose(values, batch.values, rtol=1e-5, atol=1e-5)
    # ... which is not a memory reset at the episode boundary: episode 2 sees what episode 1 left.
    reset_logits, _ = agent.unroll(params, batch.inputs[steps:])
    assert not np.allclose(reset_logits[0], logits[steps], atol=1e-4)
    # Every trial starts from a zero memory: the first step depends on its input alone.
    _, first, _ = agent.step(params, agent.initial_carry(3), batch.inputs[0])
    np.testing.assert_allclose(first, logits[0], atol=1e-6)
    returns = episode_returns(batch, 2)
    np.testing.assert_allclose(returns.sum(1), batch.rewards.sum(0), rtol=1e-5)


def test_multiplicative_inputs_pair_each_action_with_the_state_it_was_taken_in_and_its_reward():
    fam, _, _, batch = two_episode_trials(multiplicative_inputs=True)
    states, actions = fam.obs_dim, fam.action_dim
    obs = batch.inputs[..., :states]
    start = states + actions + 1
    shape = (*batch.actions.shape, actions, states)
    paired = batch.inputs[..., start:start + actions * states].reshape(shape)
    earned = batch.inputs[..., start + actions * states:start + actions * (states + 1)]
    paired_earned = batch.inputs[..., start + actions * (states + 1):-1].reshape(shape)
    for block in (paired, earned, paired_earned):
        np.testing.assert_array_equal(block[0], 0.0)  # nothing before the trial's first step
    # The plain inputs: step t sees the action and reward of step t-1 (no reward before the first),
    # also across the episode boundary.
    action = jax.nn.one_hot(batch.actions[:-1], actions)
    np.testing.assert_array_equal(batch.inputs[1:, :, states:states + actions], action)
    seen_reward = batch.inputs[..., states + actions]
    np.testing.assert_array_equal(seen_reward[0], 0.0)
    np.testing.assert_allclose(seen_reward[1:], batch.rewards[:-1], rtol=1e-6)
    assert np.abs(np.asarray(batch.rewards)).max() > 0
    expected = action[..., None] * obs[:-1, ..., None, :]
    # Step t pairs action t-1 with the state it was taken in, also across the episode boundary,
    # where the observation is already the next episode's first state.
    assert not np.array_equal(obs[fam.horizon], obs[fam.horizon - 1])
    np.testing.assert_array_equal(paired[1:], expected)
    reward = batch.rewards[:-1, :, None]
    np.testing.assert_allclose(earned[1:], action * reward, rtol=1e-6)
    np.testing.assert_allclose(paired_earned[1:], expected * reward[..., None], rtol=1e-6)


def test_gated_heads_read_the_memory_through_the_current_state():
    fam, agent, params, batch = two_episode_trials(params_scale=3.0, gated_heads=True)
    # Keep only the policy weights that read the memory times observation entry 0 (state 0).
    policy = params["params"]["policy"]
    kernel = jnp.zeros_like(policy["kernel"]).at[16:32].set(policy["kernel"][16:32])
    only_state_0 = {"params": {**params["params"], "policy": {"kernel": kernel, "bias": jnp.zeros_like(policy["bias"])}}}
    logits, _ = agent.unroll(only_state_0, batch.inputs)
    in_state_0 = np.asarray(batch.inputs[..., 0] == 1.0)
    assert in_state_0.any() and (~in_state_0).any()
    np.testing.assert_array_equal(logits[~in_state_0], 0.0)  # elsewhere that read-out is switched off
    assert np.all(np.abs(logits[in_state_0]).max(-1) > 0)


def test_advantages_stop_at_the_end_of_a_trial():
    rewards = jnp.array([[1.0], [2.0], [0.0]])
    values = jnp.array([[0.5], [0.25], [9.0]])  # the third step is after the trial ended
    valid = jnp.array([[True], [True], [False]])
    advantages, returns = generalised_advantages(rewards, values, valid, gamma=0.9, lam=0.5)
    last = 2.0 - 0.25  # no bootstrap from the invalid step
    first = (1.0 + 0.9 * 0.25 - 0.5) + 0.9 * 0.5 * last
    np.testing.assert_allclose(advantages[:, 0], [first, last, 0.0], rtol=1e-6)
    np.testing.assert_allclose(returns[:2, 0], advantages[:2, 0] + values[:2, 0], rtol=1e-6)


def test_rl2_takes_its_step_and_clipping_from_its_config(monkeypatch):
    """The clipped optimiser is tested on its own (test_maml_rl.py); this checks RL^2 hands it the run's choices."""
    import metarl_cli.algos.rl2 as rl2

    seen = []
    optimizer = rl2.clipped_adam
    monkeypatch.setattr(rl2, "clipped_adam", lambda *args, **kw: seen.append((args, kw)) or optimizer(*args, **kw))
    for clip in (0.25, 0.0):
        config = resolve_config("rl2", "bandit", None, ["lr=0.002", f"max_grad_norm={clip}"])
        make_algorithm("rl2", config, family_for(config))
        assert seen.pop() == ((0.002, clip), {"eps": 1e-5})


def test_entropy_anneal_keeps_the_first_update_and_lowers_the_bonus_after_it():
    """Over a run of 2 iterations the bonus falls linearly from 0.5 to 0: the first update is a
    constant 0.5's, the second a constant 0.25's from the same state."""
    def step_of(coef, anneal):
        sets = ["arms=3", "pulls=5", "meta_batch=8", "minibatches=2", "hidden=8", "iterations=2",
                f"entropy_coef={coef}", f"entropy_anneal={str(anneal).lower()}"]
        config = resolve_config("rl2", "bandit", None, sets)
        algo = make_algorithm("rl2", config, family_for(config))
        return algo.init, jax.jit(algo.step)

    init, annealed = step_of(0.5, True)
    first = annealed(init(jax.random.PRNGKey(0)))[0]
    _, constant = step_of(0.5, False)
    for a, b in zip(jax.tree.leaves(constant(init(jax.random.PRNGKey(0)))[0]["params"]), jax.tree.leaves(first["params"])):
        np.testing.assert_array_equal(a, b)  # iteration 0: the full coefficient
    _, half = step_of(0.25, False)
    second, at_half, at_full = (step(first)[0]["params"] for step in (annealed, half, constant))
    for a, b in zip(jax.tree.leaves(second), jax.tree.leaves(at_half)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert any(not np.allclose(a, b, rtol=1e-5, atol=1e-7) for a, b in zip(jax.tree.leaves(second), jax.tree.leaves(at_full)))


def test_second_phase_switches_the_step_and_bonus_as_a_resume_with_them_would():
    agent = ["arms=3", "pulls=5", "meta_batch=8", "minibatches=2", "hidden=8", "entropy_coef=0.5", "entropy_anneal=true"]

    def steps(first_sets, second_sets=None):
        """Params after iterations 2 and 3; the third under `second_sets` when given (a resume)."""
        def algo(sets):
            config = resolve_config("rl2", "bandit", None, agent + sets)
            return make_algorithm("rl2", config, family_for(config))

        first_algo = algo(first_sets)
        first_step = jax.jit(first_algo.step)
        second_step = first_step if second_sets is None else jax.jit(algo(second_sets).step)
        state = first_algo.init(jax.random.PRNGKey(0))
        for _ in range(2):
            state = first_step(state)[0]
        return state["params"], second_step(state)[0]["params"]

    # The bonus anneals to 0 by iteration 2 in the phased run as in the run of 2 iterations it resumes,
    # whose second phase (at 100) lies beyond its end.
    phased = steps(["iterations=3", "second_phase_at=2", "second_phase_lr=0.0002", "second_phase_entropy_coef=0"])
    resumed = steps(["iterations=2", "second_phase_at=100"], ["iterations=3", "lr=0.0002", "entropy_coef=0"])
    plain = steps(["iterations=3"])
    for a, b in zip(jax.tree.leaves(phased[0]), jax.tree.leaves(resumed[0])):
        np.testing.assert_array_equal(a, b)  # iterations 1 and 2 are the first phase's
    # Iteration 3 is the resumed run's (to rounding: Adam's step at lr 1e-3 scaled by 0.2, against
    # Adam's step at lr 2e-4), and not the plain run's.
    for a, b in zip(jax.tree.leaves(phased[1]), jax.tree.leaves(resumed[1])):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    gap = max(float(np.max(np.abs(a - c))) for a, c in zip(jax.tree.leaves(phased[1]), jax.tree.leaves(plain[1])))
    assert gap > 1e-4


def test_a_resume_within_the_second_phase_refuses_the_keys_that_phase_replaces():
    saved = resolve_config("rl2", "bandit", None, ["iterations=6", "second_phase_at=3"])
    lr = resumed_config(saved, None, None, ["iterations=7", "lr=0.5"])
    lr.check_retuned(saved, done=2)  # the first phase still runs at lr
    with pytest.raises(UserError, match=r"second phase began at iteration 3 \(second_phase_at\), and from there second_phase_lr "
                                        r"replaces lr; --set second_phase_lr=\.\.\. changes it for what follows"):
        lr.check_retuned(saved, done=3)
    with pytest.raises(UserError, match="second_phase_entropy_coef replaces entropy_coef"):
        resumed_config(saved, None, None, ["entropy_coef=5"]).check_retuned(saved, done=6)
    retuned = resumed_config(saved, None, None, ["iterations=7", "second_phase_lr=0.0001", "second_phase_entropy_coef=0.01"])
    retuned.check_retuned(saved, done=6)
    assert (retuned.second_phase_lr, retuned.second_phase_entropy_coef) == (0.0001, 0.01)
    unphased = resolve_config("rl2", "bandit", None, ["iterations=6"])
    resumed_config(unphased, None, None, ["lr=0.5"]).check_retuned(unphased, done=6)  # no second phase: lr is the step


def test_large_batch_phase_trains_on_more_trials_from_its_iteration(cli, tmp_path):
    # No annealed bonus: its schedule reads `iterations`, which the resumed run below extends.
    agent = ["arms=3", "pulls=5", "meta_batch=8", "minibatches=2", "hidden=8", "entropy_anneal=false"]
    base = [*agent, "iterations=3"]
    code, _, err = cli("train", "rl2", "--env", "bandit", *set_args(*base, "large_batch_at=2", "large_meta_batch=16"),
                       "-o", str(tmp_path / "run"), "-q")
    assert code == 0, err
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["env_steps"] for r in lines] == [8 * 5, 2 * 8 * 5, 2 * 8 * 5 + 16 * 5]

    def algo(*extra):
        config = resolve_config("rl2", "bandit", None, [*base, *extra])
        return make_algorithm("rl2", config, family_for(config))

    small, large = algo(), algo("meta_batch=16")  # two iterations on 8 trials, then one on 16
    state = small.init(jax.random.PRNGKey(0))
    for step in (small.step, small.step, large.step):
        state = jax.jit(step)(state)[0]
    # The phase added on --resume to a run of two iterations that had none gives the same run.
    code, _, err = cli("train", "rl2", "--env", "bandit", *set_args(*agent, "iterations=2"), "-o", str(tmp_path / "added"), "-q")
    assert code == 0, err
    code, _, err = cli("train", "rl2", "--resume", "-o", str(tmp_path / "added"), *set_args("iterations=3", "large_batch_at=1"), "-q")
    assert code == 2 and "has run 2 iterations, and this change would alter how they ran: a later phase may begin at iteration 2 or after" in " ".join(err.split())  # a phase in the past
    code, _, err = cli("train", "rl2", "--resume", "-o", str(tmp_path / "added"),
                       *set_args("iterations=3", "large_batch_at=2", "large_meta_batch=16"), "-q")
    assert code == 0, err
    added = [json.loads(line)["env_steps"] for line in (tmp_path / "added" / "metrics.jsonl").read_text().splitlines()]
    assert added == [r["env_steps"] for r in lines]
    for run in ("run", "added"):
        for a, b in zip(jax.tree.leaves(latest_state(tmp_path / run, 3)), jax.tree.leaves(state)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # A phase that has begun can neither move nor change its batch, and a refused resume writes nothing.
    saved = [(tmp_path / "run" / name).read_text() for name in ("config.toml", "manifest.json")]
    for change in ("large_batch_at=3", "large_batch_at=0", "large_meta_batch=32"):
        code, _, err = cli("train", "rl2", "--resume", "-o", str(tmp_path / "run"), *set_args("iterations=4", change), "-q")
        assert code == 2 and ("has run 3 iterations, and this change would alter how they ran: its later phase began at iteration 2, "
                              "and a phase that has begun cannot be moved, dropped or given another batch") in " ".join(err.split()), change
        assert [(tmp_path / "run" / name).read_text() for name in ("config.toml", "manifest.json")] == saved
    code, _, err = cli("train", "rl2", "--env", "bandit", *set_args(*base, "large_batch_at=2", "large_meta_batch=9"),
                       "-o", str(tmp_path / "bad"), "-q")
    assert code == 2 and "large_meta_batch (9) must be a multiple of minibatches (2)" in err


def test_short_bandit_training_beats_random_and_eval_prints_the_papers_row(cli, tmp_path):
    run = tmp_path / "bandit"
    sets = ["arms=5", "pulls=10", "iterations=60", "chunk=20", "meta_batch=128", "hidden=32", "eval_tasks=500"]
    code, _, err = cli("train", "rl2", "--env", "bandit", *set_args(*sets), "-o", str(run), "-q")
    assert code == 0, err
    code, out, err = cli("eval", str(run), "-q")
    assert code == 0, err
    result = json.loads((run / "eval.json").read_text())["test"]
    totals = result["totals"]
    learned, random = totals["meta-learned"], totals["random policy"]
    assert learned["mean"] - learned["ci95"] > random["mean"] + random["ci95"]  # beats random, intervals apart
    assert {"gittins", "thompson", "greedy"} <= set(totals) and any(k.startswith("ucb1") for k in totals)
    assert "Duan et al. 2016, Table 1" in out and "6.6 (Gittins)" in out and "6.7 (RL^2)" in out
    code, _, err = cli("eval", str(run), "--split", "ood", "-q")
    assert code == 2 and "no 'ood' split" in err


@pytest.mark.slow  # 40 s: a tabular run's eval compiles the agent's trials and three strategies
def test_tabular_mdp_eval_plays_the_papers_simple_baselines(cli, tmp_path):
    run = tmp_path / "mdp"
    sets = ["iterations=1", "meta_batch=8", "minibatches=2", "hidden=16", "eval_tasks=100"]
    code, _, err = cli("train", "rl2", "--env", "tabular-mdp", *set_args(*sets), "-o", str(run), "-q")
    assert code == 0, err
    code, out, err = cli("eval", str(run), "-q")
    assert code == 0, err
    result = json.loads((run / "eval.json").read_text())["test"]
    totals, random = result["totals"], result["totals"]["random policy"]
    for label in ("greedy (empirical means)", "posterior greedy (true prior)", "state-blind posterior greedy"):
        assert totals[label]["mean"] - totals[label]["ci95"] > random["mean"] + random["ci95"], label
    assert any(label.startswith("epsilon-greedy (") for label in totals)
    paper = {label: (row["method"], row["values"]["total"]) for label, row in result["published"].items()}
    assert paper["Greedy"] == ("greedy", 134.8) and paper["eps-greedy"] == ("epsilon-greedy", 132.8)
    assert "Duan et al. 2016, Table 2" in out


def test_multi_episode_trials_train_resume_and_eval_per_episode(cli, tmp_path):
    run, straight = tmp_path / "cartpole", tmp_path / "straight"
    sets = ["episodes=2", "horizon=30", "meta_batch=8", "minibatches=2", "hidden=16", "eval_tasks=6"]
    for out, iterations in ((run, 1), (straight, 2)):
        code, _, err = cli("train", "rl2", "--env", "cartpole-family", *set_args(*sets, f"iterations={iterations}"), "-o", str(out), "-q")
        assert code == 0, err
    code, _, err = cli("train", "rl2", "--resume", "-o", str(run), "--set", "iterations=2", "-q")
    assert code == 0, err
    assert_same_final_state(run, straight, 2)  # 1 iteration then --resume for 1 equals 2 straight
    code, _, err = cli("train", "rl2", "--resume", "-o", str(straight), "--set", "hidden=8", "-q")
    assert code == 2 and ("--resume only accepts --set iterations=N (--set lr=..., --set entropy_coef=..., --set second_phase_lr=..., "
                          "--set second_phase_entropy_coef=..., --set large_batch_at=..., --set large_meta_batch=... for what follows; "
                          "--set checkpoint_every=N, --set keep_checkpoints=N for its saves), not 'hidden'") in err
    code, _, err = cli("train", "rl2", "--resume", "-o", str(straight), *set_args("iterations=3", "lr=1e-9", "entropy_coef=0.0"), "-q")
    assert code == 0, err
    before, after = latest_state(run, 2)["params"], latest_state(straight, 3)["params"]
    moved = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after)))
    assert 0 < moved < 1e-6  # iteration 3 stepped at the new rate: 8 Adam steps of about 1e-9 each
    changed = json.loads((straight / "manifest.json").read_text())["resumes"][-1]["changed"]
    assert {key: new for key, (_, new) in changed.items()} == {"iterations": 3, "lr": 1e-9, "entropy_coef": 0.0}
    assert "lr = 1e-09" in (straight / "config.toml").read_text()
    code, out, err = cli("eval", str(run), "--split", "ood", "-q")
    assert code == 0, err
    assert "episode 1" in out and "episode 2" in out and "trial total" in out
    result = json.loads((run / "eval.json").read_text())["ood"]
    assert set(result["methods"]) == {"meta-learned", "random policy"}
    per_task = np.array(result["per_task"]["meta-learned"], dtype=float)  # (episodes, tasks)
    assert per_task.shape == (2, 6) and np.all((per_task >= 1) & (per_task <= 30))
    np.testing.assert_allclose(result["totals"]["meta-learned"]["mean"], per_task.sum(0).mean(), rtol=1e-5)
    code, _, err = cli("eval", str(run), "--steps", "3", "-q")
    assert code == 2 and "drop --steps" in err


def trial_batch(steps, lanes, **fields):
    """A TrialBatch of `steps` x `lanes`: zeros, every step valid and in episode 0, unless `fields` say otherwise."""
    zeros = jnp.zeros((steps, lanes))
    blank = dict(inputs=jnp.zeros((steps, lanes, 1)), actions=zeros.astype(jnp.int32), log_probs=zeros, values=zeros,
                 rewards=zeros, valid=jnp.ones((steps, lanes), bool), episode=zeros.astype(jnp.int32))
    return TrialBatch(**{**blank, **fields})


def one_step_batch(log_probs, **fields):
    """One step of two lanes, both acting with log-probability `log_probs`."""
    return trial_batch(1, 2, log_probs=jnp.full((1, 2), log_probs), **fields)


def ppo_settings(**kw):
    """No discount, clip 0.2, one epoch of one minibatch, no entropy bonus or value loss, unless `kw` says."""
    return PPOSettings(**{**dict(gamma=1.0, gae_lambda=1.0, clip=0.2, epochs=1, minibatches=1, entropy_coef=0.0, value_coef=0.0,
                                 value_scale=1.0), **kw})


def test_ppo_clips_the_ratio_where_the_advantage_gains_and_its_bonus_rewards_entropy():
    """Two lanes, one step, the acting policy half as likely (by e^-0.5) as the current one: the ratio
    1.65 is past 1 + clip, so the lane with a positive advantage has nothing more to gain (no
    gradient) and the one with a negative advantage keeps its full penalty."""
    logits, zeros = jnp.zeros((1, 2, 3)), jnp.zeros((1, 2))
    batch, settings = one_step_batch(np.log(1 / 3) - 0.5), ppo_settings()
    unroll = lambda params, inputs: (params, jnp.zeros(params.shape[:2]))  # noqa: E731  (the logits are the parameters)
    advantages = jnp.array([[1.0, -1.0]])  # normalised, as they are: 1 and -1
    loss = lambda p, coef: ppo_loss(p, unroll, batch, advantages, zeros, settings._replace(entropy_coef=coef))  # noqa: E731
    grads = jax.grad(lambda p: loss(p, 0.0)[0])(logits)
    np.testing.assert_array_equal(grads[0, 0], 0.0)
    assert np.abs(grads[0, 1]).max() > 0.1
    _, metrics = loss(logits, 0.01)
    assert metrics["entropy"] > 1.0  # uniform over three actions: log 3
    np.testing.assert_allclose(jax.grad(lambda coef: loss(logits, coef)[0])(0.01), -metrics["entropy"], rtol=1e-6)
    # The advantages are centred and scaled first: 3 and 1, or 5 and -5, act as 1 and -1 do.
    policy_loss = lambda a: ppo_loss(logits, unroll, batch, a, zeros, settings)[1]["policy_loss"]  # noqa: E731
    for same in (advantages + 2.0, 5.0 * advantages):
        np.testing.assert_allclose(policy_loss(same), policy_loss(advantages), rtol=1e-6)


def test_a_trial_ends_with_its_last_episode_and_its_later_steps_count_for_nothing():
    """CartPole's random episodes end early: the steps after a trial's second episode are invalid,
    pay no reward and belong to no episode of the trial."""
    fam = get_family("cartpole-family")
    agent = make_recurrent_agent(fam.obs_dim, fam.action_dim, 8, "gru", value_scale=1.0, multiplicative_inputs=False, gated_heads=False)
    tasks = fam.sample(jax.random.PRNGKey(0), 4, "train")
    batch = run_trials(fam.env, agent, agent.init(jax.random.PRNGKey(1)), tasks, jax.random.PRNGKey(2), 2, 60, uniform=True)
    valid = np.asarray(batch.valid)
    assert not valid.all() and valid[0].all()
    assert np.all(np.asarray(batch.episode)[valid] < 2) and np.all(np.asarray(batch.rewards)[~valid] == 0)
    assert np.all(np.diff(valid.astype(int), axis=0) <= 0)  # once a trial has ended it stays ended


def test_episode_returns_sum_each_episodes_own_steps_in_order():
    """One lane, episodes 0, 0, 1, 1 then a step after the trial ended (episode 2 of 2), whose reward
    counts nowhere: [1 + 2, 4 + 8]."""
    episode = jnp.array([[0], [0], [1], [1], [2]])
    batch = trial_batch(5, 1, rewards=jnp.array([[1.0], [2.0], [4.0], [8.0], [16.0]]), valid=episode < 2, episode=episode)
    np.testing.assert_array_equal(episode_returns(batch, 2), [[3.0, 12.0]])


def test_trial_steps_count_the_steps_inside_the_trials():
    """On CartPole (a reward of 1 a step) the steps used are the trials' total return, fewer than the
    iteration's env steps, which count the masked steps after each trial's last episode too. With two
    episodes a trial, the logged first and last episodes' returns are the two that make up the return."""
    sets = ["hidden=8", "meta_batch=4", "minibatches=2", "epochs=1", "episodes=2", "iterations=1"]
    config = resolve_config("rl2", "cartpole-family", None, sets)
    algo = make_algorithm("rl2", config, family_for(config))
    _, metrics = jax.jit(algo.step)(algo.init(jax.random.PRNGKey(0)))
    assert float(metrics["trial_steps"]) == float(metrics["return"]) * config.meta_batch
    assert 0 < float(metrics["trial_steps"]) < algo.env_steps_per_iteration
    np.testing.assert_allclose(metrics["first_episode"] + metrics["last_episode"], metrics["return"], rtol=1e-5)
    assert float(metrics["first_episode"]) != float(metrics["last_episode"])


def test_the_value_head_predicts_in_units_of_value_scale():
    """Two agents alike but for value_scale: the same parameters give the same logits and values
    in proportion to it, so that its head's outputs stay of order one however long the horizon."""
    from metarl_cli.rl.recurrent import make_recurrent_agent

    one, ten = (make_recurrent_agent(3, 2, 8, "gru", value_scale=scale) for scale in (1.0, 10.0))
    params = one.init(jax.random.PRNGKey(0))
    inputs = jax.random.normal(jax.random.PRNGKey(1), (4, 3, 3 + 2 + 2))
    (logits_1, values_1), (logits_10, values_10) = one.unroll(params, inputs), ten.unroll(params, inputs)
    np.testing.assert_allclose(logits_10, logits_1, rtol=1e-6)
    np.testing.assert_allclose(values_10, 10.0 * values_1, rtol=1e-5)
    assert np.abs(values_1).max() > 1e-3


def test_the_lstm_cell_is_the_standard_one():
    """From a nonzero memory (c, h): gates i, f, g, o from the embedded input and h, then
    c' = sigmoid(f) c + sigmoid(i) tanh(g) and h' = sigmoid(o) tanh(c'), computed here by hand."""
    from metarl_cli.rl.recurrent import make_recurrent_agent

    agent = make_recurrent_agent(3, 2, 4, "lstm")
    params = agent.init(jax.random.PRNGKey(0))
    p = params["params"]
    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    c, h = (jax.random.normal(k, (5, 4)) for k in keys[:2])
    inputs = jax.random.normal(keys[2], (5, 3 + 2 + 2))
    dense = lambda layer, x: x @ p[layer]["kernel"] + p[layer]["bias"]  # noqa: E731
    gates = dense("input_gates", jax.nn.relu(dense("embed", inputs))) + dense("hidden_gates", h)
    i, f, g, o = jnp.split(gates, 4, axis=-1)
    c_next = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    (c_out, h_out), _, _ = agent.step(params, (c, h), inputs)
    np.testing.assert_allclose(c_out, c_next, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h_out, jax.nn.sigmoid(o) * jnp.tanh(c_next), rtol=1e-5, atol=1e-6)


def test_the_gru_cell_is_the_standard_one():
    """From a nonzero memory h: reset r, update z and candidate n from the embedded input and h, the
    reset gate scaling the hidden side's projection (bias included, as in cuDNN and PyTorch):
    n = tanh(x_n + r (W_hn h + b_hn)) and h' = (1 - z) n + z h, computed here by hand."""
    agent = make_recurrent_agent(3, 2, 4, "gru")
    params = agent.init(jax.random.PRNGKey(0))
    p = params["params"]
    keys = jax.random.split(jax.random.PRNGKey(1), 2)
    h = jax.random.normal(keys[0], (5, 4))
    inputs = jax.random.normal(keys[1], (5, 3 + 2 + 2))
    dense = lambda layer, x: x @ p[layer]["kernel"] + p[layer]["bias"]  # noqa: E731
    x_r, x_z, x_n = jnp.split(dense("input_gates", jax.nn.relu(dense("embed", inputs))), 3, axis=-1)
    h_r, h_z, h_n = jnp.split(dense("hidden_gates", h), 3, axis=-1)
    r, z = jax.nn.sigmoid(x_r + h_r), jax.nn.sigmoid(x_z + h_z)
    n = jnp.tanh(x_n + r * h_n)
    h_out, _, _ = agent.step(params, h, inputs)
    np.testing.assert_allclose(h_out, (1.0 - z) * n + z * h, rtol=1e-5, atol=1e-6)


def test_each_iteration_moves_the_run_key_on():
    """So that no two iterations draw the same tasks and trials."""
    config = resolve_config("rl2", "bandit", None, ["arms=3", "pulls=5", "meta_batch=8", "minibatches=2", "hidden=8",
                                                    "entropy_anneal=false", "iterations=3"])
    algo = make_algorithm("rl2", config, family_for(config))
    state = algo.init(jax.random.PRNGKey(0))
    step, keys = jax.jit(algo.step), [np.asarray(state["key"])]
    for _ in range(2):
        state = step(state)[0]
        keys.append(np.asarray(state["key"]))
    assert len({key.tobytes() for key in keys}) == 3


RL2_CARTPOLE = ["episodes=2", "horizon=20", "meta_batch=4", "minibatches=2", "epochs=1", "hidden=8", "iterations=1"]


def _rl2(sets, env="cartpole-family"):
    config = resolve_config("rl2", env, None, sets)
    return config, make_algorithm("rl2", config, family_for(config)), family_for(config)


def test_rl2_values_are_in_units_of_the_discounted_horizon_capped_at_the_trial(monkeypatch):
    """gamma 0.99, trials of 2 episodes of 20 steps: value_scale = 1 / max(1 - 0.99, 1 / (2 * 20))
    = 1 / max(0.01, 0.025) = 40 (the whole trial, not one episode's 20)."""
    import inspect

    from metarl_cli.algos import rl2

    seen, real = [], rl2.make_recurrent_agent
    value_scale = lambda *args, **kw: inspect.signature(real).bind(*args, **kw).arguments["value_scale"]  # noqa: E731
    monkeypatch.setattr(rl2, "make_recurrent_agent", lambda *args, **kw: seen.append(value_scale(*args, **kw)) or real(*args, **kw))
    config, _, _ = _rl2(RL2_CARTPOLE)
    assert config.gamma == 0.99
    assert seen == [pytest.approx(40.0)]


def test_rl2_logs_the_first_and_last_episode_of_a_trial_in_order(monkeypatch):
    """Every trial's episodes made to return 1 then 2: first_episode 1, last_episode 2, return 3."""
    from metarl_cli.algos import rl2

    monkeypatch.setattr(rl2, "episode_returns",
                        lambda batch, episodes: jnp.broadcast_to(jnp.array([1.0, 2.0]), (batch.rewards.shape[1], 2)))
    _, algo, _ = _rl2(RL2_CARTPOLE)
    _, metrics = jax.jit(algo.step)(algo.init(jax.random.PRNGKey(0)))
    assert (float(metrics["first_episode"]), float(metrics["last_episode"]), float(metrics["return"])) == (1.0, 2.0, 3.0)


def test_rl2_random_policy_baseline_acts_uniformly(monkeypatch):
    """The 'random policy' row plays its trials with the logits forced to zero (uniform=True), the same
    draws as run_trials(uniform=True) on the same tasks and key. (An untrained agent's policy is only
    nearly uniform, its head initialised at scale 0.01, so its scores rarely differ: the flag is checked.)"""
    from metarl_cli.algos import rl2

    flags = []
    monkeypatch.setattr(rl2, "run_trials", lambda *args: flags.append(args[-1]) or run_trials(*args))
    _, algo, family = _rl2(RL2_CARTPOLE)
    tasks = family.sample(jax.random.PRNGKey(1), 8, "test")
    key = jax.random.PRNGKey(2)
    scores = algo.reference_scores(tasks, key, tasks)["random policy"]
    assert flags == [True]
    agent = make_recurrent_agent(family.obs_dim, family.action_dim, 4, "gru")
    uniform = episode_returns(run_trials(family.env, agent, agent.init(jax.random.PRNGKey(3)), tasks, key, 2, 20, uniform=True), 2)
    np.testing.assert_allclose(scores, uniform)


def test_ppo_clips_the_ratio_from_below_where_the_advantage_is_negative():
    """Uniform logits over 3 actions; the acting policy e^0.5 times as likely, so the ratio is e^-0.5 =
    0.607 < 1 - clip = 0.8. The lane with advantage -1: min(0.607 * -1, 0.8 * -1) = -0.8, a constant,
    so no gradient. The lane with +1: min(0.607, 0.8) = 0.607, whose gradient in the chosen action's
    logit is (1/2) * 0.607 * (1 - 1/3) = 0.20."""

    batch = one_step_batch(np.log(1 / 3) + 0.5)
    unroll = lambda params, inputs: (params, jnp.zeros(params.shape[:2]))  # noqa: E731  (the logits are the parameters)
    advantages = jnp.array([[1.0, -1.0]])
    grads = jax.grad(lambda p: ppo_loss(p, unroll, batch, advantages, jnp.zeros((1, 2)), ppo_settings())[0])(jnp.zeros((1, 2, 3)))
    np.testing.assert_array_equal(grads[0, 1], 0.0)
    np.testing.assert_allclose(-grads[0, 0, 0], 0.5 * np.exp(-0.5) * (2 / 3), rtol=1e-5)


def test_ppo_value_loss_is_in_units_of_value_scale_and_weighted_by_value_coef():
    """Values 2 and 4, returns 0, value_scale 2: value_loss = 0.5 * ((2/2)^2 + (4/2)^2) / 2 = 1.25; zero
    advantages make the policy loss 0 and the entropy bonus is off, so loss = value_coef 0.5 * 1.25 = 0.625."""

    unroll = lambda params, inputs: (params, jnp.array([[2.0, 4.0]]))  # noqa: E731
    loss, metrics = ppo_loss(jnp.zeros((1, 2, 3)), unroll, one_step_batch(np.log(1 / 3)), jnp.zeros((1, 2)), jnp.zeros((1, 2)),
                             ppo_settings(value_scale=2.0, value_coef=0.5))
    np.testing.assert_allclose(metrics["value_loss"], 1.25, rtol=1e-6)
    np.testing.assert_allclose(loss, 0.625, rtol=1e-6)


def test_ppo_means_leave_out_the_steps_after_a_trial_ended():
    """Two lanes, the second's step invalid: value_loss = 0.5 * (2 - 0)^2 over the one valid step = 2 (not
    (2 + 0) / 2 = 1), and the entropy of the uniform policy over 3 actions is log 3 (not log 3 / 2)."""

    unroll = lambda params, inputs: (params, jnp.array([[2.0, 4.0]]))  # noqa: E731
    batch = one_step_batch(np.log(1 / 3), valid=jnp.array([[True, False]]))
    _, metrics = ppo_loss(jnp.zeros((1, 2, 3)), unroll, batch, jnp.zeros((1, 2)), jnp.zeros((1, 2)), ppo_settings())
    np.testing.assert_allclose(metrics["value_loss"], 2.0, rtol=1e-6)
    np.testing.assert_allclose(metrics["entropy"], np.log(3), rtol=1e-6)
    # The advantages are centred and scaled over the valid steps alone (GAE writes 0 after a trial's
    # end, which would pull their mean to 0 and shrink their spread): a third, invalid lane changes nothing.
    logits = jax.random.normal(jax.random.PRNGKey(0), (1, 3, 3))
    logits_only = lambda params, inputs: (params, jnp.zeros(params.shape[:2]))  # noqa: E731
    three = trial_batch(1, 3, log_probs=jnp.full((1, 3), np.log(1 / 3)), valid=jnp.array([[True, True, False]]))
    two = trial_batch(1, 2, log_probs=jnp.full((1, 2), np.log(1 / 3)))
    with_invalid = ppo_loss(logits, logits_only, three, jnp.array([[3.0, 1.0, 0.0]]), jnp.zeros((1, 3)), ppo_settings())
    valid_alone = ppo_loss(logits[:, :2], logits_only, two, jnp.array([[3.0, 1.0]]), jnp.zeros((1, 2)), ppo_settings())
    np.testing.assert_allclose(with_invalid[1]["policy_loss"], valid_alone[1]["policy_loss"], rtol=1e-6)


def test_ppo_update_takes_epochs_times_minibatches_steps():
    """4 lanes, 3 epochs of 2 minibatches: Adam counts 3 * 2 = 6 updates."""
    from metarl_cli.rl.ppo import ppo_update

    lanes, steps = 4, 3
    batch = trial_batch(steps, lanes, inputs=jnp.ones((steps, lanes, 2)), log_probs=jnp.full((steps, lanes), np.log(0.5)),
                        rewards=jnp.arange(steps * lanes, dtype=jnp.float32).reshape(steps, lanes))
    unroll = lambda p, inputs: (inputs @ p, jnp.zeros(inputs.shape[:2]))  # noqa: E731
    optimizer = optax.adam(1e-3)
    params = jnp.zeros((2, 2))
    _, opt_state, _ = ppo_update(params, optimizer.init(params), optimizer, unroll, batch, jax.random.PRNGKey(0),
                                 ppo_settings(epochs=3, minibatches=2, gamma=0.9, gae_lambda=0.9))
    assert int(opt_state[0].count) == 6
    # Which lanes share a minibatch is drawn from the key: with distinct lanes, other keys, other ends.
    batch = batch._replace(inputs=jax.random.normal(jax.random.PRNGKey(5), (steps, lanes, 2)))
    sgd = optax.sgd(0.1)
    ends = [ppo_update(params, sgd.init(params), sgd, unroll, batch, jax.random.PRNGKey(k), ppo_settings(minibatches=2))[0]
            for k in range(4)]
    assert len({np.asarray(end).round(6).tobytes() for end in ends}) > 1


def test_ppo_update_discounts_by_gamma_and_weighs_by_gae_lambda():
    """One epoch of one minibatch of plain SGD: the update is the gradient of the PPO loss on the
    advantages and returns of GAE with the settings' gamma 0.9 and lambda 0.5 (not the other way round)."""
    from metarl_cli.rl.ppo import PPOSettings, generalised_advantages, ppo_loss, ppo_update
    from metarl_cli.rl.trials import TrialBatch

    steps, lanes = 4, 2
    rewards = jnp.array([[1.0, 0.0], [0.0, 2.0], [3.0, 1.0], [0.5, -1.0]])
    values = jnp.array([[0.2, -0.1], [0.4, 0.3], [-0.5, 0.6], [0.1, 0.2]])
    batch = TrialBatch(inputs=jax.random.normal(jax.random.PRNGKey(1), (steps, lanes, 2)), actions=jnp.zeros((steps, lanes), jnp.int32),
                       log_probs=jnp.full((steps, lanes), np.log(0.5)), values=values, rewards=rewards,
                       valid=jnp.ones((steps, lanes), bool), episode=jnp.zeros((steps, lanes), jnp.int32))
    unroll = lambda p, x: (x @ p, jnp.zeros(x.shape[:2]) + jnp.sum(p))  # noqa: E731
    settings = PPOSettings(gamma=0.9, gae_lambda=0.5, clip=0.2, epochs=1, minibatches=1, entropy_coef=0.0, value_coef=0.5, value_scale=1.0)
    params = jnp.full((2, 2), 0.1)
    sgd = optax.sgd(0.1)
    updated, _, _ = ppo_update(params, sgd.init(params), sgd, unroll, batch, jax.random.PRNGKey(0), settings)
    advantages, returns = generalised_advantages(rewards, values, batch.valid, 0.9, 0.5)
    grads = jax.grad(lambda p: ppo_loss(p, unroll, batch, advantages, returns, settings)[0])(params)
    np.testing.assert_allclose(updated, params - 0.1 * grads, rtol=1e-5, atol=1e-7)
