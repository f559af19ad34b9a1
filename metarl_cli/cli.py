"""The `metarl` command: parse, validate, dispatch. No math here."""

from __future__ import annotations

import importlib.metadata
import itertools
import logging
import os
import shlex
import sys
import threading
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import List, NoReturn, Optional

import typer
from rich import box
from rich.cells import cell_len
from rich.markup import escape
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from metarl_cli.config import ALGORITHMS, default_env, parse_override, resolve_config, resumed_config
from metarl_cli.errors import UserError
from metarl_cli.interrupts import noting_interrupts_while_starting
from metarl_cli.training.progress import console, stdout_console

DEFAULT_ENVS = ", ".join(f"{default_env(algo)} for {algo}" for algo in ALGORITHMS)  # where --env is left out
app = typer.Typer(
    help="Meta-reinforcement learning experiments in JAX: train, evaluate on held-out tasks, report and plot across runs, list task families.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = stdout_console()  # tables go to stdout; progress bars and messages to stderr


def _print_version(asked: bool) -> None:
    if asked:
        try:
            version = importlib.metadata.version("metarl")
        except importlib.metadata.PackageNotFoundError:  # imported from a source tree, not installed
            version = "(not installed)"
        out.print(f"metarl {version}", highlight=False)
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", metavar="", callback=_print_version, is_eager=True, help="Print metarl's version and exit."),
) -> None:
    pass


def _final_returns_line(last) -> str:
    """The end-of-training line of an algorithm that logs its training episodes (`final_returns`)."""
    window = f"the last {last.window:,} env steps ({last.window / last.total:.0%} of {last.total:,})"
    ended = {seed: ret for seed, ret in last.per_seed.items() if ret is not None}
    if not ended:
        return f"no training episode ended in {window}"
    if len(last.per_seed) == 1:
        (seed, ret), = ended.items()
        return f"mean return of the training episodes in {window}: {ret:.1f} (seed {seed})"
    per_seed = ", ".join(f"seed {seed}: {'no episode ended' if ret is None else f'{ret:.1f}'}" for seed, ret in last.per_seed.items())
    over = "seeds" if len(ended) == len(last.per_seed) else f"the {len(ended)} of {len(last.per_seed)} seeds with episodes"
    return f"mean return of the training episodes in {window}: {per_seed}; mean over {over} {sum(ended.values()) / len(ended):.1f}"


