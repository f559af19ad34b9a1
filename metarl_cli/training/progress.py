"""The rich progress bar shown during training and long evaluations."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def _console(stderr: bool, width: int) -> Console:
    """A console that, when not writing to a terminal, does not squeeze lines into 80 columns but
    into `width`."""
    plain = Console(stderr=stderr)
    return plain if plain.is_terminal else Console(stderr=stderr, width=width)


console = _console(stderr=True, width=160)  # progress bars and messages


def stdout_console() -> Console:
    """Tables go to stdout; into a file or a pipe at their natural width (a table takes no more
    than it needs), so that none is cut: an RL^2 trial of ten episodes is wider than 160 columns."""
    return _console(stderr=False, width=1000)


def training_progress(enabled: bool = True) -> Progress:
    """A progress bar on stderr; disabled, it prints nothing at all (not even an empty line)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[stats]}"),
        console=console,
        transient=False,
        disable=not enabled,
    )
