"""`metarl plot`: learning curves and adaptation curves of runs, as one PNG.

Learning curves: each run's headline training metric (post-adaptation return, post-adaptation MSE,
a DQN's episode return, an RL^2 trial's return) against its iteration, the mean over seeds with a
band for its Student-t 95% confidence interval across seeds (cut, where it runs past them, at the
lowest and highest values the panel's seeds logged), from the first iteration at which every seed has
logged it, a seed that logs none in a chunk (DQN) keeping its latest value (a point with an
error bar where a run has logged one chunk); a panel for each kind of curve, so that runs share axes
only where their x and y mean the same, on one task family. Then, for evaluated runs, the score
after 0..K adaptation steps on held-out tasks, one line per method and baseline (a method's seeds
averaged on each task), with 95% intervals over tasks and a gap, named in the legend, at a k where
some task diverged, the run's own network's line noting the checkpoint it scored as report's row
does; a panel for each kind of score (query MSE, return) and family, and one for
RL^2's return per episode of a trial. Where the figure holds several families, each panel's title
names its own.
MSEs are drawn on a log scale, so that one diverging step leaves the other lines readable.
Two panels a row, legends under them; where several runs are drawn, each is named by the shortest
end of its path that tells it from the others.
Reads a run's manifest.json, config.toml, metrics.jsonl and eval.json, never its checkpoints, so it
works on a run that is still training.
"""

from __future__ import annotations

import re
import textwrap
import warnings
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from cycler import cycler  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from metarl_cli.errors import UserError  # noqa: E402
from metarl_cli.files import check_writable, output_file, writing  # noqa: E402
from metarl_cli.run_outputs import (RunOutputs, checkpoint_note, checkpointed_methods, metric_label,  # noqa: E402
                                    scores_by_method, seed_curves)
from metarl_cli.stats import mean_ci95  # noqa: E402

# A learning panel's x label by algorithm (others: the meta-iteration); its runs share an x and a y (`learning_axes`).
X_LABELS = {"dqn": "iteration (train_every env steps, then a gradient step once learning starts)", "rl2": "iteration (one PPO update on a batch of trials)"}
# Line styles then colours: forty series before a style repeats (matplotlib's default repeats after ten).
SERIES_STYLES = cycler(linestyle=["-", "--", ":", "-."]) * cycler(color=plt.get_cmap("tab10").colors)
LEGEND_WIDTH = 46  # characters a legend entry's line holds: half a panel's width at the legend's font size
MISSING_GLYPH = re.compile(r"Glyph (\d+) .*missing from (current )?font")  # matplotlib's warning of a character its font lacks
DODGE = 0.3  # the width, in adaptation steps, over which one panel's series spread so their intervals stay apart


def learning_axes(algo: str, metric: str) -> tuple[str, str]:
    """(x label, y label) of an algorithm's learning curve of `metric`: its panel."""
    return X_LABELS.get(algo, "meta-iteration"), metric_label(algo, metric)


class LearningCurve(NamedTuple):
    metric: str
    iterations: np.ndarray
    mean: np.ndarray  # over seeds
    half: np.ndarray  # the 95% CI's half-width across seeds
    seeds: int
    values: np.ndarray  # (iterations, seeds): what each seed logged, its latest value where it logged none


def learning_curve(records: list[dict]) -> LearningCurve | None:
    """A run's learning curve from its metrics lines (`RunOutputs.metrics`), from the first iteration at
    which every seed has logged a value (`run_outputs.seed_curves`), or None before it."""
    curves = seed_curves(records)
    if curves is None:
        return None
    mean, half = mean_ci95(curves.values, axis=1)
    return LearningCurve(curves.metric, curves.iterations, mean, half, curves.values.shape[1], curves.values)


def check_output(output: str | Path) -> None:
    """A UserError unless `output` (as given: a final separator names a directory) can name the PNG
    to write, and it can be written."""
    output = output_file(output, "--output", "the PNG file to write")
    if output.suffix.lower() != ".png":
        raise UserError(f"--output must be a .png file, got {output}")
    check_writable(output)