def _say(text: str) -> None:
    """One message on stderr as written: no rich markup (a path may hold brackets), one line."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _exit_interrupted(text: str) -> NoReturn:
    """After a Ctrl-C: `text` on stderr, then exit status 130 at once (`os._exit`), skipping the
    interpreter's teardown. A Ctrl-C can cut short a wait on XLA while its own threads go on
    compiling or running the program, and tearing the runtime down under them ends the process with
    an abort or a segmentation fault instead. Nothing is lost: the runner waits for the checkpoint
    save in flight before it raises `Interrupted`, and metrics lines are closed as they are written."""
    _say(text)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


def _diverged(error: Exception) -> None:
    """A training's loss or gradient became non-finite: its message, exit status 1."""
    console.print(f"[red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


@app.command()
def train(
    algo: str = typer.Argument(..., metavar="ALGO", help=f"Algorithm: {', '.join(ALGORITHMS)}."),
    env: Optional[str] = typer.Option(None, "--env", "-e", metavar="FAMILY", help=f"Task family (see `metarl envs`); default {DEFAULT_ENVS}."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", metavar="FILE", help="TOML file of config values."),
    set_: List[str] = typer.Option([], "--set", "-s", metavar="KEY=VALUE", help="Override one config key: key=value (repeatable)."),
    seeds: Optional[int] = typer.Option(
        None, "--seeds", metavar="N", help="Independent runs in one compiled program, seeded seed, seed+1, ... (same as --set seeds=N)."
    ),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", "-o", metavar="DIR", help="Where to write the run (default runs/ALGO-ENV-DATE-TIME)."),
    resume: bool = typer.Option(
        False, "--resume", metavar="", help="Continue the run in --run-dir from its latest checkpoint (--set iterations=N, or total_steps=N for dqn, extends it; --set checkpoint_every=N and keep_checkpoints=N change how it saves; rl2 also takes --set lr=..., entropy_coef=..., second_phase_lr=..., second_phase_entropy_coef=..., large_batch_at=... and large_meta_batch=... for what follows)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", metavar="", help="Replace an existing run in --run-dir."),
    dry_run: bool = typer.Option(
        False, "--dry-run", metavar="", help="Check the config and the run directory (or the run to resume), print the resolved config and where the run would go, then exit without training or writing."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", metavar="", help="No progress bar."),
):
    """Meta-train ALGO on a task family; writes a run directory with checkpoints and metrics."""
    from metarl_cli.algos import make_algorithm
    from metarl_cli.backend import start_for_training
    from metarl_cli.config import config_toml, write_config
    from metarl_cli.devices import local_devices_text, uneven_split_note
    from metarl_cli.evaluate import baselines_of
    from metarl_cli.families import family_for
    from metarl_cli.training.final_returns import final_returns
    from metarl_cli.training.rundir import (MetricsLog, check_new, claim_default_run_dir, command_line, default_run_dir, eval_command,
                                            first_free, holding, load_run, prepare_new, record_resume, write_manifest)
    from metarl_cli.training.runner import DivergedError, Interrupted, check_resume, stop_signals_set, train as run_training

    if resume and overwrite:
        raise UserError("--resume and --overwrite contradict each other; pass one")
    if seeds is not None:
        if resume:
            raise UserError("--resume continues a run with its saved seeds; drop --seeds")
        given = [value for key, value in map(parse_override, set_) if key == "seeds" and value != seeds]
        if given:
            raise UserError(f"--seeds {seeds} and --set seeds={given[0]} disagree; give the number of seeds once")
        set_ = [*set_, f"seeds={seeds}"]
    if resume:
        if run_dir is None:
            raise UserError("--resume needs --run-dir naming the run to continue")
        saved_algo, saved, _ = load_run(run_dir)
        if saved_algo != algo:
            raise UserError(f"{run_dir} is a '{saved_algo}' run, not '{algo}'")
        cfg = resumed_config(saved, env, config, set_)
    else:
        cfg = resolve_config(algo, env, config, set_)
    start_for_training(algo, cfg)
    family = family_for(cfg)
    algorithm = make_algorithm(algo, cfg, family)
    done, replaces, named = 0, False, run_dir is not None
    if resume:
        done = check_resume(algorithm, cfg, run_dir, saved_algo=make_algorithm(algo, saved, family))
        cfg.check_retuned(saved, done)
    else:
        run_dir = run_dir or default_run_dir(algo, cfg.env)
        replaces = check_new(run_dir if named else first_free(run_dir), overwrite)
    length_key = type(cfg).LENGTH_KEY
    finished = f"{run_dir} had already run its {length_key} = {getattr(cfg, length_key)}; --set {length_key}=N extends it"
    if not (resume and done == cfg.iterations):  # what the run about to train should know
        for warning in cfg.warnings():
            _say(f"warning: {warning}")
        uneven_seeds = uneven_split_note(cfg.seeds, "the seeds", "seeds")
        for note in (*algorithm.notes, *([uneven_seeds] if uneven_seeds else [])):
            _say(f"note: {note}")
        try:  # the baselines `metarl eval` trains for this run: one too long to train is refused there, said here first
            baselines_of(algorithm, algo, cfg, family)
        except UserError as e:
            _say(f"warning: `metarl eval` will refuse this run: {e}")
    if dry_run:
        typer.echo(config_toml(cfg, algo) + _ranges_comment(family), nl=False)
        if resume:
            plan = f"resume {run_dir} from iteration {done} of {cfg.iterations}" if done < cfg.iterations else f"do nothing: {finished}"
        elif named:
            plan = f"{'replace the run in' if replaces else 'write'} {run_dir}"
        else:
            plan = f"write a new run in {run_dir.parent}/ (named {algo}-{cfg.env}-DATE-TIME when it starts)"
        _say(f"dry run: {algo} on {cfg.env} would {plan}; nothing was trained or written")
        return
    if resume and done == cfg.iterations:
        _say(finished)
        return
    stop = threading.Event()
    with ExitStack() as writing:
        # From here a Ctrl-C (or SIGTERM) sets `stop`, seen before the run's first file and between its calls.
        writing.enter_context(stop_signals_set(stop))
        if resume:
            writing.enter_context(holding(run_dir))  # this process alone writes the run from here on
            if stop.is_set():
                _exit_interrupted("interrupted before training began")
            record_resume(run_dir, saved, cfg, command_line())
            write_config(cfg, algo, run_dir / "config.toml")
        else:
            made = not (named and run_dir.exists())
            if named:
                prepare_new(run_dir, False)
            else:
                run_dir = claim_default_run_dir(run_dir)
            writing.enter_context(holding(run_dir))
            replaced = False
            if named and not stop.is_set():  # again, alone now: another process may have written a run there, or still trained the one replaced
                replaced = check_new(run_dir, overwrite)
                prepare_new(run_dir, replaced)
            if stop.is_set():
                if made:
                    with suppress(OSError):
                        run_dir.rmdir()  # made empty just now
                _exit_interrupted("interrupted before training began" + (f"; the run that was in {run_dir} is removed" if replaced else ""))
            write_manifest(run_dir, algo, cfg, command_line())
        console.print(f"[bold]{algo}[/] on [bold]{cfg.env}[/] ({local_devices_text()}) -> {run_dir}")
        try:
            summary = run_training(algorithm, cfg, run_dir, resume=resume, show_progress=not quiet, stop=stop)
        except DivergedError as e:
            _diverged(e)
        except Interrupted as e:
            resume_command = f"`metarl train {algo} --resume -o {shlex.quote(str(run_dir))}`"
            _exit_interrupted(f"interrupted: the latest checkpoint is iteration {e.latest}; {resume_command} continues from there"
                              if e.latest is not None else f"interrupted before the first checkpoint; {resume_command} starts the run again")
    rate = f"{summary.iterations_per_second:,.1f} it/s"  # a run that had nothing left to do stopped above
    if summary.env_steps_per_second:
        rate += f", {summary.env_steps_per_second:,.0f} env steps/s"
    last = final_returns(MetricsLog(run_dir / "metrics.jsonl").read())
    if last:
        console.print(_final_returns_line(last), highlight=False)
    console.print(
        f"done: {summary.iterations_done} iteration{'s' if summary.iterations_done != 1 else ''} in {summary.seconds:.1f}s "
        f"(compile {summary.compile_seconds:.1f}s, checkpoints {summary.checkpoint_seconds:.2f}s, {rate}). "
        f"Next: {eval_command(run_dir)}"
    )
    advice = summary.checkpoint_advice(cfg.iterations, cfg.chunk)
    if advice:
        console.print(advice, highlight=False)


def _ranges_comment(family) -> str:
    """The task ranges a run draws from, as TOML comments: the family's, with the config's [ranges] applied."""
    ranges = getattr(family, "ranges", ())
    exact = ".10g"  # the bounds as set, where `metarl envs` rounds to six digits
    lines = [f"# {r.name}: train and test {_interval(r.train, exact)}, ood {' ∪ '.join(_interval(b, exact) for b in r.ood) or 'as train'}"
             for r in ranges]
    return "".join(f"{line}\n" for line in ["# the task ranges in effect (the family's, [ranges] applied):", *lines] if ranges)


def _interval(bounds, spec: str = "g") -> str:
    return f"[{bounds[0]:{spec}}, {bounds[1]:{spec}}]"


@app.command("eval")
def eval_(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="A run directory written by `metarl train`."),
    split: str = typer.Option("test", "--split", metavar="SPLIT", help="test (new tasks, train ranges; metamaze: goals training never draws), ood (held-out ranges) or train (tasks from the training split)."),
    tasks: Optional[int] = typer.Option(None, "--tasks", "-n", metavar="N", help="Held-out tasks (default: the run's eval_tasks)."),
    steps: Optional[int] = typer.Option(None, "--steps", "-k", metavar="K", help="Adaptation steps (default: the run's eval_steps); dqn takes only 0 (it does not adapt), rl2 none (it adapts within a trial)."),
    checkpoint: str = typer.Option("latest", "--checkpoint", metavar="WHICH", help="latest, or best: the checkpoint with the best training score (post-adaptation score; a DQN's or RL^2's return)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", metavar="", help="No progress bar."),
):
    """Score (return or MSE) after 0..K adaptation steps on held-out tasks, beside the baselines; writes RUN/eval.json."""
    from metarl_cli.evaluate import check_eval_options, evaluate, write_evaluation
    from metarl_cli.training.rundir import eval_command, evaluating
    from metarl_cli.training.runner import DivergedError, Interrupted

    check_eval_options(split, tasks, steps, checkpoint)  # before the run is read: a bad option is said first
    with evaluating(run_dir):
        try:
            result = evaluate(run_dir, split, tasks, steps, checkpoint, show_progress=not quiet)
        except DivergedError as e:
            _diverged(e)
        except Interrupted:
            _exit_interrupted(f"interrupted while training the run's baselines; the next `{eval_command(run_dir)}` "
                              "resumes their training (from their latest checkpoints, where they have one)")
        except KeyboardInterrupt:
            _exit_interrupted(f"interrupted before this evaluation was written to eval.json; the next `{eval_command(run_dir)}` "
                              "starts it again (keeping the run's baselines that finished training)")
        for table in (trial_tables if result.trial else eval_tables)(run_dir, result):
            out.print(table)
        write_evaluation(run_dir / "eval.json", result)  # after the tables: a run on a read-only disk still shows them


def _result_table(run_dir: Path, result, what: str) -> Table:
    """An empty table titled with the run, what it shows, the checkpoint, and the papers cited."""
    sources = sorted({row.source for row in result.published})
    done, planned = result.progress
    unfinished = f"; the run, unfinished, has done {done} of {planned}" if done < planned else ""
    return Table(
        title=f"{run_dir}: {what}\n(mean ± 95% CI; {result.checkpoint} checkpoint, iteration {result.iteration}{unfinished})",
        caption=f"published: {'; '.join(sources)}" if sources else None,
    )


def _diverged_cell(diverged: int, of: int) -> str:
    return f"[red]diverged on {diverged}/{of}[/]"


def _mean_ci(summary, tasks: int, digits: int = 2) -> str:
    """A cell of an eval table: mean ± 95% CI (in powers of ten from a million up, so that a run
    gone astray still fits its cell), or how many of the `tasks` diverged."""
    if summary.diverged:
        return _diverged_cell(summary.diverged, tasks)
    form = "e" if max(abs(summary.mean), abs(summary.ci95)) >= 1e6 else "f"
    return f"{summary.mean:.{digits}{form}} ± {summary.ci95:.{digits}{form}}"


def _natural_width(table: Table) -> int:
    """The columns `table` takes unsqueezed (rich measures against the terminal's width otherwise)."""
    return _measure(table).maximum


def _least_width(table: Table) -> int:
    """The fewest columns `table` takes with each column as narrow as its longest word (or fixed width)."""
    return _measure(table).minimum


def _measure(table: Table) -> Measurement:
    return Measurement.get(out, out.options.update_width(10_000), table)


def _grid_tables(make_table, corner: str, row_labels: list[str], column_labels: list[str], cells: list[list[str]],
                 min_widths: dict[int, int] | None = None) -> list[Table]:
    """The grid (`cells`: a list per row label) as one table from `make_table()`, or, where that is
    wider than the terminal, as several one after another, each with the row labels (kept whole: they
    carry tuned settings) and as many of the columns as fit (column j at least `min_widths[j]` wide);
    the title on the first, the caption on the last."""

    def build(columns: list[int]) -> Table:
        table = make_table()
        table.add_column(corner, no_wrap=True)
        for j in columns:
            table.add_column(column_labels[j], justify="right", min_width=(min_widths or {}).get(j))
        for label, row in zip(row_labels, cells):
            table.add_row(label, *(row[j] for j in columns))
        return table

    chunks = [[]]
    for j in range(len(column_labels)):
        if chunks[-1] and _natural_width(build(chunks[-1] + [j])) > out.width:
            chunks.append([])
        chunks[-1].append(j)
    tables = [build(columns) for columns in chunks]
    for table in tables[1:]:
        table.title = None
    for table in tables[:-1]:
        table.caption = None
    return tables


def eval_tables(run_dir: Path, result) -> list[Table]:
    """One row per number of adaptation steps k, one column per method, then the published columns."""
    adapted = "after k adaptation steps" if result.steps else "without adaptation"
    tasks = f"{result.tasks} episodes of its one task" if result.one_task else f"{result.tasks} '{result.split}' tasks"
    what = f"{result.score_name} on {tasks} {adapted}"
    digits = 3 if result.score_name == "mse" else 2
    cells = [[_mean_ci(rows[j], result.tasks, digits) for rows in result.methods.values()]
             + [f"[dim]{row.values[j]:.2f}[/]" if j in row.values else "" for row in result.published]
             for j in range(result.steps + 1)]
    columns = list(result.methods) + [f"[dim]{row.label}[/]" for row in result.published]
    steps = [str(j) for j in range(result.steps + 1)]
    return _grid_tables(lambda: _result_table(run_dir, result, what), "k", steps, columns, cells)


def trial_tables(run_dir: Path, result) -> list[Table]:
    """RL^2 runs: one row per method, a column per episode of the trial, the trial's total, the paper's total."""
    what = f"return on {result.tasks} '{result.split}' tasks, one trial each, memory carried across its episodes"
    episodes = result.steps + 1

    def paper_cell(row) -> str:
        return f"[dim]{row.values.get('total', row.values.get(0)):.1f} ({row.label})[/]"

    def paper(method: str) -> str:
        row = next((r for r in result.published if r.method and method.startswith(r.method)), None)
        return "" if row is None else paper_cell(row)

    columns = ([f"episode {j + 1}" for j in range(episodes)] if episodes > 1 else []) + ["trial total"]
    columns += ["[dim]paper[/]"] if result.published else []
    methods, cells = [], []
    for name, rows in result.methods.items():
        per_episode = [_mean_ci(r, result.tasks) for r in rows] if episodes > 1 else []
        methods.append(name)
        cells.append(per_episode + [_mean_ci(result.totals[name], result.tasks)] + ([paper(name)] if result.published else []))
    for row in result.published:  # published methods we do not run
        if not any(name.startswith(row.method) for name in result.methods):
            methods.append(f"[dim]{row.method}[/]")
            cells.append([""] * (len(columns) - 1) + [paper_cell(row)])
    # The paper's column is as wide as its widest "(label)": a cell wraps between number and label, never inside.
    paper_width = {len(columns) - 1: max(len(f"({r.label})") for r in result.published)} if result.published else None
    return _grid_tables(lambda: _result_table(run_dir, result, what), "method", methods, columns, cells, paper_width)


def _report_table(rows, title: str, with_run: bool) -> Table:
    """The report's rows as a table: a run's name on its first row only, a rule between runs. One
    run's table, `with_run` False, is squeezed where the terminal is narrower than it: its cells
    wrap rather than lose their ends, between words where every column can take its longest word,
    else anywhere. (A table `with_run` that is too wide is printed as a table per run instead.)"""
    labels = ["run", "split", "method", "metric"][0 if with_run else 1:] + ["seeds", "n", "estimate", "95% CI"]
    body = []
    for i, row in enumerate(rows):
        first_of_run = i == 0 or rows[i - 1].run != row.run
        if row.diverged:
            summary = [_diverged_cell(row.diverged, row.n), "n/a"]
        else:
            summary = [f"{row.estimate:.3g} ({row.estimator})", f"[{row.low:.3g}, {row.high:.3g}]" if row.n > 1 else "n/a (one value)"]
        cells = [row.split, row.method, row.metric, str(row.seeds), str(row.n), *summary]
        body.append((first_of_run and i > 0, ([row.run if first_of_run else ""] if with_run else []) + cells))
    texts = [[Text.from_markup(text).plain for text in [label] + [cells[j] for _, cells in body]] for j, label in enumerate(labels)]
    longest = [max(cell_len(text) for text in column) for column in texts]
    words = [max(cell_len(word) for text in column for word in text.split() or [""]) for column in texts]

    def build(widths: list[int] | None = None) -> Table:
        narrow = widths is not None
        table = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 0 if narrow else 1), show_edge=not narrow)
        for j, label in enumerate(labels):
            table.add_column(label, justify="left" if j < len(labels) - 4 else "right", overflow="fold", width=widths[j] if narrow else None)
        for new_run, cells in body:
            if new_run:
                table.add_section()
            table.add_row(*cells)
        return table

    table = build()
    if with_run or _natural_width(table) <= out.width:
        return table
    # Narrower: one space between columns, each column as wide as its longest word, then whole the
    # columns that need least room for it, the room left to the next; where even the words do not
    # fit, rich's widths, cut anywhere.
    room = out.width - (_natural_width(build([1] * len(labels))) - len(labels)) - sum(words)
    if room < 0:
        return build([None] * len(labels))
    widths = list(words)
    for j in sorted(range(len(labels)), key=lambda j: longest[j] - words[j]):
        widths[j] += min(room, longest[j] - words[j])
        room -= widths[j] - words[j]
    return build(widths)


