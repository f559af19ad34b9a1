"""Published numbers that `metarl eval` prints beside ours when a run follows the paper's protocol."""

from __future__ import annotations

from typing import Any, NamedTuple


class Published(NamedTuple):
    env: str
    split: str
    protocol: dict[str, Any]  # config values the paper's numbers assume
    label: str  # short: a table's column or row
    source: str
    values: dict[Any, float]  # adaptation steps (or "total" over a trial) -> score
    method: str = ""  # for trial tables: the label prefix of our method it pairs with


FINN = "Finn et al. 2017"
DUAN = "Duan et al. 2016"

# RL^2, Table 1: (pulls n, arms k) -> mean total reward per method.
BANDIT_COLUMNS = (("Random", "random policy"), ("Gittins", "gittins"), ("TS", "thompson"), ("UCB1", "ucb1"),
                  ("eps-greedy", "epsilon-greedy"), ("Greedy", "greedy"), ("RL^2", "meta-learned"))
BANDIT_TABLE = {
    (10, 5): (5.0, 6.6, 5.7, 6.7, 6.6, 6.6, 6.7),
    (10, 10): (5.0, 6.6, 5.5, 6.7, 6.6, 6.6, 6.7),
    (10, 50): (5.1, 6.5, 5.2, 6.6, 6.5, 6.5, 6.8),
    (100, 5): (49.9, 78.3, 74.7, 78.0, 75.4, 74.8, 78.7),
    (100, 10): (49.9, 82.8, 76.7, 82.4, 77.4, 77.1, 83.5),
    (100, 50): (49.8, 85.2, 64.5, 84.3, 78.3, 78.0, 84.9),
    (500, 5): (249.8, 405.8, 402.0, 405.8, 388.2, 380.6, 401.6),
    (500, 10): (249.0, 437.8, 429.5, 437.1, 408.0, 395.0, 432.5),
    (500, 50): (249.6, 463.7, 427.2, 457.6, 413.6, 402.8, 438.9),
}
# RL^2, Table 2: episodes per trial -> (random, PSRL, greedy, eps-greedy, RL^2) total reward over the trial.
MDP_TABLE = {
    10: (100.1, 138.1, 134.8, 132.8, 156.2),
    25: (250.2, 408.8, 368.8, 377.3, 445.7),
    50: (499.7, 904.4, 769.3, 823.3, 936.1),
    75: (749.9, 1417.1, 1172.9, 1293.9, 1428.8),
    100: (999.4, 1939.5, 1578.5, 1778.2, 1913.7),
}
MDP_COLUMNS = (("Random", "random policy"), ("PSRL", "PSRL (not run here)"), ("Greedy", "greedy"),
               ("eps-greedy", "epsilon-greedy"), ("RL^2", "meta-learned"))


def _rl2_rows() -> list[Published]:
    rows = []
    for (pulls, arms), values in BANDIT_TABLE.items():
        for (label, method), value in zip(BANDIT_COLUMNS, values):
            rows.append(Published("bandit", "test", {"pulls": pulls, "arms": arms, "episodes": 1}, label,
                                  f"{DUAN}, Table 1", {0: value}, method))
    for episodes, values in MDP_TABLE.items():
        for (label, method), value in zip(MDP_COLUMNS, values):
            rows.append(Published("tabular-mdp", "test", {"episodes": episodes, "horizon": 10}, label,
                                  f"{DUAN}, Table 2", {"total": value}, method))
    return rows


SINUSOID_ADAPTATION = {"shots": 5, "inner_lr": 0.01, "later_lr_scale": 1.0}
PUBLISHED = (
    # The paper's adaptation: 20 trajectories of 100 steps a step, alpha 0.1 then 0.05.
    Published("point-nav", "test", {"lanes": 20, "horizon": 100, "inner_lr": 0.1, "later_lr_scale": 0.5}, "paper: MAML", f"{FINN}, Table 4", {0: -40.41, 1: -11.68, 2: -3.33, 3: -3.23}),
    # The paper's adaptation: K = 5 points, alpha 0.01 at every step.
    Published("sinusoid", "test", SINUSOID_ADAPTATION, "paper: MAML", f"{FINN}, Table 2", {1: 0.67, 5: 0.38, 10: 0.35}),
    Published("sinusoid", "test", SINUSOID_ADAPTATION, "paper: pretrained", f"{FINN}, Table 2", {1: 2.41, 5: 2.23, 10: 2.19}),
    *_rl2_rows(),
)


def _setting(config, family, key: str):
    """The run's value for a protocol key; for `horizon`, the episode length its family plays (the
    config's 0 stands for the family's own)."""
    if key == "horizon":
        return getattr(family, "horizon", None)
    return getattr(config, key, None)


def published_for(config, family, split: str, steps: int) -> list[Published]:
    """The rows whose protocol the run (its config, and the family it trained on) follows, their step
    values cut to `steps`; a row with no value left (the paper's first is after more steps) is left out."""
    rows = [
        row._replace(values={k: v for k, v in row.values.items() if k == "total" or k <= steps})
        for row in PUBLISHED
        if row.env == config.env and row.split == split and all(_setting(config, family, k) == v for k, v in row.protocol.items())
    ]
    return [row for row in rows if row.values]
