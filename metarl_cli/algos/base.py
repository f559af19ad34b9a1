"""The contract every algorithm meets, in the manner of optax's (init, update) pairs.

    algo = make(config, family)          # closes over static config
    state = algo.init(key)               # one pytree: params, optimizer state, rng, iteration
    state, metrics = algo.step(state)    # one meta-iteration, a pure function the runner compiles
    scores = algo.adaptation_curve(params, tasks, key, steps, lr_scale)   # (n_tasks, steps + 1), for eval

`step` is pure and not yet compiled: the runner jit-compiles it, alone or as a `lax.scan` over a
chunk of meta-iterations. Its metrics hold "loss" and "pre_SCORE" / "post_SCORE", the score before
and after adaptation (SCORE is `score_name`). Because the state is one pytree, a checkpoint saves
and restores it whole and resume is exact.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple


class Algorithm(NamedTuple):
    init: Callable[[Any], dict]
    step: Callable[[dict], tuple[dict, dict]]
    adaptation_curve: Callable[..., Any]
    init_params: Callable[[Any], Any]  # key -> freshly initialised parameters (the random baseline)
    env_steps_per_iteration: int  # 0 where the tasks are not environments
    score_name: str  # what adaptation_curve measures, for tables: "return" or "mse"
    maximize: bool = True  # whether a higher score is better (for the best checkpoint)
