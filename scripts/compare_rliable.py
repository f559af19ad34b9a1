"""Cross-check: `metarl report`'s estimators against rliable's on the same score tables.

`metarl report` computes the interquartile mean and its stratified-bootstrap interval itself
(metarl_cli/stats.py) rather than through rliable: rliable 1.2.0, the latest, pins arch below 8,
and arch 7.2.0 fails to import beside pandas 3 (a fresh `pip install rliable` resolves to exactly
that), while with arch 8 rliable's bootstrap stops with a TypeError. This script checks that the two
give the same numbers: for (seeds, tasks) tables with a spread between tasks, the IQM from each, and
the 95% percentile interval from rliable's `get_interval_estimates(..., task_bootstrap=True)` beside
ours, both with --reps resamples (rliable's default, 50,000, makes the bootstrap's own noise small),
then ours with the report's 2,000.

rliable is not a dependency of metarl. To run this, install it with a pandas it imports beside:
    pip install rliable "pandas<3"
    python scripts/compare_rliable.py
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from metarl_cli.stats import iqm, stratified_bootstrap_ci

SHAPES = ((8, 20), (8, 100), (3, 1000), (2, 30), (1, 100))  # (seeds, tasks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=50_000)
    args = parser.parse_args()
    try:
        from rliable import library as rly
        from rliable import metrics
    except (ImportError, TypeError) as error:  # TypeError: arch 7.2.0 under pandas 3
        reason = " ".join(str(error).split())
        sys.exit(f"error: rliable does not import here ({type(error).__name__}: {reason}); "
                 'install it with `pip install rliable "pandas<3"`')
    rng = np.random.default_rng(0)
    print(f"95% intervals of the IQM, {args.reps:,} resamples each (ours at the report's 2,000 last)")
    print(f"{'seeds x tasks':>13}  {'IQM ours':>9} {'rliable':>9}   {'interval ours':>19}   {'rliable':>19}"
          f"   {'gap / width':>11}   {'ours, 2,000':>19}")
    for seeds, tasks in SHAPES:
        table = rng.normal(size=(seeds, tasks)) + 2.0 * rng.normal(size=(1, tasks))
        point, interval = rly.get_interval_estimates(
            {"m": table}, lambda x: np.array([metrics.aggregate_iqm(x)]), reps=args.reps, task_bootstrap=True)
        theirs = tuple(float(v) for v in np.ravel(interval["m"]))
        ours = stratified_bootstrap_ci(table, reps=args.reps)
        gap = max(abs(a - b) for a, b in zip(ours, theirs)) / (theirs[1] - theirs[0])
        short = stratified_bootstrap_ci(table)
        print(f"{seeds:>5} x {tasks:<5}  {iqm(table):9.4f} {float(point['m'][0]):9.4f}   "
              f"[{ours[0]:8.4f}, {ours[1]:8.4f}]   [{theirs[0]:8.4f}, {theirs[1]:8.4f}]   {gap:11.3f}   "
              f"[{short[0]:8.4f}, {short[1]:8.4f}]")


if __name__ == "__main__":
    main()
