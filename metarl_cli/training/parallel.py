"""Independent trainings side by side, one per local device.

On a CPU each core is a device (see metarl_cli/__init__.py). A training whose state sits on one
device (not split over them: a regression run's pretrained and oracle baselines, say) leaves the
other cores idle, so independent ones of that kind train at once, each from its own thread on a
device of its own. Trainings that already spread over the devices, or a single one, train one after
another. Either way their bars share one progress display, each named after its run directory.

Ctrl-C or SIGTERM (or an error in one of them) stops them all, each after its save in flight, and
is raised as `Interrupted` (or as that error) once every one has stopped.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax

from metarl_cli.algos import Algorithm
from metarl_cli.training.progress import training_progress
from metarl_cli.training.runner import Interrupted, seed_mesh, stop_signals_set, train


@dataclass
class TrainJob:
    algo: Algorithm
    config: Any
    run_dir: Path
    resume: bool


def on_one_device(job: TrainJob) -> bool:
    """Whether the job's program runs on one device: neither its seeds nor one seed's step spread over several."""
    return seed_mesh(job.config.seeds) is None and job.algo.devices == 1


def train_all(jobs: list[TrainJob], show_progress: bool = True) -> None:
    """Train every job to its end: side by side, one per device, where there are several devices and
    each job runs on one; otherwise one after another."""
    if not jobs:
        return
    stop = threading.Event()  # one for all the jobs: a Ctrl-C or SIGTERM while one ends stops the next
    with stop_signals_set(stop):
        _train_all(jobs, show_progress, stop)


def _train_all(jobs: list[TrainJob], show_progress: bool, stop: threading.Event) -> None:
    devices = jax.local_devices()
    display = training_progress(show_progress)  # every bar named after its job's directory
    if len(jobs) < 2 or len(devices) < 2 or not all(map(on_one_device, jobs)):
        with display:
            for job in jobs:
                train(job.algo, job.config, job.run_dir, job.resume, shared=display, stop=stop)
        return
    free = queue.SimpleQueue()
    for device in devices:
        free.put(device)

    def run(job: TrainJob) -> None:
        device = free.get()
        try:
            with jax.default_device(device):
                train(job.algo, job.config, job.run_dir, job.resume, shared=display, stop=stop)
        finally:
            free.put(device)

    futures = []
    try:
        with display, ThreadPoolExecutor(min(len(jobs), len(devices)), thread_name_prefix="train") as pool:
            try:
                futures = [pool.submit(run, job) for job in jobs]
                # Waits of half a second: a second Ctrl-C (raised in this, the main thread) is seen here in time.
                while True:
                    finished, running = wait(futures, timeout=0.5, return_when=FIRST_EXCEPTION)
                    if not running or _errors(finished):
                        break
            finally:
                stop.set()  # after an error or a Ctrl-C, the others stop after their save in flight
    except KeyboardInterrupt:
        # An error that came first, not the Ctrl-C; the trainings it stopped raised Interrupted.
        _raise_first([error for error in _errors(futures) if not isinstance(error, Interrupted)])
        raise Interrupted(None) from None
    errors = _errors(futures)
    if errors and all(isinstance(error, Interrupted) for error in errors):  # a Ctrl-C or SIGTERM stopped them
        raise Interrupted(None)
    _raise_first(errors)


def _errors(futures) -> list[BaseException]:
    """The errors of the finished futures, those of trainings stopped by `stop` (Interrupted) last."""
    errors = [error for error in (f.exception() for f in futures if f.done()) if error is not None]
    return sorted(errors, key=lambda error: isinstance(error, Interrupted))


def _raise_first(errors: list[BaseException]) -> None:
    if errors:
        raise errors[0]
