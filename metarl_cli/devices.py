"""How one compiled program spreads over the local devices (on a CPU each core is one device, see
metarl_cli/__init__.py): an even share of a batch axis per device.

Independent seeds go one share per device (`training.runner.seed_mesh`); a single MAML-RL run's
meta-batch of tasks is split the same way (`split_tasks`, used by `algos.maml` where a task's work
is large), each device drawing and differentiating its share and the results averaged across the
devices. On a small CPU that is faster than one program whose small operations (a rollout's steps)
run on one core while the other waits.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P


def local_devices_text() -> str:
    """Where programs run, as `metarl train` says it at the start: the platform and the number of
    local devices, e.g. "gpu, 1 device" or "cpu, 2 devices" (one per core)."""
    devices = jax.local_devices()
    return f"{devices[0].platform}, {len(devices)} device{'s' if len(devices) > 1 else ''}"


def shares(count: int, devices: int) -> int:
    """The most of `devices` devices that share `count` items evenly."""
    return max(d for d in range(1, min(devices, count) + 1) if count % d == 0)


def even_mesh(count: int, axis: str) -> Mesh | None:
    """The most local devices that share `count` items evenly, as a mesh with one axis; None where
    that is one device."""
    devices, used = _sharing(count)
    return Mesh(np.array(devices[:used]), (axis,)) if used > 1 else None


def uneven_split_note(count: int, what: str, key: str) -> str | None:
    """What `metarl train` says where `count` items it would split over the local devices (`what`,
    set by config `key`) leave devices idle because they do not split evenly (`even_mesh`); None
    where they do not."""
    devices, used = _sharing(count)
    if used >= min(count, len(devices)):
        return None
    return (f"{what} ({key} = {count}) do not split evenly over the {len(devices)} devices: they run on {used} "
            f"(a multiple of {len(devices)} uses every device)")


def _sharing(count: int):
    """(the local devices, how many of them share `count` items evenly)."""
    devices = jax.local_devices()
    return devices, shares(count, len(devices))


def split_tasks(fn, mesh: Mesh | None):
    """`fn(params, tasks, keys)`, whose outputs are means over the tasks, run on each device of `mesh`
    for its share of the tasks (and keys) and averaged across them; `fn` itself without a mesh."""
    if mesh is None:
        return fn
    axis = mesh.axis_names[0]

    def share(params, tasks, keys):
        return jax.lax.pmean(fn(params, tasks, keys), axis)

    return jax.shard_map(share, mesh=mesh, in_specs=(P(), P(axis), P(axis)), out_specs=P(), check_vma=False)


def replicate(tree, mesh: Mesh | None):
    """`tree` placed whole on every device of `mesh` (as-is without one): a state that a program split
    by `split_tasks` starts from, so its first call compiles for the placement every later call sees."""
    return tree if mesh is None else jax.device_put(tree, NamedSharding(mesh, P()))
