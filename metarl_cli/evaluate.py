"""The held-out protocol shared by every algorithm: score after 0..K adaptation steps on new tasks.

Three parameter sets get the same adaptation budget (the same inner steps, learning rate and
episodes) on the same held-out tasks: the meta-learned initialisation, a randomly initialised
policy, and a policy pretrained on the train split without meta-learning (the same training step
with no inner loop, given the same number of environment steps as meta-training). The pretrained
policy is trained once per run and cached in RUN/baselines/pretrained.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from metarl_cli.algos import make_algorithm
from metarl_cli.errors import UserError
from metarl_cli.families import SPLITS, family_for
from metarl_cli.training.checkpoint import Checkpoints
from metarl_cli.training.progress import console
from metarl_cli.training.rundir import load_run, write_manifest
from metarl_cli.training.runner import train
from metarl_cli.stats import mean_ci95

# Evaluation tasks come from their own key, never used in training.
EVAL_KEY = 2**31 - 1

# Published numbers printed beside ours: env -> (label, split, {steps: value}).
PUBLISHED = {
    "point-nav": (
        "MAML paper (Finn et al. 2017, Table 4)",
        "test",
        {0: -40.41, 1: -11.68, 2: -3.33, 3: -3.23},
    ),
}


@dataclasses.dataclass
class EvalResult:
    split: str
    tasks: int
    steps: int
    checkpoint: str
    iteration: int
    score_name: str
    methods: dict[str, list[tuple[float, float]]]  # method -> [(mean, ci95 half-width) per step]
    published: tuple[str, dict[int, float]] | None


def evaluate(run_dir: Path, split: str, tasks: int | None, steps: int | None, checkpoint: str, show_progress: bool = True) -> EvalResult:
    if split not in SPLITS:
        raise UserError(f"unknown split '{split}'; valid: {', '.join(SPLITS)}")
    if checkpoint not in ("latest", "best"):
        raise UserError(f"--checkpoint must be 'latest' or 'best', got '{checkpoint}'")
    if tasks is not None and tasks < 2:
        raise UserError(f"--tasks must be at least 2 for a confidence interval, got {tasks}")
    if steps is not None and steps < 0:
        raise UserError(f"--steps must be >= 0, got {steps}")
    algo_name, config, _ = load_run(run_dir)
    tasks = config.eval_tasks if tasks is None else tasks
    steps = config.eval_steps if steps is None else steps
    family = family_for(config)
    algo = make_algorithm(algo_name, config, family)

    checkpoints = Checkpoints(run_dir, config.keep_checkpoints)
    try:
        step = checkpoints.step(checkpoint)
        if step is None:
            raise UserError(f"{run_dir} has no {checkpoint} checkpoint yet")
        template = algo.init(jax.random.PRNGKey(config.seed))
        state = checkpoints.restore(template, which=checkpoint, step=step)
    finally:
        checkpoints.close()

    held_out = family.sample(jax.random.PRNGKey(EVAL_KEY), tasks, split)
    key = jax.random.PRNGKey(EVAL_KEY - 1)
    candidates = {
        "meta-learned": state["params"],
        "random init": algo.init_params(jax.random.PRNGKey(config.seed + 1)),
        "pretrained (multi-task)": pretrained_params(run_dir, algo_name, config, show_progress),
    }
    methods = {}
    for name, params in candidates.items():
        # Every method adapts on the same tasks with the same key: a paired comparison.
        scores = np.asarray(algo.adaptation_curve(params, held_out, key, steps))
        methods[name] = [mean_ci95(scores[:, j]) for j in range(steps + 1)]
    published = None
    if config.env in PUBLISHED and PUBLISHED[config.env][1] == split:
        label, _, numbers = PUBLISHED[config.env]
        published = (label, {k: v for k, v in numbers.items() if k <= steps})
    result = EvalResult(split, tasks, steps, checkpoint, int(step), algo.score_name, methods, published)
    _write(run_dir / "eval.json", result)
    return result


def pretrained_params(run_dir: Path, algo_name: str, config, show_progress: bool) -> Any:
    """Multi-task policy trained with no inner loop on as many env steps as meta-training used."""
    if algo_name != "maml":
        raise UserError(f"no pretrained baseline defined for '{algo_name}'")
    base_config = dataclasses.replace(
        config, inner_steps=0, iterations=config.iterations * (config.inner_steps + 1), checkpoint_every=config.iterations
    )
    family = family_for(config)
    algo = make_algorithm(algo_name, base_config, family)
    base_dir = run_dir / "baselines" / "pretrained"
    fresh = not (base_dir / "manifest.json").is_file()
    if fresh:
        shutil.rmtree(base_dir, ignore_errors=True)  # a cache of ours: an unfinished first attempt
        base_dir.mkdir(parents=True)
        write_manifest(base_dir, algo_name, base_config, ["metarl", "eval", "(pretrained baseline)"])
    checkpoints = Checkpoints(base_dir, base_config.keep_checkpoints)
    done = checkpoints.step() == base_config.iterations
    checkpoints.close()
    if not done:
        console.print(f"training the pretrained baseline ({base_config.iterations} iterations, no inner loop) ...")
        train(algo, base_config, base_dir, resume=not fresh, show_progress=show_progress)
    checkpoints = Checkpoints(base_dir, base_config.keep_checkpoints)
    try:
        return checkpoints.restore(algo.init(jax.random.PRNGKey(config.seed)))["params"]
    finally:
        checkpoints.close()


def _write(path: Path, result: EvalResult) -> None:
    try:
        existing = json.loads(path.read_text()) if path.exists() else {}
    except json.JSONDecodeError:
        existing = {}  # an unreadable earlier file: this evaluation replaces it
    existing[result.split] = {
        "tasks": result.tasks,
        "steps": result.steps,
        "checkpoint": result.checkpoint,
        "iteration": result.iteration,
        "score": result.score_name,
        "methods": {
            name: [{"after_steps": j, "mean": m, "ci95": c} for j, (m, c) in enumerate(rows)]
            for name, rows in result.methods.items()
        },
        "published": None if result.published is None else {"source": result.published[0], "values": result.published[1]},
    }
    path.write_text(json.dumps(existing, indent=2) + "\n")
