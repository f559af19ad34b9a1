"""An experience-replay buffer on device: a ring of transitions in one pytree, uniform sampling.

The buffer is part of the training state, so it is vmapped with the seeds, scanned with the steps
and checkpointed whole (resume is exact). Sampling draws indices below the number of transitions
written so far, never an unwritten slot.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class Transition(NamedTuple):
    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array  # the true next observation (the final one at an episode's end, before the reset)
    terminated: jax.Array  # the episode ended in a terminal state (not a time limit): no bootstrap


class Replay(NamedTuple):
    data: Any  # a Transition whose leaves have a leading axis of size `capacity`
    position: jax.Array  # next slot to write
    size: jax.Array  # slots written so far, at most capacity


def replay_init(example: Transition, capacity: int) -> Replay:
    """An empty buffer for transitions shaped like `example` (one transition, no batch axis)."""
    data = jax.tree.map(lambda x: jnp.zeros((capacity,) + jnp.shape(x), jnp.asarray(x).dtype), example)
    return Replay(data, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def replay_add(buffer: Replay, batch: Transition) -> Replay:
    """Write a batch of transitions (leading axis n <= capacity) at the ring's position."""
    capacity = jax.tree.leaves(buffer.data)[0].shape[0]
    n = jax.tree.leaves(batch)[0].shape[0]
    slots = (buffer.position + jnp.arange(n)) % capacity
    data = jax.tree.map(lambda store, x: store.at[slots].set(x.astype(store.dtype)), buffer.data, batch)
    return Replay(data, (buffer.position + n) % capacity, jnp.minimum(buffer.size + n, capacity))


def replay_sample(buffer: Replay, key: jax.Array, batch_size: int) -> Transition:
    """`batch_size` transitions drawn uniformly, with replacement, from the written slots."""
    idx = jax.random.randint(key, (batch_size,), 0, jnp.maximum(buffer.size, 1))
    return jax.tree.map(lambda store: store[idx], buffer.data)
