"""`metarl report`: one table across runs and seeds, with robust interval estimates.

For each run and each split in its eval.json, each method's score after K adaptation steps is pooled
over seeds and held-out tasks and summarised by its interquartile mean (IQM: the mean of the middle
50%) with a 95% percentile confidence interval from a stratified bootstrap, the estimators rliable
recommends (Agarwal et al. 2021), computed as rliable's with `task_bootstrap`: every seed is scored
on the same held-out tasks, a (seeds, tasks) table; a resample draws the tasks with replacement,
then, within each task drawn (a stratum), the seeds. The held-out tasks are a random draw from the
family, so the interval counts their spread as well as the seeds'; with one seed it resamples the
tasks alone. (Written in stats.py because rliable, as pip installs it today, does not import beside
pandas 3; scripts/compare_rliable.py prints the two side by side where it does.) An RL^2 evaluation,
one trial per task, has no adaptation steps: as in `metarl eval`, each method's return in each
episode of the trial (where it has several), then its headline, the trial's total return. A training
row gives the run's headline training metric, one value per seed (its last, or for DQN its mean
return over the last tenth of the env steps), as their mean with a Student-t interval: a bootstrap
over so few values would be too narrow. A directory that is not a run but holds runs, at any depth
(a sweep; runs/ with a sweep inside), stands for all of them (`run_outputs.expand_runs`).
"""

from __future__ import annotations

import csv
import json
import math
from operator import itemgetter
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from metarl_cli.config import DqnConfig
from metarl_cli.files import check_writable, json_number, output_file, writing
from metarl_cli.run_outputs import (RunOutputs, checkpoint_note, checkpointed_methods, metric_label, scores_by_method, seed_curves,
                                    unfinished_note)
from metarl_cli.stats import diverged_count, mean_ci95, summarise_table
from metarl_cli.tables import score_label
from metarl_cli.training.final_returns import final_returns
from metarl_cli.training.progress import say


class ReportRow(NamedTuple):
    run: str
    algo: str
    env: str  # the run's family: rows of different families are not comparable
    split: str  # "train" for the training row
    method: str
    metric: str
    seeds: int
    n: int  # values pooled
    estimator: str  # "IQM" (stratified bootstrap interval), or "mean" (Student-t interval): a training row's
    estimate: float  # NaN where some diverged, or no value (n = 0)
    low: float
    high: float
    diverged: int = 0  # of the n values, those not finite (a task whose adaptation diverged): then no estimate


# A row's metric: its label, and what picks its per-task values from one seed's (steps + 1, tasks) scores.
Metric = tuple[str, Callable[[np.ndarray], np.ndarray]]


def run_rows(run: RunOutputs, step: int | None) -> list[ReportRow]:
    """The run's training row and its evaluations' rows (at adaptation step `step`; None: the last evaluated)."""
    done = run.last_logged_iteration
    return [*_training_rows(run, run.metrics, done), *_eval_rows(run, step, done)]


def _training_rows(run: RunOutputs, records: list[dict], done: int) -> list[ReportRow]:
    """The run's headline training metric, one value per seed, as their mean with its Student-t
    interval (as `metarl plot` draws the curve's end): a percentile bootstrap over a handful of
    values would be too narrow (over two seeds it is their range whatever their spread, which holds
    the true mean half the time). A run that logs its training episodes (DQN) gives each seed's mean
    return over the last tenth of its env steps, as `metarl train` ends with (no value, n = 0, where no
    seed's episode ended there: the row says so); another, each seed's last value. "final" once the
    run has done its `iterations`, else the iteration it has reached."""
    at = "final " if done >= run.config.iterations else ""
    where = "" if at else unfinished_note(done, run.config.iterations)
    episodes = final_returns(records)
    if episodes is not None:
        values = [v for v in episodes.per_seed.values() if v is not None]
        none = [str(seed) for seed, v in episodes.per_seed.items() if v is None]
        detail = "; no seed's ended there" if not values else f"; none of seed {', '.join(none)}'s ended there" if none else ""
        label = f"{at}return{where} (episodes of the last {episodes.window:,} env steps{detail})"
        seeds = len(episodes.per_seed)
    else:
        curves = seed_curves(records)
        if curves is None:
            return []
        values, label, seeds = curves.values[-1], f"{at}{metric_label(run.algo, curves.metric)}{where}", curves.values.shape[1]
    mean, half = mean_ci95(values) if len(values) else (math.nan, math.nan)
    return [ReportRow(str(run.path), run.algo, run.config.env, "train", "training", label, seeds, len(values), "mean", mean,
                      mean - half, mean + half)]