def _say_left_out(run: Path, what: str) -> None:
    """That `run` is left out of a report or plot, and why (e.g. a sweep's point that failed early)."""
    console.print(f"{run} has nothing to {what} yet (no value of its headline metric logged by every seed, no evaluation): left out",
                  highlight=False)


def _runs_to_read(paths: list[Path], what: str) -> list[Path]:
    """The runs `paths` name (`report.readable_runs`), saying which damaged ones found inside a named
    directory are left out of the report or plot, and why."""
    from metarl_cli.report import readable_runs

    runs, damaged = readable_runs(paths)
    for run, error in damaged:
        console.print(f"{run} left out of the {what}: {escape(str(error))}", highlight=False)
    return runs


@app.command()
def report(
    runs: List[Path] = typer.Argument(..., metavar="DIR", help="Run directories, or directories holding runs at any depth (a sweep; runs/)."),
    step: Optional[int] = typer.Option(None, "--step", "-k", metavar="K", help="Adaptation steps whose score is reported (default: the last evaluated); RL^2 runs report each episode of the trial and its total instead."),
    out_prefix: str = typer.Option("report", "--out", "-o", metavar="OUT", help="Writes OUT.csv and OUT.json."),
):
    """One table across runs and seeds: interquartile mean with a 95% stratified-bootstrap interval, per run and split (a training row: the mean over seeds, Student-t interval)."""
    from metarl_cli.report import report_paths, run_rows, write_report

    report_paths(out_prefix)  # refuse a bad --out before the work
    rows = []
    for run in _runs_to_read(runs, "report"):
        found = run_rows(run, step)
        if not found:  # e.g. a sweep's point that failed before its first chunk
            _say_left_out(run, "report")
        rows += found
    if not rows:
        raise UserError("nothing to report: no run has a value of its headline metric logged by every seed, or an evaluation")
    title = ("IQM [95% stratified bootstrap CI] over seeds and held-out tasks; "
             "a training row: the mean [95% Student-t CI] over seeds")
    table = _report_table(rows, title, with_run=True)
    if _natural_width(table) <= out.width:
        out.print(table)
    else:  # a narrow terminal: a table per run, its name as the title (never cut), its cells wrapped where still too wide
        out.print(f"[italic]{title}[/]")
        for run, run_rows_ in itertools.groupby(rows, key=lambda row: row.run):
            out.print(_report_table(list(run_rows_), run, with_run=False))
    csv_path, json_path = write_report(rows, out_prefix)
    console.print(f"wrote {csv_path} and {json_path}")


