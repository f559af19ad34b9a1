"""k-armed Bernoulli bandits, the RL^2 paper's first benchmark (Duan et al. 2016, Table 1).

A task is k arm probabilities p_i ~ U[0, 1]; pulling arm a pays 1 with probability p_a. One episode
is `pulls` pulls and the observation is the clock: the fraction of the pulls already made, which
the finite-horizon strategies (Gittins, UCB1) also read. About the arms an agent learns only from
its previous actions and rewards. `train` and `test` draw from U[0, 1]^k with disjoint keys; there
is no held-out range, so no `ood` split. The arm count and the pulls come from the config (`arms`,
`pulls`).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from metarl_cli.errors import UserError
from metarl_cli.families.base import Family
from metarl_cli.rl.bandit_strategies import PARAM_NAME, STRATEGIES, total_rewards, tune

DEFAULT_ARMS, DEFAULT_PULLS = 10, 100


@struct.dataclass
class BanditState(environment.EnvState):
    time: int


@struct.dataclass
class BanditParams(environment.EnvParams):
    probs: jax.Array = struct.field(default_factory=lambda: jnp.full((DEFAULT_ARMS,), 0.5))
    max_steps_in_episode: int = DEFAULT_PULLS


def _clock(time, params: BanditParams) -> jax.Array:
    """The observation: the fraction of the episode's pulls already made."""
    return jnp.array([time / params.max_steps_in_episode], jnp.float32)


class BernoulliBandit(environment.Environment[BanditState, BanditParams]):
    """Arm a pays Bernoulli(probs[a]); the task lives in the parameters, so it survives resets."""

    def __init__(self, arms: int):
        super().__init__()
        self.arms = arms

    @property
    def default_params(self) -> BanditParams:
        return BanditParams(probs=jnp.full((self.arms,), 0.5))

    def step_env(self, key, state, action, params):
        reward = jax.random.bernoulli(key, params.probs[action]).astype(jnp.float32)
        time = state.time + 1
        return _clock(time, params), BanditState(time=time), reward, jnp.array(False), {}

    def reset_env(self, key, params):
        return _clock(0, params), BanditState(time=0)

    def is_terminated(self, state, params):
        return jnp.array(False)

    @property
    def num_actions(self) -> int:
        return self.arms

    def action_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(self.arms)

    def observation_space(self, params) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (1,), jnp.float32)


@dataclasses.dataclass(frozen=True)
class BanditFamily(Family):
    def with_config(self, config) -> Family:
        arms, pulls = getattr(config, "arms", DEFAULT_ARMS), getattr(config, "pulls", DEFAULT_PULLS)
        if getattr(config, "horizon", 0):  # family_for would set it over the pulls
            advice = "set pulls, not horizon" if hasattr(config, "pulls") else "only rl2 can set the pulls (--set pulls=N)"
            raise UserError(f"horizon = {config.horizon}: a bandit's episode is its pulls (now {pulls}); {advice}")
        if getattr(config, "episodes", 1) != 1:  # its trial is one episode, as its strategies and Table 1 take it
            raise UserError(f"episodes = {config.episodes}: a bandit's trial is one episode of its pulls (now {pulls}); set pulls, not episodes")
        return bandit_family(arms, pulls) if (arms, pulls) != (self.action_dim, self.horizon) else self

    def classic_strategy_scores(self, tasks, key, validation_tasks, episodes):
        """Greedy, epsilon-greedy, UCB1, Thompson and Gittins (RL^2 Table 1): each one's total reward
        over one episode of `pulls` pulls (the Table's trial)."""
        scores = {}
        for name in STRATEGIES:  # (the random policy is scored by the algorithm)
            param = tune(name, validation_tasks.probs, self.horizon, key)
            label = name if param is None else f"{name} ({PARAM_NAME[name]} {param:g}, tuned)"
            scores[label] = total_rewards(name, tasks.probs, self.horizon, key, param)[:, None]
        return scores


def bandit_family(arms: int = DEFAULT_ARMS, pulls: int = DEFAULT_PULLS) -> Family:
    env = BernoulliBandit(arms)

    def draw(key, n, split):
        probs = jax.random.uniform(key, (n, arms))
        return {"probs": probs}

    return BanditFamily(
        name="bandit",
        summary="k-armed Bernoulli bandit, p ~ U[0, 1] per arm (RL^2 Table 1); rl2 takes --set arms=K --set pulls=N",
        env=env,
        horizon=pulls,
        draw=draw,
        draw_text=f"arm probabilities p ~ U[0, 1]^{arms}",
        splits=("train", "test"),
    )
