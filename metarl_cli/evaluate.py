"""The held-out protocol shared by every algorithm: score after 0..K adaptation steps on new tasks.

Several parameter sets adapt with the same budget (the same inner steps and data) on the same
held-out tasks, with the same keys (a paired comparison):
- the meta-learned initialisation (with its learned rates, for Meta-SGD);
- a randomly initialised network;
- a network pretrained on the train split without meta-learning: the same training step with no
  inner loop, given as much data as meta-training drew (for maml-dqn, a multi-task DQN given as
  many env steps). It fine-tunes with plain SGD at inner_lr (steps after the first at inner_lr x
  `later_lr_scale`, as the meta-learned network does), or, with `tune_baseline_lr`, at the step
  size that does best on validation tasks from the train split (never the held-out tasks);
- on regression families, an oracle: a network that also sees the task's parameters, trained the
  same way, which needs no adaptation.
An algorithm that adapts in memory (RL^2) is scored per episode of one trial per task instead,
beside the reference policies it names (a random policy; on bandits the classic strategies).
Baselines are trained once per run and cached in RUN/baselines/NAME (a regression run's two side
by side, one per device: `training.parallel`), with checkpoints on the way: an eval interrupted
while training them resumes them the next time. A run of several seeds is evaluated seed by seed (a
column each). An algorithm that does not adapt (plain DQN) is scored after 0 steps only, beside a
randomly initialised network.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import os
import shutil
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from metarl_cli.algos import Algorithm, make_algorithm
from metarl_cli.algos.maml import with_inner_rates
from metarl_cli.config import DqnConfig, MamlDqnConfig, MamlRegressionConfig, check_count, check_eval_count, write_config
from metarl_cli.errors import UserError
from metarl_cli.families import SPLITS, RegressionFamily, family_for
from metarl_cli.files import json_number, updating, write_atomically
from metarl_cli.published import Published, published_for
from metarl_cli.run_outputs import stored_evaluation
from metarl_cli.stats import Summary, summarise
from metarl_cli.training.checkpoint import Checkpoints, UnreadableCheckpoint
from metarl_cli.training.progress import say
from metarl_cli.training.rundir import BASELINES, UNREADABLE_EVALUATION, holding, load_run, write_manifest
from metarl_cli.training.parallel import TrainJob, train_all
from metarl_cli.training.runner import DivergedError, state_template

# Evaluation tasks come from their own keys, never used in training.
EVAL_KEY = 2**31 - 1
VALIDATION_KEY = EVAL_KEY - 2  # train-split tasks on which a baseline's step size is tuned
# Step sizes tried for the pretrained baseline, as multiples of inner_lr.
LR_GRID = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0)


class Candidate(NamedTuple):
    label: str
    algo: Algorithm  # whose adaptation_curve adapts `params`
    params: Any
    lr_scale: float


@dataclasses.dataclass
class EvalResult:
    split: str
    tasks: int
    steps: int
    checkpoint: str
    iteration: int
    score_name: str
    methods: dict[str, list[Summary]]  # method -> a summary over tasks per number of steps
    per_task: dict[str, np.ndarray]  # method -> (tasks, steps + 1) scores, for `metarl report`
    published: list[Published]  # rows whose protocol this run follows, values cut to `steps`
    progress: tuple[int, int] = (0, 0)  # (iterations the run has done, its configured iterations)
    trial: bool = False  # columns are the episodes of an RL^2 trial, not adaptation steps
    totals: dict[str, Summary] = dataclasses.field(default_factory=dict)  # trials: each method's total over the trial
    one_task: bool = False  # the family has one task: the held-out "tasks" are episodes of it
    adapts: bool = True  # False: scored after 0 steps only, as the algorithm does not adapt (DQN)
    checkpointed: tuple[str, ...] = ()  # the methods that score the run's checkpoint (its seeds); the baselines do not


def budget_warning(run_dir: Path, checkpoint: str, step: int, done: int, iterations: int) -> str | None:
    """The warning for a comparison that favours the baselines, which train on the budget of all the
    run's `iterations`: where the scored checkpoint (`step`) is an earlier iteration, because the run
    has done only `done` or because the chosen checkpoint is an earlier best."""
    if step >= iterations:
        return None
    at = f"its {checkpoint} checkpoint, iteration {step}"
    if done < iterations:
        state = f"has done {done} of its {iterations} iterations" + (f" and is scored at {at}" if step < done else "")
    else:
        state = f"is scored at {at} of its {iterations} iterations"
    return f"warning: {run_dir} {state}; its baselines train on the budget of all {iterations}, so the comparison favours them"


def check_eval_options(split: str, tasks: int | None, steps: int | None, checkpoint: str) -> None:
    """A UserError for an option `evaluate` cannot take, whatever the run."""
    if split not in SPLITS:
        raise UserError(f"unknown split '{split}'; valid: train, test, and ood where the run's family has held-out ranges "
                        "(`metarl envs` lists them)")
    if checkpoint not in ("latest", "best"):
        raise UserError(f"--checkpoint must be 'latest' or 'best', got '{checkpoint}'")
    if tasks is not None and tasks < 2:
        raise UserError(f"--tasks must be at least 2 for a confidence interval, got {tasks}")
    if steps is not None and steps < 0:
        raise UserError(f"--steps must be >= 0, got {steps}")
    check_eval_count("--tasks", tasks)
    check_eval_count("--steps", steps)


def evaluate(run_dir: Path, split: str, tasks: int | None, steps: int | None, checkpoint: str, show_progress: bool = True) -> EvalResult:
    check_eval_options(split, tasks, steps, checkpoint)
    algo_name, config, _ = load_run(run_dir)
    family = family_for(config)
    algo = make_algorithm(algo_name, config, family)
    tasks = config.eval_tasks if tasks is None else tasks
    steps = _adaptation_steps(algo, algo_name, config, steps)
    step, done, params = _restore_scored(run_dir, algo, config, checkpoint)
    baselines = baselines_of(algo, algo_name, config, family)
    if baselines and (warning := budget_warning(run_dir, checkpoint, step, done, config.iterations)):
        say(warning)
    held_out = draw_tasks(family, EVAL_KEY, tasks, split)
    key = jax.random.PRNGKey(EVAL_KEY - 1)
    candidates = _run_candidates(algo, config, params)
    for baseline, trained in zip(baselines, trained_baselines(run_dir, baselines, show_progress)):
        candidates.append(baseline_candidate(baseline, trained, algo, config, family, steps))
    per_task = {c.label: _on_host(c.algo.adaptation_curve(c.params, held_out, key, steps, c.lr_scale)) for c in candidates}
    if algo.reference_scores is not None:
        validation = draw_tasks(family, VALIDATION_KEY, tasks, "train")
        per_task.update({label: _on_host(scores) for label, scores in algo.reference_scores(held_out, key, validation).items()})
    return EvalResult(
        split=split, tasks=tasks, steps=steps, checkpoint=checkpoint, iteration=step, score_name=algo.score_name,
        methods={label: [summarise(scores[:, j]) for j in range(steps + 1)] for label, scores in per_task.items()},
        per_task=per_task, published=published_for(config, family, split, steps), progress=(done, config.iterations),
        trial=bool(algo.trial_episodes), one_task=family.one_task, adapts=algo.adapts,
        totals={label: summarise(scores.sum(axis=1)) for label, scores in per_task.items()} if algo.trial_episodes else {},
        checkpointed=tuple(candidate.label for candidate in candidates[:config.seeds]))


def _adaptation_steps(algo: Algorithm, algo_name: str, config, steps: int | None) -> int:
    """The last column an evaluation scores: after `steps` adaptation steps (default the run's
    eval_steps); 0 for an algorithm that does not adapt; an RL^2 trial's last episode."""
    if algo.trial_episodes:
        if steps is not None:
            raise UserError(f"{algo_name} adapts within a trial of {algo.trial_episodes} episode(s), not by steps; drop --steps")
        return algo.trial_episodes - 1
    if not algo.adapts:
        if steps:
            raise UserError(f"{algo_name} does not adapt at evaluation (it is scored after 0 steps only); drop --steps")
        return 0
    return config.eval_steps if steps is None else steps


