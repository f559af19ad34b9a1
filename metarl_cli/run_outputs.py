"""What runs wrote, read for `metarl report` and `metarl plot`: the runs a path names (a run, or a
directory of runs at any depth, such as a sweep's), their headline training metric per seed against
the iteration, and their evaluations (eval.json) with each method's per-task scores per seed.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from metarl_cli.errors import UserError
from metarl_cli.training.rundir import MetricsLog, check_own_run, eval_command, is_run, load_run

SEED_SUFFIX = re.compile(r" \(seed (\d+)\)$")
# The training metrics a run can headline, with their labels in tables and plots; the first one a run logs is its headline.
TRAINING_METRICS = {"post_return": "return after adaptation", "post_mse": "query MSE after adaptation", "return": "episode return (training)"}


def metric_label(algo: str, metric: str) -> str:
    """How tables and plots name a run's headline training metric (an RL^2 run's return is its trial's)."""
    return "trial return (training)" if algo == "rl2" else TRAINING_METRICS[metric]


def headline_values(records: list[dict]) -> tuple[str, list[dict]] | None:
    """The run's headline training metric (the first of `TRAINING_METRICS` its latest metrics line
    holds) and the metrics lines with a value of it; None where there is no such line."""
    metric = next((m for m in TRAINING_METRICS if records and m in records[-1]), None)
    valued = [r for r in records if metric is not None and r.get(metric) is not None]
    return (metric, valued) if valued else None


class SeedCurves(NamedTuple):
    metric: str  # the run's headline training metric
    iterations: np.ndarray  # (n,) the logged iterations from the first at which every seed has a value
    values: np.ndarray  # (n, seeds) each seed's latest value at or before each iteration


def seed_curves(records: list[dict]) -> SeedCurves | None:
    """The headline metric of each seed against the iteration (None before every seed has logged a
    value of it). A seed that logs no value in a chunk (DQN, where none of its episodes ended) keeps
    its latest value there, so that the mean at each iteration is over every seed."""
    headline = headline_values(records)
    if headline is None:
        return None
    metric, valued = headline
    seeds = sorted({r.get("seed", 0) for r in records if metric in r})
    iterations = sorted({r["iteration"] for r in valued})
    row, column = {it: i for i, it in enumerate(iterations)}, {seed: j for j, seed in enumerate(seeds)}
    table = np.full((len(iterations), len(seeds)), np.nan)
    for r in valued:
        table[row[r["iteration"]], column[r.get("seed", 0)]] = r[metric]
    for i in range(1, len(iterations)):  # carry each seed's latest value forward
        table[i] = np.where(np.isnan(table[i]), table[i - 1], table[i])
    complete = ~np.isnan(table).any(axis=1)
    if not complete.any():
        return None
    return SeedCurves(metric, np.array(iterations)[complete], table[complete])


def expand_runs(paths: list[Path]) -> list[Path]:
    """Run directories, with a directory of runs replaced by the runs at any depth below it (`runs/`
    holding single runs and a sweep's directory of them), sorted; a run named twice (or also inside
    a named directory) counts once; a UserError for a path inside a run (the baselines it keeps)."""
    runs = []
    for path in paths:
        if path.is_dir():
            check_own_run(path)
        if (path / "manifest.json").is_file():
            runs.append(path)
        elif path.is_dir() and (inner := runs_below(path)):
            runs.extend(inner)
        else:
            raise UserError(f"{path} is neither a metarl run directory nor a directory of runs"
                            if path.exists() else f"not found: {path}")
    unique: dict[Path, Path] = {}  # resolved path -> the run as first named
    for run in runs:
        unique.setdefault(run.resolve(), run)
    return list(unique.values())


class RunOutputs(NamedTuple):
    """What report and plot read of a run, read once."""

    path: Path
    algo: str
    config: Any  # the run's config, of its algorithm's config class
    evaluation: dict  # its eval.json, {split: result}; {} before an evaluation
    metrics: list[dict]  # its metrics.jsonl lines, parsed
    unread_metrics_lines: int  # lines of metrics.jsonl left out of `metrics` (cut short, or edited)

    @property
    def last_logged_iteration(self) -> int:
        """The last meta-iteration (DQN: chunk) the run logged, where its training row and curve stand; 0 before any."""
        return max((r["iteration"] for r in self.metrics), default=0)


def read_run(path: Path) -> RunOutputs:
    """The run in `path`: a UserError where its manifest, config or eval.json does not read."""
    algo, config, _ = load_run(path)
    seeds = range(config.seed, config.seed + config.seeds)
    return RunOutputs(path, algo, config, read_evaluation(path), *MetricsLog(path / "metrics.jsonl").read_with_unread(seeds))


def readable_runs(paths: list[Path]) -> tuple[list[RunOutputs], list[tuple[Path, UserError]]]:
    """`expand_runs(paths)` split into the runs whose config, manifest and eval.json read, and the
    others found inside a named directory (one damaged run among a sweep's), each with its error; a
    run named itself that does not read raises its error."""
    readable, damaged = [], []
    for path in expand_runs(paths):
        try:
            readable.append(read_run(path))
        except UserError as error:
            if path in paths:
                raise
            damaged.append((path, error))
    return readable, damaged


