"""Random tabular MDPs, the RL^2 paper's second benchmark (Duan et al. 2016, Table 2).

|S| = 10 states, |A| = 5 actions. A task draws a mean reward mu(s, a) ~ N(1, 1) for every state and
action and a next-state distribution P(. | s, a) from a flat Dirichlet; a step pays mu(s, a) plus
unit Gaussian noise. Episodes start in state 0 and last 10 steps; the observation is the state,
one-hot. `train` and `test` draw with disjoint keys; there is no `ood` split. `metarl eval` plays
the paper's greedy and epsilon-greedy baselines, greedy on the posterior mean, and the same blind to
the state, on the same tasks (`metarl_cli/rl/mdp_strategies.py`).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from metarl_cli.families.base import Family
from metarl_cli.rl.mdp_strategies import strategy_returns, tune_epsilon

STATES, ACTIONS, EPISODE_STEPS = 10, 5, 10
MEAN_REWARD_PRIOR = (1.0, 1.0)  # mu(s, a) ~ N(mean, variance); a step's reward adds N(0, 1) noise


@struct.dataclass
class MdpState(environment.EnvState):
    state: int
    time: int


@struct.dataclass
class MdpParams(environment.EnvParams):
    mean_reward: jax.Array = struct.field(default_factory=lambda: jnp.ones((STATES, ACTIONS)))
    transitions: jax.Array = struct.field(default_factory=lambda: jnp.full((STATES, ACTIONS, STATES), 1.0 / STATES))
    max_steps_in_episode: int = EPISODE_STEPS


class TabularMDP(environment.Environment[MdpState, MdpParams]):
    """A finite MDP held in the parameters: rewards mu(s, a) + N(0, 1), next state ~ P(. | s, a)."""

    @property
    def default_params(self) -> MdpParams:
        return MdpParams()

    def step_env(self, key, state, action, params):
        k_reward, k_next = jax.random.split(key)
        reward = params.mean_reward[state.state, action] + jax.random.normal(k_reward)
        next_state = jax.random.categorical(k_next, jnp.log(params.transitions[state.state, action]))
        new = MdpState(state=next_state, time=state.time + 1)
        return jax.nn.one_hot(next_state, STATES), new, reward, jnp.array(False), {}

    def reset_env(self, key, params):
        return jax.nn.one_hot(0, STATES), MdpState(state=0, time=0)

    def is_terminated(self, state, params):
        return jnp.array(False)

    @property
    def num_actions(self) -> int:
        return ACTIONS

    def action_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(ACTIONS)

    def observation_space(self, params) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (STATES,), jnp.float32)


def _draw(key, n, split):
    k_mu, k_p = jax.random.split(key)
    prior_mean, prior_var = MEAN_REWARD_PRIOR
    mean_reward = prior_mean + jnp.sqrt(prior_var) * jax.random.normal(k_mu, (n, STATES, ACTIONS))
    transitions = jax.random.dirichlet(k_p, jnp.ones(STATES), (n, STATES, ACTIONS))
    return {"mean_reward": mean_reward, "transitions": transitions}


@dataclasses.dataclass(frozen=True)
class TabularMdpFamily(Family):
    def classic_strategy_scores(self, tasks, key, validation_tasks, episodes):
        """Greedy, epsilon-greedy (tuned on `validation_tasks`) and posterior greedy (RL^2 Table 2's
        simple baselines), and posterior greedy blind to the state: each one's return per episode of
        the trial."""
        epsilon = tune_epsilon(self.env, validation_tasks, episodes, self.horizon, key)
        play = lambda strategy, **kw: strategy_returns(strategy, self.env, tasks, episodes, self.horizon, key, **kw)  # noqa: E731
        return {
            "greedy (empirical means)": play("greedy"),
            f"epsilon-greedy (epsilon {epsilon:g}, tuned)": play("epsilon-greedy", epsilon=epsilon),
            "posterior greedy (true prior)": play("posterior greedy", prior=MEAN_REWARD_PRIOR),
            "state-blind posterior greedy": play("state-blind posterior greedy", prior=MEAN_REWARD_PRIOR),
        }


def tabular_mdp_family() -> Family:
    env = TabularMDP()
    return TabularMdpFamily(
        name="tabular-mdp",
        summary=f"random MDPs, {STATES} states, {ACTIONS} actions, {EPISODE_STEPS}-step episodes from state 0 (RL^2 Table 2)",
        env=env,
        horizon=EPISODE_STEPS,
        draw=_draw,
        draw_text="mu(s, a) ~ N(1, 1), P(. | s, a) ~ Dirichlet(1, ..., 1)",
        splits=("train", "test"),
    )
