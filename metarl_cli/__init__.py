"""metarl: a command-line experiment runner for meta-reinforcement learning in JAX.

Importing the package makes XLA present each CPU core as its own device (unless XLA_FLAGS already
sets a count), before JAX starts: `--seeds N` then splits its seeds over the cores (see
`training.runner.seed_mesh`), which on a small CPU is far faster than all seeds contending for
every core; a single MAML-RL run splits its meta-batch over them the same way (`devices.split_tasks`).
`metarl train` starts a narrow run (one device's small operations) with one device on a one-thread
pool instead (`backend.start_for_training`). Accelerators are unaffected.

It also turns XLA's concurrency-optimised scheduler for the CPU off (unless XLA_FLAGS names that
flag, or jaxlib is later than 0.10: XLA stops at a flag it does not know, and of the jaxlibs metarl
installs the oldest, 0.10.0, and 0.10.2 were checked to know this one): with it, jaxlib 0.10.2 on a
2-core CPU ran some programs into a deadlock, every thread idle and the result never ready. The
adaptation curve of `metarl eval RUN --tasks 200` on a run with 2 lanes and a horizon of 20 hung so
(200 to 400 tasks hung, 100 to 180 did not; Eigen's products on one thread did not help); with the
scheduler off 200 to 1,000 tasks took 3.5 to 4.1 s. Training ran as fast, alternating runs on the
Intel Xeon: a MAML-RL meta-iteration on the cartpole-family defaults 134 to 143 ms against 137 to
146, DQN on CartPole 4,540 and 4,647 iterations/s against 4,737 and 4,863 (eight seeds' 200k env
steps 22.5 and 23.6 s against 23.2 and 24.4), sinusoid MAML 3,827 and 3,875 against 3,810 and 4,104.
"""

import importlib.metadata
import os
import re

SET_HERE = "METARL_XLA_FLAGS"  # the XLA_FLAGS a metarl process set, for the processes it starts
DEVICE_COUNT_FLAG = re.compile(r"--xla_force_host_platform_device_count=(\d+)")
SCHEDULER_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler"


def _jaxlib_knows_the_scheduler_flag() -> bool:
    try:
        major, minor = (int(part) for part in importlib.metadata.version("jaxlib").split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False
    return (major, minor) <= (0, 10)


def _without_the_concurrent_scheduler() -> None:
    """Add `SCHEDULER_FLAG`=false to XLA_FLAGS unless they name it or jaxlib may not know it (see the
    module's docstring); a device count set here stays recognisably metarl's (`SET_HERE`)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if SCHEDULER_FLAG in flags or not _jaxlib_knows_the_scheduler_flag():
        return
    os.environ["XLA_FLAGS"] = f"{flags} {SCHEDULER_FLAG}=false".strip()
    if os.environ.get(SET_HERE) == flags:
        os.environ[SET_HERE] = os.environ["XLA_FLAGS"]


def _one_cpu_device_per_core() -> bool:
    """Whether the device count in XLA_FLAGS is metarl's: set here, or inherited from a metarl
    process (False: the user's)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if DEVICE_COUNT_FLAG.search(flags):
        return flags == os.environ.get(SET_HERE)
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    os.environ["XLA_FLAGS"] = os.environ[SET_HERE] = f"{flags} --xla_force_host_platform_device_count={count}".strip()
    return True


OWN_DEVICE_COUNT = _one_cpu_device_per_core()
_without_the_concurrent_scheduler()
