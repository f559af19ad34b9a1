"""Summary statistics for evaluation tables: mean with a 95% confidence interval, and divergence counts."""

from __future__ import annotations

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
