"""The run directory: resolved config, manifest, metrics.jsonl, checkpoints, eval output.

    RUN/config.toml      the resolved config (what `metarl eval` and `--resume` read back)
    RUN/manifest.json    command line, git commit, package versions, devices, seed; each --resume
    RUN/metrics.jsonl    one JSON line per chunk of iterations (per seed with --seeds)
    RUN/checkpoints/     Orbax: the last few training states and the best-scoring one
    RUN/eval.json        written by `metarl eval`, one entry per split (updated under .eval.json.lock)
    RUN/eval.json.unreadable[.N]  an eval.json that did not read, kept aside by the eval that began anew
    RUN/.eval.lock       held by every `metarl eval` of the run while it runs: --overwrite refuses meanwhile
    RUN/baselines/       the runs `metarl eval` trains to compare with (each a run directory itself)
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import itertools
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jax

from metarl_cli.config import CONFIGS, build_config, read_toml, write_config
from metarl_cli.errors import UserError
from metarl_cli.files import lock, lock_file, unwritable, write_atomically
from metarl_cli.training.progress import say

PACKAGES = ("metarl", "jax", "jaxlib", "flax", "optax", "gymnax", "orbax-checkpoint", "typer", "rich")


def default_run_dir(algo: str, env: str) -> Path:
    """runs/ALGO-ENV-DATE-TIME, the name of a run without --run-dir; `claim_default_run_dir` makes it,
    or a numbered one (-2, -3, ...) where a run started in the same second took it."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{algo}-{env}-{stamp}"


def first_free(run_dir: Path) -> Path:
    """`run_dir`, or the first of its numbered names not taken."""
    return next(path for path in _numbered(run_dir) if not path.exists())


def claim_default_run_dir(run_dir: Path) -> Path:
    """Make the directory of a run named `run_dir` by default: `run_dir`, or where another run took
    it, the next numbered name free. Each is made atomically, so two runs started together never
    share one."""
    try:
        run_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a file or a dangling link on the way
        raise _cannot_be_made(run_dir.parent, e) from None
    for path in _numbered(run_dir):  # endless: one is free
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as e:
            raise _cannot_be_made(path, e) from None
        return path


def _numbered(run_dir: Path):
    """run_dir, then run_dir-2, run_dir-3, ..."""
    yield run_dir
    for i in itertools.count(2):
        yield run_dir.with_name(f"{run_dir.name}-{i}")


def _cannot_be_made(path: Path, error: OSError) -> UserError:
    """Where permissions allow a directory and the system still refuses it (/proc, /sys, a dangling link)."""
    return UserError(f"{path} cannot be made: {(error.strerror or str(error)).lower()}; choose another --run-dir")


