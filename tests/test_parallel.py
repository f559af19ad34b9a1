"""Trainings side by side (`training.parallel`), as eval trains a regression run's two baselines:
each on a device of its own, each ending where it would alone; an error in one, or a Ctrl-C, stops
the others after their save in flight."""

import dataclasses
import os
import signal
import threading
import time

import jax
import pytest

from conftest import assert_same_final_state
from metarl_cli.algos import make_algorithm
from metarl_cli.config import MamlRLConfig, resolve_config
from metarl_cli.families import family_for
from metarl_cli.training import runner
from metarl_cli.training.checkpoint import Checkpoints
from metarl_cli.training.parallel import TrainJob, train_all
from metarl_cli.training.rundir import write_manifest
from metarl_cli.training.runner import DivergedError, Interrupted, initial_state, train
from test_runner import diverging_algorithm

needs_two_devices = pytest.mark.skipif(len(jax.local_devices()) < 2, reason="one device: trainings run one after another")


@needs_two_devices
@pytest.mark.parametrize("devices, seeds, alone", [(1, 1, True), (2, 1, False), (1, 2, False)])
def test_a_job_runs_side_by_side_only_where_neither_its_step_nor_its_seeds_spread_over_devices(devices, seeds, alone):
    from types import SimpleNamespace

    from metarl_cli.training.parallel import on_one_device

    job = TrainJob(SimpleNamespace(devices=devices), SimpleNamespace(seeds=seeds), None, False)
    assert on_one_device(job) == alone


def sinusoid_jobs(tmp_path, iterations: int) -> list[TrainJob]:
    """A pretrained-like and an oracle-like sinusoid training, small."""
    config = resolve_config("maml", "sinusoid", None, [f"iterations={iterations}", "chunk=100", "hidden=[8]", "meta_batch=4"])
    jobs = []
    for name, task_input in (("pretrained", False), ("oracle", True)):
        job_config = dataclasses.replace(config, task_input=task_input)
        jobs.append(TrainJob(make_algorithm("maml", job_config, family_for(job_config)), job_config, new_run(tmp_path / name, job_config), False))
    return jobs


def new_run(run_dir, config):
    run_dir.mkdir()
    write_manifest(run_dir, "maml", config, ["test"])
    return run_dir


@needs_two_devices
def test_trainings_side_by_side_run_on_a_device_each_and_end_as_each_alone(tmp_path, monkeypatch):
    devices_used = []  # the devices each training's state was placed on

    def recording_initial_state(algo, config):
        state = initial_state(algo, config)
        devices_used.append(frozenset(d for leaf in jax.tree.leaves(state) for d in leaf.devices()))
        return state

    monkeypatch.setattr(runner, "initial_state", recording_initial_state)
    jobs = sinusoid_jobs(tmp_path, 300)
    train_all(jobs, show_progress=False)
    assert len(devices_used) == 2 and all(len(used) == 1 for used in devices_used) and devices_used[0] != devices_used[1]
    for job in jobs:
        alone = new_run(tmp_path / f"{job.run_dir.name}-alone", job.config)
        train(job.algo, job.config, alone, resume=False, show_progress=False)
        assert_same_final_state(job.run_dir, alone, 300)


@needs_two_devices
def test_an_error_in_one_training_stops_the_other_after_its_save(tmp_path):
    config = MamlRLConfig(iterations=3000, keep_checkpoints=2)  # one iteration a call: the stop is checked at each
    long_run = TrainJob(diverging_algorithm(config.iterations + 1), config, tmp_path / "long", False)  # never diverges
    diverging = TrainJob(diverging_algorithm(30), dataclasses.replace(config, iterations=100), tmp_path / "diverging", False)
    with pytest.raises(DivergedError, match="non-finite at iteration 30"):
        train_all([long_run, diverging], show_progress=False)
    with Checkpoints(long_run.run_dir, 2) as checkpoints:
        step = checkpoints.step()
        assert step is not None and 0 < step < config.iterations  # it had saved, and it stopped
        assert int(checkpoints.restore_chosen(long_run.algo.init(None))[1]["iteration"]) == step
    assert [path.name for path in (long_run.run_dir / "checkpoints").iterdir() if "tmp" in path.name] == []


@needs_two_devices
def test_ctrl_c_stops_trainings_side_by_side_once_each_has_saved(tmp_path):
    jobs = sinusoid_jobs(tmp_path, 200_000)  # minutes to the end: stopped, each saves within a chunk
    both_saved = threading.Event()

    def saved(job) -> bool:
        return any(path.name.isdigit() for path in (job.run_dir / "checkpoints").glob("*"))

    def interrupt_once_both_have_saved():
        deadline = time.monotonic() + 120
        while not all(map(saved, jobs)) and time.monotonic() < deadline:
            time.sleep(0.05)
        if all(map(saved, jobs)):
            both_saved.set()
        os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # where pytest runs with SIGINT ignored
    try:
        interrupter = threading.Thread(target=interrupt_once_both_have_saved)
        interrupter.start()
        with pytest.raises(Interrupted) as interrupted:
            train_all(jobs, show_progress=False)
        interrupter.join()
        assert interrupted.value.latest is None  # train_all's own: each training has its latest checkpoint
    finally:
        signal.signal(signal.SIGINT, previous)
    assert both_saved.is_set(), "both trainings save a checkpoint within two minutes"
    assert not [t for t in threading.enumerate() if t.name.startswith("train")]
    for job in jobs:
        with Checkpoints(job.run_dir, job.config.keep_checkpoints) as checkpoints:
            assert 0 < checkpoints.step() < job.config.iterations
        # Each stopped after its save in flight had completed: no checkpoint is left half written.
        assert [path.name for path in (job.run_dir / "checkpoints").iterdir() if "tmp" in path.name] == []
