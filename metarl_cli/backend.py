"""How a command starts JAX's CPU backend: one device per core, or one device on a one-thread pool.

Importing `metarl_cli` makes each core an XLA device (metarl_cli/__init__.py), which programs that
spread over the cores need: several seeds, a MAML-RL meta-batch split over the devices. A training
run whose program runs on one device and is made of small operations does better with XLA's CPU
backend started as one device whose pool of worker threads has one thread: its operations then run
one after another on the thread that runs the program, instead of being handed between two threads
on two cores. Measured on the 2-core Intel Xeon, one program compiled and timed each way: a DQN
iteration on CartPole (one seed, after learning starts) took 126 to 129 us against 170 to 178 us, a
sinusoid MAML meta-iteration (K = 10) 259 to 278 us against 324 to 346 us; `metarl train maml-dqn
--env cartpole-family` ran 42 against 35 meta-iterations/s, its checkpoints costing the training
thread 0.13 s against 2.1 s in 300 iterations (the saving thread has the other core to itself).
The two pools round products differently, so such a run gives other numbers, by floating-point
rounding, than the same run in a process with a device per core.

XLA sizes that pool from the CPUs the starting thread may run on, so `start_for_training` narrows
them to one core while the backend starts and then lets every thread of the process run on all the
cores the process had: the one worker thread, like any other, runs on whichever core is free (two
such runs side by side, as a sweep runs them, each get a core).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os

import jax

import metarl_cli
from metarl_cli import DEVICE_COUNT_FLAG
from metarl_cli.devices import shares
from metarl_cli.families import is_regression


def narrow_training(algo_name: str, config, cores: int) -> bool:
    """Whether the training program of `config` runs on one device where each of `cores` cores is a
    device (its seeds cannot be shared out evenly: `training.runner.seed_mesh`) and is made of
    operations too small to share between threads: DQN's and maml-dqn's batches of transitions, a
    regression's points. MAML-RL's policy passes over thousands of steps a task and RL^2's batches
    of trials gain from a second thread (RL^2 on the bandits ran at 28,620 env steps/s on one
    thread against 36,511 on two); a single MAML-RL run is split over the devices anyway."""
    if shares(config.seeds, cores) > 1:
        return False
    if algo_name == "maml":
        return is_regression(config.env)
    return algo_name in ("dqn", "maml-dqn")


def start_for_training(algo_name: str, config) -> bool:
    """Start JAX's backends as the training run of `config` wants them: with one CPU device on a
    one-thread pool where its program is narrow (`narrow_training`); True where it started them with
    one device. Nothing is
    done (False) for other programs, or where the backends have started already, the user set the
    device count (XLA_FLAGS, JAX_NUM_CPU_DEVICES), an accelerator plugin may start its backend with
    the CPU's, or the OS cannot narrow a thread to some cores."""
    flags = os.environ.get("XLA_FLAGS", "")
    count = DEVICE_COUNT_FLAG.search(flags)
    if not (metarl_cli.OWN_DEVICE_COUNT and count and hasattr(os, "sched_setaffinity")):
        return False
    devices = int(count.group(1))
    if devices < 2 or not narrow_training(algo_name, config, devices):
        return False
    if jax.config.jax_num_cpu_devices >= 0 or _accelerator_plugin() or _backend_started():
        return False
    cores = os.sched_getaffinity(0)
    try:
        os.environ["XLA_FLAGS"] = DEVICE_COUNT_FLAG.sub("--xla_force_host_platform_device_count=1", flags)
        os.sched_setaffinity(0, {min(cores)})
        started = jax.devices()
    finally:
        os.environ["XLA_FLAGS"] = flags  # for the processes this one starts
        _free_every_thread(cores)
    return len(started) == 1


def _free_every_thread(cores: set[int]) -> None:
    """Let every thread of this process run on any of `cores`, again until no new thread appears (a
    thread started by a narrowed one starts narrowed)."""
    os.sched_setaffinity(0, cores)
    freed: set[str] = set()
    try:
        while threads := set(os.listdir("/proc/self/task")) - freed:
            for thread in threads:
                try:
                    os.sched_setaffinity(int(thread), cores)
                except ProcessLookupError:  # a thread that ended meanwhile
                    pass
            freed |= threads
    except FileNotFoundError:  # no /proc: the calling thread was freed above
        pass


def _accelerator_plugin() -> bool:
    """Whether JAX may start a GPU or TPU backend: JAX_PLATFORMS does not say "cpu" alone, and a
    plugin is installed (found the ways jax._src.xla_bridge finds them)."""
    if os.environ.get("JAX_PLATFORMS", "").strip().lower() == "cpu":
        return False
    found = importlib.util.find_spec("jax_plugins") or importlib.util.find_spec("libtpu")
    return found is not None or bool(importlib.metadata.entry_points(group="jax_plugins"))


def _backend_started() -> bool:
    """Whether JAX's backends have started; True where this JAX cannot say (the backend is then left as it is)."""
    from jax._src import xla_bridge  # JAX has no public way to ask

    started = getattr(xla_bridge, "backends_are_initialized", None)
    return started is None or started()