class Undrawn(NamedTuple):
    """What a figure leaves out: runs, whole or in part, and characters its font lacks."""

    left_out: list[Path]  # nothing to draw yet
    without_curve: list[Path]  # drawn for their evaluation alone: no learning curve yet
    characters: str = ""  # in the figure's text (run names) and not in its font: drawn as boxes


def plot_runs(runs: list[RunOutputs], output: str | Path) -> Undrawn:
    """Learning and adaptation curves of `runs` into the PNG `output` (see `check_output`); returns
    what it leaves out. Matplotlib's warning for each character its font lacks becomes
    `Undrawn.characters`; its other warnings are shown as they come."""
    output = Path(output)
    fig, undrawn = draw_runs(runs)
    try:
        with writing(output), warnings.catch_warnings(record=True) as caught:
            warnings.filterwarnings("always", message=MISSING_GLYPH.pattern)  # each one; other warnings as filtered
            output.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(output, dpi=120)
    finally:
        plt.close(fig)
    missing = []
    for warning in caught:
        if glyph := MISSING_GLYPH.match(str(warning.message)):
            missing.append(chr(int(glyph[1])))
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    return undrawn._replace(characters="".join(sorted(set(missing))))


def draw_runs(runs: list[RunOutputs]):
    """The figure of `runs`: a panel of learning curves for each kind of curve (an x and a y: the
    algorithm's iteration, its headline metric) and task family, then a panel of adaptation curves
    for each kind of evaluation and family (a return on Pendulum and one on CartPole differ in
    scale a hundredfold); two panels a row. Returns it and the runs it leaves out, whole or in part
    (`Undrawn`)."""
    learning: dict[tuple[str, str, str], dict[Path, LearningCurve]] = defaultdict(dict)
    families = {}
    for run in runs:
        families[run.path] = run.config.env
        if curve := learning_curve(run.metrics):
            learning[(*learning_axes(run.algo, curve.metric), run.config.env)][run.path] = curve
    paths = [run.path for run in runs]
    evaluations = {run.path: run.evaluation for run in runs if run.evaluation}
    with_curve = {path for curves in learning.values() for path in curves}
    undrawn = Undrawn(left_out=[path for path in paths if path not in with_curve and path not in evaluations],
                      without_curve=[path for path in evaluations if path not in with_curve])
    if not learning and not evaluations:
        raise UserError("nothing to plot: no run has a value of its headline metric logged by every seed "
                        "(a DQN chunk in which no episode ended has none), or an evaluation")
    kinds = shown_results(evaluations, families)
    stands = {run.path: (run.last_logged_iteration, run.config.iterations)
              for run in runs if run.evaluation}  # where a label says each run stands
    named = len({families[run] for run in with_curve | set(evaluations)}) > 1  # titles name the families where the figure has several
    panels = len(learning) + len(kinds)
    columns = min(2, panels)
    rows = -(-panels // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(7.5 * columns, 5.5 * rows), squeeze=False, layout="constrained")
    axes = list(axes.ravel())
    for ax in axes[panels:]:
        ax.remove()
    for ax in axes:
        ax.set_prop_cycle(SERIES_STYLES)
    names = run_names(paths) if len(paths) > 1 else None
    for ax, ((x_label, y_label, family), curves) in zip(axes, learning.items()):
        _draw_learning(ax, (x_label, y_label), curves, names, family if named else None)
    for ax, ((score, trial, family), results) in zip(axes[len(learning):], kinds.items()):
        _draw_adaptation(ax, score, trial, results, stands, names, family if named else None)
    return fig, undrawn


def run_names(runs: list[Path]) -> dict[Path, str]:
    """Each run's name in a legend: the shortest end of its path that no other run's path ends with
    (its directory's name, or e.g. sweep-a/inner_lr=0.1 beside sweep-b/inner_lr=0.1)."""
    parts = {run: run.resolve().parts for run in runs}
    names = {}
    for run in runs:
        n = next(n for n in range(1, len(parts[run]) + 1)
                 if all(parts[other][-n:] != parts[run][-n:] for other in runs if other != run))
        names[run] = str(Path(*parts[run][-n:]))
    return names


def adaptation_series(result: dict) -> list[tuple[str, int, np.ndarray, np.ndarray, np.ndarray]]:
    """Each method's (name, seeds, k, mean, 95% CI half-width) for k = 0..K: over the held-out tasks,
    of each task's score averaged over the method's seeds, so that a method is one line however many
    seeds it was evaluated with; NaN (a gap in its line) at a k where some task diverged, as eval and
    report give no mean there."""
    series = []
    for method, by_seed in scores_by_method(result["per_task"]).items():
        per_task_mean = np.mean(by_seed, axis=0)  # (steps + 1, tasks)
        finite = np.all(np.isfinite(per_task_mean), axis=1)
        mean, half = mean_ci95(np.where(finite[:, None], per_task_mean, 0.0), axis=1)
        series.append((method, len(by_seed), np.arange(len(per_task_mean)), np.where(finite, mean, np.nan), np.where(finite, half, np.nan)))
    return series


def shown_results(evaluations: dict[Path, dict], families: dict[Path, str]
                  ) -> dict[tuple[str, bool, str], dict[Path, tuple[str, dict]]]:
    """Each evaluated run's (split, result) on its `test` split, or else its first split by name, grouped
    by kind, (score, whether it is an RL^2 trial, the run's task family from `families`): a kind is a
    panel, with its own axes."""
    kinds: dict[tuple[str, bool, str], dict[Path, tuple[str, dict]]] = defaultdict(dict)
    for run, evaluation in evaluations.items():
        split = "test" if "test" in evaluation else sorted(evaluation)[0]
        result = evaluation[split]
        kinds[(result["score"], bool(result.get("trial")), families[run])][run] = (split, result)
    return dict(sorted(kinds.items()))


def _draw_learning(ax, labels: tuple[str, str], curves: dict[Path, LearningCurve], names: dict[Path, str] | None,
                   family: str | None) -> None:
    """One kind's learning curves (on `family`, named in the title where given). An MSE is drawn on a
    log scale; a band that runs past every value the seeds logged (a t interval over two seeds is
    wide) is cut there, and the title says so."""
    x_label, y_label = labels
    log = next(iter(curves.values())).metric.endswith("mse")  # a panel's curves share their metric
    if log:
        ax.set_yscale("log")
    for run, curve in curves.items():
        label = f"{curve.seeds} seed{'s' if curve.seeds > 1 else ''}"
        label = f"{names[run]} ({label})" if names else label
        x, mean, half = curve.iterations, curve.mean, curve.half if curve.seeds > 1 else None
        if len(x) == 1:  # one chunk logged: a line or a band would be invisible
            ax.errorbar(x, mean, yerr=half, marker="o", capsize=3, label=label)
            continue
        (line,) = ax.plot(x, mean, label=label)
        if half is not None:
            ax.fill_between(x, mean - half, mean + half, color=line.get_color(), alpha=0.25, linewidth=0)
    if all(c.seeds == 1 for c in curves.values()):
        what = "one seed: no band" if len(curves) == 1 else "one seed each: no band"
    elif _cut_bands(ax, list(curves.values()), log):
        what = "mean over seeds, band: 95% CI across seeds, cut at the seeds' range"
    else:
        what = "mean over seeds, band: 95% CI across seeds"
    ax.set_title(f"learning curves: {y_label}{' (log scale)' if log else ''}{_on(family)}\n({what})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    _finish(ax)


def _cut_bands(ax, curves: list[LearningCurve], log: bool) -> bool:
    """Where some band runs past the values the panel's seeds logged (every run's, on a log axis the
    positive ones), set the y-axis to those values and a margin, and return True. A run of one
    logged chunk is drawn as a point with an error bar, whose ends stay in view. Nothing is cut
    where a value or a band's end is not finite (a hand-written metrics line)."""
    def ends(banded):
        return [np.concatenate([c.mean - c.half, c.mean + c.half]) for c in banded]

    bands = [c for c in curves if c.seeds > 1 and len(c.iterations) > 1]
    bars = [c for c in curves if c.seeds > 1 and len(c.iterations) == 1]
    values = np.concatenate([c.values.ravel() for c in curves] + ends(bars))
    values = values[values > 0] if log else values
    band_ends = np.concatenate(ends(bands) or [np.zeros(0)])
    if not (band_ends.size and values.size) or not (np.isfinite(values).all() and np.isfinite(band_ends).all()):
        return False
    low, high = values.min(), values.max()
    rounding = 1e-9 * max(high - low, abs(high), 1.0)  # seeds that agree leave a band of rounding error
    if band_ends.min() >= low - rounding and band_ends.max() <= high + rounding:
        return False
    if log:  # the margin is a share of the decades shown
        low, high = np.log10(low), np.log10(high)
    margin = 0.05 * (high - low) or 0.05 * max(abs(high), 1.0)
    limits = np.array([low - margin, high + margin])
    ax.set_ylim(*(10.0**limits if log else limits))
    return True


def _draw_adaptation(ax, score: str, trial: bool, results, stands: dict[Path, tuple[int, int]], names: dict[Path, str] | None,
                     family: str | None) -> None:
    """One kind's curves: the score after k adaptation steps or, for an RL^2 trial, in its episode k + 1
    (on `family`, named in the title where given). Each series is shifted a little sideways (within
    `DODGE`) so that intervals at one k stay apart. The label of a method that scored the run's own
    checkpoint says, as report's rows do, which checkpoint that was where it was not the finished run's
    latest (`checkpoint_note`, from the last iteration the run logged and its iterations, `stands`)."""
    series = [(run, split, result, *line) for run, (split, result) in results.items() for line in adaptation_series(result)]
    ticks = set()
    for i, (run, split, result, method, seeds, ks, mean, half) in enumerate(series):
        x = (ks + 1 if trial else ks).astype(float)
        ticks.update(x.astype(int).tolist())
        shift = DODGE * ((i + 0.5) / len(series) - 0.5)
        logged, iterations = stands[run]
        note = checkpoint_note(result, logged, iterations) if method in checkpointed_methods(result) else ""
        label = f"{method} ({seeds} seeds, {split}){note}" if seeds > 1 else f"{method} ({split}){note}"
        label = f"{names[run]}: {label}" if names else label
        if gaps := x[np.isnan(mean)].astype(int).tolist():
            label += f"; diverged {'in episode' if trial else 'at k ='} {_spans(gaps)} on some task, not drawn"
        ax.errorbar(x + shift, mean, yerr=half, marker="o", capsize=3, label=label)
    y_label = "query MSE" if score == "mse" else "return per episode"
    log = score == "mse"  # one diverging step's MSE would flatten every other line on a linear axis
    if log:
        ax.set_yscale("log")
    if trial:
        ax.set_title(f"RL^2 trials on {_held_out(family)}: {y_label} in each episode\n(95% CI over tasks)")
        ax.set_xlabel("episode of the trial (memory carried across episodes)")
    else:
        scale = " (log scale)" if log else ""
        ax.set_title(f"adaptation on {_held_out(family)}: {y_label} after k steps{scale}\n(95% CI over tasks)")
        ax.set_xlabel("adaptation steps k")
    ax.set_xticks(sorted(ticks))
    ax.set_xlim(min(ticks) - 0.5, max(ticks) + 0.5)  # one k (DQN's 0) would stretch its dodge across the panel
    ax.set_ylabel(y_label)
    _finish(ax)


def _on(family: str | None) -> str:
    """A learning panel title's note of its task family, where the figure names them."""
    return f" on {family}" if family else ""


def _held_out(family: str | None) -> str:
    """An adaptation panel title's tasks, of its family where the figure names them."""
    return f"held-out {family} tasks" if family else "held-out tasks"


def _spans(numbers: list[int]) -> str:
    """Ascending integers as a short list: runs of three or more as first–last ("1, 3–10")."""
    spans: list[list[int]] = []
    for n in numbers:
        if spans and n == spans[-1][-1] + 1:
            spans[-1].append(n)
        else:
            spans.append([n])
    return ", ".join(f"{s[0]}–{s[-1]}" if len(s) > 2 else ", ".join(map(str, s)) for s in spans)


def _finish(ax) -> None:
    """Grid, and the legend under the axes, where it covers no data, each entry wrapped to fit its
    half of the panel's width (two columns)."""
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    labels = [textwrap.fill(label, LEGEND_WIDTH) for label in labels]
    ax.legend(handles, labels, fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
