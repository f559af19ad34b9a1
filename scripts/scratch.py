"""A `metarl train` run in a scratch directory, as the benchmarks time it: the config resolved as the
CLI resolves it (shipped experiment, then overrides), the algorithm built for its family, trained
with checkpoints, the directory removed afterwards."""

from __future__ import annotations

import tempfile
from pathlib import Path

from metarl_cli.algos import make_algorithm
from metarl_cli.families import family_for
from metarl_cli.training.runner import TrainSummary, train


def scratch_run(algo_name: str, config) -> TrainSummary:
    """Train `config` (resolved, e.g. by `metarl_cli.config.resolve_config`) from scratch; its summary."""
    algo = make_algorithm(algo_name, config, family_for(config))
    with tempfile.TemporaryDirectory() as tmp:
        return train(algo, config, Path(tmp), resume=False, show_progress=False)
