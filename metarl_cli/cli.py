"""The `metarl` command: parse, validate, dispatch. No math here."""

from __future__ import annotations

import importlib.metadata
import logging
import os
import shlex
import sys
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, List, NoReturn, Optional

import typer
from rich.markup import escape

from metarl_cli.config import ALGORITHMS, default_env, resume_help
from metarl_cli.errors import UserError, out_of_memory
from metarl_cli.interrupts import interrupts_held, noting_interrupts_while_starting, terminations_as_interrupts
from metarl_cli.tables import interval, print_envs, print_evaluation, print_report
from metarl_cli.training.progress import console, say

if TYPE_CHECKING:  # loaded where used: `metarl --help` starts without numpy
    from metarl_cli.run_outputs import RunOutputs

DEFAULT_ENVS = ", ".join(f"{default_env(algo)} for {algo}" for algo in ALGORITHMS)  # where --env is left out
app = typer.Typer(
    help="Meta-reinforcement learning experiments in JAX: train, evaluate on held-out tasks, report and plot across runs, list task families.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(asked: bool) -> None:
    if asked:
        try:
            version = importlib.metadata.version("metarl")
        except importlib.metadata.PackageNotFoundError:  # imported from a source tree, not installed
            version = "(not installed)"
        typer.echo(f"metarl {version}")
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


def _nonempty_path(name: str):
    """The parser of a path option or argument `name`: an empty one, which Path reads as the current
    directory, is refused (UserError)."""

    def parse(text: str) -> Path:
        if not text:
            raise UserError(f"{name} is empty; give a path")
        return Path(text)

    return parse


def _error(text: str) -> None:
    """An error line on stderr: "error:" in red, then `text` as written."""
    console.print(f"[red]error:[/] {escape(text)}", highlight=False)


def _exit_interrupted(text: str) -> NoReturn:
    """After a Ctrl-C: `text` on stderr, then exit status 130 at once (`os._exit`), skipping the
    interpreter's teardown. A Ctrl-C can cut short a wait on XLA while its own threads go on
    compiling or running the program, and tearing the runtime down under them ends the process with
    an abort or a segmentation fault instead. Nothing is lost: the runner waits for the checkpoint
    save in flight before it raises `Interrupted`, and metrics lines are closed as they are written."""
    say(text)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


def _diverged(error: Exception) -> None:
    """A training's loss or gradient became non-finite: its message, exit status 1."""
    _error(str(error))
    raise typer.Exit(1)


@app.command()
def train(
    algo: str = typer.Argument(..., metavar="ALGO", help=f"Algorithm: {', '.join(ALGORITHMS)}."),
    env: Optional[str] = typer.Option(None, "--env", "-e", metavar="FAMILY", help=f"Task family (see `metarl envs`); default {DEFAULT_ENVS}."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", metavar="FILE", parser=_nonempty_path("--config"), help="TOML file of config values."),
    set_: List[str] = typer.Option([], "--set", "-s", metavar="KEY=VALUE", help="Override one config key: key=value (repeatable)."),
    seeds: Optional[int] = typer.Option(
        None, "--seeds", metavar="N", help="Independent runs in one compiled program, seeded seed, seed+1, ... (same as --set seeds=N)."
    ),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", "-o", metavar="DIR", parser=_nonempty_path("--run-dir"),
                                           help="Where to write the run (default runs/ALGO-ENV-DATE-TIME)."),
    resume: bool = typer.Option(
        False, "--resume", metavar="", help=resume_help()
    ),
    overwrite: bool = typer.Option(False, "--overwrite", metavar="", help="Replace an existing run in --run-dir."),
    dry_run: bool = typer.Option(
        False, "--dry-run", metavar="", help="Check the config and the run directory (or the run to resume), print the resolved config and where the run would go, then exit without training or writing."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", metavar="", help="No progress bar."),
):
    """Meta-train ALGO on a task family; writes a run directory with checkpoints and metrics."""
    with interrupts_held():  # these load JAX
        from metarl_cli.config import config_toml
        from metarl_cli.devices import local_devices_text
        from metarl_cli.training.launch import InterruptedBeforeTraining, dry_run_plan, notes_before_training, plan_training, take_run_dir
        from metarl_cli.training.rundir import command_path
        from metarl_cli.training.runner import DivergedError, Interrupted, stop_signals_set, train as run_training

    plan = plan_training(algo, env=env, config_file=config, overrides=set_, seeds=seeds, run_dir=run_dir, resume=resume, overwrite=overwrite)
    cfg = plan.config
    if not plan.nothing_to_do:
        for line in notes_before_training(plan):
            say(line)
    if dry_run:
        would = dry_run_plan(plan)  # first: a run that would be refused is refused here
        typer.echo(config_toml(cfg, algo) + _ranges_comment(plan.family), nl=False)
        say(f"dry run: {algo} on {cfg.env} would {would}; nothing was trained or written")
        return
    if plan.nothing_to_do:
        say(plan.finished)
        return
    stop = threading.Event()
    with ExitStack() as writing:
        # From here a Ctrl-C (or SIGTERM) sets `stop`, seen before the run's first file and between its calls.
        writing.enter_context(stop_signals_set(stop))
        try:
            run_dir = take_run_dir(plan, stop, writing)
        except InterruptedBeforeTraining as e:
            _exit_interrupted(str(e))
        console.print(f"[bold]{algo}[/] on [bold]{cfg.env}[/] ({local_devices_text()}) -> {escape(str(run_dir))}")
        try:
            summary = run_training(plan.algorithm, cfg, run_dir, resume=resume, show_progress=not quiet, stop=stop)
        except DivergedError as e:
            _diverged(e)
        except Interrupted as e:
            resume_command = f"`metarl train {algo} --resume -o {shlex.quote(command_path(run_dir))}`"
            _exit_interrupted(f"interrupted: the latest checkpoint is iteration {e.latest}; {resume_command} continues from there"
                              if e.latest is not None else f"interrupted before the first checkpoint; {resume_command} starts the run again")
    _say_done(summary, cfg, run_dir)
    if stop.is_set():  # during the last call: nothing was left to stop, and the run ends as a finished one
        say(f"note: the stop (Ctrl-C or SIGTERM) came during the run's last call; it has done all its {cfg.iterations} iterations")


def _say_done(summary, cfg, run_dir: Path) -> None:
    """The end of a training: its final returns where it logs episodes, its times and rates, the
    eval command to run next, and advice on saving less often where saves took long."""
    from metarl_cli.training.final_returns import final_returns
    from metarl_cli.training.rundir import MetricsLog, eval_command

    rate = f"{summary.iterations_per_second:,.1f} it/s"
    if summary.env_steps_per_second:
        rate += f", {summary.env_steps_per_second:,.0f} env steps/s"
    last = final_returns(MetricsLog(run_dir / "metrics.jsonl").read())
    if last:
        console.print(_final_returns_line(last), highlight=False)
    say(
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
    lines = [f"# {r.name}: train and test {interval(r.train, exact)}, ood {' ∪ '.join(interval(b, exact) for b in r.ood) or 'as train'}"
             for r in ranges]
    return "".join(f"{line}\n" for line in ["# the task ranges in effect (the family's, [ranges] applied):", *lines] if ranges)


EVAL_SPLIT, EVAL_CHECKPOINT = "test", "latest"  # eval's defaults, which a suggested eval command leaves out


@app.command("eval")
def eval_(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", parser=_nonempty_path("RUN_DIR"), help="A run directory written by `metarl train`."),
    split: str = typer.Option(EVAL_SPLIT, "--split", metavar="SPLIT", help="test (new tasks, train ranges; metamaze: goals training never draws), ood (held-out ranges) or train (tasks from the training split)."),
    tasks: Optional[int] = typer.Option(None, "--tasks", "-n", metavar="N", help="Held-out tasks (default: the run's eval_tasks)."),
    steps: Optional[int] = typer.Option(None, "--steps", "-k", metavar="K", help="Adaptation steps (default: the run's eval_steps); dqn takes only 0 (it does not adapt), rl2 none (it adapts within a trial)."),
    checkpoint: str = typer.Option(EVAL_CHECKPOINT, "--checkpoint", metavar="WHICH", help="latest, or best: the checkpoint with the best training score (post-adaptation score; a DQN's or RL^2's return)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", metavar="", help="No progress bar."),
):
    """Score (return or MSE) after 0..K adaptation steps on held-out tasks, beside the baselines; writes RUN/eval.json."""
    with interrupts_held():  # these load JAX
        from metarl_cli.evaluate import check_eval_options, evaluate, write_evaluation
        from metarl_cli.training.rundir import BASELINES, eval_command, evaluating
        from metarl_cli.training.runner import DivergedError, Interrupted

    check_eval_options(split, tasks, steps, checkpoint)  # before the run is read: a bad option is said first
    again = eval_command(run_dir, split=None if split == EVAL_SPLIT else split, tasks=tasks, steps=steps,
                         checkpoint=None if checkpoint == EVAL_CHECKPOINT else checkpoint)  # this evaluation, as the user asked for it
    with evaluating(run_dir), terminations_as_interrupts():  # training the baselines sets its own handlers
        try:
            result = evaluate(run_dir, split, tasks, steps, checkpoint, show_progress=not quiet)
        except DivergedError as e:
            _diverged(e)
        except Interrupted:
            _exit_interrupted(f"interrupted while training the run's baselines; the next `{again}` "
                              "resumes their training (from their latest checkpoints, where they have one)")
        except KeyboardInterrupt:
            kept = " (keeping the run's baselines that finished training)" if (run_dir / BASELINES).is_dir() else ""
            _exit_interrupted(f"interrupted before this evaluation was written to eval.json; the next `{again}` starts it again{kept}")
        print_evaluation(run_dir, result)
        write_evaluation(run_dir, result)  # after the tables: a run on a read-only disk still shows them


def _say_left_out(run: Path, what: str) -> None:
    """That `run` is left out of a report or plot, and why (e.g. a sweep's point that failed early)."""
    say(f"{run} has nothing to {what} yet (no value of its headline metric logged by every seed, no evaluation): left out")


def _runs_to_read(paths: list[Path], what: str) -> list[RunOutputs]:
    """The runs `paths` name (`run_outputs.readable_runs`), saying which damaged ones found inside a named
    directory are left out of the report or plot, and why, and which lines of a run's metrics.jsonl
    are left out of it (a line cut short leaves a run's curve, or its last iteration, short)."""
    from metarl_cli.run_outputs import readable_runs

    runs, damaged = readable_runs(paths)
    for run, error in damaged:
        say(f"{run} left out of the {what}: {error}")
    for run in runs:
        if foreign := run.unread_metrics_lines:
            say(f"note: {run.path / 'metrics.jsonl'}: {foreign} line{'s' if foreign > 1 else ''} that metarl did not write "
                f"whole (cut short, or edited) left out of the {what}")
    return runs


@app.command()
def report(
    runs: List[Path] = typer.Argument(..., metavar="DIR", parser=_nonempty_path("DIR"),
                                      help="Run directories, or directories holding runs at any depth (a sweep; runs/)."),
    step: Optional[int] = typer.Option(None, "--step", "-k", metavar="K", help="Adaptation steps whose score is reported (default: the last evaluated; a split evaluated to fewer is left out); RL^2 runs report each episode of the trial and its total instead."),
    out_prefix: str = typer.Option("report", "--out", "-o", metavar="OUT", help="Writes OUT.csv and OUT.json."),
):
    """One table across runs and seeds: interquartile mean with a 95% stratified-bootstrap interval, per run and split (a training row: the mean over seeds, Student-t interval)."""
    with interrupts_held():  # these load JAX
        from metarl_cli.report import report_paths, run_rows, write_report

    if step is not None and step < 0:
        raise UserError(f"--step must be >= 0, got {step}")
    paths = report_paths(out_prefix)  # refuse a bad --out before the work
    rows = []
    for run in _runs_to_read(runs, "report"):
        found = run_rows(run, step)
        if not found:  # e.g. a sweep's point that failed before its first chunk
            _say_left_out(run.path, "report")
        rows += found
    if not rows:
        raise UserError("nothing to report: no run has a value of its headline metric logged by every seed, or an evaluation")
    title = ("IQM [95% stratified bootstrap CI] over seeds and held-out tasks; "
             "a training row: the mean [95% Student-t CI] over seeds")
    print_report(rows, title)
    write_report(rows, paths)
    say(f"wrote {paths[0]} and {paths[1]}")


@app.command()
def plot(
    runs: List[Path] = typer.Argument(..., metavar="DIR", parser=_nonempty_path("DIR"),
                                      help="Run directories (finished or still training), or directories holding runs at any depth."),
    output: str = typer.Option(..., "--output", "-o", metavar="FILE.png", help="The PNG to write."),
):
    """Learning curves (with a band across seeds) and, where evaluated, adaptation curves, into one PNG."""
    with interrupts_held():  # these load JAX
        from metarl_cli.plot import check_output, plot_runs

    check_output(output)  # refuse a bad --output before reading the runs
    undrawn = plot_runs(_runs_to_read(runs, "plot"), output)
    for run in undrawn.left_out:
        _say_left_out(run, "plot")
    for run in undrawn.without_curve:
        say(f"{run} has no learning curve yet (no value of its headline metric logged by every seed): only its evaluation is drawn")
    if undrawn.characters:
        say(f"note: the plot's font has no {', '.join(undrawn.characters)} (in run names): drawn as boxes")
    say(f"wrote {Path(output)}")


@app.command()
def envs():
    """List task families with their randomised parameters and per-split ranges."""
    with interrupts_held():  # these load JAX
        from metarl_cli.families import FAMILY_NAMES, get_family

    print_envs([get_family(name) for name in FAMILY_NAMES])


def main() -> None:
    logging.getLogger("absl").setLevel(logging.ERROR)  # Orbax's notes on steps it skips or cleans up; errors say what matters
    with noting_interrupts_while_starting():
        try:
            app()
        except SystemExit as e:
            if e.code == 130:  # typer's exit for a Ctrl-C that reached it, which it leaves unsaid
                say("interrupted")
            raise
        except KeyboardInterrupt:  # one as typer builds its commands, before it handles them
            say("interrupted")
            sys.exit(130)
        except UserError as e:
            _error(str(e))
            sys.exit(2)
        except OSError as e:  # a path that cannot be read or written: the system's reason and the path
            where = " -> ".join(str(p) for p in (e.filename, e.filename2) if p is not None)
            _error(f"{e.strerror or e}{': ' + where if where else ''}")
            sys.exit(1)
        except Exception as e:
            if (size := out_of_memory(e)) is None:
                raise
            _error(f"out of memory: a buffer of {size} could not be allocated; ask for less at once "
                   "(eval: --tasks, --steps; train: meta_batch, lanes, seeds, buffer_size)")
            sys.exit(1)