def _restore_scored(run_dir: Path, algo: Algorithm, config, checkpoint: str) -> tuple[int, int, Any]:
    """(the iteration of the run's `checkpoint` ("latest" or "best"), the run's latest iteration, the
    parameters saved there)."""
    with Checkpoints(run_dir, config.keep_checkpoints, create=False) as checkpoints:
        step, state = checkpoints.restore_chosen(state_template(algo, config), checkpoint)
        if step is None:
            raise UserError(f"{run_dir} has no {checkpoint} checkpoint yet")
        if checkpoint == "best" and not checkpoints.scored(step):
            say(f"note: no checkpoint of {run_dir} has a score (a DQN chunk in which no training episode ended has none): "
                f"the best is the latest, iteration {step}")
        return int(step), checkpoints.step(), state["params"]


def _run_candidates(algo: Algorithm, config, params) -> list[Candidate]:
    """The run's own networks (one a seed), then a randomly initialised one where the algorithm
    adapts by steps: an untrained RL^2 agent plays almost as its random policy does (logits near 0)."""
    label = "meta-learned" if algo.adapts else "trained"
    if config.seeds == 1:
        candidates = [Candidate(label, algo, params, 1.0)]
    else:
        candidates = [Candidate(f"{label} (seed {config.seed + i})", algo, jax.tree.map(lambda x: x[i], params), 1.0)
                      for i in range(config.seeds)]
    if not algo.trial_episodes:
        candidates.append(Candidate("random init", algo, jax.jit(algo.init_params)(jax.random.PRNGKey(config.seed + config.seeds)), 1.0))
    return candidates


