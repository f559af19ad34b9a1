"""Registry of task families: `get_family(name, ranges)` and `FAMILY_NAMES`.

RL families are gymnax environments (`Family`); supervised ones are regression problems
(`RegressionFamily`). Algorithms that handle both ask `is_regression`. A family's module is imported
when the family is first asked for: importing gymnax (with the plotting libraries it imports) takes
seconds that a regression run never needs.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from metarl_cli.errors import UserError
from metarl_cli.families.base import SPLITS, Family, ParamRange, TaskDistribution, check_ood_apart, per_task, task_count
from metarl_cli.families.regression import RegressionFamily

# name -> (module in metarl_cli.families, the function there that builds the family)
_BUILDERS: dict[str, tuple[str, str]] = {
    "cartpole": ("physics", "cartpole_single"),
    "cartpole-family": ("physics", "cartpole_family"),
    "acrobot-family": ("physics", "acrobot_family"),
    "mountaincar-family": ("physics", "mountaincar_family"),
    "pendulum-family": ("physics", "pendulum_family"),
    "point-nav": ("point_nav", "point_nav_family"),
    "sinusoid": ("regression", "sinusoid_family"),
    "linear": ("regression", "linear_family"),
    "bandit": ("bandit", "bandit_family"),
    "tabular-mdp": ("tabular_mdp", "tabular_mdp_family"),
    "metamaze": ("metamaze", "metamaze_family"),
}
FAMILY_NAMES = tuple(_BUILDERS)


def _build(name: str) -> TaskDistribution:
    module, builder = _BUILDERS[name]
    return getattr(importlib.import_module(f"metarl_cli.families.{module}"), builder)()


def is_regression(name: str) -> bool:
    """Whether the named family is a regression problem (False for RL families and unknown names):
    the regression families are the ones `families/regression.py` builds, so none need be built."""
    return name in _BUILDERS and _BUILDERS[name][0] == "regression"


def get_family(name: str, ranges: dict[str, Any] | None = None) -> TaskDistribution:
    """The named family, with any [ranges] overrides from the config applied and validated."""
    if name not in _BUILDERS:
        raise UserError(f"unknown env '{name}'; valid: {', '.join(FAMILY_NAMES)}")
    family = _build(name)
    return family.with_ranges(ranges) if ranges else family


def family_for(config) -> TaskDistribution:
    """The family a config trains on: its env, its [ranges] overrides, what its shape takes from the
    config (a bandit's arms and pulls) and, for RL, its horizon (0: default)."""
    family = get_family(config.env, config.ranges)
    if isinstance(family, Family):
        family = family.with_config(config)
    horizon = getattr(config, "horizon", 0)
    return dataclasses.replace(family, horizon=horizon) if horizon else family


__all__ = ["Family", "RegressionFamily", "TaskDistribution", "ParamRange", "SPLITS", "FAMILY_NAMES", "get_family", "family_for", "is_regression", "per_task", "task_count",
           "check_ood_apart"]
