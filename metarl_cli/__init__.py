"""metarl: a command-line experiment runner for meta-reinforcement learning in JAX.

Importing the package makes XLA present each CPU core as its own device (unless XLA_FLAGS already
sets a count), before JAX starts: `--seeds N` then splits its seeds over the cores (see
`training.runner.seed_mesh`), which on a small CPU is far faster than all seeds contending for
every core; a single MAML-RL run splits its meta-batch over them the same way (`devices.split_tasks`).
Accelerators are unaffected.
"""

import os

__version__ = "0.1.0"


def _one_cpu_device_per_core() -> None:
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()


_one_cpu_device_per_core()
