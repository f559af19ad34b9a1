"""Classic-control task families with the Sunblaze train (R) and held-out (E) ranges.

Packer et al. (2018), "Assessing Generalization in Deep Reinforcement Learning": the parameters,
training ranges and extrapolation ranges are the paper's. Pendulum's torque is discretised so
value-based learners can use it.
"""

from __future__ import annotations

import jax.numpy as jnp
from gymnax.environments import spaces
from gymnax.environments.classic_control import Acrobot, CartPole, MountainCar, Pendulum

from metarl_cli.families.base import Family, ParamRange, outer_minus_inner


def _sunblaze(name: str, default: float, train: tuple[float, float], outer: tuple[float, float]) -> ParamRange:
    return ParamRange(name, default, train, outer_minus_inner(outer, train))


def _cartpole_derive(p):
    return p.replace(total_mass=p.masscart + p.masspole, polemass_length=p.masspole * p.length)


def _acrobot_derive(p):
    """Sunblaze draws one mass, one length and one moment of inertia for both links (here the first
    link's fields carry them). The centres of mass are put at half the drawn length, which is gym's
    0.5 at the default length; Sunblaze leaves them at 0.5 whatever the length (a deliberate
    difference: a longer link's mass sits further out)."""
    half = p.link_length_1 / 2.0
    return p.replace(link_mass_2=p.link_mass_1, link_length_2=p.link_length_1, link_com_pos_1=half, link_com_pos_2=half)


class DiscretePendulum(Pendulum):
    """Pendulum whose action is an index into evenly spaced torques in [-max_torque, max_torque]."""

    def __init__(self, n_torques: int = 5):
        super().__init__()
        self.n_torques = n_torques

    def step_env(self, key, state, action, params):
        torque = (2.0 * action / (self.n_torques - 1) - 1.0) * params.max_torque
        return super().step_env(key, state, jnp.asarray(torque, jnp.float32), params)

    @property
    def num_actions(self) -> int:
        return self.n_torques

    def action_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(self.n_torques)


def cartpole_family() -> Family:
    env = CartPole()
    return Family(
        name="cartpole-family",
        summary="CartPole-v1 with random force, pole length and pole mass (Sunblaze R/E)",
        env=env,
        ranges=(
            _sunblaze("force_mag", 10.0, (5.0, 15.0), (1.0, 20.0)),
            _sunblaze("length", 0.5, (0.25, 0.75), (0.05, 1.0)),
            _sunblaze("masspole", 0.1, (0.05, 0.5), (0.01, 1.0)),
        ),
        horizon=200,
        derive=_cartpole_derive,
    )


def cartpole_single() -> Family:
    """Plain CartPole-v1 (default physics, 500-step episodes): one task, the same in train and test,
    and no held-out (ood) one."""
    env = CartPole()
    return Family(
        name="cartpole",
        summary="gymnax CartPole-v1 with its default physics: a single task (DQN's benchmark)",
        env=env,
        horizon=500,
        splits=("train", "test"),
    )


def mountaincar_family() -> Family:
    env = MountainCar()
    return Family(
        name="mountaincar-family",
        summary="MountainCar-v0 with random engine force and gravity (Sunblaze R/E)",
        env=env,
        ranges=(
            _sunblaze("force", 0.001, (0.0005, 0.005), (0.0001, 0.01)),
            _sunblaze("gravity", 0.0025, (0.001, 0.005), (0.0005, 0.01)),
        ),
        horizon=200,
    )


def acrobot_family() -> Family:
    env = Acrobot()
    return Family(
        name="acrobot-family",
        summary="Acrobot-v1 with a random link length, link mass (both links) and moment of inertia (Sunblaze R/E)",
        env=env,
        ranges=tuple(_sunblaze(n, 1.0, (0.75, 1.25), (0.5, 1.5)) for n in ("link_length_1", "link_mass_1", "link_moi")),
        horizon=500,
        derive=_acrobot_derive,
    )


def pendulum_family() -> Family:
    env = DiscretePendulum()
    return Family(
        name="pendulum-family",
        summary="Pendulum-v1, 5 discrete torques, random length and mass (Sunblaze R/E)",
        env=env,
        ranges=(
            _sunblaze("l", 1.0, (0.75, 1.25), (0.5, 1.5)),
            _sunblaze("m", 1.0, (0.75, 1.25), (0.5, 1.5)),
        ),
        horizon=200,
    )
