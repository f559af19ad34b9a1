"""Orbax checkpoints of the whole training state: the last few plus the best by score, one manager.

Each save records the iteration's score as an Orbax metric; the manager's preservation policy keeps
the latest `keep` checkpoints and the best-scoring one, so "best" costs no extra write and survives
resume. Saving runs on one background thread: `save` copies the state to host memory and returns at
once, so the next meta-iteration computes while the previous state is written (a save still running
when the next is asked for is waited for first). Only complete checkpoints are ever restored.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies


class Checkpoints:
    def __init__(self, run_dir: Path, keep: int):
        score = lambda metrics: metrics["score"]  # noqa: E731
        keep_policy = policies.AnyPreservationPolicy([policies.LatestN(n=keep), policies.BestN(get_metric_fn=score, n=1)])
        options = ocp.CheckpointManagerOptions(
            enable_async_checkpointing=False, create=True, preservation_policy=keep_policy, best_fn=score, best_mode="max"
        )
        self.manager = ocp.CheckpointManager((run_dir / "checkpoints").absolute(), options=options)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")
        self._pending: Future | None = None

    def save(self, step: int, state: Any, score: float) -> None:
        host_state = jax.device_get(state)
        self.wait()
        self._pending = self._worker.submit(
            self.manager.save, step, args=ocp.args.StandardSave(host_state), metrics={"score": float(score)}
        )

    def latest_step(self, which: str = "latest") -> int | None:
        self.wait()
        return self.manager.best_step() if which == "best" else self.manager.latest_step()

    def restore(self, target: Any, which: str = "latest", step: int | None = None) -> Any:
        step = self.latest_step(which) if step is None else step
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))

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
            self.manager.close()
