"""The training loop: a non-finite loss stops the run and leaves the last good checkpoint latest."""

import jax.numpy as jnp
import pytest

from metarl_cli.algos import Algorithm
from metarl_cli.config import MamlRLConfig
from metarl_cli.training.checkpoint import Checkpoints
from metarl_cli.training.runner import DivergedError, train


def diverging_algorithm(bad_iteration: int) -> Algorithm:
    def step(state):
        it = state["iteration"] + 1
        loss = jnp.where(it == bad_iteration, jnp.nan, 1.0 / it)
        metrics = {"loss": loss, "pre_return": -loss, "post_return": -loss}
        return {"params": state["params"] + loss, "iteration": it}, metrics

    return Algorithm(
        init=lambda key: {"params": jnp.zeros(3), "iteration": jnp.zeros((), jnp.int32)},
        step=step,
        adaptation_curve=None,
        init_params=None,
        env_steps_per_iteration=1,
        score_name="return",
    )


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    config = MamlRLConfig(iterations=10, keep_checkpoints=5)
    with pytest.raises(DivergedError, match="non-finite at iteration 4.*iteration 3"):
        train(diverging_algorithm(4), config, tmp_path, resume=False, show_progress=False)
    ckpt = Checkpoints(tmp_path, 5)
    try:
        assert ckpt.step() == 3
        state = ckpt.restore(diverging_algorithm(4).init(None))
        assert jnp.all(jnp.isfinite(state["params"]))
    finally:
        ckpt.close()
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 3
