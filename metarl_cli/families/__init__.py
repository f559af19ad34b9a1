"""Registry of task families: `get_family(name, ranges)` and `FAMILY_NAMES`."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from metarl_cli.errors import UserError
from metarl_cli.families.base import SPLITS, Family, ParamRange
from metarl_cli.families.physics import acrobot_family, cartpole_family, mountaincar_family, pendulum_family
from metarl_cli.families.point_nav import point_nav_family

_BUILDERS: dict[str, Callable[[], Family]] = {
    "cartpole-family": cartpole_family,
    "acrobot-family": acrobot_family,
    "mountaincar-family": mountaincar_family,
    "pendulum-family": pendulum_family,
    "point-nav": point_nav_family,
}
FAMILY_NAMES = tuple(_BUILDERS)


def get_family(name: str, ranges: dict[str, Any] | None = None) -> Family:
    """The named family, with any [ranges] overrides from the config applied and validated."""
    if name not in _BUILDERS:
        raise UserError(f"unknown env '{name}'; valid: {', '.join(FAMILY_NAMES)}")
    family = _BUILDERS[name]()
    return family.with_ranges(ranges) if ranges else family


def family_for(config) -> Family:
    """The family a config trains on: its env, its [ranges] overrides and its horizon (0: default)."""
    family = get_family(config.env, config.ranges)
    return dataclasses.replace(family, horizon=config.horizon) if config.horizon else family


__all__ = ["Family", "ParamRange", "SPLITS", "FAMILY_NAMES", "get_family", "family_for"]
