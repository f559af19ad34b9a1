"""Supervised task families: each task is a function y = f_task(x) to regress from a few points.

`sinusoid` is the MAML paper's regression problem (Finn et al. 2017, Section 5.1): y = A sin(x - phi)
with A ~ U[0.1, 5], phi ~ U[0, pi], x ~ U[-5, 5]; its held-out split draws A from [5, 10] (phi
keeps its range). `linear` is y = a x + b, the introductory example of meta-learning for
regression; its held-out split draws a and b from outside the training interval.

A task is a dict of its parameters plus a key of its own, from which its support and query inputs
are drawn on device: every inner step of an adaptation sees the same support points, and every
method evaluated on a task sees the same points.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp

from metarl_cli.families.base import Interval, ParamRange, TaskDistribution

# Which points a task's key draws: support and query sets never share an input.
SUPPORT, QUERY = 0, 1


@dataclasses.dataclass(frozen=True)
class RegressionFamily(TaskDistribution):
    name: str
    summary: str
    ranges: tuple[ParamRange, ...]
    target: Callable[[dict[str, jax.Array], jax.Array], jax.Array]  # (task, x) -> y
    x_range: Interval

    def value(self, task: dict[str, Any], name: str) -> jax.Array:
        return task[name]

    def sample(self, key: jax.Array, n: int, split: str) -> dict[str, jax.Array]:
        """n tasks of the split: {parameter: (n,), "key": (n, 2)}."""
        k_values, k_points = jax.random.split(key)
        return {**self.sample_values(k_values, n, split), "key": jax.random.split(k_points, n)}

    def points(self, task: dict[str, jax.Array], which: int, n: int) -> tuple[jax.Array, jax.Array]:
        """n (x, y) pairs of one task: its support set (which=SUPPORT) or its query set (QUERY)."""
        lo, hi = self.x_range
        x = jax.random.uniform(jax.random.fold_in(task["key"], which), (n,), minval=lo, maxval=hi)
        return x, self.target(task, x)


def sinusoid_family() -> RegressionFamily:
    return RegressionFamily(
        name="sinusoid",
        summary="y = A sin(x - phi), x ~ U[-5, 5] (Finn et al. 2017); ood: larger amplitudes.",
        ranges=(
            ParamRange("amplitude", 2.55, (0.1, 5.0), ((5.0, 10.0),)),
            ParamRange("phase", math.pi / 2, (0.0, math.pi), (), positive=False),
        ),
        target=lambda task, x: task["amplitude"] * jnp.sin(x - task["phase"]),
        x_range=(-5.0, 5.0),
    )


def linear_family() -> RegressionFamily:
    outside = ((-3.0, -2.0), (2.0, 3.0))
    return RegressionFamily(
        name="linear",
        summary="y = a x + b, x ~ U[-5, 5]; ood: slopes and intercepts beyond the training interval.",
        ranges=(
            ParamRange("slope", 0.0, (-2.0, 2.0), outside, positive=False),
            ParamRange("intercept", 0.0, (-2.0, 2.0), outside, positive=False),
        ),
        target=lambda task, x: task["slope"] * x + task["intercept"],
        x_range=(-5.0, 5.0),
    )