def runs_below(directory: Path) -> list[Path]:
    """The metarl runs below `directory` (through links too, each directory once), in path order; not
    the baselines kept inside a run, nor a directory whose manifest.json another tool wrote."""
    runs, seen = [], set()
    for parent, children, files in os.walk(directory, followlinks=True):
        here = Path(parent)
        if here.resolve() in seen:  # a link back up, or a second link to one directory
            children.clear()
            continue
        seen.add(here.resolve())
        if "manifest.json" in files and here != directory and is_run(here):
            runs.append(here)
            children.clear()  # a run's own subdirectories (its baselines) are not runs of the sweep
        children.sort()
    return runs


def stored_evaluation(run_dir: Path) -> dict:
    """The run's eval.json ({split: result}) as metarl wrote it, {} where it has none; a UserError
    where it is not one (`metarl eval` then keeps it aside as eval.json.unreadable and begins anew)."""
    path = run_dir / "eval.json"
    if not path.is_file():
        return {}
    anew = f"`{eval_command(run_dir)}` writes a new one, keeping this one beside it as eval.json.unreadable (or .2, .3 where taken)"
    try:
        evaluation = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{path} is not valid JSON; {anew}") from None
    if not (isinstance(evaluation, dict) and all(_is_result(r) for r in evaluation.values())):
        raise UserError(f"{path} is not an evaluation written by metarl; {anew}")
    return evaluation


def read_evaluation(run_dir: Path) -> dict:
    """The run's eval.json as report and plot read it (`stored_evaluation`); a UserError also where a
    split has no per-task scores (an earlier metarl wrote it)."""
    evaluation = stored_evaluation(run_dir)
    path = run_dir / "eval.json"
    for split, result in evaluation.items():
        if not result.get("per_task"):
            raise UserError(f"{path} has no per-task scores for its '{split}' split (an earlier metarl wrote it); "
                            f"`{eval_command(run_dir, split=split)}` writes it again")
    return evaluation


def _is_result(result) -> bool:
    """Whether `result` has what report and plot read of one split's evaluation: among them, where
    it keeps per-task scores, one (steps + 1, tasks) table of numbers (or nulls) for every column."""
    if not (isinstance(result, dict) and isinstance(result.get("methods"), dict) and isinstance(result.get("score"), str)
            and isinstance(result.get("steps"), int)):
        return False
    per_task = result.get("per_task")
    if per_task is None:
        return True  # written before per-task scores were kept: `read_evaluation` says so
    try:
        shapes = {np.array(scores, dtype=np.float64).shape for scores in per_task.values()}
    except (AttributeError, TypeError, ValueError):
        return False
    return len(shapes) <= 1 and all(len(shape) == 2 and shape[0] == result["steps"] + 1 for shape in shapes)


def scores_by_method(per_task: dict) -> dict[str, list[np.ndarray]]:
    """Each method's scores, one (steps + 1, tasks) array per seed (a column of eval.json each), NaN where a task diverged."""
    groups: dict[str, list[np.ndarray]] = {}
    for name, by_step in per_task.items():
        groups.setdefault(SEED_SUFFIX.sub("", name), []).append(np.array(by_step, dtype=np.float64))
    return groups


def checkpointed_methods(result: dict) -> set[str]:
    """The methods of an evaluation that scored the run's own checkpoint (eval.json's `checkpointed`;
    every method, in an eval.json written before it kept them), not its baselines."""
    return {SEED_SUFFIX.sub("", name) for name in result.get("checkpointed", result["per_task"])}


def unfinished_note(done: int, iterations: int) -> str:
    """What a row or label adds for a run that had done `done` of its `iterations`."""
    return f" at iteration {done} of {iterations} (unfinished)"


def checkpoint_note(result: dict, logged: int, iterations: int) -> str:
    """What an evaluation's checkpointed methods add about the checkpoint it scored, where the run
    stands at the later of that checkpoint and the last iteration it logged (`logged`, as its training
    row and curve stand), of its `iterations`: an evaluation of the latest checkpoint made before the
    run went further says at which iteration it was made; one of a run that had not done its
    `iterations` says so; one of the best checkpoint says so, which iteration that was, and, while the
    run is unfinished, where it stands."""
    checkpoint, at = result.get("checkpoint"), result.get("iteration")
    latest = max(logged, at or 0)
    if checkpoint == "latest" and at is not None and at < latest:
        return f" (evaluated at iteration {at}; the run is at {latest})"
    if checkpoint == "latest" and at is not None and at < iterations:
        return unfinished_note(at, iterations)
    if checkpoint == "best":
        best = "best checkpoint" + (f", iteration {at}" if at is not None else "")
        return f" ({best}; the run, unfinished, is at {latest} of {iterations})" if latest < iterations else f" ({best})"
    return ""
