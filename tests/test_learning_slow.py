"""Long end-to-end learning checks (pytest -m slow): the shipped defaults learn what they claim and
reproduce the published tables."""

import json

import pytest

from metarl_cli.training.final_returns import final_returns

pytestmark = pytest.mark.slow


def test_point_nav_defaults_learn_to_adapt(cli, tmp_path):
    """The MAML paper's shape: return after one step far above return before adapting, with the
    defaults cut to 120 of their 200 iterations (enough for that shape, in less time)."""
    run = tmp_path / "pn"
    code, _, err = cli("train", "maml", "--env", "point-nav", "--set", "iterations=120", "-o", str(run), "-q")
    assert code == 0, err
    code, _, err = cli("eval", str(run), "--split", "test", "--tasks", "50", "--steps", "1", "-q")
    assert code == 0, err
    rows = json.loads((run / "eval.json").read_text())["test"]["methods"]["meta-learned"]
    before, after = rows[0], rows[1]
    assert after["mean"] - after["ci95"] > before["mean"] + before["ci95"] + 10.0, rows


def test_sinusoid_defaults_reproduce_the_maml_table(cli, tmp_path):
    """Finn et al. (2017), Table 2, K = 5: MAML 0.67 / 0.38 / 0.35 after 1 / 5 / 10 steps, pretrained
    2.41 / 2.23 / 2.19.

    Ours must be no worse than the paper's beyond its interval (its 95% interval reaching the paper's
    MSE or below; its means run 0.59 / 0.38 / 0.33), and the pretrained baseline within 0.3 of the
    paper's (its means 2.58 / 2.17 / 2.04, each interval about +-0.2).
    """
    run = tmp_path / "sine"
    code, _, err = cli("train", "maml", "--env", "sinusoid", "-o", str(run), "-q")
    assert code == 0, err
    code, out, err = cli("eval", str(run), "-q")
    assert code == 0, err
    assert "paper: MAML" in out
    methods = json.loads((run / "eval.json").read_text())["test"]["methods"]
    ours = methods["meta-learned"]
    pretrained = next(rows for name, rows in methods.items() if name.startswith("pretrained"))
    for steps, paper in ((1, 0.67), (5, 0.38), (10, 0.35)):
        assert ours[steps]["mean"] - ours[steps]["ci95"] <= paper, (steps, ours[steps])
    for steps, paper in ((1, 2.41), (5, 2.23), (10, 2.19)):
        assert abs(pretrained[steps]["mean"] - paper) < 0.3, (steps, pretrained[steps])


def test_dqn_cartpole_defaults_reach_475_on_four_seeds(cli, tmp_path):
    """`metarl train dqn --env cartpole --seeds 4` on its defaults: the mean over seeds of the last 10%
    of training-episode returns is at least 475, and the closing message names every seed's figure."""
    run = tmp_path / "dqn"
    code, _, err = cli("train", "dqn", "--env", "cartpole", "--seeds", "4", "-o", str(run), "-q")
    assert code == 0, err
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    returns = final_returns(records)
    assert returns.window == 50_000 and sorted(returns.per_seed) == [0, 1, 2, 3], returns
    for seed, value in returns.per_seed.items():
        assert f"seed {seed}: {value:.1f}" in err, (seed, err)
    mean = sum(returns.per_seed.values()) / 4
    assert f"mean over seeds {mean:.1f}" in err, err
    assert mean >= 475, returns.per_seed
