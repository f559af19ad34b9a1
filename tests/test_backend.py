"""How `metarl train` starts JAX's CPU backend (metarl_cli/backend.py): which runs are narrow, and
that a narrow one starts with one device on a one-thread pool and every thread free to use every core;
and the XLA flag metarl sets against a deadlock of XLA's CPU scheduler (metarl_cli/__init__.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from conftest import set_args
from metarl_cli import SCHEDULER_FLAG, SET_HERE
from metarl_cli.algos import make_algorithm
from metarl_cli.backend import narrow_training
from metarl_cli.config import resolve_config
from metarl_cli.families import family_for
from metarl_cli.training.parallel import TrainJob, on_one_device

RUNS = [("maml", "sinusoid", 1), ("maml", "sinusoid", 2), ("maml", "linear", 3), ("maml", "cartpole-family", 1),
        ("maml", "point-nav", 1), ("dqn", "cartpole", 1), ("dqn", "cartpole", 2), ("dqn", "cartpole", 3),
        ("maml-dqn", "cartpole-family", 1), ("maml-dqn", "cartpole-family", 2), ("rl2", "bandit", 1), ("rl2", "bandit", 2)]


@pytest.mark.skipif(len(jax.local_devices()) != 2, reason="the cases are those of two devices")
def test_narrow_runs_are_one_device_runs_of_small_operations():
    narrow = set()
    for algo_name, env, seeds in RUNS:
        config = resolve_config(algo_name, env, None, [f"seeds={seeds}"])
        if narrow_training(algo_name, config, len(jax.local_devices())):
            algo = make_algorithm(algo_name, config, family_for(config))
            assert on_one_device(TrainJob(algo, config, Path("unused"), resume=False)), (algo_name, env, seeds)
            narrow.add((algo_name, env, seeds))
    assert narrow == {("maml", "sinusoid", 1), ("maml", "linear", 3), ("dqn", "cartpole", 1), ("dqn", "cartpole", 3),
                      ("maml-dqn", "cartpole-family", 1)}


CHILD = """
import json, os
import jax, jax.numpy as jnp
from metarl_cli.backend import start_for_training
from metarl_cli.config import resolve_config

cores, flags = sorted(os.sched_getaffinity(0)), os.environ["XLA_FLAGS"]
wide = start_for_training("dqn", resolve_config("dqn", "cartpole", None, ["seeds=2"]))
narrow = start_for_training("dqn", resolve_config("dqn", "cartpole", None, []))
again = start_for_training("dqn", resolve_config("dqn", "cartpole", None, []))
threads = {}  # name and affinity of each thread alive now; one may end while they are read
for task in os.listdir("/proc/self/task"):
    try:
        threads[task] = (open(f"/proc/self/task/{task}/comm").read().strip(), sorted(os.sched_getaffinity(int(task))))
    except OSError:
        pass
print(json.dumps({
    "wide": wide, "narrow": narrow, "again": again, "devices": len(jax.devices()), "sum": float(jnp.ones(3).sum()),
    "pool": [name for name, _ in threads.values()].count("tf_XLAEigen"),
    "cores": cores, "affinities": [affinity for _, affinity in threads.values()],
    "flags_kept": os.environ["XLA_FLAGS"] == flags,
}))
"""


def run_child(env: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2, reason="needs two cores and Linux")
def test_a_narrow_run_starts_with_one_device_on_one_thread_and_every_core_free():
    seen = run_child(dict(os.environ))  # this process's XLA_FLAGS were set by metarl: the child's too
    assert not seen["wide"] and seen["narrow"] and not seen["again"]  # a wide run starts nothing; a second call, once started
    assert seen["devices"] == 1 and seen["pool"] == 1 and seen["sum"] == 3.0
    assert all(affinity == seen["cores"] for affinity in seen["affinities"]) and seen["flags_kept"]

    env = {name: value for name, value in os.environ.items() if name != SET_HERE}  # as from a shell
    users = run_child({**env, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"})  # the user's count stands
    assert not users["narrow"] and users["devices"] == 2
    jax_setting = run_child({**os.environ, "JAX_NUM_CPU_DEVICES": "2"})  # so does JAX's own setting
    assert not jax_setting["narrow"] and jax_setting["devices"] == 2


def test_an_evaluation_that_deadlocked_xla_s_concurrent_cpu_scheduler_finishes(tmp_path, cli):
    # With XLA's concurrency-optimised CPU scheduler (jaxlib 0.10.2), `metarl eval --tasks 200` of a
    # run this small never finished on 2 cores: every thread idle, the result never ready.
    fresh = {name: value for name, value in os.environ.items() if name not in ("XLA_FLAGS", SET_HERE)}  # as from a shell
    flags = subprocess.run([sys.executable, "-c", "import os, metarl_cli; print(os.environ['XLA_FLAGS'])"], env=fresh,
                           capture_output=True, text=True, timeout=60).stdout
    assert f"{SCHEDULER_FLAG}=false" in flags and f"{SCHEDULER_FLAG}=false" in os.environ["XLA_FLAGS"]  # and for its children
    run = tmp_path / "run"
    code, _, err = cli("train", "maml", "--env", "cartpole-family", *set_args("iterations=1", "meta_batch=2", "lanes=2", "horizon=20"),
                       "-o", str(run), "-q")
    assert code == 0, err
    done = subprocess.run([sys.executable, "-m", "metarl_cli", "eval", str(run), "--tasks", "200", "-q"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "return on 200 'test' tasks" in " ".join(done.stdout.split())
