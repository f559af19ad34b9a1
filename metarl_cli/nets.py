"""Flax networks: the MLP (a regressor on its own) and policies, an MLP torso with a categorical or
diagonal-Gaussian head.

`make_policy(obs_dim, action_dim, discrete, hidden)` returns pure functions (init, sample, log_prob)
so the algorithms never branch on the action space themselves.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class MLP(nn.Module):
    """ReLU MLP: hidden layers, then a linear output of size `out`."""

    hidden: Sequence[int]
    out: int

    @nn.compact
    def __call__(self, x):
        for width in self.hidden:
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(self.out)(x)


class GaussianHead(nn.Module):
    """Mean from an MLP; a state-independent log standard deviation (initialised at 0)."""

    hidden: Sequence[int]
    action_dim: int

    @nn.compact
    def __call__(self, x):
        mean = MLP(self.hidden, self.action_dim)(x)
        log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))
        return mean, jnp.broadcast_to(log_std, mean.shape)


class PolicyFns(NamedTuple):
    init: Callable  # key -> params
    sample: Callable  # (params, obs, key) -> action
    log_prob: Callable  # (params, obs, action) -> log pi(action | obs)


def make_policy(obs_dim: int, action_dim: int, discrete: bool, hidden: Sequence[int]) -> PolicyFns:
    dummy = jnp.zeros((obs_dim,))
    if discrete:
        net = MLP(tuple(hidden), action_dim)

        def sample(params, obs, key):
            return jax.random.categorical(key, net.apply(params, obs))

        def log_prob(params, obs, action):
            logits = net.apply(params, obs)
            # A one-hot product rather than a gather: its derivatives of every order stay dense.
            return jnp.sum(jax.nn.one_hot(action, action_dim) * jax.nn.log_softmax(logits), axis=-1)

    else:
        net = GaussianHead(tuple(hidden), action_dim)

        def sample(params, obs, key):
            mean, log_std = net.apply(params, obs)
            return mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)

        def log_prob(params, obs, action):
            mean, log_std = net.apply(params, obs)
            z = (action - mean) / jnp.exp(log_std)
            return jnp.sum(-0.5 * z**2 - log_std - 0.5 * jnp.log(2 * jnp.pi), axis=-1)

    def flat_log_prob(params, obs, action):
        # XLA's CPU matmuls are several times faster on (rows, features) than on (T, L, features).
        lead = obs.shape[:-1]
        flat_action = action.reshape((-1,) + action.shape[len(lead):])
        return log_prob(params, obs.reshape(-1, obs.shape[-1]), flat_action).reshape(lead)

    return PolicyFns(init=lambda key: net.init(key, dummy), sample=sample, log_prob=flat_log_prob)
