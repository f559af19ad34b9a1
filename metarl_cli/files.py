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


def lock(path: Path, shared: bool = False, wait: bool = True) -> int:
    """An open descriptor of `path` (a directory, or a lock file made where missing) holding an
    advisory lock on it (flock): exclusive, or `shared` with other shared holders. Where another
    process holds a lock that conflicts, waits, or without `wait` raises BlockingIOError. Closing
    the descriptor releases the lock, as the system does when the process ends, however it ends."""
    fd = os.open(path, os.O_RDONLY) if path.is_dir() else os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB))
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def updating(path: Path):
    """Within the block, this process alone updates `path` among those that update it this way (a
    second waits): a read, a change and `write_atomically` keep a change another process made
    meanwhile. The lock is on the hidden file `.NAME.lock` beside it. Where that cannot be made (a
    read-only disk), the OSError names `path`, which cannot be updated either."""
    try:
        fd = lock(lock_file(path))
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from None
    try:
        yield
    finally:
        os.close(fd)


def lock_file(path: Path) -> Path:
    """The hidden file beside `path` that `updating` locks."""
    return path.with_name(f".{path.name}.lock")