@app.command()
def plot(
    runs: List[Path] = typer.Argument(..., metavar="DIR", help="Run directories (finished or still training), or directories holding runs at any depth."),
    output: str = typer.Option(..., "--output", "-o", metavar="FILE.png", help="The PNG to write."),
):
    """Learning curves (with a band across seeds) and, where evaluated, adaptation curves, into one PNG."""
    from metarl_cli.plot import check_output, plot_runs

    check_output(output)  # refuse a bad --output before reading the runs
    for run in plot_runs(_runs_to_read(runs, "plot"), output):
        _say_left_out(run, "plot")
    console.print(f"wrote {Path(output)}")


ENVS_TITLE = ("task families (train and test draw from the train range, metamaze's test from cells train never draws; "
              "ood from the held-out ranges)")


def _envs_table(families, numbers_whole: bool) -> Table:
    """The families' parameters and ranges; with `numbers_whole`, the parameter column at least as wide
    as the longest name and the number columns unwrapped, else the parameter column exactly that wide."""
    table = Table(title=ENVS_TITLE,
                  box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), show_edge=False)
    table.add_column("env", no_wrap=True)  # the names to type stay whole at any width
    # One space of padding beside the box's one-space divider and no outer edge: on an 80-column
    # terminal no interval is broken.
    longest = max(len(r.name) for fam in families for r in fam.ranges)
    table.add_column("parameter", min_width=longest if numbers_whole else None, width=None if numbers_whole else longest)
    for col in ("default", "train / test", "ood"):  # too narrow for a number: it folds (narrower than the words: envs lists)
        table.add_column(col, no_wrap=numbers_whole, overflow="fold")
    for name, rows in _envs_rows(families):
        for i, row in enumerate(rows):
            table.add_row(name if i == 0 else "", *row)
        table.add_section()
    return table


