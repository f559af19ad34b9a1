"""The training loop: the only Python loop around the compiled step.

Each iteration: call the jit-compiled step, check the loss is finite, append a metrics line,
advance the progress bar, hand the state to the checkpoint manager. A non-finite loss stops the
run before its state is saved, so the latest checkpoint is the last good one.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import jax

from metarl_cli.algos import Algorithm
from metarl_cli.errors import UserError
from metarl_cli.training.checkpoint import Checkpoints
from metarl_cli.training.progress import console, training_progress
from metarl_cli.training.rundir import MetricsLog


class DivergedError(Exception):
    """The loss became non-finite; the message says at which iteration."""


@dataclass
class TrainSummary:
    iterations_done: int
    seconds: float
    compile_seconds: float
    checkpoint_seconds: float
    env_steps_per_second: float


def train(algo: Algorithm, config, run_dir: Path, resume: bool, show_progress: bool = True) -> TrainSummary:
    checkpoints = Checkpoints(run_dir, config.keep_checkpoints)
    log = MetricsLog(run_dir / "metrics.jsonl")
    state = algo.init(jax.random.PRNGKey(config.seed))
    start = (checkpoints.step() if resume else None) or 0
    if start > config.iterations:
        checkpoints.close()
        raise UserError(f"{run_dir} already has {start} iterations; --set iterations=N must be at least that")
    if start:
        state = checkpoints.restore(state, step=start)
        console.print(f"resuming {run_dir} from iteration {start}")
    log.truncate_after(start)

    compile_seconds = checkpoint_seconds = 0.0
    t_begin = time.perf_counter()
    steps_timed = 0
    t_steady = None

    def steady_rate() -> float:
        """Env steps/s since the first (compiling) iteration of this session."""
        return steps_timed * algo.env_steps_per_iteration / (time.perf_counter() - t_steady) if steps_timed else 0.0

    progress = training_progress()
    try:
        with progress:
            bar = progress.add_task("meta-train", total=config.iterations, completed=start, stats="compiling...", visible=show_progress)
            for it in range(start, config.iterations):
                t0 = time.perf_counter()
                state, metrics = algo.step(state)
                metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
                t1 = time.perf_counter()
                if it == start:
                    compile_seconds = t1 - t0
                    t_steady = t1
                else:
                    steps_timed += 1
                if not math.isfinite(metrics["loss"]):
                    raise DivergedError(
                        f"loss became non-finite at iteration {it + 1}; stopped, and the latest checkpoint "
                        f"(iteration {checkpoints.step()}) is the last good state"
                    )
                log.append({"iteration": it + 1, "env_steps": (it + 1) * algo.env_steps_per_iteration, **metrics})
                if (it + 1) % config.checkpoint_every == 0 or it + 1 == config.iterations:
                    c0 = time.perf_counter()
                    checkpoints.save(it + 1, state, metrics["post_return"])
                    checkpoint_seconds += time.perf_counter() - c0
                stats = f"pre {metrics['pre_return']:8.2f}  post {metrics['post_return']:8.2f}  {steady_rate() / 1e3:7.0f}k steps/s"
                progress.update(bar, advance=1, stats=stats)
            c0 = time.perf_counter()
            checkpoints.wait()
            checkpoint_seconds += time.perf_counter() - c0
    finally:
        checkpoints.close()
    seconds = time.perf_counter() - t_begin
    return TrainSummary(config.iterations - start, seconds, compile_seconds, checkpoint_seconds, steady_rate())
