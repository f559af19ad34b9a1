"""Orbax checkpoints of the whole training state: the last few plus the best by score, one manager.

Each save records the iteration's score in the step's own metadata (Orbax's `custom_metadata`,
written with every step anyway), and the manager's preservation policy (`LatestAndBest`) keeps the
latest `keep` checkpoints and the best-scoring one, so "best" costs no extra write and survives
resume. Orbax's metrics item would do the same with a second item in every save, which cost about
2 ms of CPU more a save on the 2-core CPU (12.5 against 10.6 ms, saves alternating in one process).
Saving runs on one background thread at the lowest CPU priority: `save` copies the state to
host memory and returns at once, so the next meta-iteration computes while the previous state is
written in whatever time the cores leave idle (a save still running when the next is asked for is
waited for first). That hides a save where the host waits on an accelerator; on the 2-core CPU,
where MAML-RL's step keeps both cores busy, a save's CPU time adds to training nearly in full (a
meta-iteration followed by a save took 98.2 ms with the thread, 98.4 ms saving in line, 84.3 ms
without a save, timed alternating in one process). Only complete checkpoints are ever restored:
the manager writes each step into a temporary directory and renames it when done.

The state is written as one flat vector per dtype (`pack`), restored against the algorithm's
initial state as template (`unpack`), and the manager's item is those few vectors in one .npz file
(`PackedStateHandler`). Orbax's standard handler spends most of a save per array and in its
TensorStore machinery, which meta-iterations of tens of milliseconds cannot afford. Measured on the
2-core CPU for MAML on CartPole's state, saves alternating in one process: a save as one .npz file
takes 0.54 to 0.59 of the CPU time of one in the standard handler without OCDBT (itself cheaper
than with OCDBT, or unpacked); 8.5 to 17 ms against 15 to 28 ms as the machine's speed varied,
nearly all of it the manager's own bookkeeping (np.savez alone: under 0.5 ms). Checkpoints written
by the standard handler (earlier runs, with or without OCDBT) still restore.
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from metarl_cli.errors import UserError


def _yield_to_training() -> None:
    """Run the saving thread (and the threads it starts) at the lowest CPU priority, where the OS
    allows a thread its own: a save then gets what time the cores leave idle rather than competing
    with the training step beside it (where training keeps every core busy, it still waits: see
    the module docstring)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):  # no per-thread priorities here: save at normal priority
        pass


class UnreadableCheckpoint(UserError):
    """A checkpoint step whose files are damaged or incomplete (`where`: its directory), among the
    run's `others` (the iterations of its other checkpoints on disk)."""

    def __init__(self, where: Path, reason: str, others: list[int]):
        plural = "s" if len(others) > 1 else ""
        fallback = (f"removing that directory falls back on the run's other checkpoint{plural} (iteration{plural} "
                    f"{', '.join(map(str, others))})" if others else "it is the run's only checkpoint")
        super().__init__(f"cannot read the checkpoint in {where} (damaged or incomplete): {reason.rstrip('.')}; {fallback}")
        self.where, self.reason = where, reason


CHOICES = 3  # how often `restore_chosen` chooses a step before it gives up on a run that keeps deleting them


class Checkpoints:
    def __init__(self, run_dir: Path, keep: int, create: bool = True):
        """The checkpoints of `run_dir` (RUN/checkpoints); `create=False` for a look that must write
        nothing (a dry run, an eval): a missing directory then holds no steps and stays missing."""
        self._scores: dict[int, float] = {}  # step -> score, for every step on disk
        options = ocp.CheckpointManagerOptions(
            enable_async_checkpointing=False, create=create, preservation_policy=LatestAndBest(keep, self._scores)
        )
        for attempt in range(1, CHOICES + 1):
            try:
                self.manager = ocp.CheckpointManager(
                    (run_dir / "checkpoints").absolute(), options=options, item_handlers=PackedStateHandler()
                )
                break
            except (FileNotFoundError, NotADirectoryError):  # a step deleted as the manager lists them (a run training)
                if attempt == CHOICES:
                    raise
        self._scores.update(self._scores_on_disk())
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint", initializer=_yield_to_training)
        self._pending: Future | None = None

    def _scores_on_disk(self) -> dict[int, float]:
        """step -> score of every step on disk, leaving out one deleted while it is read (a run still
        training deletes its older checkpoints as it saves, beside an eval or a report reading them)
        and one whose metadata is lost (a damaged step, never the best; restoring it says so)."""
        scores = {}
        for step in self.manager.all_steps():
            try:
                scores[step] = self._saved_score(step)
            except (OSError, ValueError):  # Orbax: "Unable to retrieve default item" where the metadata is gone
                continue
        return scores

    def _saved_score(self, step: int) -> float:
        custom = self.manager.metadata(step).custom_metadata or {}
        if "score" in custom:
            return float(custom["score"])
        metrics = self.manager.metrics(step)  # runs saved when the score was an Orbax metric
        return float(metrics["score"]) if metrics else -math.inf

    def save(self, step: int, state: Any, score: float) -> None:
        packed = pack(jax.device_get(state))
        self.wait()
        on_disk = set(self.manager.all_steps())
        for old in [s for s in self._scores if s not in on_disk]:
            del self._scores[old]
        self._scores[step] = float(score)
        self._pending = self._worker.submit(
            self.manager.save, step, args=PackedSave(packed), custom_metadata={"score": float(score)}
        )

    def step(self, which: str = "latest") -> int | None:
        """The iteration of the latest (or, with which="best", the best-scoring) complete checkpoint."""
        self.wait()
        if which == "best":
            return _best(self.manager.all_steps(), self._scores)
        return self.manager.latest_step()

    def scored(self, step: int) -> bool:
        """Whether checkpoint `step` was saved with a score (a DQN chunk in which no training episode
        ended has none, nor has a step whose metadata is lost): "best" ranks a step without one last."""
        return math.isfinite(self._scores.get(step, -math.inf))

    def restore(self, target: Any, step: int) -> Any:
        """The state saved at `step`, shaped like `target`; a UserError where that checkpoint cannot
        be read or does not fit `target` (`restore_chosen`: the latest or the best)."""
        where = self.manager.directory / str(step)
        try:
            packed = self.manager.restore(step, args=PackedRestore(pack(jax.device_get(target))))
        except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as e:
            raise UnreadableCheckpoint(where, str(e), sorted(s for s in self.manager.all_steps() if s != step)) from None
        return unpack(packed, target, where)

    def restore_chosen(self, target: Any, which: str = "latest") -> tuple[int | None, Any]:
        """(step, state) of the latest or the best checkpoint; (None, None) without one. Beside a run
        still training, the chosen step can be deleted before it is read: the choice is then made
        again among the steps on disk."""
        attempt = 1
        while True:
            step = self.step(which)
            if step is None:
                return None, None
            try:
                return step, self.restore(target, step=step)
            except UserError:
                if attempt == CHOICES or (self.manager.directory / str(step)).exists():
                    raise
            attempt += 1
            self.manager.reload()
            self._scores.clear()  # in place: the preservation policy reads the same dict
            self._scores.update(self._scores_on_disk())

    def wait(self) -> None:
        """Block until the save in flight (if any) is complete; re-raise its error. A wait cut short
        (Ctrl-C) leaves the save in flight, for the next wait."""
        pending = self._pending
        if pending is None:
            return
        try:
            pending.result()
        finally:
            if pending.done():
                self._pending = None

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._worker.shutdown(wait=True)
            self.manager.close()

    def __enter__(self) -> "Checkpoints":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _best(steps, scores: dict[int, float]) -> int | None:
    """The step of the highest score (the latest of equal ones); None without steps."""
    return max(steps, key=lambda step: (scores.get(step, -math.inf), step), default=None)


@dataclasses.dataclass
class LatestAndBest:
    """An Orbax preservation policy: the latest `keep` checkpoints and the best-scoring one, by the
    scores `Checkpoints` records (`scores`: step -> score)."""

    keep: int  # >= 1 (keep_checkpoints is validated so)
    scores: dict[int, float]

    def should_preserve(self, checkpoints, *, context) -> list[bool]:
        steps = [info.step for info in checkpoints]
        latest = set(sorted(steps)[-self.keep :])
        best = _best(steps, self.scores)
        return [step in latest or step == best for step in steps]


class PackedStateHandler(ocp.AsyncCheckpointHandler):
    """The packed state (`pack`: a few flat vectors) as one uncompressed .npz file in the step's item
    directory. Restoring a directory without that file reads it as Orbax's standard handler wrote it.

    An asynchronous handler that writes in place: the whole save already runs on `Checkpoints`'
    thread, and Orbax runs a synchronous handler's save on a thread of its own, started for every
    save. Writing in place needs the step's directories made before `async_save`, which Orbax does
    with its own asynchronous checkpointing off, as `Checkpoints` has it (with it on, they are made
    on a background thread and the write can find none). Measured on the 2-core CPU (Intel Xeon),
    saves alternating in one process: 7.4 to 7.6 ms of CPU a save through `Checkpoints` against 8.3
    to 8.7 ms as a synchronous handler (Orbax's manager alone: 7.1 to 7.2 against 7.7 to 8.0 ms)."""

    FILE = "state.npz"

    def save(self, directory, args: PackedSave) -> None:
        with (directory / self.FILE).open("wb") as f:
            np.savez(f, **args.packed)

    async def async_save(self, directory, args: PackedSave) -> None:
        self.save(directory, args)

    def restore(self, directory, args: PackedRestore) -> dict[str, np.ndarray]:
        path = directory / self.FILE
        if not path.exists():
            if not (directory / "_METADATA").exists():  # neither format: the step is incomplete
                raise FileNotFoundError(f"no {self.FILE} in {directory}")
            return ocp.StandardCheckpointHandler().restore(directory, args=ocp.args.StandardRestore(args.template))
        with path.open("rb") as f:
            if not zipfile.is_zipfile(f):  # else numpy reads it as a pickle, and its error says to load it unsafely
                raise ValueError(f"{path.name} is not an .npz archive")
            f.seek(0)
            with np.load(f) as arrays:
                return {name: arrays[name] for name in arrays.files}


@ocp.args.register_with_handler(PackedStateHandler, for_save=True)
@dataclasses.dataclass
class PackedSave(ocp.args.CheckpointArgs):
    packed: dict[str, np.ndarray]


@ocp.args.register_with_handler(PackedStateHandler, for_restore=True)
@dataclasses.dataclass
class PackedRestore(ocp.args.CheckpointArgs):
    template: dict[str, np.ndarray]  # a packed state of the right shapes, for checkpoints in the standard format


def pack(tree: Any) -> dict[str, np.ndarray]:
    """The leaves of a pytree concatenated into one flat vector per dtype, in leaf order."""
    groups: dict[str, list[np.ndarray]] = {}
    for leaf in jax.tree.leaves(tree):
        leaf = np.asarray(leaf)
        groups.setdefault(leaf.dtype.name, []).append(leaf.ravel())
    return {dtype: np.concatenate(parts) for dtype, parts in groups.items()}


def unpack(packed: dict[str, np.ndarray], template: Any, source: Any = "the checkpoint") -> Any:
    """Inverse of `pack`, shaped and typed like `template`; a UserError naming `source` where the
    packed state holds other numbers of values than `template` needs (a config changed since)."""
    template_leaves = jax.tree.leaves(template)
    layout = [(np.dtype(leaf.dtype).name, int(np.prod(np.shape(leaf), dtype=np.int64))) for leaf in template_leaves]
    needed: dict[str, int] = {}
    for dtype, size in layout:
        needed[dtype] = needed.get(dtype, 0) + size
    held = {dtype: np.asarray(vector).size for dtype, vector in packed.items()}
    if needed != held:
        raise UserError(f"{source} holds a state of {_sizes(held)} values where this run's config needs {_sizes(needed)}: "
                        "was config.toml edited after training?")
    offsets = {dtype: 0 for dtype in packed}
    leaves = []
    for leaf, (dtype, size) in zip(template_leaves, layout):
        start = offsets[dtype]
        offsets[dtype] = start + size
        leaves.append(jax.numpy.asarray(np.asarray(packed[dtype])[start : start + size].reshape(np.shape(leaf))))
    return jax.tree.unflatten(jax.tree.structure(template), leaves)


def _sizes(counts: dict[str, int]) -> str:
    return ", ".join(f"{n:,} {dtype}" for dtype, n in sorted(counts.items()))
