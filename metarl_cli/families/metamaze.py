"""gymnax's MetaMaze with the goal held in the task, so it stays put for a whole RL^2 trial.

gymnax's `MetaMaze-misc` (a 9x9 maze, 3x3 local view, reward 10 at the goal, then a random restart
inside the same episode) draws a new goal in every reset, which would change the task at each
episode boundary of a trial. Here the goal is a task parameter: an index into the maze's open cells.
The goals are few, so fresh draws would repeat the training goals: every fifth open cell is held
out, `train` goals come from the other cells and `test` goals only from the held-out ones (there is
no `ood` split). Time in the observation is normalised over the episode's length.

Two departures from gymnax, both so that only the time limit ends an episode, as the trial's
episodes assume: gymnax restarts the agent at any open cell once it reaches the goal, the goal's own
included, and that restart then ends the episode (about one goal in 65); here the restart is at one
of the other cells. And gymnax normalises time over 100 steps whatever the horizon; here over the
horizon.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments.misc.meta_maze import EnvParams, EnvState, MetaMaze

from metarl_cli.families.base import Family

HELD_OUT_EVERY = 5


@struct.dataclass
class MazeParams(EnvParams):
    goal_index: int = 0
    normalize_time: bool = True


class FixedGoalMetaMaze(MetaMaze):
    """MetaMaze whose reset puts the goal at the task's open cell instead of drawing one."""

    @property
    def default_params(self) -> MazeParams:
        return MazeParams()

    def reset_env(self, key, params):
        state = EnvState(last_action=0, last_reward=jnp.array(0.0), pos=self.center_position,
                         goal=self.available_goals[params.goal_index], time=0.0)
        return self.get_obs(state, params), state

    def step_env(self, key, state, action, params):
        key, key_restart = jax.random.split(key)
        _, state, reward, _, info = super().step_env(key, state, action, params)
        # A restart drawn on the goal moves to an open cell drawn from the others (uniform over them).
        goal_cell = jnp.argmax(jnp.all(self.coords == state.goal, axis=1))
        other = jax.random.randint(key_restart, (), 0, len(self.coords) - 1)
        other = other + (other >= goal_cell)
        on_goal = jnp.all(state.pos == state.goal)
        state = state.replace(pos=jnp.where(on_goal, self.coords[other], state.pos))
        done = self.is_terminated(state, params)  # at the goal; never, as no restart is there
        return self.get_obs(state, params), state, reward, done, dict(info, discount=self.discount(state, params))

    def get_obs(self, state, params, key=None):
        obs = super().get_obs(state, params, key)
        clock = 2.0 * state.time / params.max_steps_in_episode - 1.0  # -1 at the start, 1 at the time limit
        return obs.at[-1].set(jnp.where(params.normalize_time, clock, state.time))


def metamaze_family() -> Family:
    env = FixedGoalMetaMaze()
    cells = jnp.arange(len(env.available_goals))
    held_out = cells % HELD_OUT_EVERY == 0
    pools = {"train": cells[~held_out], "test": cells[held_out]}

    def draw(key, n, split):
        return {"goal_index": jax.random.choice(key, pools[split], (n,))}

    return Family(
        name="metamaze",
        summary="gymnax MetaMaze (9x9, local 3x3 view, reward 10 at the goal), the goal fixed per task",
        env=env,
        horizon=100,
        draw=draw,
        draw_text=f"goal: one of {int((~held_out).sum())} open cells (test: the other {int(held_out.sum())})",
        splits=("train", "test"),
    )
