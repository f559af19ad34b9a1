"""A `metarl train` run in a scratch directory, as the benchmarks time it: in a fresh process whose
JAX backend starts as `metarl train` starts it for that run (`backend.start_for_training`), the
config resolved as the CLI resolves it (shipped experiment, then overrides), the algorithm built for
its family, trained with checkpoints, the directory removed afterwards."""

from __future__ import annotations

import multiprocessing
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import NamedTuple

import jax

from metarl_cli.algos import make_algorithm
from metarl_cli.backend import start_for_training
from metarl_cli.devices import local_devices_text
from metarl_cli.families import family_for
from metarl_cli.training.runner import TrainSummary, train


class ScratchRun(NamedTuple):
    summary: TrainSummary
    devices: str  # where it trained, as `metarl train` names them: "cpu, 1 device"


def scratch_run(algo_name: str, config) -> ScratchRun:
    """Train `config` (resolved, e.g. by `metarl_cli.config.resolve_config`) from scratch in a
    process of its own."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_train, algo_name, config).result()


def _train(algo_name: str, config) -> ScratchRun:
    jax.config.update("jax_enable_compilation_cache", False)  # its compile time is a compile's, never a cache load
    start_for_training(algo_name, config)
    algo = make_algorithm(algo_name, config, family_for(config))
    with tempfile.TemporaryDirectory() as tmp:
        return ScratchRun(train(algo, config, Path(tmp), resume=False, show_progress=False), local_devices_text())
