"""A Ctrl-C while a command starts up, before `metarl train` sets its own handlers
(`runner.stop_signals_set`, from the moment it takes the run's directory).

Python raises KeyboardInterrupt wherever it happens to be, and in a process's first second that can
be inside a callback that swallows it (JAX's garbage-collection hook): the run then went on, an
--overwrite included. Noted here as well, it still stops the run before its first file or step:
`stop_signals_set` begins with its stop flag set.
"""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager

INTERRUPTED_WHILE_STARTING = threading.Event()


@contextmanager
def noting_interrupts_while_starting():
    """Within the block (a command), until training sets its own handlers (`stop_signals_set`), a
    Ctrl-C raises KeyboardInterrupt as Python's handler does, and is also noted: one that lands in a
    callback that swallows it (JAX's garbage-collection hook, in a process's first second) still
    stops the run before it writes its first file or trains (`interrupted_while_starting`, which
    `runner.stop_signals_set` asks)."""
    INTERRUPTED_WHILE_STARTING.clear()
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler:  # ignored, or someone else's
        yield
        return

    def on_sigint(signum, frame):
        INTERRUPTED_WHILE_STARTING.set()
        raise KeyboardInterrupt

    def unraisable(info):  # the swallowed Ctrl-C is noted: no "Exception ignored" traceback for it
        if not issubclass(info.exc_type, KeyboardInterrupt):
            previous_hook(info)

    previous_hook, sys.unraisablehook = sys.unraisablehook, unraisable
    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        sys.unraisablehook = previous_hook


def interrupted_while_starting() -> bool:
    return INTERRUPTED_WHILE_STARTING.is_set()
