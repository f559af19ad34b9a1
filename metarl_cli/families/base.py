"""Task distributions with named splits, and the RL family: a gymnax environment plus a distribution
over its parameters.

`TaskDistribution` is what every family shares: named randomised parameters (`ParamRange`), each
with a training interval and held-out intervals, sampled per split from its own key stream, a task
description vector, and range overrides from the config. `Family` adds the gymnax environment.
Sampling is pure and batched (`sample(key, n, split)` returns a batched EnvParams), so it runs on
device under jit and vmap. The task lives in EnvParams, which the environment receives on every
step, so it stays fixed across gymnax's auto-resets.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp

from metarl_cli.errors import UserError

SPLITS = ("train", "test", "ood")
# Each split draws from its own key stream, so `test` tasks are never the tasks training saw.
SPLIT_STREAMS = {"train": 0, "test": 1, "ood": 2}

Interval = tuple[float, float]


@dataclasses.dataclass(frozen=True)
class ParamRange:
    """One randomised parameter: its default, training interval and held-out intervals.

    An empty `ood` means the parameter keeps its training interval in the ood split (another
    parameter carries the shift)."""

    name: str
    default: float
    train: Interval
    ood: tuple[Interval, ...]
    positive: bool = True

    def intervals(self, split: str) -> tuple[Interval, ...]:
        return (self.train,) if split in ("train", "test") or not self.ood else self.ood

    def validate(self) -> None:
        for lo, hi in (self.train, *self.ood):
            if not (math.isfinite(lo) and math.isfinite(hi)):
                raise UserError(f"range for '{self.name}' must be finite, got [{lo}, {hi}]")
            if lo > hi:
                raise UserError(f"range for '{self.name}' has min > max: [{lo}, {hi}]")
            if self.positive and lo <= 0:
                raise UserError(f"range for '{self.name}' must be positive (a physical quantity), got [{lo}, {hi}]")
        t_lo, t_hi = self.train
        for lo, hi in self.ood:
            if lo < t_hi and hi > t_lo:
                raise UserError(
                    f"ood range [{lo}, {hi}] for '{self.name}' overlaps its train range [{t_lo}, {t_hi}]; "
                    f"set ranges.ood.{self.name} to intervals outside it"
                )

    def check_ood_apart(self) -> None:
        """A UserError where two of the ood intervals overlap: drawn by length, the stretch they share
        would come up twice as often as the rest. Checked for new runs (`check_ood_apart`)."""
        ordered = sorted(self.ood)  # where any two overlap, two neighbours in this order do
        overlapping = [(a, b) for a, b in zip(ordered, ordered[1:]) if b[0] < a[1]]
        if not overlapping:
            return
        union = []
        for lo, hi in ordered:
            if union and lo < union[-1][1]:
                union[-1][1] = max(union[-1][1], hi)
            else:
                union.append([lo, hi])
        (a_lo, a_hi), (b_lo, b_hi) = overlapping[0]
        raise UserError(f"ood ranges [{a_lo}, {a_hi}] and [{b_lo}, {b_hi}] for '{self.name}' overlap; "
                        f"give intervals apart, such as their union: {union}")

    def sample(self, key: jax.Array, n: int, split: str) -> jax.Array:
        """Uniform over the union of the split's intervals (weighted by their lengths)."""
        ivals = self.intervals(split)
        lo = jnp.array([a for a, _ in ivals])
        hi = jnp.array([b for _, b in ivals])
        width = hi - lo
        k_pick, k_val = jax.random.split(key)
        if len(ivals) == 1:
            pick = jnp.zeros((n,), jnp.int32)
        else:  # by length; intervals that are all single values, each as likely (None: uniform)
            weights = width / width.sum() if sum(b - a for a, b in ivals) > 0 else None
            pick = jax.random.choice(k_pick, len(ivals), (n,), p=weights)
        u = jax.random.uniform(k_val, (n,))
        return lo[pick] + u * width[pick]


def check_ood_apart(family) -> None:
    """A UserError where a parameter of `family` has ood intervals that overlap (`ParamRange.check_ood_apart`):
    for new runs only, so that a run made before the check still evaluates and resumes on its ranges."""
    for param in getattr(family, "ranges", ()):
        param.check_ood_apart()


