"""Evaluation statistics against hand-computed values."""

import math

from metarl_cli.stats import mean_ci95, summarise


def test_mean_ci95_matches_a_hand_computed_t_interval():
    mean, half = mean_ci95([1.0, 2.0, 3.0, 4.0])
    # sample std sqrt(5/3); t(0.975, 3) = 3.182446; half-width = t * std / sqrt(4)
    assert mean == 2.5
    assert math.isclose(half, 3.182446 * math.sqrt(5 / 3) / 2, rel_tol=1e-6)


def test_a_diverged_task_is_counted_not_averaged_away():
    assert summarise([1.0, 2.0, 3.0]).diverged == 0
    one = summarise([1.0, float("nan"), 2.0])
    assert one.diverged == 1 and math.isnan(one.mean)
    summary = summarise([1.0, float("inf"), float("nan"), 2.0])
    assert summary.diverged == 2 and math.isnan(summary.mean) and math.isnan(summary.ci95)
