"""The training loop: the only Python loop around the compiled step.

The algorithm's step is compiled once, alone when `chunk` is 1 or as a `lax.scan` over `chunk`
iterations when one iteration is too short to pay for a trip through Python (a final, shorter chunk
compiles its own scan). An algorithm with a later phase has its second step compiled when that phase
begins; no chunk spans the switch. With `seeds` > 1 the state has a leading seed axis and the step
is vmapped over it (or, for an algorithm whose one seed fills a device, mapped: `vmap_seeds`): N
independent runs in one program, run i seeded with `seed + i`, so each is the run a single seed
`seed + i` would give up to floating-point rounding (which over long runs can decide a late
collapse); the seeds are split over the local devices where they divide evenly (`seed_mesh`).
After each call: check the loss (and the gradient's norm, where the algorithm logs it) is finite,
append the chunk's summary to metrics.jsonl (one line per seed, with "seed" when there are several),
advance the progress bar, hand the state to the checkpoint manager. A non-finite loss or gradient
stops the run before its state is saved, so the latest checkpoint is the last good one. Ctrl-C (or
SIGTERM) stops the run after the call in flight (a second one at once) and saves the state of the last
finished call, where `checkpoint_every` had not saved it yet, so a resumed run loses no finished
iteration.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from rich.progress import Progress

from metarl_cli.algos import Algorithm
from metarl_cli.devices import even_mesh
from metarl_cli.errors import UserError
from metarl_cli.files import json_number
from metarl_cli.interrupts import handling, interrupted_while_starting
from metarl_cli.tables import figures
from metarl_cli.training.checkpoint import Checkpoints
from metarl_cli.training.progress import say, training_progress
from metarl_cli.training.rundir import MetricsLog


# The metrics whose non-finite value stops a run, and what the message calls them: an update with a
# non-finite gradient would leave non-finite parameters (or optimiser moments) behind a finite loss.
DIVERGENCE_METRICS = {"loss": "loss", "grad_norm": "gradient"}


class DivergedError(Exception):
    """The loss or gradient became non-finite; the message says at which iteration, `run_dir` in which run."""

    def __init__(self, message: str, run_dir: Path):
        super().__init__(message)
        self.run_dir = run_dir

    def __reduce__(self):  # raised again in the process that waits on a training in another one
        return DivergedError, (str(self), self.run_dir)


class Interrupted(KeyboardInterrupt):
    """Training was interrupted (Ctrl-C) after the save in flight, if any, completed; `latest` is the
    iteration of the run's latest complete checkpoint (None: it has none)."""

    def __init__(self, latest: int | None):
        super().__init__(latest)
        self.latest = latest


@dataclass
class TrainSummary:
    iterations_done: int
    seconds: float
    compile_seconds: float
    checkpoint_seconds: float  # on the training thread: copying states out, waiting for saves in flight
    checkpoints_saved: int
    iterations_per_second: float
    env_steps_per_second: float

    def checkpoint_advice(self, length: int, chunk: int = 1, share: float = 0.1, fewest_saves: int = 10) -> str | None:
        """Where checkpoints took more than `share` of the training time (compilation excluded) over
        at least `fewest_saves` saves: how much, a save's cost against an iteration's, and the
        interval between saves at which a save costs at most `share` of the iterations between
        (as if no save overlapped training), in whole chunks of `chunk` iterations, as saves are
        taken; where that is past the run's `length` (its iterations in all, a resumed run's
        included), `length`: its end alone. On an accelerator an iteration can take a few
        milliseconds, less than Orbax's bookkeeping for one save."""
        training = self.seconds - self.compile_seconds
        if self.checkpoints_saved < fewest_saves or self.checkpoint_seconds <= share * training:
            return None
        per_save = self.checkpoint_seconds / self.checkpoints_saved
        per_iteration = (training - self.checkpoint_seconds) / self.iterations_done
        every = math.ceil(per_save / (share * per_iteration))  # the saves' time is a disjoint part of training's
        every = chunk * math.ceil(every / chunk)
        cost = (f"checkpoints took {self.checkpoint_seconds / training:.0%} of the training time ({1e3 * per_save:.0f} ms a save, "
                f"{1e3 * per_iteration:.1f} ms an iteration without them)")
        if every >= length:
            return f"{cost}: a run this short is best saved at its end alone, with `--set checkpoint_every={length}` (on a new run or a --resume)"
        return (f"{cost}: with `--set checkpoint_every={every}` (on a new run or a --resume) a save would cost at most {share:.0%} "
                "of the iterations between saves")


