"""Writing files: a run's small files so that a kill or a full disk mid-write never leaves one cut
short, and two processes updating one never lose either's change; and, before the work, whether an
output (a run directory, a report, a plot) can be written where it is asked for."""

from __future__ import annotations

import fcntl
import itertools
import math
import os
from contextlib import contextmanager, suppress
from pathlib import Path

from metarl_cli.errors import UserError


def json_number(x) -> float | None:
    """A number as a run's JSON files hold it: a float, or null (None) where it is not finite (JSON has no NaN)."""
    x = float(x)
    return x if math.isfinite(x) else None


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


def unwritable(path: Path) -> str | None:
    """Why this user could not write `path` (a file or a directory, the folders on its way made), or
    None where they can. The nearest of `path` and its folders that exists decides: a file on the
    way, or a place without write permission."""
    nearest = next(p for p in (path, *path.absolute().parents) if p.exists())
    if nearest != path and not nearest.is_dir():
        return f"{nearest} is not a directory"
    if not os.access(nearest, os.W_OK | (os.X_OK if nearest.is_dir() else 0)):
        if os.statvfs(nearest).f_flag & os.ST_RDONLY:
            return f"{nearest} is on a read-only filesystem"
        return f"no permission to write in {nearest}" if nearest.is_dir() else f"no permission to write {nearest}"
    return None


def output_file(given: str | Path, option: str, wanted: str) -> Path:
    """The file an output option (`option`, such as --out) names, as given; a UserError, saying to
    give `wanted` instead, where it is empty or names a directory: one that exists, or one ending in
    a separator, `.` or `..` (which Path would drop: `out/` and `out/.` are `out` to it)."""
    text = os.fspath(given)
    if not text:
        raise UserError(f"{option} is empty; give {wanted}")
    if os.path.basename(text) in ("", ".", "..") or Path(text).is_dir():
        raise UserError(f"{option} {text} names a directory; give {wanted}")
    return Path(text)


def check_writable(path: Path) -> None:
    """A UserError, before the work, where the file `path` could not be written (the folders it
    needs made): it is a directory, a folder on its way is a file, or this user may not write there.
    Where it is a file or nothing, it is tried: the folders it needs made, a new file made, then
    both removed, or the file there opened to append and left as it was, so that a place that
    refuses writes whatever its permissions (/proc and /sys, even to root) is refused here too. A
    link to nothing, a pipe or a device is left to the write itself."""
    if path.is_dir():
        raise UserError(f"cannot write {path}: it is a directory")
    reason = unwritable(path)
    if reason:
        raise UserError(f"cannot write {path}: {reason}")
    if path.is_file() or not os.path.lexists(path):
        with writing(path), _folders_made_for_a_moment(path):
            try:
                made = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:  # there, or made meanwhile by another process: kept
                os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
            else:
                try:
                    os.close(made)
                finally:
                    path.unlink(missing_ok=True)


@contextmanager
def _folders_made_for_a_moment(path: Path):
    """Makes the folders `path` needs for the block, outermost first, and removes those it made
    afterwards (one that something else filled meanwhile is kept)."""
    made = []
    try:
        for folder in reversed(list(itertools.takewhile(lambda p: not p.exists(), path.parents))):
            try:
                folder.mkdir()
            except FileExistsError:  # made meanwhile by another process (theirs), or a link to nothing (the open says so)
                continue
            made.append(folder)
        yield
    finally:
        for folder in reversed(made):
            with suppress(OSError):
                folder.rmdir()


@contextmanager
def writing(path: Path):
    """Writes to `path` in the block; where the system refuses (a full disk, a place that changed
    since `check_writable` tried it), a UserError naming the file and the system's reason."""
    try:
        yield
    except OSError as e:
        raise UserError(f"cannot write {path}: {(e.strerror or str(e)).lower()}") from None
