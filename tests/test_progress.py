"""The training bar: its count and times are never cut; its stats sit beside them where they fit
and on a line of their own below where they do not. Output into a pipe takes COLUMNS where set."""

import io

import pytest
from rich.console import Console, Group

from metarl_cli.training.progress import TrainingProgress, _console

STATS = "return     50.2  entropy      2.3  value_loss  0.00242    15k steps/s"


@pytest.mark.parametrize("width, beside", [(60, False), (80, False), (200, True)])
def test_the_bar_keeps_its_count_and_times_whole_at_any_width(width, beside):
    out = io.StringIO()
    console = Console(file=out, width=width)
    progress = TrainingProgress(console=console, disable=True)
    progress.add_task("sweep/inner_lr=0.1,meta_batch=20" if width == 60 else "meta-train", total=3000, completed=2000, stats=STATS)
    console.print(Group(*progress.get_renderables()))
    text = out.getvalue()
    assert "2000/3000" in text and "ETA" in text and "0:00:00" in text
    assert STATS[:width - 3] in text  # the whole line, or as much as the width holds
    first = text.splitlines()[0]
    assert ("2000/3000" in first and STATS in first) == beside  # else the stats have a line of their own
    assert max(map(len, text.splitlines())) <= width


def test_the_bar_shows_a_dash_for_a_metric_without_a_value_thousands_whole_and_a_slow_rate_as_it_is():
    """A DQN chunk in which no episode ended has no mean return: a dash, not "nan"."""
    import numpy as np

    from metarl_cli.algos.base import Algorithm
    from metarl_cli.training.runner import _stats_line

    algo = Algorithm(init=None, step=None, adaptation_curve=None, init_params=None, env_steps_per_iteration=10,
                     score_name="return", progress_metrics=("return", "loss"))
    line = _stats_line(algo, {"return": np.array([np.nan, np.nan]), "loss": np.array([41.25, 41.35])}, 100.0, 20_000.0)
    assert line == f"return {'-':>8}  loss     41.3       20k steps/s"
    seeds_apart = _stats_line(algo, {"return": np.array([np.nan, 30.0]), "loss": np.array([1.0, 1.0])}, 100.0, 20_000.0)
    assert seeds_apart.startswith("return       30  loss        1")  # the seeds that have one
    # Pendulum's returns in the thousands whole, as the report shows them, not as -1.26e+03.
    pendulum = _stats_line(algo, {"return": np.array([-1263.4, -1264.0]), "loss": np.array([2.5e7, 2.5e7])}, 100.0, 20_000.0)
    assert pendulum.startswith("return    -1264  loss  2.5e+07")
    # A slow run's rate as it is, not as 0k or 0.
    for its, steps, speed in ((0.02, 183.4, "     183 steps/s"), (0.02, 9.5, "     9.5 steps/s"), (0.31, 0.0, "    0.31 it/s"),
                              (16_100.0, 0.0, "     16k it/s")):
        line = _stats_line(algo, {"return": np.array([1.0]), "loss": np.array([1.0])}, its, steps)
        assert line == f"return        1  loss        1  {speed}", line


@pytest.mark.parametrize("columns, width", [(None, 1000), ("60", 60), ("wide", 1000), ("0", 1000)])
def test_output_into_a_pipe_takes_the_width_columns_sets_and_its_natural_width_without(capsys, monkeypatch, columns, width):
    for forcing in ("FORCE_COLOR", "TTY_COMPATIBLE", "COLUMNS"):
        monkeypatch.delenv(forcing, raising=False)
    if columns is not None:
        monkeypatch.setenv("COLUMNS", columns)
    console = _console(stderr=False, width=1000)  # stdout captured: not a terminal
    assert not console.is_terminal and console.width == width


def test_output_into_a_pipe_ends_no_line_in_spaces(capsys, monkeypatch):
    """rich pads a table's cells to their column's width; into a file or a pipe the spaces that end a
    line are dropped, and text printed in pieces arrives whole."""
    from rich import box
    from rich.table import Table

    for forcing in ("FORCE_COLOR", "TTY_COMPATIBLE", "COLUMNS"):
        monkeypatch.delenv(forcing, raising=False)
    console = _console(stderr=False, width=1000)
    table = Table("name", "value", box=box.SIMPLE_HEAD)  # as the eval, report and envs tables
    table.add_row("a", "1")
    table.add_row("a much longer name", "2")
    console.print(table)
    console.print("printed ", end="")
    console.print("in pieces")
    out = capsys.readouterr().out
    assert "a much longer name" in out and "printed in pieces" in out
    assert [line for line in out.splitlines() if line.endswith(" ")] == []


def test_a_disabled_progress_bar_prints_nothing_and_an_enabled_one_is_live(capsys):
    """`-q` (enabled=False): the bar is disabled and nothing reaches stderr; without it the bar is live."""
    from metarl_cli.training.progress import training_progress

    with training_progress(True) as live:
        assert live.disable is False and live.live.is_started
    capsys.readouterr()  # what the live bar drew
    with training_progress(False) as progress:
        task = progress.add_task("meta-train", total=3, stats="")
        progress.advance(task)
    assert progress.disable is True and capsys.readouterr().err == ""


def test_the_stats_move_below_the_bar_as_soon_as_the_line_is_one_column_too_narrow():
    """One line takes the name (10), the count "2000/3000" (2 * 4 + 1 = 9), the stats (69), the bar (40)
    and the times (26): 154 columns. From 150 to 153 columns (the count's width counted as 5 it would
    seem to fit) the stats take a line of their own, whole; at 154 they sit beside the bar."""
    assert len("meta-train") + 9 + len(STATS) + 40 + 26 == 154
    for width in range(150, 155):
        out = io.StringIO()
        console = Console(file=out, width=width)
        progress = TrainingProgress(console=console, disable=True)
        progress.add_task("meta-train", total=3000, completed=2000, stats=STATS)
        console.print(Group(*progress.get_renderables()))
        lines = out.getvalue().splitlines()
        if width == 154:
            assert len(lines) == 1 and "2000/3000" in lines[0] and STATS in lines[0], lines
        else:
            assert "2000/3000" in lines[0] and STATS not in lines[0] and lines[1].strip() == STATS, (width, lines)