@dataclasses.dataclass
class Baseline:
    """A network a run is compared with, trained once on the train split and cached in RUN/baselines/NAME."""

    name: str
    algo_name: str  # the algorithm that trains it
    config: Any
    label: str  # its column in the table
    adapts: bool = True  # fine-tuned as the meta-learned network is (the oracle is not)

    @functools.cached_property
    def algo(self) -> Algorithm:
        return make_algorithm(self.algo_name, self.config, family_for(self.config))


def baselines_of(algo: Algorithm, algo_name: str, config, family) -> list[Baseline]:
    """The baselines trained for `config`'s run (refused, UserError, where one's config derived from
    the run's is not valid: longer than its counters can count, or for maml-dqn a budget under one
    of its gradient steps): for maml-dqn a multi-task DQN; for another algorithm that adapts by
    steps a pretrained network; on a regression family also the oracle."""
    baselines = _baselines_of(algo, algo_name, config, family)
    for baseline in baselines:
        try:
            baseline.config.validate()
            check_count(baseline.config)
        except UserError as e:
            raise UserError(f"the {baseline.name} baseline, trained on this run's budget: {e}") from None
    return baselines


def _baselines_of(algo: Algorithm, algo_name: str, config, family) -> list[Baseline]:
    if isinstance(config, MamlDqnConfig):
        # One DQN (replay, target network, Double DQN targets) across the train split, given as many
        # env steps as meta-training drew (in whole iterations of its own) in episodes of the run's
        # horizon; 100 environments and a gradient step every 100 env steps keep its cost near
        # meta-training's.
        train_every = 100
        budget = algo.env_steps_after(config.iterations)
        dqn = DqnConfig(
            env=config.env, seed=config.seed, ranges=config.ranges, hidden=config.hidden, gamma=config.gamma, horizon=config.horizon,
            total_steps=budget - budget % train_every, num_envs=100, train_every=train_every,
            target_update_every=1000, double_dqn=True, chunk=500, keep_checkpoints=config.keep_checkpoints,
        )
        return [Baseline("multi-task-dqn", "dqn", dqn, "DQN (its one task)" if family.one_task else "multi-task DQN")]
    baselines = []
    if algo.adapts and not algo.trial_episodes:
        label = "pretrained (its one task)" if family.one_task else "pretrained (multi-task)"
        baselines.append(Baseline("pretrained", algo_name, _baseline_config(config), label))
    if isinstance(family, RegressionFamily):  # sees the task's parameters beside x
        baselines.append(Baseline("oracle", algo_name, _baseline_config(config, task_input=True), "oracle (task given)", adapts=False))
    return baselines


