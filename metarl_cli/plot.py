"""`metarl plot`: learning curves and adaptation curves of runs, as one PNG.

Left: each run's headline training metric (post-adaptation return, post-adaptation MSE, or a DQN's
episode return) against the iteration, the mean over seeds with a band for its 95% confidence
interval across seeds (a point with an error bar where a run has logged one chunk). Right, when a
run has been evaluated: the score after 0..K adaptation steps on held-out tasks, one line per method
and baseline, with 95% intervals over tasks; a panel for each kind of score (query MSE, return), and
one for RL^2's return per episode of a trial. Reads only metrics.jsonl and eval.json, so it works on
a run that is still training.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from metarl_cli.errors import UserError  # noqa: E402
from metarl_cli.report import TRAINING_METRICS, check_writable, read_evaluation  # noqa: E402
from metarl_cli.stats import mean_ci95  # noqa: E402
from metarl_cli.training.rundir import MetricsLog, load_run  # noqa: E402

LABELS = {"post_return": "return after adaptation", "post_mse": "query MSE after adaptation", "return": "episode return (training)"}


def learning_curve(run_dir: Path):
    """(metric, iterations, mean over seeds, CI half-width over seeds, seeds), or None before the
    first chunk with a value (a DQN chunk in which no episode ended has none)."""
    records = MetricsLog(run_dir / "metrics.jsonl").read()
    metric = next((m for m in TRAINING_METRICS if records and m in records[-1]), None)
    if metric is None:
        return None
    by_iteration: dict[int, list[float]] = defaultdict(list)
    for r in records:
        if r.get(metric) is not None:
            by_iteration[r["iteration"]].append(r[metric])
    if not by_iteration:
        return None
    iterations = np.array(sorted(by_iteration))
    stats = [mean_ci95(by_iteration[i]) for i in iterations]
    seeds = max(len(v) for v in by_iteration.values())
    return metric, iterations, np.array([m for m, _ in stats]), np.array([h for _, h in stats]), seeds


def check_output(output: Path) -> None:
    """A UserError unless `output` can name the PNG to write, and it can be written."""
    if output.suffix.lower() != ".png":
        raise UserError(f"--output must be a .png file, got {output}")
    if output.is_dir():
        raise UserError(f"--output {output} is a directory; give the PNG file to write")
    check_writable(output)


def plot_runs(runs: list[Path], output: Path) -> None:
    """Learning and adaptation curves of `runs` into the PNG `output` (see `check_output`)."""
    fig = draw_runs(runs)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=120)
    plt.close(fig)


def draw_runs(runs: list[Path]):
    """The figure of `runs`: their learning curves, then a panel of adaptation curves per kind of evaluation."""
    curves = {run: learning_curve(run) for run in runs}
    for run in runs:
        load_run(run)
    evaluations = {run: evaluation for run in runs if (evaluation := read_evaluation(run))}
    if not any(curves.values()) and not evaluations:
        raise UserError("nothing to plot: the runs have no metrics yet")
    kinds = shown_results(evaluations)
    panels = 1 + len(kinds)
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.5), squeeze=False)
    _draw_learning(axes[0][0], curves, len(runs) > 1)
    for ax, ((score, trial), results) in zip(axes[0][1:], kinds.items()):
        _draw_adaptation(ax, score, trial, results, len(runs) > 1)
    fig.tight_layout()
    return fig


def shown_results(evaluations: dict[Path, dict]) -> dict[tuple[str, bool], dict[Path, tuple[str, dict]]]:
    """Each evaluated run's (split, result) on its `test` split, or its first split evaluated, grouped
    by kind, (score, whether it is an RL^2 trial): a kind is a panel, with its own axes."""
    kinds: dict[tuple[str, bool], dict[Path, tuple[str, dict]]] = defaultdict(dict)
    for run, evaluation in evaluations.items():
        split = "test" if "test" in evaluation else sorted(evaluation)[0]
        result = evaluation[split]
        kinds[(result["score"], bool(result.get("trial")))][run] = (split, result)
    return dict(sorted(kinds.items()))


def _draw_learning(ax, curves, several: bool) -> None:
    metrics = set()
    for run, curve in curves.items():
        if curve is None:
            continue
        metric, x, mean, half, seeds = curve
        metrics.add(metric)
        label = f"{run.name} ({seeds} seed{'s' if seeds > 1 else ''})" if several else f"{seeds} seed{'s' if seeds > 1 else ''}"
        if len(x) == 1:  # one chunk logged: a line or a band would be invisible
            ax.errorbar(x, mean, yerr=half if seeds > 1 else None, marker="o", capsize=3, label=label)
            continue
        (line,) = ax.plot(x, mean, label=label)
        if seeds > 1:
            ax.fill_between(x, mean - half, mean + half, color=line.get_color(), alpha=0.25, linewidth=0)
    metric = metrics.pop() if len(metrics) == 1 else None
    ax.set_title("learning curve (mean over seeds, band: 95% CI across seeds)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("iteration (meta-iteration; for DQN, one gradient step)")
    ax.set_ylabel(LABELS.get(metric, "training metric"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")


def _draw_adaptation(ax, score: str, trial: bool, results, several: bool) -> None:
    """One kind's curves: the score after k adaptation steps or, for an RL^2 trial, in its episode k + 1."""
    for run, (split, result) in results.items():
        for method, rows in result["methods"].items():
            shown = [r for r in rows if r["mean"] is not None]
            x = [r["after_steps"] + 1 if trial else r["after_steps"] for r in shown]
            label = f"{run.name}: {method} ({split})" if several else f"{method} ({split})"
            ax.errorbar(x, [r["mean"] for r in shown], yerr=[r["ci95"] for r in shown], marker="o", capsize=3, label=label)
    ax.set_title("adaptation on held-out tasks (95% CI over tasks)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("episode of the trial (memory carried across episodes)" if trial else "adaptation steps k")
    ax.set_ylabel("query MSE" if score == "mse" else "return per episode")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