def _eval_rows(run: RunOutputs, step: int | None, done: int) -> list[ReportRow]:
    """A row per method and metric of each split the run's evaluation (eval.json) holds, the rows of
    the methods that score the run's checkpoint (eval.json's `checkpointed`; every row, in an
    eval.json written before it kept them) noting which checkpoint that was (`checkpoint_note`, the
    run standing where its training row does, at `done`), the baselines' rows not."""
    # For an eval.json written before it recorded whether the run adapts (Algorithm.adapts, which
    # eval writes): of the algorithms then, DQN alone did not.
    adapts = not isinstance(run.config, DqnConfig)
    rows = []
    for split, result in sorted(run.evaluation.items()):
        per_task = result["per_task"]
        if result.get("trial"):
            metrics = _trial_metrics(result)
        elif (metric := _step_metric(result, step, result.get("adapts", adapts))) is not None:
            metrics = [metric]
        else:  # evaluated to fewer steps than --step: the other splits and runs are still reported
            say(f"{run.path}: its '{split}' evaluation went to k = {result['steps']}, not {step}: left out of the report")
            continue
        note = checkpoint_note(result, done, run.config.iterations)
        checkpointed = checkpointed_methods(result)
        for method, by_seed in scores_by_method(per_task).items():
            for metric, select in metrics:
                label = metric + (note if method in checkpointed else "")
                values = np.stack([select(scores) for scores in by_seed])  # (seeds, tasks)
                n, diverged = values.size, diverged_count(values)
                # As eval: no mean over the tasks that stayed finite, which would flatter a method that diverges.
                value, low, high = summarise_table(values) if not diverged else (math.nan,) * 3
                rows.append(ReportRow(str(run.path), run.algo, run.config.env, split, method, label, len(by_seed), n, "IQM", value,
                                      low, high, diverged))
    return rows


def _step_metric(result: dict, step: int | None, adapts: bool) -> Metric | None:
    """The score after `step` adaptation steps (default: the last evaluated; None where the evaluation
    went to fewer); after 0 for a run that does not adapt (DQN), beside runs that do."""
    k = result["steps"] if step is None or not adapts else step
    if k > result["steps"]:
        return None
    return f"{score_label(result['score'])} after {k} step{'' if k == 1 else 's'}", itemgetter(k)


def _trial_metrics(result: dict) -> list[Metric]:
    """An RL^2 trial's columns, as `metarl eval` shows them: the return in each episode (where the
    trial has several), then the trial's total. `--step` does not apply: a trial has no steps."""
    score, episodes = result["score"], result["steps"] + 1
    per_episode = [(f"{score} in episode {j + 1} of {episodes}", itemgetter(j)) for j in range(episodes)] if episodes > 1 else []
    return [*per_episode, (f"trial total {score}", lambda scores: scores.sum(axis=0))]


def report_paths(prefix: str | Path) -> tuple[Path, Path]:
    """The CSV and JSON files a report with this prefix writes (PREFIX.csv and PREFIX.json, dots in
    its name kept; a .csv or .json suffix given is replaced); a UserError where it is empty, names a
    directory, or they could not be written."""
    prefix = output_file(prefix, "--out", f"a file prefix such as {Path(prefix) / 'report'}")
    stem = prefix.with_suffix("") if prefix.suffix.lower() in (".csv", ".json") else prefix
    paths = stem.with_name(f"{stem.name}.csv"), stem.with_name(f"{stem.name}.json")
    for path in paths:
        check_writable(path)
    return paths


def write_report(rows: list[ReportRow], paths: tuple[Path, Path]) -> None:
    """The rows into `paths` (`report_paths`): CSV, then JSON."""
    csv_path, json_path = paths
    with writing(csv_path):
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        with open(csv_path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(ReportRow._fields)
            writer.writerows([_blank_non_finite(value) for value in row] for row in rows)
    with writing(json_path):
        json_path.write_text(json.dumps([{k: _blank_non_finite(v) for k, v in row._asdict().items()} for row in rows], indent=2) + "\n")


def _blank_non_finite(value):
    """None (an empty CSV cell, JSON's null) for a float that is not finite, which JSON has no word for (`files.json_number`)."""
    return json_number(value) if isinstance(value, float) else value
