"""A recurrent actor-critic for memory-based meta-RL (RL^2), as pure functions over flax modules.

Each step the agent sees (observation, previous action one-hot, previous reward, previous done
flag), embeds it, updates a GRU (or LSTM) state and outputs action logits and a value. The state
starts at zero at the beginning of a trial and carries across the trial's episodes, so whatever
the agent learned about the task in one episode is there in the next.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

CELLS = ("gru", "lstm")


class _Core(nn.Module):
    action_dim: int
    hidden: int
    cell: str

    def setup(self):
        self.embed = nn.Dense(self.hidden)
        self.memory = nn.GRUCell(self.hidden) if self.cell == "gru" else nn.OptimizedLSTMCell(self.hidden)
        self.policy = nn.Dense(self.action_dim, kernel_init=nn.initializers.orthogonal(0.01))
        self.value = nn.Dense(1)

    def __call__(self, carry, inputs):
        carry, h = self.memory(carry, nn.relu(self.embed(inputs)))
        return carry, self.policy(h), self.value(h)[..., 0]


class RecurrentAgent(NamedTuple):
    init: Callable[[jax.Array], Any]  # key -> params
    initial_carry: Callable[[int], Any]  # batch -> a zero memory state
    step: Callable  # (params, carry, inputs (B, in)) -> (carry, logits (B, A), values (B,))
    unroll: Callable  # (params, inputs (T, B, in)) -> (logits (T, B, A), values (T, B)), from a zero state
    input_dim: int


def agent_inputs(obs, prev_action, prev_reward, prev_done, action_dim: int) -> jax.Array:
    """What the agent sees at a step: (obs, one-hot previous action, previous reward, previous done)."""
    return jnp.concatenate(
        [obs, jax.nn.one_hot(prev_action, action_dim), prev_reward[..., None], prev_done[..., None].astype(obs.dtype)], axis=-1
    )


def make_recurrent_agent(obs_dim: int, action_dim: int, hidden: int, cell: str = "gru") -> RecurrentAgent:
    core = _Core(action_dim, hidden, cell)
    input_dim = obs_dim + action_dim + 2

    def initial_carry(batch: int):
        zeros = jnp.zeros((batch, hidden))
        return zeros if cell == "gru" else (zeros, zeros)

    def step(params, carry, inputs):
        return core.apply(params, carry, inputs)

    def unroll(params, inputs):
        def body(carry, x):
            carry, logits, values = step(params, carry, x)
            return carry, (logits, values)

        _, (logits, values) = jax.lax.scan(body, initial_carry(inputs.shape[1]), inputs)
        return logits, values

    def init(key):
        return core.init(key, initial_carry(1), jnp.zeros((1, input_dim)))

    return RecurrentAgent(init, initial_carry, step, unroll, input_dim)