def check_new(run_dir: Path, overwrite: bool) -> bool:
    """Refuse (UserError) a new run in `run_dir` where it would touch what it must not: a file, a
    directory that is not a run, a run without `overwrite`, a place where no directory can be made
    (where its folder exists, one is made there and removed, as the system may refuse it whatever the
    permissions say: /proc, /sys), a place inside another run. True where a run there is to be replaced."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"{run_dir} exists and is not a directory; choose another --run-dir")
    reason = unwritable(run_dir)
    if reason:
        raise UserError(f"{run_dir} cannot be made: {reason}; choose another --run-dir")
    outer = outer_run(run_dir)
    if outer is not None:
        raise UserError(f"{run_dir} is inside the run in {outer}, which report and plot would read without it; choose another --run-dir")
    if not run_dir.exists() and run_dir.parent.is_dir():
        try:
            run_dir.mkdir()
        except FileExistsError:  # made meanwhile by another process: checked when the run takes it
            pass
        except OSError as e:
            raise _cannot_be_made(run_dir, e) from None
        else:
            run_dir.rmdir()
    if run_dir.exists() and any(entry.name not in LOCK_FILES for entry in run_dir.iterdir()):
        if not (run_dir / "manifest.json").is_file():
            raise UserError(f"{run_dir} is a non-empty directory but not a metarl run (no manifest.json); choose another --run-dir")
        if not is_run(run_dir):
            raise UserError(f"{run_dir} holds a manifest.json that metarl did not write; choose another --run-dir")
        if not overwrite:
            raise UserError(f"run directory {run_dir} already exists; pass --resume to continue it or --overwrite to replace it")
        return True
    return False


def outer_run(path: Path) -> Path | None:
    """The run that `path` lies inside (where an eval keeps the run's baselines), or None; `..` and
    links resolved first, so that `../b` from inside a run is not taken to lie inside it."""
    return next((folder for folder in path.resolve().parents if is_run(folder)), None)


def check_own_run(run_dir: Path) -> None:
    """A UserError where `run_dir` lies inside a run: a part of that run (its checkpoints; a baseline
    its eval trains and keeps there, scored beside it, or the folder of them), not a run of its own
    to evaluate, resume or report (an eval of a baseline would write inside that cache)."""
    outer = outer_run(run_dir)
    if outer is not None:
        where = ", where that run's eval keeps its baselines" if run_dir.resolve().is_relative_to(outer / BASELINES) else ""
        raise UserError(f"{run_dir} lies inside the run in {outer}{where}: it is not a run of its own; name {outer}")


# What metarl writes in a run directory: all that `--overwrite` removes (a user's own files there stay,
# and so do the empty lock files, which a process may hold).
BASELINES = "baselines"  # RUN/baselines: the baselines that `metarl eval` trains for the run, one run directory each
RUN_ENTRIES = ("manifest.json", "config.toml", "metrics.jsonl", "eval.json", "checkpoints", BASELINES)
UNREADABLE_EVALUATION = "eval.json.unreadable"  # `metarl eval` keeps an eval.json it cannot read aside as this (.2, .3 ...)
EVAL_LOCK = ".eval.lock"  # held shared by every `metarl eval` of the run (`evaluating`)
LOCK_FILES = (EVAL_LOCK, lock_file(Path("eval.json")).name)  # empty: a directory holding only these holds no run


def prepare_new(run_dir: Path, replace: bool) -> None:
    """Make the run directory, after `check_new`: `replace` (what it returned) removes the run there,
    its `RUN_ENTRIES` and the evaluations kept aside beside them, and keeps anything else; refused
    (UserError) while the run is evaluated."""
    if replace:
        with unevaluated(run_dir):
            for entry in [*map(run_dir.joinpath, RUN_ENTRIES), *run_dir.glob(f"{UNREADABLE_EVALUATION}*")]:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink(missing_ok=True)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _cannot_be_made(run_dir, e) from None


@contextmanager
def unevaluated(run_dir: Path):
    """Within the block no `metarl eval` reads the run in `run_dir` (`evaluating`); a UserError where one does."""
    try:
        fd = lock(run_dir / EVAL_LOCK, wait=False)
    except BlockingIOError:
        raise UserError(f"{run_dir} is being evaluated by another metarl process; "
                        "wait for it to end (or stop it) before replacing the run") from None
    try:
        yield
    finally:
        os.close(fd)


def check_unheld(run_dir: Path, replace: bool) -> None:
    """For a dry run, writing nothing: refuse (UserError) as training in `run_dir` would be refused
    while another metarl process trains in it (`holding`), or, where the run is to be replaced
    (`replace`), evaluates it (`unevaluated`)."""
    with holding(run_dir):
        pass
    if replace and (run_dir / EVAL_LOCK).exists():  # no lock file: no eval has held it
        with unevaluated(run_dir):
            pass


@contextmanager
def holding(run_dir: Path, wait: bool = False):
    """Within the block, this process alone writes the run in `run_dir` (an existing directory): a
    second `metarl train` into it (a resume, an --overwrite, a sweep's point started twice) is refused
    with a UserError, or with `wait` waits for the first to end. A lock on the directory (`lock`)."""
    try:
        fd = lock(run_dir, wait=False)
    except BlockingIOError:
        if not wait:
            raise UserError(f"{run_dir} is being written by another metarl process; "
                            "wait for it to end (or stop it) before training in it") from None
        say(f"waiting for another metarl process writing {run_dir} ...")
        fd = lock(run_dir)
    try:
        yield
    finally:
        os.close(fd)


@contextmanager
def evaluating(run_dir: Path):
    """Within the block (an eval of the run in `run_dir`, a metarl run of its own: a UserError where it is not),
    `--overwrite` refuses to replace the run. A shared lock on RUN/.eval.lock, so that evals of one
    run go on side by side; none on a run where it cannot be made (a read-only disk), which nothing
    can replace either."""
    check_own_run(run_dir)  # these two before the lock file: never one in a directory that is not a run
    load_run(run_dir)
    try:
        fd = lock(run_dir / EVAL_LOCK, shared=True)
    except OSError:
        fd = None
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)


def write_manifest(run_dir: Path, algo: str, config, argv: list[str]) -> None:
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    manifest = {
        "tool": "metarl",
        "algo": algo,
        "env": config.env,
        "seed": config.seed,
        "command": argv,
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
        "python": platform.python_version(),
        "packages": versions,
        "devices": [str(d) for d in jax.devices()],
    }
    write_atomically(run_dir / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    write_config(config, algo, run_dir / "config.toml")


def record_resume(run_dir: Path, saved, resumed, argv: list[str]) -> None:
    """Append this `--resume` to the manifest's "resumes": its command and each key it changed (old, new),
    so a run whose step sizes changed part-way says so (config.toml holds only the latest values)."""
    path = run_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    old, new = dataclasses.asdict(saved), dataclasses.asdict(resumed)
    changed = {key: [old[key], new[key]] for key in new if new[key] != old[key]}
    entry = {"command": argv, "changed": changed, "at": datetime.datetime.now().isoformat(timespec="seconds")}
    manifest.setdefault("resumes", []).append(entry)
    write_atomically(path, json.dumps(manifest, indent=2) + "\n")


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def read_manifest(run_dir: Path) -> dict:
    """The manifest metarl wrote in `run_dir`, or a UserError saying why there is none."""
    manifest_path = run_dir / "manifest.json"
    if not manifest_path.is_file():
        raise UserError(f"{run_dir} is not a metarl run directory (no manifest.json)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{manifest_path} is not valid JSON") from None
    if not _written_by_metarl(manifest):
        raise UserError(f"{run_dir} was not written by metarl")
    return manifest


def _written_by_metarl(manifest) -> bool:
    return isinstance(manifest, dict) and manifest.get("tool") == "metarl"


def is_run(run_dir: Path) -> bool:
    """Whether `run_dir` holds a manifest.json that metarl wrote, or one that no longer reads as JSON
    beside a config.toml (a run of ours, damaged); its manifest or config may still be damaged:
    `load_run` says how."""
    try:
        return _written_by_metarl(json.loads((run_dir / "manifest.json").read_text()))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return (run_dir / "config.toml").is_file()
    except OSError:
        return False


def load_run(run_dir: Path) -> tuple[str, Any, dict]:
    """(algo, config, manifest) of an existing run, or a UserError saying why it is not one."""
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is not a directory" if run_dir.exists() else f"run directory not found: {run_dir}")
    manifest = read_manifest(run_dir)
    values = read_toml(run_dir / "config.toml")
    algo = values.get("algo", manifest.get("algo"))
    if algo not in CONFIGS:
        raise UserError(f"{run_dir}/config.toml names unknown algorithm {algo!r}; valid: {', '.join(CONFIGS)}")
    try:
        return algo, build_config(algo, values), manifest
    except UserError as e:  # a config.toml edited by hand: say which file
        raise UserError(f"{run_dir / 'config.toml'}: {e}") from None


class MetricsLog:
    """Appends JSON lines (one per chunk and seed); on resume, drops lines past the restored iteration."""

    def __init__(self, path: Path):
        self.path = path

    def truncate_after(self, iteration: int) -> int:
        """Drop the lines past `iteration` (and any not metarl's, such as one cut short by a kill);
        the file is replaced whole, and left alone where there is nothing to drop. Returns how many
        lines it keeps for `iteration` itself (one a seed, where none was damaged)."""
        lines = self._lines()
        kept = [r for r in _metrics_records(lines) if r["iteration"] <= iteration]
        if len(kept) < len(lines):
            write_atomically(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        return sum(r["iteration"] == iteration for r in kept)

    def append(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def read(self) -> list[dict]:
        return self.read_with_unread()[0]

    def read_with_unread(self, seeds: range | None = None) -> tuple[list[dict], int]:
        """The metrics lines, parsed, and how many other lines `read` leaves out (cut short by a kill,
        written by hand; blank lines are none). Given the run's `seeds` (the seed values its lines
        carry), a line of another seed and a second line for one iteration and seed are left out too:
        metarl writes neither."""
        lines = [line for line in self._lines() if line.strip()]
        records = _metrics_records(lines)
        if seeds is not None:
            records = _one_line_per_seed(records, seeds)
        return records, len(lines) - len(records)

    def _lines(self) -> list[str]:
        return self.path.read_text(errors="replace").splitlines() if self.path.exists() else []


def _metrics_records(lines: list[str]) -> list[dict]:
    """The metrics lines among `lines`, parsed; any other (cut short by a kill, written by hand) left out."""
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a kill: the run resumes before it
            continue
        if _is_metrics_line(record):  # not one written by hand
            records.append(record)
    return records


def _is_metrics_line(record) -> bool:
    """Whether `record` is what metarl writes to metrics.jsonl: an object with a whole-number
    "iteration" from 1 on, a whole-number "seed" where it has one, and values all finite numbers or
    null (metarl writes null for a value that is not finite)."""
    def number(x):
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

    return (isinstance(record, dict) and type(record.get("iteration")) is int and record["iteration"] >= 1
            and type(record.get("seed", 0)) is int and all(x is None or number(x) for x in record.values()))


def _one_line_per_seed(records: list[dict], seeds: range) -> list[dict]:
    """`records` of the run's `seeds` (a line without a seed is a one-seed run's), the first for
    each iteration and seed."""
    kept, seen = [], set()
    for record in records:
        seed = record.get("seed", seeds.start if len(seeds) == 1 else None)
        if seed in seeds and (record["iteration"], seed) not in seen:
            seen.add((record["iteration"], seed))
            kept.append(record)
    return kept


def command_line() -> list[str]:
    """The command as typed, `metarl` for `python -m metarl_cli`."""
    program = Path(sys.argv[0]).name
    return ["metarl" if program == "__main__.py" else program, *sys.argv[1:]]


def eval_command(run_dir: Path, **options) -> str:
    """`metarl eval RUN_DIR --OPTION VALUE ...` as a shell reads it (each word quoted where it must
    be), for messages; options given as None are left out."""
    given = [word for name, value in options.items() if value is not None for word in (f"--{name}", str(value))]
    return shlex.join(["metarl", "eval", command_path(run_dir), *given])


def command_path(path: Path) -> str:
    """`path` as a command's argument: a relative one that starts with "-" gets "./", so that it is not read as an option."""
    text = str(path)
    return f".{os.sep}{text}" if text.startswith("-") else text
