"""Summary statistics for evaluation tables: mean with a 95% confidence interval."""

from __future__ import annotations

import numpy as np
from scipy import stats as _stats


def mean_ci95(values) -> tuple[float, float]:
    """Mean and the half-width of its 95% Student-t confidence interval over the first axis."""
    x = np.asarray(values, dtype=np.float64)
    n = x.shape[0]
    mean = float(x.mean())
    if n < 2:
        return mean, float("nan")
    half = _stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / np.sqrt(n)
    return mean, float(half)
