"""The rich progress bar shown during training and long evaluations, and the consoles all output goes through."""

from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Column
from rich.text import Text


class _TrimmedStdout:
    """sys.stdout (whichever stream it is at the time of writing) with each line's trailing spaces
    dropped: rich pads a table's cells to their column's width, which in a file or a pipe only gets in
    the way of diff and grep."""

    def __init__(self):
        self._pending = ""  # the start of a line not yet ended

    def write(self, text: str) -> int:
        *lines, self._pending = (self._pending + text).split("\n")
        if lines:
            sys.stdout.write("".join(line.rstrip(" ") + "\n" for line in lines))
        return len(text)

    def flush(self) -> None:
        sys.stdout.write(self._pending)
        self._pending = ""
        sys.stdout.flush()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:
        return getattr(sys.stdout, "encoding", None) or "utf-8"


def _console(stderr: bool, width: int) -> Console:
    """A console that, when not writing to a terminal, does not squeeze lines into 80 columns but
    into `width`, unless the COLUMNS environment variable sets a width (`COLUMNS=100 metarl envs | less`),
    on stdout drops the spaces that end its lines, and on stderr (a log) keeps each message on one line."""
    plain = Console(stderr=stderr)
    if plain.is_terminal:
        return plain
    columns = os.environ.get("COLUMNS", "")
    columns_given = columns.isdigit() and int(columns) > 0  # (rich prints nothing at all into 0 columns)
    return Console(stderr=stderr, file=None if stderr else _TrimmedStdout(), width=None if columns_given else width,
                   soft_wrap=stderr)


console = _console(stderr=True, width=160)  # progress bars and messages


def say(text: str) -> None:
    """One message on stderr as written: no rich markup (a path may hold brackets, "[/b]") and no highlighting."""
    console.print(text, markup=False, highlight=False)


def stdout_console() -> Console:
    """Tables go to stdout; into a file or a pipe at their natural width (a table takes no more
    than it needs), so that none is cut: an RL^2 trial of ten episodes is wider than 160 columns."""
    return _console(stderr=False, width=1000)


BAR_WIDTH = 40
ONE_LINE_TIMES = 8 + 4 + 8 + 6  # the elapsed time, "ETA", the time left, the gaps between columns


class TrainingProgress(Progress):
    """Each task's name, bar, count, elapsed time and ETA, and its stats (metrics and speed): on one
    line where they fit, else the stats on a line of their own below (beside them, rich would squeeze
    the count and the times to an ellipsis), the bar taking what the line leaves and a long name
    folding; the count and the times are never cut."""

    def __init__(self, **kwargs):
        name = TextColumn("[bold]{task.description}", table_column=Column(overflow="fold"))
        counts = (MofNCompleteColumn(table_column=Column(no_wrap=True)), TimeElapsedColumn(table_column=Column(no_wrap=True)),
                  TextColumn("ETA", table_column=Column(no_wrap=True)), TimeRemainingColumn(table_column=Column(no_wrap=True)))
        self.one_line_columns = (name, BarColumn(bar_width=BAR_WIDTH), *counts, TextColumn("{task.fields[stats]}"))
        self.two_line_columns = (name, BarColumn(bar_width=None), *counts)
        super().__init__(*self.one_line_columns, **kwargs)

    def get_renderables(self):
        tasks = self.tasks
        if not tasks:
            return
        stats = [str(task.fields.get("stats", "")) for task in tasks]
        widest_count = 2 * len(str(max(int(task.total or 0) for task in tasks))) + 1
        needed = max(len(task.description) for task in tasks) + max(map(len, stats)) + widest_count
        if needed + BAR_WIDTH + ONE_LINE_TIMES <= self.console.width:
            self.columns = self.one_line_columns
            yield self.make_tasks_table(tasks)
            return
        self.columns = self.two_line_columns
        for task, text in zip(tasks, stats):
            yield self.make_tasks_table([task])
            if text:
                yield Text(f"  {text}", no_wrap=True, overflow="ellipsis")


def training_progress(enabled: bool = True) -> Progress:
    """A progress bar on stderr; disabled, it prints nothing at all (not even an empty line)."""
    return TrainingProgress(console=console, disable=not enabled)