def compile_chunks(step, mesh: Mesh | None = None):
    """`run(state, n)`: n meta-iterations in one compiled call; metrics get a leading axis of size n.

    With a `mesh` (see `seed_mesh`) the state's leading seed axis is split over its devices and
    each device runs its share of the seeds: the seeds never interact, so nothing is communicated.
    """

    def chunk(state, n: int):
        if n == 1:
            state, metrics = step(state)
            return state, jax.tree.map(lambda m: m[None], metrics)
        return jax.lax.scan(lambda s, _: step(s), state, None, length=n)

    if mesh is None:
        return jax.jit(chunk, static_argnums=1)

    @partial(jax.jit, static_argnums=1)
    def run(state, n: int):
        # Metrics are (iterations, seeds, ...). check_vma=False: the algorithms' scans carry
        # per-device values whose types the check would ask every algorithm to annotate.
        split = jax.shard_map(
            partial(chunk, n=n), mesh=mesh, in_specs=P("seed"), out_specs=(P("seed"), P(None, "seed")), check_vma=False
        )
        return split(state)

    return run


def seed_mesh(seeds: int) -> Mesh | None:
    """The devices to split `seeds` seeds over: the most local devices that share them evenly, or
    None where that is one device. On a CPU each core is a device (see metarl_cli/__init__.py), so
    8 seeds on two cores run 4 per core rather than all 8 contending for both."""
    return even_mesh(seeds, "seed")


def seed_keys(config) -> jax.Array:
    """One key per seed: run i is seeded with config.seed + i."""
    return jnp.stack([jax.random.PRNGKey(config.seed + i) for i in range(config.seeds)])


def initial_state(algo: Algorithm, config):
    """The training state before the first iteration; with several seeds, a leading seed axis.
    Compiled as one program: run operation by operation, a network's initialisation compiles each
    of its operations apart, which took 1 to 2 s more a command on the 2-core CPU (the values are the
    same, bit for bit, for every algorithm on its defaults)."""
    if config.seeds == 1:
        return jax.jit(algo.init)(jax.random.PRNGKey(config.seed))
    return _init_seeds(algo.init, seed_keys(config))


def state_template(algo: Algorithm, config):
    """Zeros shaped and typed as `initial_state`'s leaves, found without compiling or running it: the
    template a checkpoint restores into."""
    return jax.tree.map(lambda leaf: np.zeros(leaf.shape, leaf.dtype), jax.eval_shape(lambda: initial_state(algo, config)))


@partial(jax.jit, static_argnums=0)
def _init_seeds(init, keys):
    """`init` of each key, one compiled program per `init` (however often a command asks for it)."""
    return jax.vmap(init)(keys)


def seeded_step(step, config, vmap_seeds: bool = True):
    """The step over the state's seed axis: vmapped, or the seeds one after another where a seed's
    step already fills the device (`Algorithm.vmap_seeds`)."""
    if config.seeds == 1:
        return step
    return jax.vmap(step) if vmap_seeds else partial(jax.lax.map, step)


def records(summary: dict, config, counts: dict) -> list[dict]:
    """metrics.jsonl lines for one chunk: one, or one per seed (with its seed) when there are several."""
    if config.seeds == 1:
        return [{**counts, **{k: json_number(v) for k, v in summary.items()}}]
    return [
        {**counts, "seed": config.seed + i, **{k: json_number(np.asarray(v)[i]) for k, v in summary.items()}}
        for i in range(config.seeds)
    ]


def refuse_shorter(run_dir: Path, done: int, config) -> None:
    """A resumed config must ask for at least the iterations the run has done."""
    if done > config.iterations:
        key = type(config).LENGTH_KEY
        raise UserError(f"{run_dir} already has {done} iterations, more than the {config.iterations} this config asks for "
                        f"({key} = {getattr(config, key)}); --set {key}=N extends a run but cannot shorten it")


def check_resume(algo: Algorithm, config, run_dir: Path, saved_algo: Algorithm) -> int:
    """The iterations `run_dir` has done (its latest checkpoint's). Refuses (UserError) to resume
    `run_dir` with `config` where it cannot continue the run: fewer iterations than it has done, or
    phases whose start or env steps per iteration (what a later phase's keys change: rl2's
    large_batch_at, large_meta_batch) differ from those of the saved config (`saved_algo`, the
    algorithm it made) over the iterations already done; a later phase may begin, or change its
    batch, only where it has not begun; or a latest checkpoint that cannot be restored (damaged, or
    no longer fitting the config). Called before the resumed config is written, so a refused resume
    (or one with nothing left to run) leaves the run's files as they were."""
    with Checkpoints(run_dir, config.keep_checkpoints, create=False) as checkpoints:
        done = checkpoints.restore_chosen(state_template(algo, config))[0] or 0
    refuse_shorter(run_dir, done, config)
    saved_schedule = saved_algo.schedule_before(done)
    if saved_schedule != algo.schedule_before(done):
        begun = [start for start, _ in saved_schedule if start > 0]
        why = (f"its later phase began at iteration {begun[0]}, and a phase that has begun cannot be moved, dropped or "
               "given another batch" if begun else f"a later phase may begin at iteration {done} or after")
        raise UserError(f"{run_dir} has run {done} iterations, and this change would alter how they ran: {why}")
    return done