def _envs_rows(families) -> list[tuple[str, list[tuple[str, str, str, str]]]]:
    """Each family's name and rows (parameter, default, train / test, ood)."""
    from metarl_cli.families import FAMILY_NAMES, Family

    rows = []
    for name, fam in zip(FAMILY_NAMES, families):
        mine = []
        if isinstance(fam, Family) and fam.draw_text:
            mine.append((fam.draw_text, "", "drawn per task", "see parameter" if "ood" in fam.splits else "none"))
        elif fam.one_task:
            mine.append(("(none: one task)", "", "", ""))
        for r in fam.ranges:
            ood = "\n∪ ".join(map(_interval, r.ood)) or "as train"  # an interval a line
            mine.append((r.name, f"{r.default:g}", _interval(r.train), ood))
        rows.append((name, mine))
    return rows


def _envs_list(families) -> None:
    """The envs table's contents as a list (a family's name, then each parameter over its values, one
    a line, an ood range's intervals one a line as in the table), for a terminal too narrow for the
    table's columns to hold their words."""
    out.print(f"{ENVS_TITLE}:", highlight=False)
    for name, rows in _envs_rows(families):
        out.print(f"[bold]{name}[/]", highlight=False)
        for parameter, default, train, ood in rows:
            out.print(Padding(parameter, (0, 0, 0, 2)), highlight=False)
            first_ood, *more_ood = ood.split("\n") if ood else [""]
            values = [f"default {default}" if default else "", f"train / test {train}" if train else "",
                      f"ood {first_ood}" if ood else "", *(f"  {interval}" for interval in more_ood)]
            for value in filter(None, values):
                out.print(Padding(value, (0, 0, 0, 4)), highlight=False)


@app.command()
def envs():
    """List task families with their randomised parameters and per-split ranges."""
    from metarl_cli.families import FAMILY_NAMES, RegressionFamily, get_family

    families = [get_family(name) for name in FAMILY_NAMES]
    # The numbers never wrap where the terminal is as wide as the table with its parameter column
    # at the longest name (80 columns do): a family's description wraps within that column instead.
    # On a narrower terminal the numbers wrap too, rather than run off its edge.
    narrow = _envs_table(families, numbers_whole=False)
    if _least_width(narrow) > out.width:  # rich would fold its headers a letter a line, or drop columns
        _envs_list(families)
    else:
        out.print(narrow if _natural_width(narrow) > out.width else _envs_table(families, numbers_whole=True))
    for name, fam in zip(FAMILY_NAMES, families):
        if isinstance(fam, RegressionFamily):
            shape = f"regression, x in {_interval(fam.x_range)}"
        else:
            shape = f"{fam.horizon}-step episodes, " + (f"{fam.action_dim} discrete actions" if fam.discrete else f"{fam.action_dim}-d continuous actions")
        out.print(f"[bold]{name}[/] ({shape}): {fam.summary}", highlight=False)


def main() -> None:
    logging.getLogger("absl").setLevel(logging.ERROR)  # Orbax's notes on steps it skips or cleans up; errors say what matters
    with noting_interrupts_while_starting():
        try:
            app()
        except SystemExit as e:
            if e.code == 130:  # typer's exit for a Ctrl-C that reached it, which it leaves unsaid
                _say("interrupted")
            raise
        except UserError as e:
            console.print(f"[red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
            sys.exit(2)
        except OSError as e:  # a path that cannot be read or written: the system's reason and the path
            where = " -> ".join(str(p) for p in (e.filename, e.filename2) if p is not None)
            console.print(f"[red]error:[/] {escape(e.strerror or str(e))}{escape(': ' + where) if where else ''}", highlight=False, soft_wrap=True)
            sys.exit(1)
