"""The rich progress bar shown during training and long evaluations."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def _console(stderr: bool) -> Console:
    """A console that, when not writing to a terminal, does not squeeze lines into 80 columns."""
    plain = Console(stderr=stderr)
    return plain if plain.is_terminal else Console(stderr=stderr, width=160)


console = _console(stderr=True)  # progress bars and messages


def stdout_console() -> Console:
    """Tables go to stdout."""
    return _console(stderr=False)


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
