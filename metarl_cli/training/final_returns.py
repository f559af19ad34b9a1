"""The end-of-training figure for algorithms that log training episodes (DQN): per seed, the mean
return of the episodes that ended in the last fraction of env steps, weighted by episode counts."""

from __future__ import annotations

from collections import defaultdict


def final_returns(records: list[dict], fraction: float = 0.1) -> dict[int, float]:
    """{seed: mean episode return over the chunks past (1 - fraction) of the run's env steps}."""
    logged = [r for r in records if "episodes" in r and "env_steps" in r]
    if not logged:
        return {}
    cutoff = (1.0 - fraction) * max(r["env_steps"] for r in logged)
    totals: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for r in logged:
        if r["env_steps"] > cutoff and r["episodes"] and r["return"] is not None:
            total = totals[r.get("seed", 0)]
            total[0] += r["return"] * r["episodes"]
            total[1] += r["episodes"]
    return {seed: ret / n for seed, (ret, n) in sorted(totals.items()) if n}
