"""Long end-to-end learning checks (pytest -m slow): the shipped defaults learn what they claim."""

import json

import pytest

pytestmark = pytest.mark.slow


def test_point_nav_defaults_learn_to_adapt(cli, tmp_path):
    """The MAML paper's shape: return after one step far above return before adapting."""
    run = tmp_path / "pn"
    code, _, err = cli("train", "maml", "--env", "point-nav", "--set", "iterations=120", "-o", str(run), "-q")
    assert code == 0, err
    code, _, err = cli("eval", str(run), "--split", "test", "--tasks", "50", "--steps", "1", "-q")
    assert code == 0, err
    rows = json.loads((run / "eval.json").read_text())["test"]["methods"]["meta-learned"]
    before, after = rows[0], rows[1]
    assert after["mean"] - after["ci95"] > before["mean"] + before["ci95"] + 10.0, rows
