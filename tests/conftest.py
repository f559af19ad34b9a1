"""Shared fixtures: a tiny MAML config that compiles fast, a helper that runs the CLI in-process, a
check that two runs ended in the same state, a wait on a child process, and MAML's meta-loss for a
single task; and a compilation cache for the session, whose tables take no COLUMNS from the shell."""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import pytest

_SESSION_CACHE: str | None = None


def pytest_configure(config):
    """Give JAX a persistent compilation cache for this session (unless one is set): tests that run
    the CLI rebuild the same programs in fresh closures, which JAX's in-memory cache cannot match,
    and compiling is most of the suite's time on a small CPU. Set before pytest-xdist starts its
    worker processes, the cache is theirs too; the process that made it removes it at the end."""
    global _SESSION_CACHE
    os.environ.pop("COLUMNS", None)  # tables into the captured output at their natural width, whatever the shell exports
    if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
        _SESSION_CACHE = tempfile.mkdtemp(prefix="metarl-test-xla-")
        os.environ["JAX_COMPILATION_CACHE_DIR"] = _SESSION_CACHE
        os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.3")


def pytest_unconfigure(config):
    if _SESSION_CACHE is not None:
        shutil.rmtree(_SESSION_CACHE, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def backend_with_a_device_per_core():
    """The tests run with a device per core, as importing metarl_cli sets it. Started here, before
    any test, JAX's backend is already up when a test runs `metarl train` in-process, which then
    leaves it as it is instead of starting this process on one device (`backend.start_for_training`)."""
    import jax

    importlib.import_module("metarl_cli")  # sets the device count, before the backend starts
    jax.devices()


TINY = ["meta_batch=2", "lanes=4", "horizon=20", "hidden=[16,16]", "eval_tasks=4", "eval_steps=1"]


def set_args(*sets: str) -> list[str]:
    """["--set", s1, "--set", s2, ...]"""
    return [arg for s in sets for arg in ("--set", s)]


def tiny_sets(*extra: str) -> list[str]:
    return set_args(*TINY, *extra)


@pytest.fixture
def cli(monkeypatch, capsys):
    """Run `metarl ARGS...` in this process; returns (exit code, stdout, stderr)."""
    from metarl_cli.cli import main

    def run(*args: str):
        monkeypatch.setattr(sys, "argv", ["metarl", *args])
        code = 0
        try:
            main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def wait_for(proc, condition, seconds: float, what: str) -> None:
    """Poll `condition()` until it holds, failing with `what` if `proc` exits or `seconds` pass first."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert proc.poll() is None and time.monotonic() < deadline, what
        time.sleep(0.1)


def latest_state(run, iterations):
    """The training state in a run's latest checkpoint, which must be at `iterations`."""
    import jax

    from metarl_cli.algos import make_algorithm
    from metarl_cli.families import family_for
    from metarl_cli.training.checkpoint import Checkpoints
    from metarl_cli.training.rundir import load_run

    algo_name, config, _ = load_run(run)
    algo = make_algorithm(algo_name, config, family_for(config))
    with Checkpoints(run, config.keep_checkpoints) as ckpt:
        assert ckpt.step() == iterations
        return ckpt.restore_chosen(algo.init(jax.random.PRNGKey(config.seed)))[1]


def assert_same_final_state(run_a, run_b, iterations):
    """Both runs' latest checkpoints are at `iterations` and hold bit-identical states."""
    import jax

    for x, y in zip(jax.tree.leaves(latest_state(run_a, iterations)), jax.tree.leaves(latest_state(run_b, iterations))):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def one_task_meta_loss(learner, params, task, key, steps: int, lr, first_order: bool):
    """`meta.meta_batch_loss` on a meta-batch of one task: (query loss, (score before, score after))."""
    import jax

    from metarl_cli.meta import meta_batch_loss

    losses, (pre, post) = meta_batch_loss(learner, params, jax.tree.map(lambda x: x[None], task), key[None], steps, lr, first_order)
    return losses[0], (pre[0], post[0])


def checkpoints_stub(restored: int, latest: int, chosen: list | None = None, scored: bool = True) -> type:
    """A stand-in for `training.checkpoint.Checkpoints` (to monkeypatch into `evaluate`): its latest
    checkpoint is at iteration `latest`, and whichever one is chosen restores as iteration `restored`
    with no parameters; each choice ("latest" or "best") is appended to `chosen`; every checkpoint
    has a score, or none (`scored`)."""

    class Checkpoints:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def restore_chosen(self, template, which="latest"):
            if chosen is not None:
                chosen.append(which)
            return restored, {"params": None}

        def step(self, which="latest"):
            return latest

        def scored(self, step):
            return scored

    return Checkpoints