def _baseline_config(config, **changes):
    """The run's config with no inner loop and inner steps + 1 batches a task: as much data as RL
    meta-training drew, and at least as much as regression's, whose tasks give K support and Q query
    points (its inner steps reuse the K: more for the baseline where inner_steps > 1). A baseline
    trains on query batches alone, so where Q is not K each holds (K + Q) / 2 points, rounded up.
    Checkpointed every tenth of its training: a Ctrl-C loses at most that much."""
    iterations = config.iterations * (config.inner_steps + 1)
    if isinstance(config, MamlRegressionConfig) and config.query_points not in (0, config.shots):
        changes["query_points"] = -(-(config.shots + config.query_points) // 2)
    return dataclasses.replace(
        config,
        seeds=1,
        inner_steps=0,
        learn_inner_lr=False,
        iterations=iterations,
        checkpoint_every=max(1, iterations // 10),
        **changes,
    )


def trained_baselines(run_dir: Path, baselines: list[Baseline], show_progress: bool) -> list[Any]:
    """Each baseline's trained parameters, training (or resuming) the baselines not yet trained to
    their end, side by side where each runs on one of several devices (`training.parallel`). A cached
    baseline whose latest checkpoint cannot be read trains again from the start. Another eval
    training them meanwhile is waited for."""
    if not baselines:
        return []
    (run_dir / BASELINES).mkdir(exist_ok=True)
    with holding(run_dir / BASELINES, wait=True):
        return _train_baselines(run_dir, baselines, show_progress)


def _train_baselines(run_dir: Path, baselines: list[Baseline], show_progress: bool) -> list[Any]:
    trained, jobs = {}, []  # the parameters of the baselines already trained to their end; the others' training
    for baseline in baselines:
        base_dir = run_dir / BASELINES / baseline.name
        fresh = not continues(base_dir, baseline.config)
        if not fresh:
            try:
                step, state = _latest_state(run_dir, baseline)
            except UnreadableCheckpoint as damage:  # a cache of ours: trained again rather than the eval stopped
                say(f"the cached {baseline.name} baseline trains again from the start: {damage.where} cannot be read ({damage.reason})")
                fresh = True
            else:
                if step == baseline.config.iterations:
                    trained[baseline.name] = state["params"]
                    continue
        if fresh:
            shutil.rmtree(base_dir, ignore_errors=True)  # a cache of ours: an unfinished first attempt, or another schedule
            base_dir.mkdir(parents=True)
            write_manifest(base_dir, baseline.algo_name, baseline.config, ["metarl", "eval", f"(baseline {baseline.name})"])
        else:  # trained on to a longer budget: its config says so
            write_config(baseline.config, baseline.algo_name, base_dir / "config.toml")
        say(f"training the {baseline.name} baseline ({baseline.config.iterations} iterations) ...")
        for warning in baseline.config.warnings():  # its budget is the run's: a short run gives a short one
            say(f"warning: the {baseline.name} baseline: {warning}")
        jobs.append(TrainJob(baseline.algo, baseline.config, base_dir, resume=not fresh))
    try:
        train_all(jobs, show_progress)
    except DivergedError as e:
        raise DivergedError(f"the {e.run_dir.name} baseline's training ({e.run_dir}): {e}", e.run_dir) from None
    return [trained[b.name] if b.name in trained else _latest_state(run_dir, b)[1]["params"] for b in baselines]


def _latest_state(run_dir: Path, baseline: Baseline) -> tuple[int | None, Any]:
    """(iteration, training state) of the baseline's latest checkpoint; (None, None) before its first;
    a UserError where that checkpoint cannot be read."""
    with Checkpoints(run_dir / BASELINES / baseline.name, baseline.config.keep_checkpoints, create=False) as checkpoints:
        return checkpoints.restore_chosen(state_template(baseline.algo, baseline.config))


def continues(base_dir: Path, config) -> bool:
    """Whether the baseline cached in `base_dir` can train on to `config` as if trained for it from the
    start: its saved config is `config`, or `config` with a shorter length (and the saves that follow
    the length) where training does not read the length (a run extended since the last eval; DQN's
    epsilon decays over a share of its length)."""
    try:
        _, saved, _ = load_run(base_dir)
    except UserError:  # none yet, or damaged
        return False
    if type(saved) is not type(config):
        return False
    length = type(config).LENGTH_KEY
    extended = dataclasses.replace(saved, **{length: getattr(config, length), "checkpoint_every": config.checkpoint_every})
    return saved == config or (extended == config and not config.schedule_reads_length())


def baseline_candidate(baseline: Baseline, params, algo: Algorithm, config, family, steps: int) -> Candidate:
    """A trained baseline (its `params`) beside the run. One that adapts is fine-tuned by the run's own `algo`, as the
    meta-learned network is (one compiled adaptation for both; under Meta-SGD with every rate at
    inner_lr), at inner_lr or, with `tune_baseline_lr`, at its best step size; the oracle is not."""
    if not baseline.adapts:
        return Candidate(baseline.label, baseline.algo, params, 0.0)
    params = with_inner_rates(params, config)
    if not config.tune_baseline_lr or steps == 0:  # no step to tune it for
        return Candidate(baseline.label, algo, params, 1.0)
    scale = tuned_lr_scale(algo, params, family, config.eval_tasks, steps)
    return Candidate(with_detail(baseline.label, f"step {scale * config.inner_lr:g}"), algo, params, scale)


def with_detail(label: str, detail: str) -> str:
    """`label` with `detail` added in its parentheses, or in new ones where it has none."""
    return f"{label[:-1]}, {detail})" if label.endswith(")") else f"{label} ({detail})"


def tuned_lr_scale(algo: Algorithm, params, family, tasks: int, steps: int) -> float:
    """The multiple of inner_lr in LR_GRID with the lowest (or highest) mean score over steps 1..K on validation tasks."""
    validation = draw_tasks(family, VALIDATION_KEY, tasks, "train")
    key = jax.random.PRNGKey(VALIDATION_KEY - 1)
    sign = -1.0 if algo.maximize else 1.0
    costs = []
    for scale in LR_GRID:
        cost = sign * float(np.mean(_on_host(algo.adaptation_curve(params, validation, key, steps, scale))[:, 1:]))
        costs.append(cost if np.isfinite(cost) else np.inf)
    return LR_GRID[int(np.argmin(costs))]


def draw_tasks(family, seed: int, tasks: int, split: str):
    """`tasks` tasks of `split` from key `seed`, drawn by one compiled program rather than operation by operation."""
    return jax.jit(family.sample, static_argnums=(1, 2))(jax.random.PRNGKey(seed), tasks, split)


def _json_summary(summary: Summary) -> dict:
    """A summary as eval.json holds it. JSON has no NaN: where some task diverged, a null mean and
    interval and their count."""
    diverged = bool(summary.diverged)
    return {"mean": None if diverged else summary.mean, "ci95": None if diverged else summary.ci95, "diverged": summary.diverged}


def write_evaluation(run_dir: Path, result: EvalResult) -> None:
    """Add (or replace) `result`'s split in RUN_DIR/eval.json, keeping the splits another eval of the
    run writes meanwhile."""
    path = run_dir / "eval.json"
    with updating(path):
        existing = _kept_evaluations(run_dir)
        existing[result.split] = _json_result(result)
        write_atomically(path, json.dumps(existing, indent=2) + "\n")


def _kept_evaluations(run_dir: Path) -> dict:
    """The run's eval.json as {split: result}; {} where there is none yet. One that is not metarl's
    evaluation (damaged, foreign) is renamed aside, not overwritten, and said: the evaluations it
    may hold took time to make."""
    try:
        return stored_evaluation(run_dir)
    except UserError:
        pass
    path = run_dir / "eval.json"
    for n in itertools.count(1):
        aside = path.with_name(UNREADABLE_EVALUATION + ("" if n == 1 else f".{n}"))
        if not os.path.lexists(aside):
            break
    path.rename(aside)
    say(f"note: {path} did not read as an evaluation metarl wrote; it is kept as {aside.name} beside it, "
        "and eval.json begins again with this evaluation")
    return {}


def _on_host(scores: jax.Array) -> np.ndarray:
    """`scores` as a numpy array once computed. Waiting first raises a failed allocation's error
    (out of memory: --tasks in the billions) as a JaxRuntimeError, which the CLI answers in one line;
    numpy reading the result of a program whose allocation failed aborted the process in jaxlib instead."""
    return np.asarray(jax.block_until_ready(scores))


def _json_result(result: EvalResult) -> dict:
    """One split's entry of eval.json."""
    return {
        "tasks": result.tasks,
        "steps": result.steps,
        "checkpoint": result.checkpoint,
        "iteration": result.iteration,
        "score": result.score_name,
        "methods": {
            name: [{"after_steps": j, **_json_summary(r)} for j, r in enumerate(rows)]
            for name, rows in result.methods.items()
        },
        "published": {row.label: {"source": row.source, "values": row.values, "method": row.method} for row in result.published},
        "trial": result.trial,
        "adapts": result.adapts,
        "checkpointed": list(result.checkpointed),
        "totals": {name: _json_summary(r) for name, r in result.totals.items()},
        # Every task's score after 0..K steps (null where it diverged), one list per number of steps.
        "per_task": {
            name: [[json_number(x) for x in scores[:, j]] for j in range(scores.shape[1])]
            for name, scores in result.per_task.items()
        },
    }
