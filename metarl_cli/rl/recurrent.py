"""A recurrent actor-critic for memory-based meta-RL (RL^2), as pure functions over a flax module.

Each step the agent sees (observation, previous action one-hot, previous reward, previous done
flag), embeds it, updates a GRU (or LSTM) state and outputs action logits and a value. Two options
add multiplicative interactions (Jayakumar et al. 2020) where the plain inputs leave them to the
memory's gates. With `multiplicative_inputs` the agent also sees the outer product of the previous
action's one-hot with the observation it was taken in, and the one-hot and that product times the
reward the action earned: a memory that sums them holds each (state, action) pair's visit count
and reward sum (each arm's, on a bandit). With `gated_heads` the policy and value heads read the
memory h and h times each entry of the current observation (a separate linear read-out per state
when states are one-hot), so acting on what the memory holds about the current state need not be
computed inside the memory. The state starts at zero at the beginning of a trial and carries
across the trial's episodes, so whatever the agent learned about the task in one episode is there
in the next. The value head predicts in units of `value_scale` (the trainer passes the discounted
horizon), so its outputs stay of order one however long the horizon.

The module is split into three parts so that an unroll over a recorded trial (the PPO update) runs
only the recurrence inside its scan: the embedding and the cell's input projections are one matmul
over the whole (time, lanes) block before the scan, and the policy and value heads one after it.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

_GATES = {"gru": 3, "lstm": 4}


class _Core(nn.Module):
    action_dim: int
    hidden: int
    cell: str
    value_scale: float
    obs_dim: int = 0  # > 0: the heads also read the memory gated by each entry of the observation

    def setup(self):
        gates = _GATES[self.cell] * self.hidden
        self.embed = nn.Dense(self.hidden)
        self.input_gates = nn.Dense(gates)
        self.hidden_gates = nn.Dense(gates, kernel_init=nn.initializers.orthogonal())
        self.policy = nn.Dense(self.action_dim, kernel_init=nn.initializers.orthogonal(0.01))
        self.value = nn.Dense(1)

    def project(self, inputs):
        """The cell's input-side gate pre-activations, for any leading shape."""
        return self.input_gates(nn.relu(self.embed(inputs)))

    def recur(self, carry, projected):
        """One step of the memory from projected inputs: (carry, output h)."""
        if self.cell == "gru":
            x_r, x_z, x_n = jnp.split(projected, 3, axis=-1)
            h_r, h_z, h_n = jnp.split(self.hidden_gates(carry), 3, axis=-1)
            reset, update = nn.sigmoid(x_r + h_r), nn.sigmoid(x_z + h_z)
            candidate = jnp.tanh(x_n + reset * h_n)
            h = (1.0 - update) * candidate + update * carry
            return h, h
        c, h = carry
        i, f, g, o = jnp.split(projected + self.hidden_gates(h), 4, axis=-1)
        c = nn.sigmoid(f) * c + nn.sigmoid(i) * jnp.tanh(g)
        h = nn.sigmoid(o) * jnp.tanh(c)
        return (c, h), h

    def heads(self, h, inputs):
        if self.obs_dim:  # the observation is the first obs_dim entries of the inputs (`agent_inputs`)
            gated = h[..., None, :] * inputs[..., : self.obs_dim, None]
            h = jnp.concatenate([h, gated.reshape(*h.shape[:-1], -1)], axis=-1)
        return self.policy(h), self.value(h)[..., 0] * self.value_scale

    def __call__(self, carry, inputs):
        carry, h = self.recur(carry, self.project(inputs))
        return (carry, *self.heads(h, inputs))


class RecurrentAgent(NamedTuple):
    init: Callable[[jax.Array], Any]  # key -> params
    initial_carry: Callable[[int], Any]  # batch -> a zero memory state
    inputs: Callable  # (obs, prev_obs, prev_action, prev_reward, prev_done), each (B, ...) -> inputs (B, in)
    step: Callable  # (params, carry, inputs (B, in)) -> (carry, logits (B, A), values (B,))
    unroll: Callable  # (params, inputs (T, B, in)) -> (logits (T, B, A), values (T, B)), from a zero state


def agent_inputs(obs, prev_obs, prev_action, prev_reward, prev_done, action_dim: int, multiplicative: bool) -> jax.Array:
    """What the agent sees at a step: (obs, one-hot previous action, previous reward, [the
    multiplicative inputs], previous done). `prev_obs`: the observation the previous action was taken in."""
    action = jax.nn.one_hot(prev_action, action_dim)
    parts = [obs, action, prev_reward[..., None]]
    if multiplicative:
        paired = (action[..., :, None] * prev_obs[..., None, :]).reshape(*action.shape[:-1], -1)
        reward = prev_reward[..., None]
        parts += [paired, action * reward, paired * reward]
    return jnp.concatenate(parts + [prev_done[..., None].astype(obs.dtype)], axis=-1)


def make_recurrent_agent(obs_dim: int, action_dim: int, hidden: int, cell: str = "gru", value_scale: float = 1.0,
                         multiplicative_inputs: bool = False, gated_heads: bool = False) -> RecurrentAgent:
    """`value_scale`: the value head's output unit, so that it predicts returns of order one;
    `multiplicative_inputs` and `gated_heads`: the options above."""
    core = _Core(action_dim, hidden, cell, value_scale, obs_dim if gated_heads else 0)
    input_dim = obs_dim + action_dim + 2 + (action_dim * (2 * obs_dim + 1) if multiplicative_inputs else 0)

    def inputs(obs, prev_obs, prev_action, prev_reward, prev_done):
        return agent_inputs(obs, prev_obs, prev_action, prev_reward, prev_done, action_dim, multiplicative_inputs)

    def initial_carry(batch: int):
        zeros = jnp.zeros((batch, hidden))
        return zeros if cell == "gru" else (zeros, zeros)

    def step(params, carry, inputs):
        return core.apply(params, carry, inputs)

    def unroll(params, inputs):
        projected = core.apply(params, inputs, method=_Core.project)

        def body(carry, x):
            return core.apply(params, carry, x, method=_Core.recur)

        _, outputs = jax.lax.scan(body, initial_carry(inputs.shape[1]), projected)
        return core.apply(params, outputs, inputs, method=_Core.heads)

    def init(key):
        return core.init(key, initial_carry(1), jnp.zeros((1, input_dim)))

    return RecurrentAgent(init, initial_carry, inputs, step, unroll)
