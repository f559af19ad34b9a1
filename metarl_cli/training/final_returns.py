"""The end-of-training figure for algorithms that log training episodes (DQN): per seed, the mean
return of the episodes that ended in the last fraction of env steps, weighted by episode counts."""

from __future__ import annotations

from typing import NamedTuple


class FinalReturns(NamedTuple):
    per_seed: dict[int, float | None]  # seed -> mean return of the episodes in the window (None: none ended in it)
    window: int  # env steps the window spans: the last fraction of the run, widened to whole chunks
    total: int  # env steps of the run


def final_returns(records: list[dict], fraction: float = 0.1) -> FinalReturns | None:
    """The mean episode return per seed over the chunks that end past (1 - fraction) of the run's
    env steps (None where no record logs episodes). A chunk is counted whole, so the window starts
    where the last chunk ending at or before that point ends."""
    logged = [r for r in records if "episodes" in r and "env_steps" in r]
    if not logged:
        return None
    total = max(r["env_steps"] for r in logged)
    cutoff = (1.0 - fraction) * total
    start = max((r["env_steps"] for r in logged if r["env_steps"] <= cutoff), default=0)
    sums: dict[int, list[float]] = {seed: [0.0, 0.0] for seed in sorted({r.get("seed", 0) for r in logged})}
    for r in logged:
        if r["env_steps"] > cutoff and r["episodes"] and r["return"] is not None:
            seed_sums = sums[r.get("seed", 0)]
            seed_sums[0] += r["return"] * r["episodes"]
            seed_sums[1] += r["episodes"]
    per_seed = {seed: ret / n if n else None for seed, (ret, n) in sums.items()}
    return FinalReturns(per_seed, total - start, total)
