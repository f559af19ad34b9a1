"""The MAML paper's 2D navigation family (Finn et al. 2017, Section 5.3).

A point starts at the origin and moves by its action, which lies in [-1, 1] per axis and is scaled
to at most 0.1 per step (the reference code wraps the environment in rllab's `normalize`, which maps
the policy's [-1, 1] onto the [-0.1, 0.1] action box, so a unit-variance policy is on the scale of
the box rather than ten times wider); the reward
is minus the distance to the task's goal after the move; the episode ends within 0.01 of the goal
(per axis, as in the reference code) or after 100 steps. Goals are uniform in [-0.5, 0.5]^2 for
training; the held-out split draws each coordinate from [-1, -0.5) or (0.5, 1], so its goals lie in
the four corner squares of [-1, 1]^2 outside the training square.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from metarl_cli.families.base import Family, ParamRange


@struct.dataclass
class PointNavState(environment.EnvState):
    pos: jax.Array
    time: int


@struct.dataclass
class PointNavParams(environment.EnvParams):
    goal_x: float = 0.0
    goal_y: float = 0.0
    max_action: float = 0.1
    goal_radius: float = 0.01
    max_steps_in_episode: int = 100


class PointNav(environment.Environment[PointNavState, PointNavParams]):
    """Point-mass navigation to a goal held in the parameters (so it survives auto-resets)."""

    @property
    def default_params(self) -> PointNavParams:
        return PointNavParams()

    def step_env(self, key, state, action, params):
        move = params.max_action * jnp.clip(action, -1.0, 1.0)
        pos = state.pos + move
        offset = pos - jnp.stack([params.goal_x, params.goal_y])
        reward = -jnp.sqrt(jnp.sum(offset**2))
        state = PointNavState(pos=pos, time=state.time + 1)
        return pos, state, reward, self.is_terminated(state, params), {}

    def reset_env(self, key, params):
        state = PointNavState(pos=jnp.zeros(2), time=0)
        return state.pos, state

    def is_terminated(self, state, params):
        offset = state.pos - jnp.stack([params.goal_x, params.goal_y])
        return jnp.all(jnp.abs(offset) < params.goal_radius)

    @property
    def num_actions(self) -> int:
        return 2

    def action_space(self, params=None) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (2,), jnp.float32)

    def observation_space(self, params) -> spaces.Box:
        return spaces.Box(-jnp.inf, jnp.inf, (2,), jnp.float32)


def point_nav_family() -> Family:
    env = PointNav()
    ring = ((-1.0, -0.5), (0.5, 1.0))
    return Family(
        name="point-nav",
        summary="2D point navigation to a random goal (MAML paper), continuous actions",
        env=env,
        ranges=(
            ParamRange("goal_x", 0.0, (-0.5, 0.5), ring, positive=False),
            ParamRange("goal_y", 0.0, (-0.5, 0.5), ring, positive=False),
        ),
        horizon=100,
    )
