"""The contract every algorithm meets, in the manner of optax's (init, update) pairs.

    algo = make(config, family)          # closes over static config
    state = algo.init(key)               # one pytree: params, optimizer state, rng, iteration
    state, metrics = algo.step(state)    # one meta-iteration, a pure function the runner compiles
    scores = algo.adaptation_curve(params, tasks, key, steps, lr_scale)   # (n_tasks, columns), for eval

`step` is pure and not yet compiled: the runner jit-compiles it, alone or as a `lax.scan` over a
chunk of iterations, and vmaps it over seeds (or maps it, see `vmap_seeds`). Its metrics hold "loss"
and, by default, "pre_SCORE" / "post_SCORE", the score before and after adaptation (SCORE is
`score_name`); `summarise` turns a chunk's metrics into one record (default: the mean over the
chunk). Because the state is one pytree, a checkpoint saves and restores it whole and resume is
exact. An algorithm whose last iterations need other shapes (RL^2's larger batch) names a
`later_phase`: a second step over the same state, which the runner switches to at its iteration.
`adaptation_curve`'s columns are the score after 0..steps adaptation steps; the first alone where
`adapts` is False; an RL^2 trial's episodes where `trial_episodes` is set.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np


class Phase(NamedTuple):
    """From iteration `start` on (counting iterations done) the runner runs `step`. An algorithm's
    `later_phase` replaces its own step with one of other shapes (a larger batch), compiled on its own."""

    start: int
    step: Callable[[dict], tuple[dict, dict]]
    env_steps_per_iteration: int


class Algorithm(NamedTuple):
    init: Callable[[Any], dict]
    step: Callable[[dict], tuple[dict, dict]]
    adaptation_curve: Callable[..., Any]
    init_params: Callable[[Any], Any]  # key -> freshly initialised parameters (the random baseline)
    env_steps_per_iteration: int  # 0 where the tasks are not environments
    score_name: str  # what adaptation_curve measures, for tables: "return" or "mse"
    maximize: bool = True  # whether a higher score is better (for the best checkpoint)
    # {name: array with a leading chunk axis} -> {name: summary}; None: the mean over the chunk.
    summarise: Callable[[dict], dict] | None = None
    progress_metrics: tuple[str, ...] | None = None  # shown on the progress bar; None: pre/post score
    best_metric: str | None = None  # the summary that ranks checkpoints; None: post_SCORE
    adapts: bool = True  # False: no adaptation at eval (the score after 0 steps only)
    # > 0: adaptation happens in memory over a trial of this many episodes, and adaptation_curve
    # returns each episode's return (column j: after j episodes of the task) instead of gradient steps.
    trial_episodes: int = 0
    # (tasks, key, validation tasks) -> {label: (tasks, columns) scores} of fixed reference policies
    # (a random policy, a bandit's classic strategies) that eval prints beside the learned ones.
    reference_scores: Callable[..., dict] | None = None
    later_phase: Phase | None = None
    # False: one seed's step already fills a device with passes sized to its cache (MAML-RL, maml-dqn on a CPU), so
    # several seeds on a device run one after another; vmapping them would only widen every pass.
    vmap_seeds: bool = True
    devices: int = 1  # local devices one seed's step runs on (MAML-RL splits its meta-batch over them)
    notes: tuple[str, ...] = ()  # what `metarl train` says before training about how the run was built

    @property
    def phases(self) -> list[Phase]:
        """The phases in the order they run: `step` from iteration 0, then the later phase if any."""
        first = Phase(0, self.step, self.env_steps_per_iteration)
        return [first] if self.later_phase is None else [first, self.later_phase]

    def env_steps_after(self, iterations: int) -> int:
        """Env steps (per seed) that the first `iterations` iterations simulate."""
        phases = self.phases
        ends = [phase.start for phase in phases[1:]] + [iterations]
        return sum(max(0, min(end, iterations) - phase.start) * phase.env_steps_per_iteration for phase, end in zip(phases, ends))

    def schedule_before(self, iterations: int) -> list[tuple[int, int]]:
        """(start, env steps per iteration) of each phase that begins within the first `iterations`
        iterations, for comparing a resumed run's config with its saved one over those iterations."""
        return [(phase.start, phase.env_steps_per_iteration) for phase in self.phases if phase.start < iterations]

    def summary(self, chunk: dict) -> dict:
        if self.summarise is not None:
            return self.summarise(chunk)
        return {name: np.mean(values, axis=0) for name, values in chunk.items()}

    @property
    def shown_metrics(self) -> tuple[str, ...]:
        return self.progress_metrics or (f"pre_{self.score_name}", f"post_{self.score_name}")

    @property
    def ranking_metric(self) -> str:
        return self.best_metric or f"post_{self.score_name}"
