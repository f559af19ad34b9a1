"""The threefry hash behind `jax.random`, lowered for the CPU in a loop of two iterations, not five.

On the CPU, JAX computes the threefry2x32 hash (20 rounds: five groups of four, a key injection
after each) as a `while` loop over the five groups. Our programs hash small key arrays at every
environment step (action sampling, per-lane keys, auto-resets), where each loop iteration costs the
CPU runtime a few dispatches for very little arithmetic. `register_cpu_lowering`, called where the
algorithms are built (`metarl_cli.algos`), registers a lowering that does the first group before
the loop and two groups per iteration: two iterations instead of five, the same 20 rounds of Salmon
et al. (2011), so every random number is bit for bit what JAX's own lowering gives (the tests
check the published known-answer vectors).

The loop stays a loop on purpose: fully unrolled, the hash is a long chain of integer operations
that XLA's fusion copies into every consumer, and through a chain of key splits the copies
multiply (one sinusoid MAML meta-iteration compiled in 23 s instead of 2 s, a scan of 500 did not
finish in 25 minutes). A loop's result is a buffer that consumers read, as with JAX's own lowering.

Measured on the 2-core CPU, both lowerings of one program compiled in one process and timed in
alternating blocks: a MAML-RL meta-iteration on the cartpole-family defaults took 0.88 to 0.96 of
its time with JAX's loop (six runs, median 0.90; compile time unchanged); a DQN iteration on
CartPole (one core, after learning starts) 0.96 of it for one seed, 1.01 for four. Carrying the two
words as one stacked array and the keys unchanged (below) then took, on the Intel Xeon (AVX-512), a
sinusoid MAML meta-iteration (K = 10) from 346 to 333-337 us and a DQN iteration from 183-194 to
167-187 us for one seed and from 668-697 to 647-675 us for eight, the numbers the same bit for bit;
MAML-RL, whose time is in its matrix products, was unchanged (115 ms).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend.random import threefry2x32_p
from jax.interpreters import mlir

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))  # even groups, odd groups
_PARITY = np.uint32(0x1BD11BDA)


def _rotate_left(x, bits: int):
    return (x << np.uint32(bits)) | (x >> np.uint32(32 - bits))


def _rounds(x1, x2, rotations):
    for bits in rotations:
        x1 = x1 + x2
        x2 = x1 ^ _rotate_left(x2, bits)
    return x1, x2


def threefry2x32(key1, key2, count1, count2):
    """Threefry-2x32, 20 rounds, of the counter words (count1, count2) under (key1, key2), all uint32
    arrays of broadcastable shapes. After group g the key words k[(g + 1) % 3] and k[(g + 2) % 3] + g + 1
    are injected, k = (key1, key2, key1 ^ key2 ^ parity): group 0 here, groups 1-2 and 3-4 in the loop.
    The loop carries the two words stacked in one array and the key words unchanged (it picks an
    iteration's pair by its index), so that an iteration is one fused kernel and a counter update
    (carrying the words and a turning key triple apart took XLA five copies and two kernels an
    iteration, and a hash about three times as long)."""
    k0, k1, k2 = key1, key2, key1 ^ key2 ^ _PARITY
    x1, x2 = _rounds(count1 + k0, count2 + k1, _ROTATIONS[0])
    x1, x2 = x1 + k1, x2 + k2 + np.uint32(1)

    def two_groups(i, words):  # groups 2i + 1 (odd rotations) and 2i + 2 (even rotations)
        first = i == 0  # the key words injected: (k2, k0, k1) after groups 1-2, (k1, k2, k0) after 3-4
        a, b, c = jnp.where(first, k2, k1), jnp.where(first, k0, k2), jnp.where(first, k1, k0)
        after = lax.convert_element_type(2 * i + 2, np.uint32)
        x1, x2 = _rounds(words[0], words[1], _ROTATIONS[1])
        x1, x2 = x1 + a, x2 + b + after
        x1, x2 = _rounds(x1, x2, _ROTATIONS[0])
        return jnp.stack([x1 + b, x2 + c + after + np.uint32(1)])

    words = lax.fori_loop(0, 2, two_groups, jnp.stack([x1, x2]))
    return words[0], words[1]


def register_cpu_lowering() -> None:
    """Lower every threefry hash compiled from now on, on the CPU, with `threefry2x32`."""
    mlir.register_lowering(threefry2x32_p, mlir.lower_fun(threefry2x32, multiple_results=True), platform="cpu")
