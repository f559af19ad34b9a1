"""Registry of task families: `get_family(name, ranges)` and `FAMILY_NAMES`.

RL families are gymnax environments (`Family`); supervised ones are regression problems
(`RegressionFamily`). Algorithms that handle both ask `is_regression`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from metarl_cli.errors import UserError
from metarl_cli.families.bandit import bandit_family
from metarl_cli.families.base import SPLITS, Family, ParamRange, TaskDistribution
from metarl_cli.families.metamaze import metamaze_family
from metarl_cli.families.physics import acrobot_family, cartpole_family, cartpole_single, mountaincar_family, pendulum_family
from metarl_cli.families.point_nav import point_nav_family
from metarl_cli.families.regression import RegressionFamily, linear_family, sinusoid_family
from metarl_cli.families.tabular_mdp import tabular_mdp_family

_BUILDERS: dict[str, Callable[[], TaskDistribution]] = {
    "cartpole": cartpole_single,
    "cartpole-family": cartpole_family,
    "acrobot-family": acrobot_family,
    "mountaincar-family": mountaincar_family,
    "pendulum-family": pendulum_family,
    "point-nav": point_nav_family,
    "sinusoid": sinusoid_family,
    "linear": linear_family,
    "bandit": bandit_family,
    "tabular-mdp": tabular_mdp_family,
    "metamaze": metamaze_family,
}
FAMILY_NAMES = tuple(_BUILDERS)


def is_regression(name: str) -> bool:
    """Whether the named family is a regression problem (False for RL families and unknown names)."""
    return name in _BUILDERS and isinstance(_BUILDERS[name](), RegressionFamily)


def get_family(name: str, ranges: dict[str, Any] | None = None) -> TaskDistribution:
    """The named family, with any [ranges] overrides from the config applied and validated."""
    if name not in _BUILDERS:
        raise UserError(f"unknown env '{name}'; valid: {', '.join(FAMILY_NAMES)}")
    family = _BUILDERS[name]()
    return family.with_ranges(ranges) if ranges else family


def family_for(config) -> TaskDistribution:
    """The family a config trains on: its env, its [ranges] overrides, what its shape takes from the
    config (a bandit's arms and pulls) and, for RL, its horizon (0: default)."""
    family = get_family(config.env, config.ranges)
    if isinstance(family, Family):
        family = family.with_config(config)
    horizon = getattr(config, "horizon", 0)
    return dataclasses.replace(family, horizon=horizon) if horizon else family


__all__ = ["Family", "RegressionFamily", "TaskDistribution", "ParamRange", "SPLITS", "FAMILY_NAMES", "get_family", "family_for", "is_regression"]