class TaskDistribution:
    """Named randomised parameters with per-split ranges; a dataclass with `name` and `ranges`."""

    name: str
    ranges: tuple[ParamRange, ...]

    @property
    def one_task(self) -> bool:
        """No randomised parameters: every task of every split is the same one, so held-out "tasks"
        differ only in their random starts (plain CartPole)."""
        return not self.ranges

    def sample_values(self, key: jax.Array, n: int, split: str) -> dict[str, jax.Array]:
        """n draws of every randomised parameter from the split, each parameter from its own key."""
        if split not in SPLITS:
            raise UserError(f"unknown split '{split}'; valid: {', '.join(SPLITS)}")
        key = jax.random.fold_in(key, SPLIT_STREAMS[split])
        keys = jax.random.split(key, len(self.ranges))
        return {r.name: r.sample(k, n, split) for r, k in zip(self.ranges, keys)}

    def value(self, task: Any, name: str) -> jax.Array:
        return getattr(task, name)

    def describe(self, task: Any) -> jax.Array:
        """Task description vector: each randomised parameter scaled so the train range is [-1, 1]
        (one that training holds at a single value: its difference from that value)."""
        cols = []
        for r in self.ranges:
            lo, hi = r.train
            value = self.value(task, r.name)
            cols.append(2.0 * (value - lo) / (hi - lo) - 1.0 if hi > lo else value - lo)
        return jnp.stack(cols, axis=-1)

    def with_ranges(self, overrides: dict[str, dict[str, Any]]):
        """A copy with ranges replaced, e.g. {"train": {"force_mag": [4, 16]}, "ood": {...}}."""
        by_name = {r.name: r for r in self.ranges}
        for split, table in overrides.items():
            if split not in ("train", "ood"):
                raise UserError(f"unknown range split '{split}' in [ranges]; valid: train, ood")
            if not isinstance(table, dict):
                raise UserError(f"[ranges.{split}] must be a table of parameter = [min, max]")
            for pname, value in table.items():
                if not by_name:
                    raise UserError(f"{self.name} has no parameter ranges to set ('{pname}')")
                if pname not in by_name:
                    raise UserError(f"unknown parameter '{pname}' for {self.name}; valid: {', '.join(by_name)}")
                ivals = _parse_intervals(pname, value)
                if split == "train":
                    if len(ivals) != 1:
                        raise UserError(f"train range for '{pname}' must be one interval [min, max]")
                    by_name[pname] = dataclasses.replace(by_name[pname], train=ivals[0])
                else:
                    by_name[pname] = dataclasses.replace(by_name[pname], ood=ivals)
        for r in by_name.values():
            r.validate()
        return dataclasses.replace(self, ranges=tuple(by_name[r.name] for r in self.ranges))


@dataclasses.dataclass(frozen=True)
class Family(TaskDistribution):
    """A gymnax environment with a parameter distribution; see the module docstring."""

    name: str
    summary: str
    env: Any
    horizon: int
    ranges: tuple[ParamRange, ...] = ()  # empty for one task, or where `draw` makes the tasks
    # Recompute fields that depend on the sampled ones (e.g. CartPole's total_mass).
    derive: Callable[[Any], Any] = lambda p: p
    # Families whose tasks are not a few scalar parameters (bandit arms, random MDPs): a function
    # (key, n, split) -> {EnvParams field: batched values} replaces the ranges, described for `metarl envs`.
    draw: Callable[[jax.Array, int, str], Any] | None = None
    draw_text: str = ""
    splits: tuple[str, ...] = SPLITS

    @property
    def base_params(self) -> Any:
        """The environment's default EnvParams, onto which sampled fields are written."""
        return self.env.default_params

    @property
    def one_task(self) -> bool:
        """Neither ranges nor a draw: every task is the environment's default."""
        return not self.ranges and self.draw is None

    @property
    def discrete(self) -> bool:
        return hasattr(self.env.action_space(self.base_params), "n")

    @property
    def action_dim(self) -> int:
        space = self.env.action_space(self.base_params)
        return int(space.n) if self.discrete else int(space.shape[0])

    @property
    def obs_dim(self) -> int:
        obs, _ = self.env.reset(jax.random.PRNGKey(0), self.base_params)
        return int(obs.shape[0])

    def with_config(self, config: Any) -> "Family":
        """The family a config asks for, where its shape depends on the config (a bandit's arms)."""
        return self

    def classic_strategy_scores(self, tasks: Any, key: jax.Array, validation_tasks: Any, episodes: int) -> dict[str, jax.Array]:
        """The family's hand-designed strategies scored on `tasks`, one trial of `episodes` episodes
        each (label -> (tasks, episodes)), any hyperparameters tuned on `validation_tasks`; none
        unless the family has such strategies."""
        return {}

    def sample(self, key: jax.Array, n: int, split: str) -> Any:
        """n tasks of the split, as one EnvParams whose leaves have a leading axis of size n."""
        if split not in self.splits:
            raise UserError(f"{self.name} has no '{split}' split; valid: {', '.join(self.splits)}")
        if self.draw is not None:
            values = self.draw(jax.random.fold_in(key, SPLIT_STREAMS[split]), n, split)
        else:
            values = self.sample_values(key, n, split)
        params = jax.tree.map(lambda leaf: jnp.broadcast_to(jnp.asarray(leaf), (n,) + jnp.shape(leaf)), self.base_params)
        params = params.replace(max_steps_in_episode=jnp.full((n,), self.horizon, jnp.int32), **values)
        return self.derive(params)


def task_count(tasks: Any) -> int:
    """The number of tasks in a batch drawn by `sample` (its leading size)."""
    return jax.tree.leaves(tasks)[0].shape[0]


def per_task(fn: Callable, tasks: Any, key: jax.Array):
    """`fn(task, key)` on each task of a batch, vmapped, each with a key of its own split from `key`."""
    return jax.vmap(fn)(tasks, jax.random.split(key, task_count(tasks)))


def _parse_intervals(pname: str, value: Any) -> tuple[Interval, ...]:
    """[lo, hi] or [[lo, hi], [lo2, hi2], ...] -> tuple of intervals."""
    def is_pair(v: Any) -> bool:
        return isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v)

    if is_pair(value):
        return ((float(value[0]), float(value[1])),)
    if isinstance(value, (list, tuple)) and value and all(is_pair(v) for v in value):
        return tuple((float(a), float(b)) for a, b in value)
    raise UserError(f"range for '{pname}' must be [min, max] or a list of [min, max], got {value!r}")


def outer_minus_inner(outer: Interval, inner: Interval) -> tuple[Interval, ...]:
    """Sunblaze's E ranges: the outer range with the training range cut out."""
    return ((outer[0], inner[0]), (inner[1], outer[1]))