def train(algo: Algorithm, config, run_dir: Path, resume: bool, show_progress: bool = True,
          shared: Progress | None = None, stop: threading.Event | None = None) -> TrainSummary:
    """Run `algo` to `config.iterations`, from the latest checkpoint when `resume` (see `check_resume`
    for what the CLI checks before it rewrites a resumed run's config). Ctrl-C (`stop_signals_set`), or
    `stop` set by a thread that trains others beside this one (`training.parallel`), is seen before
    the next call and raises `Interrupted` once the save in flight, if any, is complete. With a
    `shared` progress display, the bar (named after `run_dir`) goes there and `show_progress` is moot."""
    stop = stop if stop is not None else threading.Event()
    with Checkpoints(run_dir, config.keep_checkpoints) as checkpoints:
        try:
            with stop_signals_set(stop):
                return _train(algo, config, run_dir, resume, show_progress, checkpoints, shared, stop)
        except KeyboardInterrupt:
            raise Interrupted(checkpoints.step()) from None


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def stop_signals_set(stop: threading.Event):
    """Within the block, a first Ctrl-C (SIGINT), or SIGTERM (`kill`, a scheduler's preemption), sets
    `stop` (the loop checks it between calls) instead of raising KeyboardInterrupt wherever Python
    happens to be, where it can land inside a callback that swallows it (JAX's garbage-collection
    hook) or between a metrics line and its save; a second raises at once. A signal the process was
    started to ignore stays ignored. Off the main thread, where signals are not delivered, it does nothing
    (`interrupts.handling`)."""

    def on_signal(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    with handling(STOP_SIGNALS, on_signal):
        if threading.current_thread() is threading.main_thread() and interrupted_while_starting():
            stop.set()
        yield


def _train(algo: Algorithm, config, run_dir: Path, resume: bool, show_progress: bool, checkpoints: Checkpoints,
           shared: Progress | None, stop: threading.Event) -> TrainSummary:
    log = MetricsLog(run_dir / "metrics.jsonl")
    state = initial_state(algo, config)
    start = (checkpoints.step() if resume else None) or 0
    if start > config.iterations:  # for callers that skip check_resume (eval's cached baselines)
        refuse_shorter(run_dir, start, config)
    if start:  # placed on the devices as a fresh start is, so the first call compiles for every later one
        state = jax.device_put(checkpoints.restore(state, step=start), jax.tree.map(lambda x: x.sharding, state))
        say(f"resuming {run_dir} from iteration {start}")
    elif resume:
        say(f"{run_dir} has no complete checkpoint: starting it again from iteration 0")
    lines_at_start = log.truncate_after(start)
    if start and lines_at_start < config.seeds:  # a kill cuts short only a line past the latest checkpoint: damaged or edited
        say(f"note: {log.path} lacks {'a line' if config.seeds == 1 else 'lines'} for iteration {start}, where the run resumes "
            "(damaged or edited); its curves and report will lack what they held")
    mesh = seed_mesh(config.seeds)
    if mesh is not None:
        state = jax.device_put(state, NamedSharding(mesh, P("seed")))
    phases = algo.phases
    executables = {}  # (phase, n) -> n iterations of that phase, compiled

    def compiled_chunk(phase: int, state, n: int):
        """The compiled call for n iterations of `phase`, and the seconds spent compiling it now (0: it was).
        Compiled apart from its first call, so that no iteration's run is timed as compiling."""
        if (phase, n) in executables:
            return executables[phase, n], 0.0
        t0 = time.perf_counter()
        runner = compile_chunks(seeded_step(phases[phase].step, config, algo.vmap_seeds), mesh)
        executables[phase, n] = runner.lower(state, n).compile()
        return executables[phase, n], time.perf_counter() - t0

    sign = 1.0 if algo.maximize else -1.0

    compile_seconds = checkpoint_seconds = 0.0
    checkpoints_saved = 0
    t_begin = time.perf_counter()
    done = start

    def rates() -> tuple[float, float]:
        """Iterations/s and env steps/s (all seeds) of this process's training: checkpoints and all
        else between calls included, compilation not."""
        if done == start:
            return 0.0, 0.0
        seconds = time.perf_counter() - t_begin - compile_seconds
        return (done - start) / seconds, (algo.env_steps_after(done) - algo.env_steps_after(start)) * config.seeds / seconds

    progress = training_progress(show_progress) if shared is None else shared
    with progress if shared is None else nullcontext():
        label = run_dir.name if shared is not None else "meta-train" if algo.adapts else "train"
        bar = progress.add_task(label, total=config.iterations, completed=start, stats="compiling...")
        latest = (start, state, -np.inf)  # (iteration, state, score) of the last finished call
        try:
            while done < config.iterations:
                if stop.is_set():
                    raise KeyboardInterrupt  # Ctrl-C, or stopped from another thread
                phase = max(i for i, p in enumerate(phases) if p.start <= done)
                phase_end = phases[phase + 1].start if phase + 1 < len(phases) else config.iterations
                n = min(config.chunk, config.iterations - done, phase_end - done)
                executable, compiling = compiled_chunk(phase, state, n)
                compile_seconds += compiling
                state, chunk_metrics = executable(state)
                chunk_metrics = {k: np.asarray(v) for k, v in jax.device_get(chunk_metrics).items()}
                check_finite(chunk_metrics, done, checkpoints, run_dir)
                previous, done = done, done + n
                summary = algo.summary(chunk_metrics)
                score = _seed_mean(summary[algo.ranking_metric])
                counts = {"iteration": done}
                if algo.env_steps_per_iteration:
                    counts["env_steps"] = algo.env_steps_after(done)  # per seed
                for record in records(summary, config, counts):
                    log.append(record)
                # After its lines: a Ctrl-C among them saves the chunk before, whose lines are all written.
                latest = (done, state, sign * score if np.isfinite(score) else -np.inf)
                if done // config.checkpoint_every > previous // config.checkpoint_every or done == config.iterations:
                    c0 = time.perf_counter()
                    checkpoints.save(*latest)
                    checkpoint_seconds += time.perf_counter() - c0
                    checkpoints_saved += 1
                progress.update(bar, advance=n, stats=_stats_line(algo, summary, *rates()))
        except KeyboardInterrupt:
            if latest[0] > (checkpoints.step() or 0):  # finished since the last save: kept, not computed again on resume
                checkpoints.save(*latest)
            raise
        c0 = time.perf_counter()
        checkpoints.wait()
        checkpoint_seconds += time.perf_counter() - c0
    seconds = time.perf_counter() - t_begin
    return TrainSummary(config.iterations - start, seconds, compile_seconds, checkpoint_seconds, checkpoints_saved, *rates())


def check_finite(chunk_metrics: dict, done: int, checkpoints: Checkpoints, run_dir: Path) -> None:
    """A DivergedError, naming the first iteration after `done` at which a `DIVERGENCE_METRICS` value
    of the chunk is not finite (in any seed) and the latest checkpoint, the last good state."""
    for name, what in DIVERGENCE_METRICS.items():
        if name not in chunk_metrics:
            continue
        finite = np.isfinite(chunk_metrics[name]).reshape(len(chunk_metrics[name]), -1).all(axis=1)  # per iteration
        if not finite.all():
            last_good = checkpoints.step()
            kept = (f"the latest checkpoint (iteration {last_good}) is the last good state" if last_good is not None
                    else "no checkpoint had been written yet")
            raise DivergedError(f"{what} became non-finite at iteration {done + int(np.argmin(finite)) + 1}; stopped, and {kept}", run_dir)


def _seed_mean(values) -> float:
    values = np.asarray(values, dtype=float)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def _shown(value: float) -> str:
    """A metric on the bar, as the report shows it (a return of -1263.7 as -1264), right-aligned."""
    return f"{figures(value) if np.isfinite(value) else '-':>8}"


def _stats_line(algo: Algorithm, summary: dict, iterations_per_second: float, env_steps: float) -> str:
    """The bar's text: the algorithm's chosen metrics (mean over seeds) and the speed (all seeds)."""
    # A metric without a value this chunk (a DQN chunk in which no episode ended) shows a dash.
    shown = "  ".join(f"{name.removesuffix('_' + algo.score_name)} {_shown(_seed_mean(summary[name]))}" for name in algo.shown_metrics)
    speed = f"{_rate(env_steps)} steps/s" if env_steps else f"{_rate(iterations_per_second)} it/s"
    return f"{shown}  {speed}"


def _rate(per_second: float) -> str:
    """A rate on the bar, right-aligned: in thousands from 10,000 up (15k), whole from 10, and below
    that in two significant figures (0.31), so that a slow run's rate does not show as 0."""
    text = f"{per_second / 1e3:.0f}k" if per_second >= 1e4 else f"{per_second:.0f}" if per_second >= 10 else f"{per_second:.2g}"
    return f"{text:>8}"
