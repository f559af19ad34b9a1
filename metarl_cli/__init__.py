"""metarl: a command-line experiment runner for meta-reinforcement learning in JAX.

Importing the package makes XLA present each CPU core as its own device (unless XLA_FLAGS already
sets a count), before JAX starts: `--seeds N` then splits its seeds over the cores (see
`training.runner.seed_mesh`), which on a small CPU is far faster than all seeds contending for
every core; a single MAML-RL run splits its meta-batch over them the same way (`devices.split_tasks`).
`metarl train` starts a narrow run (one device's small operations) with one device on a one-thread
pool instead (`backend.start_for_training`). Accelerators are unaffected.
"""

import os
import re

__version__ = "0.1.0"


SET_HERE = "METARL_XLA_FLAGS"  # the XLA_FLAGS a metarl process set, for the processes it starts
DEVICE_COUNT_FLAG = re.compile(r"--xla_force_host_platform_device_count=(\d+)")


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
