"""Summary statistics for evaluation tables and reports: mean with a 95% Student-t confidence interval,
divergence counts, and the interquartile mean with a stratified bootstrap interval (Agarwal et al. 2021)."""

from __future__ import annotations

import math

import numpy as np
from typing import NamedTuple

from scipy import stats as _stats


class Summary(NamedTuple):
    mean: float  # nan where any task diverged
    ci95: float  # half-width; nan where any task diverged
    diverged: int  # tasks whose score is not finite (an adaptation that blew up)


def summarise(values) -> Summary:
    """Mean and 95% CI over tasks, unless some diverged: then their count, and no mean that would hide it."""
    x = np.asarray(values, dtype=np.float64)
    bad = diverged_count(x)
    if bad:
        return Summary(float("nan"), float("nan"), bad)
    return Summary(*mean_ci95(x), 0)


def diverged_count(values) -> int:
    """How many of the scores are not finite (tasks whose adaptation diverged)."""
    return int(np.sum(~np.isfinite(np.asarray(values, dtype=np.float64))))


def mean_ci95(values, axis: int = 0):
    """Mean and the half-width of its 95% Student-t confidence interval along `axis` (NaN for one
    value): floats for a 1-D `values`, else arrays, one entry per slice."""
    x = np.asarray(values, dtype=np.float64)
    n = x.shape[axis]
    mean = x.mean(axis=axis)
    if n < 2:
        half = np.full_like(mean, np.nan)
    else:
        half = _stats.t.ppf(0.975, n - 1) * x.std(axis=axis, ddof=1) / np.sqrt(n)
    return (float(mean), float(half)) if mean.ndim == 0 else (mean, half)


def iqm(values, axis: int | None = None):
    """Interquartile mean: the mean of the values between the 25th and 75th percentiles (25% trimmed
    each side); of all values, or of each slice along `axis`."""
    trimmed = _stats.trim_mean(np.asarray(values, dtype=np.float64), 0.25, axis=axis)
    return float(trimmed) if axis is None else trimmed


def stratified_bootstrap_ci(scores: np.ndarray, reps: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of the IQM of a (seeds, tasks) table: each resample draws the tasks with
    replacement and, for each task drawn, the seeds (all `reps` resamples drawn at once)."""
    seeds, tasks = scores.shape
    rng = np.random.default_rng(seed)
    task_picks = rng.integers(0, tasks, (reps, 1, tasks))
    seed_picks = rng.integers(0, seeds, (reps, seeds, tasks))
    estimates = iqm(scores[seed_picks, task_picks].reshape(reps, -1), axis=1)
    tail = 100 * (1 - level) / 2
    return float(np.percentile(estimates, tail)), float(np.percentile(estimates, 100 - tail))


def summarise_table(scores: np.ndarray) -> tuple[float, float, float]:
    """IQM of a (seeds, tasks) table and its stratified bootstrap interval (none, NaN, for one value)."""
    low, high = stratified_bootstrap_ci(scores) if scores.size > 1 else (math.nan, math.nan)
    return iqm(scores), low, high
