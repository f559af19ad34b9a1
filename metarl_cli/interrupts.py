"""A Ctrl-C while a command starts up, before `metarl train` sets its own handlers
(`runner.stop_signals_set`, from the moment it takes the run's directory).

Python raises KeyboardInterrupt wherever it happens to be, and in a process's first second that can
be inside a callback that swallows it (JAX's garbage-collection hook), and the run would go on, an
--overwrite included. Noted here as well, it still stops the run before its first file or step:
`stop_signals_set` begins with its stop flag set.

Raised while jaxlib's extension modules load, inside Python code their C++ calls, it ends the process
with an abort (exit status 134, "terminate called after throwing an instance of
'nanobind::python_error'") or a segmentation fault (139) instead: a command's imports, which load
JAX, hold a Ctrl-C back until they are done (`interrupts_held`). Extension modules loaded later (the
MLIR library JAX's first operation loads, those a gymnax environment's construction imports) are
not held back.

A SIGTERM, which ends a process without a word, raises KeyboardInterrupt as a Ctrl-C does where a
command says what a stop leaves behind (`terminations_as_interrupts`: eval's scoring).
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


@contextmanager
def handling(signums, handler):
    """Within the block, `handler` handles each of `signums` that Python may handle here, and the
    handler each had before is back after it. A signal the process was started to ignore stays
    ignored, as does one whose handler was not set from Python (`signal.getsignal` gives None: it
    could not be put back); off the main thread, where Python cannot set a handler, nothing changes."""
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = {signum: signal.getsignal(signum) for signum in signums} if on_main_thread else {}
    previous = {signum: signal.signal(signum, handler) for signum, before in previous.items() if before not in (signal.SIG_IGN, None)}
    try:
        yield
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


@contextmanager
def terminations_as_interrupts():
    """Within the block a SIGTERM (`kill`, a scheduler's preemption) raises KeyboardInterrupt as a
    Ctrl-C does, so that a command says what a stop leaves behind however it came, where the process
    would otherwise end without a word (what `handling` leaves alone stays so)."""
    with handling((signal.SIGTERM,), _raise_interrupt):
        yield


@contextmanager
def interrupts_held():
    """Within the block a Ctrl-C is held back; once it ends, one that came is delivered to the handler
    the block found (Python's KeyboardInterrupt, `noting_interrupts_while_starting`'s), in plain Python
    code. For the imports that load jaxlib (see the module's docstring). Where Ctrl-C is ignored, or
    off the main thread, it changes nothing (`handling`)."""
    came = threading.Event()
    with handling((signal.SIGINT,), lambda signum, frame: came.set()):
        yield
    if came.is_set():
        signal.raise_signal(signal.SIGINT)
