"""The threefry lowering for the CPU (metarl_cli/threefry.py): the hash JAX's own lowering computes,
and in effect in what the algorithms compile."""

from __future__ import annotations

import re

import jax
import numpy as np
import pytest
from jax.extend.random import threefry_2x32

from metarl_cli.algos import make_algorithm
from metarl_cli.config import resolve_config
from metarl_cli.families import get_family

# Random123's known-answer vectors for Threefry-2x32, 20 rounds: key, counter, output.
KNOWN_ANSWERS = [
    ((0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
]


@pytest.mark.parametrize("key, counter, expected", KNOWN_ANSWERS)
def test_jax_random_hash_gives_the_known_answers(key, counter, expected):
    repeats = 3  # one key over a batch of counters: the first words, then the second words
    counters = np.array([counter[0]] * repeats + [counter[1]] * repeats, np.uint32)
    out = jax.jit(threefry_2x32)(np.array(key, np.uint32), counters)
    np.testing.assert_array_equal(np.asarray(out), np.array([expected[0]] * repeats + [expected[1]] * repeats, np.uint32))


def test_an_algorithms_step_hashes_in_loops_of_two_iterations_carrying_the_words_stacked():
    config = resolve_config("dqn", "cartpole", None, [])
    algo = make_algorithm("dqn", config, get_family(config.env, config.ranges))
    state = algo.init(jax.random.PRNGKey(0))
    compiled = jax.jit(algo.step).lower(state).compile().as_text()
    loops = [line for line in compiled.splitlines() if "known_trip_count" in line]
    trip_counts = {re.search(r'"known_trip_count":\{"n":"(\d+)"\}', line).group(1) for line in loops}
    assert loops and trip_counts == {"2"}  # JAX's own lowering loops five times
    # Each loop carries its counter, the two words as one (2, ...) array, and the three key words.
    carries = [re.search(r"= \((.*?)\) while\(", line).group(1).split(", ") for line in loops]
    assert all(len(carry) == 5 and carry[1].startswith("u32[2,") for carry in carries), carries
