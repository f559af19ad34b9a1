"""Writing a run's small files so that a kill or a full disk mid-write never leaves one cut short,
and two processes updating one never lose either's change."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path


def write_atomically(path: Path, text: str) -> None:
    """`path` holds `text` whole, or what it held before: written beside it, then renamed over it."""
    part = path.with_name(f".{path.name}.part")
    try:
        part.write_text(text, encoding="utf-8")
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)


@contextmanager
def updating(path: Path):
    """Within the block, this process alone updates `path` among those that update it this way (a
    second waits): a read, a change and `write_atomically` keep a change another process made
    meanwhile. An advisory lock on the hidden file `.NAME.lock` beside it, which the system releases
    when the process ends, however it ends. Where the lock cannot be made (a read-only disk), the
    OSError names `path`, which cannot be updated either."""
    try:
        fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock
