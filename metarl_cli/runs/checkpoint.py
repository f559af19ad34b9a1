"""Orbax checkpoints of the whole training state: the last few, plus the best by score.

Saving runs on one background thread: `save` copies the state to host memory and returns at once,
so the next meta-iteration computes while the previous state is written (a save that is still
running when the next is asked for is waited for first). `wait()` blocks until every save is
complete, and only complete checkpoints are ever restored. Host (numpy) copies also halve Orbax's
per-save cost for small states compared with handing it device arrays.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp


class Checkpoints:
    def __init__(self, run_dir: Path, keep: int):
        def manager(folder: str, keep: int) -> ocp.CheckpointManager:
            options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=False, create=True)
            return ocp.CheckpointManager((run_dir / folder).absolute(), options=options)

        self.latest = manager("checkpoints", keep)
        self.best = manager("best", 1)
        self.best_score = float("-inf")
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")
        self._pending: Future | None = None

    def save(self, step: int, state: Any, score: float) -> None:
        host_state = jax.device_get(state)
        is_best = score > self.best_score
        if is_best:
            self.best_score = score
        self.wait()
        self._pending = self._worker.submit(self._write, step, host_state, is_best)

    def _write(self, step: int, host_state: Any, is_best: bool) -> None:
        self.latest.save(step, args=ocp.args.StandardSave(host_state))
        if is_best:
            self.best.save(step, args=ocp.args.StandardSave(host_state))

    def latest_step(self, which: str = "latest") -> int | None:
        self.wait()
        return self._manager(which).latest_step()

    def restore(self, target: Any, which: str = "latest", step: int | None = None) -> Any:
        self.wait()
        manager = self._manager(which)
        step = manager.latest_step() if step is None else step
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        return manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def _manager(self, which: str) -> ocp.CheckpointManager:
        return self.best if which == "best" else self.latest

    def wait(self) -> None:
        """Block until the save in flight (if any) is complete; re-raise its error."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._worker.shutdown(wait=True)
            self.latest.close()
            self.best.close()
