"""Algorithms, each with the same small contract (see `Algorithm`), and the registry `make_algorithm`."""

from __future__ import annotations

from metarl_cli.algos.base import Algorithm, Phase
from metarl_cli.algos.dqn import make_dqn
from metarl_cli.algos.maml import make_maml
from metarl_cli.algos.rl2 import make_rl2
from metarl_cli.threefry import register_cpu_lowering

register_cpu_lowering()  # every training and evaluation program hashes its keys in two loop iterations, not five

BUILDERS = {"maml": make_maml, "dqn": make_dqn, "maml-dqn": make_maml, "rl2": make_rl2}  # maml-dqn: MAML on a Q-network


def make_algorithm(algo: str, config, family) -> Algorithm:
    return BUILDERS[algo](config, family)


__all__ = ["Algorithm", "Phase", "make_algorithm"]
