"""Sweeps, reports and plots: the grid and its skipping, the report's statistics, PNGs of runs."""

import csv
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

from conftest import wait_for
from metarl_cli.config import DqnConfig, MamlRLConfig, Rl2Config, write_config
from metarl_cli.plot import LEGEND_WIDTH, draw_runs
from metarl_cli.report import report_paths, run_rows
from metarl_cli.run_outputs import read_run
from metarl_cli.stats import iqm, stratified_bootstrap_ci
from metarl_cli.training.checkpoint import Checkpoints

SWEEP = Path(__file__).resolve().parent.parent / "scripts" / "sweep.sh"

# A stand-in for `metarl`: records its arguments and makes the run directory it was pointed at, or
# with $FAIL set fails as metarl does, with one error line; with $HOLD set it then trains (touching
# RUN/training) until Ctrl-C, which it answers as metarl does: a line naming the checkpoint, status 130.
# A --dry-run check is recorded apart, and fails (as metarl would) with $CHECK_FAIL set, where its
# arguments hold $CHECK_ONLY (default: any). Like metarl, it refuses a directory that holds files but no run.
FAKE_METARL = """#!/usr/bin/env bash
case " $* " in *" --dry-run "*)
  echo "$@" >> "$CALLS.checked"
  case " $* " in *"${CHECK_ONLY:-}"*) [ -n "${CHECK_FAIL:-}" ] && { echo "error: $CHECK_FAIL" >&2; exit 2; } ;; esac
  exit 0 ;; esac
[ -n "${HOLD:-}" ] && trap 'echo "interrupted: the latest checkpoint is iteration 1" >&2; kill "${pid:-}" 2>/dev/null; exit 130' INT
echo "$@" >> "$CALLS"
[ -n "${FAIL:-}" ] && { echo "error: $FAIL" >&2; exit 2; }
args=("$@")
while [ $# -gt 0 ]; do [ "$1" = "-o" ] && dir=$2; shift; done
[ -e "$dir/manifest.json" ] || [ -z "$(ls -A "$dir" 2>/dev/null)" ] || { echo "error: $dir is not a metarl run" >&2; exit 2; }
mkdir -p "$dir" && echo '{"tool": "metarl"}' > "$dir/manifest.json" && printf '%s\n' "${args[@]}" > "$dir/args"
if [ -n "${HOLD:-}" ]; then sleep 60 & pid=$!; touch "$dir/training"; wait "$pid"; fi
"""


def sweep_env(tmp_path, **env_vars) -> dict:
    """The environment that points scripts/sweep.sh at the stand-in and at tmp_path/sweep."""
    fake = tmp_path / "fake-metarl"
    fake.write_text(FAKE_METARL)
    fake.chmod(0o755)
    return {**os.environ, "METARL": str(fake), "SWEEP_DIR": str(tmp_path / "sweep"), "CALLS": str(tmp_path / "calls"), "JOBS": "3", **env_vars}


def sweep(tmp_path, *args, **env_vars):
    done = subprocess.run(["bash", str(SWEEP), *args], env=sweep_env(tmp_path, **env_vars), capture_output=True, text=True)
    calls = recorded(tmp_path / "calls")
    done.checked = recorded(tmp_path / "calls.checked")
    return done, calls


def recorded(path: Path) -> list[str]:
    """The stand-in's calls recorded at `path` since the last look."""
    calls = path.read_text().splitlines() if path.exists() else []
    path.unlink(missing_ok=True)
    return calls


def test_sweep_runs_the_grid_then_skips_finished_and_resumes_interrupted_points(tmp_path):
    done, calls = sweep(tmp_path, "maml", "cartpole-family", "inner_lr=0.05,0.1,0.2", "meta_batch=10,20", "--", "--seeds", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    points = {f"inner_lr={lr},meta_batch={mb}" for lr in ("0.05", "0.1", "0.2") for mb in ("10", "20")}
    assert {p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir()} == points
    assert len(calls) == 6
    # Every value checked first, in as many checks as the longest axis has values.
    assert done.checked == [f"train maml --env cartpole-family --set inner_lr={lr} --set meta_batch={mb} --seeds 2 --dry-run -q"
                            for lr, mb in (("0.05", "10"), ("0.1", "20"), ("0.2", "10"))]
    for point in points:
        lr, mb = (pair.split("=")[1] for pair in point.split(","))
        expected = f"train maml --env cartpole-family --set inner_lr={lr} --set meta_batch={mb} --seeds 2 -o {tmp_path / 'sweep' / point} -q"
        assert expected in calls
    interrupted = tmp_path / "sweep" / "inner_lr=0.1,meta_batch=20"
    (interrupted / "sweep-done").unlink()
    # A resume that fails leaves its point unfinished, for the next sweep to resume again.
    done, calls = sweep(tmp_path, "maml", "cartpole-family", "inner_lr=0.05,0.1,0.2", "meta_batch=10,20", "--", "--seeds", "2",
                        FAIL="a failure of the resume")
    assert done.returncode == 1 and calls == [f"train maml --resume -o {interrupted} -q"], done.stderr
    assert not (interrupted / "sweep-done").exists()
    done, calls = sweep(tmp_path, "maml", "cartpole-family", "inner_lr=0.05,0.1,0.2", "meta_batch=10,20", "--", "--seeds", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert calls == [f"train maml --resume -o {interrupted} -q"]
    assert done.stdout.count("skip") == 5
    # A finished point's directory in which a run was started since (by hand, --overwrite: a new manifest) is
    # resumed; one whose run's files are gone is started again, its marker removed first (metarl would refuse
    # to start beside it); an empty marker, as earlier sweeps left, still counts as finished.
    (interrupted / "manifest.json").write_text('{"tool": "metarl", "created": "later"}')
    emptied = tmp_path / "sweep" / "inner_lr=0.2,meta_batch=10"
    for kept in emptied.iterdir():
        if kept.name != "sweep-done":
            kept.unlink()
    (tmp_path / "sweep" / "inner_lr=0.05,meta_batch=10" / "sweep-done").write_text("")
    done, calls = sweep(tmp_path, "maml", "cartpole-family", "inner_lr=0.05,0.1,0.2", "meta_batch=10,20", "--", "--seeds", "2")
    assert done.returncode == 0 and done.stdout.count("skip") == 4, done.stdout + done.stderr
    assert sorted(calls) == sorted([f"train maml --resume -o {interrupted} -q",
                                    f"train maml --env cartpole-family --set inner_lr=0.2 --set meta_batch=10 --seeds 2 -o {emptied} -q"])


@pytest.mark.parametrize("axis, jobs, message", [
    ("inner_lr", "3", "expected KEY=V1,V2"),
    ("inner_lr=0.1,0.2,0.1", "3", "'inner_lr' lists the value '0.1' twice"),
    ("inner_lr=0.1,0.2,0.10", "3", "'inner_lr' lists one value twice, as '0.1' and '0.10'"),
    ("outer_lr=1e-3,0.001", "3", "'outer_lr' lists one value twice, as '1e-3' and '0.001'"),
    ("meta_batch=1_0,10", "3", "'meta_batch' lists one value twice, as '1_0' and '10'"),
    ('estimator=lvc,"lvc"', "3", "'estimator' lists one value twice, as 'lvc' and '\"lvc\"'"),
    ("hidden=[32,32 inner_lr=0.1,0.2", "3", "unbalanced brackets in 'hidden=[32,32'"),
    ("hidden=32],[64]", "3", "unbalanced brackets in 'hidden=32],[64]'"),
    ("inner_lr=0.1,", "3", "an empty value in 'inner_lr=0.1,'"),
    ("inner_lr=0.1,0.2", "0", "JOBS must be a whole number"),
    ("inner_lr=0.1,0.2", "two", "JOBS must be a whole number"),
    ("-- --seeds 2", "3", "give at least one KEY=V1,V2,... to sweep"),
    ("inner_lr=0.1 meta_batch=10 inner_lr=0.2", "3", "'inner_lr' is swept twice; give all its values in one inner_lr=V1,V2,..."),
    ("inner_lr=0.1,0.2 -- --dry-run", "3", "'--dry-run' after -- is the sweep's own to set"),
    ("inner_lr=0.1,0.2 -- -o elsewhere", "3", "'-o' after -- is the sweep's own to set"),
    ("inner_lr=0.1,0.2 -- --seeds 2 --set inner_lr=0.3", "3", "'inner_lr' is swept; drop its --set after --"),
    ("inner_lr=0.1,0.2 -- -epoint-nav", "3", "'-epoint-nav' after -- is the sweep's own to set"),
    ("inner_lr=0.1,0.2 -- -qoelsewhere", "3", "'-oelsewhere' after -- is the sweep's own to set"),
    ("inner_lr=0.1,0.2 -- -sinner_lr=0.3", "3", "'inner_lr' is swept; drop its --set after --"),
    ("inner_lr=0.1,0.2 -- -s=inner_lr=0.3", "3", "'inner_lr' is swept; drop its --set after --"),
    ("inner_lr=0.1,0.2 -- -qs inner_lr=0.3", "3", "'inner_lr' is swept; drop its --set after --"),
    ("inner_lr=0.1,0.2 -- --set inner_lr\t=0.3", "3", "'inner_lr' is swept; drop its --set after --"),
    ("ranges.train.force_mag=[6,14],[7,13] -- --set ranges.train={force_mag=[8,9]}", "3",
     "'ranges.train' after -- would set the swept 'ranges.train.force_mag' (one holds the other) in every point"),
    ("ranges.train={force_mag=[6,14]},{force_mag=[7,13]} -- -sranges.train.force_mag=[8,9]", "3",
     "'ranges.train.force_mag' after -- would set the swept 'ranges.train' (one holds the other) in every point"),
    ("ranges.train.force_mag=[6,14],[7,13] ranges=5,6", "3", "'ranges.train.force_mag' and 'ranges' are both swept, and one holds the other"),
])
def test_sweep_rejects_a_malformed_axis_or_jobs(tmp_path, axis, jobs, message):
    done, calls = sweep(tmp_path, "maml", "cartpole-family", *axis.split(" "), JOBS=jobs)
    assert done.returncode == 2 and message in done.stderr and not calls and not done.checked


def test_values_that_differ_after_their_first_character_are_two_points(tmp_path):
    done, _ = sweep(tmp_path, "maml", "cartpole-family", 'estimator="lvc","dice"', "inner_lr=0.1,0.15")
    assert done.returncode == 0, done.stdout + done.stderr
    assert len([p for p in (tmp_path / "sweep").iterdir() if p.is_dir()]) == 4


def test_table_values_are_swept_whole(tmp_path):
    done, calls = sweep(tmp_path, "maml", "cartpole-family", "ranges.train={force_mag=[6,14],length=[0.3,0.7]},{force_mag=[7,13]}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert {p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir()} == {
        "ranges.train={force_mag=[6,14],length=[0.3,0.7]}", "ranges.train={force_mag=[7,13]}"}


def test_list_values_are_swept_whole(tmp_path):
    done, calls = sweep(tmp_path, "maml", "cartpole-family", "hidden=[32,32],[64, 64]", "inner_lr=0.1,0.2")
    assert done.returncode == 0, done.stdout + done.stderr
    points = {f"hidden={h},inner_lr={lr}" for h in ("[32,32]", "[64, 64]") for lr in ("0.1", "0.2")}
    assert {p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir()} == points
    point = tmp_path / "sweep" / "hidden=[64, 64],inner_lr=0.2"
    assert f"train maml --env cartpole-family --set hidden=[64, 64] --set inner_lr=0.2 -o {point} -q" in calls
    assert "hidden=[64, 64]" in (point / "args").read_text().splitlines()  # one argument, not split at its space
    assert done.checked == ["train maml --env cartpole-family --set hidden=[32,32] --set inner_lr=0.1 --dry-run -q",
                            "train maml --env cartpole-family --set hidden=[64, 64] --set inner_lr=0.2 --dry-run -q"]
    (tmp_path / "again").mkdir()
    done, calls = sweep(tmp_path / "again", "maml", "cartpole-family", "hidden=[64,64],[64, 64]")
    assert done.returncode == 2 and "'hidden' lists one value twice, as '[64,64]' and '[64, 64]'" in done.stderr and not calls


def test_spaces_around_a_swept_value_are_dropped(tmp_path):
    done, calls = sweep(tmp_path, "maml", "cartpole-family", "inner_lr = 0.1, 0.2 ", " hidden=[8,8], [16, 16]")
    assert done.returncode == 0, done.stdout + done.stderr
    points = {f"inner_lr={lr},hidden={h}" for lr in ("0.1", "0.2") for h in ("[8,8]", "[16, 16]")}
    assert {p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir()} == points
    (tmp_path / "again").mkdir()
    done, calls = sweep(tmp_path / "again", "maml", "cartpole-family", "hidden=[8,8], [8, 8]")
    assert done.returncode == 2 and "'hidden' lists one value twice, as '[8,8]' and '[8, 8]'" in done.stderr and not calls


def test_a_sweep_directory_keeps_the_arguments_its_points_were_started_with(tmp_path):
    assert sweep(tmp_path, "maml", "cartpole-family", "inner_lr=0.1,0.2", "--", "--seeds", "2")[0].returncode == 0
    done, calls = sweep(tmp_path, "maml", "cartpole-family", "inner_lr=0.1,0.2", "--", "--seeds", "4")
    assert done.returncode == 2 and "were started with -- --seeds 2 after their grid, not -- --seeds 4;" in done.stderr and not calls
    done, calls = sweep(tmp_path, "maml", "cartpole-family", "inner_lr=0.1,0.2")
    assert done.returncode == 2 and "were started with -- --seeds 2 after their grid, not nothing;" in done.stderr and not calls
    done, calls = sweep(tmp_path, "maml", "cartpole-family", "inner_lr=0.1,0.2,0.3", "--", "--seeds", "2")
    assert done.returncode == 0 and done.stdout.count("skip") == 2 and len(calls) == 1, done.stderr


def test_every_value_is_checked_before_any_point_runs(tmp_path):
    done, calls = sweep(tmp_path, "mamll", "cartpole-family", "inner_lr=0.1,0.2", CHECK_FAIL="unknown algorithm 'mamll'")
    assert done.returncode == 2 and "error: unknown algorithm 'mamll'" in done.stderr and "no point was run" in done.stderr
    assert done.checked == ["train mamll --env cartpole-family --set inner_lr=0.1 --dry-run -q"] and not calls
    assert not (tmp_path / "sweep").exists()
    # A bad value in a later point stops the sweep too, at the check that holds it.
    done, calls = sweep(tmp_path, "maml", "cartpole-family", "meta_batch=10,20,40", "inner_lr=0.1,-0.2",
                        CHECK_FAIL="inner_lr must be > 0, got -0.2", CHECK_ONLY="inner_lr=-0.2")
    assert done.returncode == 2 and "error: inner_lr must be > 0, got -0.2" in done.stderr
    assert ("error: the sweep's check `metarl train maml --env cartpole-family --set meta_batch=20 --set inner_lr=-0.2 --dry-run` "
            "(its ALGO, ENV, point meta_batch=20,inner_lr=-0.2 and arguments after --) is refused (above); no point was run"
            ) in done.stderr
    assert done.checked == ["train maml --env cartpole-family --set meta_batch=10 --set inner_lr=0.1 --dry-run -q",
                            "train maml --env cartpole-family --set meta_batch=20 --set inner_lr=-0.2 --dry-run -q"] and not calls
    assert not (tmp_path / "sweep").exists()


def test_a_sweep_directory_holds_one_algorithm_on_one_family(tmp_path):
    # A sweep whose points all failed leaves no run behind: the directory is reused.
    assert sweep(tmp_path, "maml", "acrobot-family", "inner_lr=0.1,0.2", FAIL="a failure of every point")[0].returncode == 1
    assert sweep(tmp_path, "maml", "cartpole-family", "inner_lr=0.1,0.2")[0].returncode == 0
    done, calls = sweep(tmp_path, "dqn", "cartpole", "lr=0.1,0.2")
    assert done.returncode == 2 and "holds a sweep of maml cartpole-family" in done.stderr and not calls


def test_a_sweep_directory_named_with_pattern_characters_keeps_its_guards(tmp_path):
    where = {"SWEEP_DIR": str(tmp_path / "sw[b]")}  # as a pattern, [b] matches b alone
    assert sweep(tmp_path, "maml", "cartpole-family", "inner_lr=0.1,0.2", "--", "--seeds", "2", **where)[0].returncode == 0
    done, calls = sweep(tmp_path, "maml", "cartpole-family", "inner_lr=0.1,0.2", "--", "--seeds", "4", **where)
    assert done.returncode == 2 and "were started with -- --seeds 2 after their grid" in done.stderr and not calls
    done, calls = sweep(tmp_path, "dqn", "cartpole", "lr=0.1,0.2", **where)
    assert done.returncode == 2 and "holds a sweep of maml cartpole-family" in done.stderr and not calls


def test_a_sweep_directory_that_is_a_file_a_run_or_inside_a_run_is_refused_before_any_check(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text('{\n  "tool": "metarl"\n}\n')
    (tmp_path / "afile").write_text("mine")
    for where, message in ((run, f"is or lies inside the run in {run}"), (run / "baselines" / "sweep", f"is or lies inside the run in {run}"),
                           (tmp_path / "afile", "is a file, not a directory")):
        done, calls = sweep(tmp_path, "maml", "cartpole-family", "inner_lr=0.1,0.2", SWEEP_DIR=str(where))
        assert done.returncode == 2 and f"error: SWEEP_DIR {where} {message}" in done.stderr, done.stderr
        assert not calls and not done.checked
    assert sorted(p.name for p in run.iterdir()) == ["manifest.json"] and (tmp_path / "afile").read_text() == "mine"


@pytest.mark.parametrize("values, points", [("0.1", "1 point"), ("0.1,0.2", "2 points")])
def test_a_failed_point_says_why(tmp_path, values, points):
    done, _ = sweep(tmp_path, "maml", "cartpole-family", f"inner_lr={values}", FAIL="unknown env 'nope'")
    failed = values.count(",") + 1
    assert done.returncode == 1
    assert done.stdout.count("FAILED") == failed and "error: unknown env 'nope'" in done.stdout
    assert f"sweep of {points} in {tmp_path / 'sweep'}: {failed} failed (above)" in done.stdout


def test_ctrl_c_stops_the_sweep_once_its_running_points_have_saved(tmp_path):
    env = sweep_env(tmp_path, HOLD="1")
    del env["JOBS"]  # its default: two points at a time
    # bash cannot trap a signal ignored when it started (as where this process runs in the background):
    # it is started with SIGINT at its default, in a process group of its own, as a terminal's job is.
    start = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp('bash', ['bash', *sys.argv[1:]])"
    proc = subprocess.Popen([sys.executable, "-c", start, str(SWEEP), "maml", "cartpole-family", "inner_lr=0.1,0.2,0.3"],
                            env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(proc, lambda: len(list((tmp_path / "sweep").glob("*/training"))) == 2, 60, "the two points did not start training")
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
        out, err = proc.communicate(timeout=60)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever of the sweep is still running
        except ProcessLookupError:
            pass
    assert proc.returncode == 130, out + err
    assert out.count("stopped inner_lr=") == 2 and "interrupted: the latest checkpoint is iteration 1" in out
    assert "inner_lr=0.3" not in out and "FAILED" not in out  # no further point started
    assert "the same command again skips the finished points and resumes the others" in out
    assert not list((tmp_path / "sweep").glob("*/sweep-done"))  # stopped points are not finished: a rerun resumes them


def test_iqm_and_stratified_bootstrap_on_hand_computed_cases():
    assert iqm(np.arange(1.0, 9.0)) == 4.5  # the middle four of 1..8: 3, 4, 5, 6
    assert iqm([10.0, 0.0, 1.0, 2.0]) == 1.5  # sorted 0, 1, 2, 10: the middle two
    assert iqm([0.0, 1.0, 2.0, 10.0, 11.0, 12.0, 13.0, 100.0]) == 8.75  # 2, 10, 11, 12; the median is 10.5
    # A table of one task and two seeds, 0 and 100: a resample draws two seeds, whose IQM (two values,
    # none trimmed) is 0, 50 or 100 with chances 1/4, 1/2, 1/4, so the 95% interval is 0 to 100.
    assert stratified_bootstrap_ci(np.array([[0.0], [100.0]])) == (0.0, 100.0)
    assert stratified_bootstrap_ci(np.full((3, 5), 3.0)) == (3.0, 3.0)
    # One task, seeds 0, 0 and 100: a resample's three seeds (three values, none trimmed) are all 100
    # with chance 1/27 (3.7%: more than the 2.5% the 95% interval leaves above it, less than a 90%
    # interval's 5%, whose top would be 66.7), and hold no 100 with chance 8/27.
    assert stratified_bootstrap_ci(np.array([[0.0], [0.0], [100.0]])) == (0.0, 100.0)
    # Seeds alike, tasks apart: resampling the seeds within a task changes nothing, the tasks' draw
    # does, so a copy of a seed leaves the interval as it was (the tasks are drawn first, alike).
    one_seed = np.array([[1.0, 2.0, 3.0, 4.0]])
    low, high = stratified_bootstrap_ci(one_seed)
    assert low < 2.5 < high and stratified_bootstrap_ci(np.repeat(one_seed, 2, axis=0)) == (low, high)
    # Tasks alike, seeds apart: the seeds drawn within each task mix the two in any proportion.
    low, high = stratified_bootstrap_ci(np.array([[0.0] * 4, [100.0] * 4]))
    assert low < 25.0 and high > 75.0
    # Seeds 0, 10 and 20 on each of 50 tasks: drawn within each task, a resample pools 150 draws and
    # its IQM stays near 10; whole seeds drawn for every task at once would give all zeros in one
    # resample of 27 (more than 2.5%), and a low end of 0.
    low, high = stratified_bootstrap_ci(np.repeat(np.array([[0.0], [10.0], [20.0]]), 50, axis=1))
    assert 7.0 < low <= 10.0 <= high < 13.0


def fake_run(path: Path, seeds: int, iterations: int, evaluated: bool, planned: int | None = None) -> Path:
    """A MAML run that logged `iterations` of its `planned` (default: as many) meta-iterations."""
    path.mkdir(parents=True)
    (path / "manifest.json").write_text(json.dumps({"tool": "metarl", "algo": "maml"}))
    write_config(MamlRLConfig(seeds=seeds, iterations=planned or iterations), "maml", path / "config.toml")
    lines = [{"iteration": i, "seed": s, "post_return": float(10 * i + s), "loss": 1.0}
             for i in range(1, iterations + 1) for s in range(seeds)]
    (path / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    if evaluated:
        write_eval(path, {f"meta-learned (seed {s})": [[0.0] * 4, [1.0 + s, 2.0 + s, 3.0 + s, 4.0 + s]] for s in range(seeds)})
    return path


def write_eval(run: Path, per_task: dict, score: str = "return", trial: bool = False, iteration: int | None = None,
               adapts: bool = True, checkpoint: str = "latest", checkpointed: list[str] | None = None) -> None:
    """RUN/eval.json as `metarl eval` writes it for the `test` split, from each column's per-task
    scores after 0..K steps (for a trial, in episodes 1..K + 1), of the `checkpoint` at `iteration`
    (scored by the columns `checkpointed`, where given; eval.json before it kept them, where not)."""
    steps = len(next(iter(per_task.values()))) - 1
    methods = {name: [{"after_steps": j, "mean": float(np.mean(np.asarray(by[j], dtype=np.float64))), "ci95": 0.5, "diverged": 0}
                      for j in range(steps + 1)]
               for name, by in per_task.items()}
    result = {"steps": steps, "score": score, "methods": methods, "per_task": per_task, "trial": trial, "adapts": adapts}
    if iteration is not None:
        result.update(checkpoint=checkpoint, iteration=iteration)
    if checkpointed is not None:
        result.update(checkpointed=checkpointed)
    (run / "eval.json").write_text(json.dumps({"test": result}))


def test_a_directory_stands_for_the_runs_at_any_depth_below_it_but_not_a_runs_baselines(tmp_path):
    from metarl_cli.run_outputs import expand_runs

    single = fake_run(tmp_path / "runs" / "maml-1", seeds=1, iterations=1, evaluated=False)
    points = [fake_run(tmp_path / "runs" / "sweep-maml" / f"inner_lr={lr}", seeds=1, iterations=1, evaluated=False)
              for lr in ("0.1", "0.05")]
    fake_run(single / "baselines" / "pretrained", seeds=1, iterations=1, evaluated=False)  # inside a run: not one of them
    assert expand_runs([tmp_path / "runs"]) == [single, points[1], points[0]]
    assert expand_runs([tmp_path / "runs" / "sweep-maml", points[0]]) == [points[1], points[0]]


def test_a_baseline_a_run_keeps_is_refused_when_named_as_a_run(tmp_path, cli, monkeypatch):
    run = fake_run(tmp_path / "run", seeds=1, iterations=1, evaluated=True)
    baseline = fake_run(run / "baselines" / "pretrained", seeds=1, iterations=1, evaluated=False)
    (tmp_path / "link").symlink_to(baseline)
    before = sorted(p.name for p in baseline.rglob("*"))
    (run / "checkpoints").mkdir()
    for named in (baseline, run / "baselines", tmp_path / "link", run / "checkpoints"):  # itself, the folder of them, a link; another part
        for args in (["report", str(named), "-o", str(tmp_path / "rep")], ["plot", str(named), "-o", str(tmp_path / "curves.png")],
                     ["eval", str(named)], *([["train", "maml", "--resume", "-o", str(named)]] if named in (baseline, tmp_path / "link") else [])):
            code, out, err = cli(*args)
            said = " ".join(err.split())
            where = ", where that run's eval keeps its baselines" if named != run / "checkpoints" else ""
            assert code == 2 and f"lies inside the run in {run}{where}: it is not a run of its own; name {run}" in said, (args, err)
    assert sorted(p.name for p in baseline.rglob("*")) == before  # no eval.json, lock or nested baseline written in the cache
    assert not (tmp_path / "rep.csv").exists() and not (tmp_path / "curves.png").exists()
    # From inside a run, another run named through `..` is a run of its own.
    fake_run(tmp_path / "other", seeds=1, iterations=1, evaluated=True)
    monkeypatch.chdir(run)
    code, out, err = cli("report", "../other", "-o", "../rep")
    assert code == 0 and (tmp_path / "rep.csv").exists(), err

@pytest.mark.parametrize("command", ["report", "plot"])
def test_report_and_plot_name_the_metrics_lines_they_leave_out(tmp_path, cli, command):
    run = fake_run(tmp_path / "run", seeds=1, iterations=3, evaluated=True)
    out = ["-o", str(tmp_path / ("rep" if command == "report" else "curves.png"))]
    code, _, err = cli(command, str(run), *out)
    assert code == 0 and "metrics.jsonl" not in err, err
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"iteration": 4, "post_re\n[1, 2]\n\n')  # a line cut short, one of another tool; blank lines are no lines
    code, _, err = cli(command, str(run), *out)
    assert code == 0 and f"note: {run / 'metrics.jsonl'}: 2 lines that metarl did not write whole (cut short, or edited) left out of the {command}" in " ".join(err.split()), err

def test_metrics_lines_of_another_seed_or_repeating_an_iteration_are_left_out(tmp_path, cli):
    run = fake_run(tmp_path / "run", seeds=2, iterations=3, evaluated=False)
    foreign = [{"iteration": 3, "seed": 7}, {"iteration": 3, "seed": 0.5}, {"iteration": 3, "seed": 0},
               {"iteration": -5, "seed": 0}, {"iteration": 0, "seed": 1}, {"iteration": 3},  # no seed, in a run of two
               {"iteration": 4, "seed": 0, "loss": float("inf")}, {"iteration": 4, "seed": 1, "loss": float("nan")}]
    with open(run / "metrics.jsonl", "a") as f:  # JSON's Infinity and NaN, which metarl writes as null
        f.write("".join(json.dumps({"post_return": 99.0, "loss": 1.0, **line}) + "\n" for line in foreign))
    outputs = read_run(run)
    assert outputs.unread_metrics_lines == len(foreign) and len(outputs.metrics) == 6
    [row] = run_rows(outputs, step=None)
    assert (row.split, row.estimate, row.n) == ("train", 30.5, 2)  # iteration 3's seeds 0 and 1, as written
    code, _, err = cli("report", str(run), "-o", str(tmp_path / "rep"))
    assert code == 0 and f"{len(foreign)} lines that metarl did not write whole (cut short, or edited)" in " ".join(err.split()), err


def test_report_pools_seeds_and_tasks(tmp_path, cli):
    run = fake_run(tmp_path / "run", seeds=2, iterations=3, evaluated=True)
    files = {path: path.read_bytes() if path.is_file() else None for path in run.rglob("*")}
    rows = {(r.split, r.method): r for r in run_rows(read_run(run), step=None)}
    training = rows[("train", "training")]
    assert (training.seeds, training.estimate, training.metric) == (2, 30.5, "final return after adaptation")  # last values 30 and 31
    # Their mean and its Student-t interval: t(0.975, 1 df) = 12.7062 times sd 0.7071 over sqrt(2).
    assert training.estimator == "mean" and (training.low, training.high) == pytest.approx((24.1469, 36.8531), abs=1e-4)
    evaluated = rows[("test", "meta-learned")]
    # Pooled after 1 step: 1, 2, 3, 4 and 2, 3, 4, 5 -> sorted middle four 2, 3, 3, 4.
    assert (evaluated.seeds, evaluated.n, evaluated.estimator, evaluated.estimate) == (2, 8, "IQM", 3.0)
    # The sweep directory and the run inside it, named together: the run counts once.
    code, out, err = cli("report", str(tmp_path), str(run), "-o", str(tmp_path / "out" / "rep"))
    assert code == 0, err
    assert "meta-learned" in out
    with open(tmp_path / "out" / "rep.csv", newline="") as f:  # a row a line, each value under its own header
        written = [(w["algo"], w["env"], w["split"], w["method"], w["estimator"], *map(float, (w["estimate"], w["low"], w["high"])))
                   for w in csv.DictReader(f)]
    # Each row names its run's algorithm and family: rows of different families are not comparable.
    assert written == [("maml", "cartpole-family", r.split, r.method, r.estimator, pytest.approx(r.estimate), pytest.approx(r.low),
                        pytest.approx(r.high)) for r in (training, evaluated)]
    # Beside it, a run that has logged nothing yet is named as left out, not dropped without a word.
    (fake_run(tmp_path / "empty", seeds=1, iterations=3, evaluated=False) / "metrics.jsonl").unlink()
    code, out, err = cli("report", str(tmp_path), "-o", str(tmp_path / "out" / "rep"))
    left_out = f"{tmp_path / 'empty'} has nothing to report yet (no value of its headline metric logged by every seed, no evaluation): left out"
    assert code == 0 and left_out in " ".join(err.split()), err  # the line wrapped where the terminal is narrow
    assert len((tmp_path / "out" / "rep.csv").read_text().splitlines()) == 3
    assert json.loads((tmp_path / "out" / "rep.json").read_text())[1]["estimate"] == 3.0
    code, out, err = cli("plot", str(tmp_path), "-o", str(tmp_path / "out" / "curves.png"))  # plot names it too
    assert code == 0 and left_out.replace("to report", "to plot") in " ".join(err.split()), err
    assert {path: path.read_bytes() if path.is_file() else None for path in run.rglob("*")} == files  # read, never written
    code, _, err = cli("report", str(tmp_path / "empty"))
    assert code == 2 and "nothing to report: no run has a value of its headline metric logged by every seed, or an evaluation" in " ".join(err.split())
    code, _, err = cli("plot", str(tmp_path / "empty"), "-o", str(tmp_path / "empty.png"))
    assert code == 2 and "nothing to plot: no run has a value of its headline metric logged by every seed" in " ".join(err.split())


def test_report_rows_go_by_split_name_whatever_order_the_splits_were_evaluated_in(tmp_path):
    run = fake_run(tmp_path / "run", seeds=1, iterations=3, evaluated=True)
    evaluation = json.loads((run / "eval.json").read_text())
    (run / "eval.json").write_text(json.dumps({"test": evaluation["test"], "ood": evaluation["test"]}))  # ood evaluated later
    assert [r.split for r in run_rows(read_run(run), step=None)] == ["train", "ood", "test"]


def test_report_interval_is_over_a_seeds_by_tasks_table(tmp_path):
    run = fake_run(tmp_path / "run", seeds=1, iterations=3, evaluated=False)
    # Every seed is scored on the same four tasks: each method's scores after 1 step form a
    # (seeds, tasks) table, and its interval is that table's stratified bootstrap.
    same = [[0.0] * 4, [1.0, 2.0, 3.0, 4.0]]
    apart = [[0.0] * 4, [0.0] * 4], [[0.0] * 4, [100.0] * 4]
    write_eval(run, {"same (seed 0)": same, "same (seed 1)": same, "apart (seed 0)": apart[0], "apart (seed 1)": apart[1],
                     "one seed": same})
    rows = {r.method: (r.estimate, r.low, r.high) for r in run_rows(read_run(run), step=None) if r.split == "test"}
    assert rows["same"] == (2.5, *stratified_bootstrap_ci(np.array([same[1], same[1]])))
    assert rows["apart"] == (50.0, *stratified_bootstrap_ci(np.array([[0.0] * 4, [100.0] * 4])))
    assert rows["one seed"] == rows["same"]  # a copy of a seed adds nothing


def test_a_damaged_run_inside_a_directory_is_left_out_with_its_reason_and_stops_the_command_where_named(tmp_path, cli):
    fake_run(tmp_path / "runs" / "good", seeds=1, iterations=3, evaluated=False)
    damaged = fake_run(tmp_path / "runs" / "damaged[" / "b]", seeds=1, iterations=3, evaluated=False)  # "[/b]": named as written
    (damaged / "config.toml").unlink()
    cut = fake_run(tmp_path / "runs" / "cut", seeds=1, iterations=3, evaluated=False)
    (cut / "manifest.json").write_text('{"tool": "met')  # cut short, beside its config: a run of ours
    foreign = tmp_path / "runs" / "foreign"  # another tool's manifest.json: not a run, and not named
    foreign.mkdir()
    (foreign / "manifest.json").write_text('{"name": "dataset"}')
    for command, output in (("report", tmp_path / "rep"), ("plot", tmp_path / "p.png")):
        code, out, err = cli(command, str(tmp_path / "runs"), "-o", str(output))
        err = " ".join(err.split())
        assert code == 0 and f"{damaged} left out of the {command}: config file not found" in err, err
        assert f"{cut} left out of the {command}: {cut / 'manifest.json'} is not valid JSON" in err, err
        assert str(foreign) not in err, err
        code, _, err = cli(command, str(damaged), "-o", str(output))
        assert code == 2 and "config file not found" in err, err
    assert {row["run"] for row in json.loads((tmp_path / "rep.json").read_text())} == {str(tmp_path / "runs" / "good")}


def test_report_and_plot_refuse_an_eval_json_they_cannot_read_and_skip_a_foreign_metrics_line(tmp_path, cli):
    run = fake_run(tmp_path / "run", seeds=1, iterations=3, evaluated=False)
    with open(run / "metrics.jsonl", "a") as f:  # valid JSON, but not lines metarl writes
        f.write('5\n{"post_return": 1.0}\n{"iteration": 4, "post_return": "x"}\n{"iteration": true, "post_return": 2.0}\n'
                '{"iteration": 4, "post_return": true}\n')
    assert [(r.split, r.estimate) for r in run_rows(read_run(run), step=None)] == [("train", 30.0)]  # iteration 3's, the last metarl wrote
    code, _, err = cli("plot", str(run), "-o", str(tmp_path / "p.png"))
    assert code == 0, err
    result = {"methods": {}, "score": "return", "steps": 1}
    ragged = {"m (seed 0)": [[1.0, 2.0], [3.0, 4.0]], "m (seed 1)": [[1.0], [2.0]]}  # seeds on different tasks
    for written in ({"test": {"methods": 5}}, {"test": {"methods": {}, "steps": 1}}, ["test"],
                    {"test": {**result, "per_task": ragged}}, {"test": {**result, "per_task": {"m": [[1.0, 2.0]]}}}):
        (run / "eval.json").write_text(json.dumps(written))
        for args in (["report", str(run), "-o", str(tmp_path / "rep")], ["plot", str(run), "-o", str(tmp_path / "p.png")]):
            code, _, err = cli(*args)
            assert code == 2 and "eval.json is not an evaluation written by metarl" in err and "Traceback" not in err, (written, args, err)
    # An eval.json from before per-task scores were kept: refused in one line that says how to write it again.
    legacy = {"methods": {"random init": [{"after_steps": 0, "mean": 1.0, "ci95": 0.5, "diverged": 0}]}, "score": "return", "steps": 0}
    for ood in (legacy, {**legacy, "per_task": {}}):  # an empty table is none either
        (run / "eval.json").write_text(json.dumps({"test": {**result, "per_task": {"m": [[1.0], [2.0]]}}, "ood": ood}))
        for args in (["report", str(run), "-o", str(tmp_path / "rep")], ["plot", str(run), "-o", str(tmp_path / "p.png")]):
            code, _, err = cli(*args)
            assert code == 2 and "has no per-task scores for its 'ood' split" in err and "--split ood` writes it again" in err, (args, err)


def test_report_step_picks_k_where_runs_adapt_and_k_0_where_they_do_not(tmp_path, capsys):
    adapting = fake_run(tmp_path / "maml-dqn", seeds=1, iterations=3, evaluated=False)
    write_eval(adapting, {"meta-learned": [[1.0, 2.0], [5.0, 6.0]]})
    plain = fake_run(tmp_path / "dqn", seeds=1, iterations=3, evaluated=False)
    write_eval(plain, {"trained": [[3.0, 4.0]]}, adapts=False)  # DQN: scored after 0 steps only
    rows = [r for run in (adapting, plain) for r in run_rows(read_run(run), step=1) if r.split == "test"]
    assert [(r.method, r.metric, r.estimate) for r in rows] == [("meta-learned", "return after 1 step", 5.5),
                                                           ("trained", "return after 0 steps", 3.5)]
    # Evaluated to fewer steps: that split is left out, and said to be, not the whole report refused.
    write_eval(adapting, {"meta-learned": [[1.0, 2.0], [5.0, 6.0]], "random init": [[0.0, 0.0], [1.0, 1.0]]})
    evaluation = json.loads((adapting / "eval.json").read_text())
    evaluation["ood"] = {**evaluation["test"], "steps": 2, "per_task": {"meta-learned": [[1.0, 2.0], [5.0, 6.0], [7.0, 8.0]]}}
    (adapting / "eval.json").write_text(json.dumps(evaluation))
    assert [(r.split, r.metric, r.estimate) for r in run_rows(read_run(adapting), step=2) if r.split != "train"] == [("ood", "return after 2 steps", 7.5)]
    err = " ".join(capsys.readouterr().err.split())
    assert f"{adapting}: its 'test' evaluation went to k = 1, not 2: left out of the report" in err, err
    # An eval.json from before it recorded "adapts": the run's config says that DQN does not adapt.
    write_config(DqnConfig(), "dqn", plain / "config.toml")
    (plain / "manifest.json").write_text(json.dumps({"tool": "metarl", "algo": "dqn"}))
    evaluation = json.loads((plain / "eval.json").read_text())
    del evaluation["test"]["adapts"]
    (plain / "eval.json").write_text(json.dumps(evaluation))
    assert [(r.metric, r.estimate) for r in run_rows(read_run(plain), step=1) if r.split == "test"] == [("return after 0 steps", 3.5)]


def test_report_says_a_method_diverged_rather_than_summarise_the_tasks_that_did_not(tmp_path, cli):
    run = fake_run(tmp_path / "run", seeds=1, iterations=3, evaluated=False)
    write_eval(run, {"meta-learned": [[1.0, 2.0, 3.0, 4.0]] * 2, "random init": [[1.0, 2.0, 3.0, 4.0], [1.0, float("nan"), 3.0, 4.0]]})
    rows = {(r.split, r.method): r for r in run_rows(read_run(run), step=None)}
    finite = rows[("test", "meta-learned")]
    assert (finite.n, finite.estimate, finite.diverged) == (4, 2.5, 0)
    diverged = rows[("test", "random init")]
    assert (diverged.n, diverged.diverged) == (4, 1) and np.isnan(diverged.estimate)  # not the IQM of 1, 3 and 4
    before = {r.method: r for r in run_rows(read_run(run), step=0) if r.split == "test"}["random init"]
    assert (before.estimate, before.diverged) == (2.5, 0)  # every task finite before adapting
    code, out, err = cli("report", str(run), "-o", str(tmp_path / "rep"))
    assert code == 0, err
    assert "diverged on 1/4" in out
    saved = {row["method"]: row for row in json.loads((tmp_path / "rep.json").read_text())}
    assert saved["random init"]["estimate"] is None and saved["random init"]["diverged"] == 1  # JSON has no NaN
    assert saved["meta-learned"]["estimate"] == 2.5
    with open(tmp_path / "rep.csv", newline="") as f:
        cells = {row["method"]: row for row in csv.DictReader(f)}
    assert (cells["random init"]["estimate"], cells["random init"]["low"], cells["random init"]["diverged"]) == ("", "", "1")


@pytest.mark.parametrize("width", [80, 60, 56])
def test_report_cuts_no_name_nor_word_on_a_narrow_terminal(tmp_path, cli, monkeypatch, width):
    from rich.console import Console

    from metarl_cli import tables as tables_module

    run = fake_run(tmp_path / "sweep" / "inner_lr=0.1,meta_batch=20,outer_lr=0.001", seeds=2, iterations=3, evaluated=True)
    write_eval(run, {"meta-learned": [[0.0] * 4, [1.0, 2.0, 3.0, 4.0]], "pretrained (multi-task, step 0.05)": [[0.0] * 4, [1.0, 2.0, np.nan, 4.0]]})
    monkeypatch.setattr(tables_module, "out", Console(width=width))  # as a terminal of that many columns would be
    code, out, err = cli("report", str(run), "-o", str(tmp_path / "rep"))
    assert code == 0, err
    assert "…" not in out and max(len(line) for line in out.splitlines()) <= width  # cells wrap where too narrow
    words = ("meta-learned", "adaptation", "estimate", "(mean)", "(multi-task,", "diverged", "1/4")
    assert all(word in out.split() for word in words)  # between words, a diverged cell measured as shown
    assert str(run) in "".join(out.split())  # the name whole, folded over lines where longer than one


def test_report_on_a_terminal_too_narrow_for_one_table_prints_a_table_per_run(tmp_path, cli, monkeypatch):
    from rich.console import Console

    from metarl_cli import tables as tables_module

    monkeypatch.chdir(tmp_path)
    for name in ("a", "b"):
        fake_run(Path(name), seeds=2, iterations=3, evaluated=True)
    for width, per_run in ((200, False), (90, True)):
        monkeypatch.setattr(tables_module, "out", Console(width=width))
        code, out, err = cli("report", "a", "b", "-o", "rep")
        assert code == 0 and ("run" not in out.split()) == per_run, (width, out)  # per run: its name the title, no run column


@pytest.mark.parametrize("checkpoint, evaluated_at, note", [("latest", 3, " (evaluated at iteration 3; the run is at 5)"),
                                                             ("latest", 5, ""), ("best", 3, " (best checkpoint, iteration 3)")])
def test_report_says_when_an_evaluation_is_older_than_the_run_or_of_its_best(tmp_path, checkpoint, evaluated_at, note):
    run = fake_run(tmp_path / "run", seeds=1, iterations=5, evaluated=False)  # resumed for 2 more after its eval at 3
    with Checkpoints(run, 2) as checkpoints:
        checkpoints.save(5, {"params": np.zeros(2)}, 0.0)
    write_eval(run, {"meta-learned": [[0.0] * 4, [1.0, 2.0, 3.0, 4.0]]}, iteration=evaluated_at, checkpoint=checkpoint)
    evaluated = [row for row in run_rows(read_run(run), step=None) if row.split == "test"]
    assert [row.metric for row in evaluated] == [f"return after 1 step{note}"]
    # The baselines do not score the run's checkpoint: their rows carry no note of it.
    write_eval(run, {"meta-learned (seed 0)": [[0.0] * 4, [1.0, 2.0, 3.0, 4.0]], "meta-learned (seed 1)": [[0.0] * 4, [1.0] * 4],
                     "random init": [[0.0] * 4, [0.5] * 4]}, iteration=evaluated_at, checkpoint=checkpoint,
               checkpointed=["meta-learned (seed 0)", "meta-learned (seed 1)"])
    evaluated = {row.method: row.metric for row in run_rows(read_run(run), step=None) if row.split == "test"}
    assert evaluated == {"meta-learned": f"return after 1 step{note}", "random init": "return after 1 step"}


@pytest.mark.parametrize("command, output", [("report", "/proc/metarl-report"), ("plot", "/proc/metarl-plot.png"),
                                             ("report", "/proc/metarl-folder/report")])  # a folder the system will not make
def test_a_place_the_system_refuses_is_named_in_one_line(tmp_path, cli, command, output):
    run = fake_run(tmp_path / "run", seeds=1, iterations=3, evaluated=True)
    code, out, err = cli(command, str(run), "-o", output)
    written = output + ".csv" if command == "report" else output
    assert code == 2 and f"cannot write {written}: " in err and "Traceback" not in err  # no such file (root), or no permission
    assert out == "" and err.startswith(f"error: cannot write {written}") and err.count("\n") == 1, out + err  # refused before the table


def test_report_says_where_an_unfinished_run_stands(tmp_path):
    run = fake_run(tmp_path / "run", seeds=2, iterations=3, evaluated=False, planned=100)
    assert [r.metric for r in run_rows(read_run(run), step=None)] == ["return after adaptation at iteration 3 of 100 (unfinished)"]
    write_eval(run, {"meta-learned": [[0.0] * 4, [1.0, 2.0, 3.0, 4.0]]}, iteration=3)  # its evaluation says so too
    assert [r.metric for r in run_rows(read_run(run), step=None) if r.split == "test"] == ["return after 1 step at iteration 3 of 100 (unfinished)"]


def test_learning_curve_is_the_mean_over_seeds_at_each_iteration(tmp_path):
    from metarl_cli.plot import learning_curve

    run = fake_run(tmp_path / "run", seeds=2, iterations=3, evaluated=False)  # post_return 10 i + seed
    metric, iterations, mean, half, seeds, _ = learning_curve(read_run(run).metrics)
    assert (metric, list(iterations), list(mean), seeds) == ("post_return", [1, 2, 3], [10.5, 20.5, 30.5], 2)
    np.testing.assert_allclose(half, 6.3531, atol=1e-4)  # t(0.975, 1 df) = 12.7062 times sd 0.7071 over sqrt(2)


def test_a_dqn_run_reports_its_end_of_training_returns_and_plots_each_seeds_latest(tmp_path):
    """DQN logs a chunk's episode returns, none for a seed none of whose episodes ended in it: the
    report gives each seed's return over the last tenth of the env steps (as `metarl train` ends
    with), leaving out and naming a seed with no episode there; the plot's mean at each iteration
    keeps such a seed's latest value rather than averaging over the others."""
    from metarl_cli.plot import learning_curve

    run = tmp_path / "dqn"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({"tool": "metarl", "algo": "dqn"}))
    write_config(DqnConfig(env="cartpole", seeds=2, total_steps=1000, learning_starts=128), "dqn", run / "config.toml")
    returns = {0: [10.0, 20.0, 30.0, 40.0], 1: [12.0, 22.0, None, None]}
    lines = [{"iteration": 25 * (i + 1), "seed": seed, "env_steps": 250 * (i + 1), "return": r, "episodes": 0 if r is None else 2}
             for i in range(4) for seed, rs in returns.items() for r in [rs[i]]]
    (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    [training] = run_rows(read_run(run), step=None)
    assert training.metric == "final return (episodes of the last 250 env steps; none of seed 1's ended there)"
    assert (training.seeds, training.n, training.estimate) == (2, 1, 40.0)
    metric, iterations, mean, _, seeds, _ = learning_curve(read_run(run).metrics)
    assert (metric, list(iterations), list(mean), seeds) == ("return", [25, 50, 75, 100], [11.0, 21.0, 26.0, 31.0], 2)
    # Where the second seed has yet to log a value, no mean: the curve starts once both have one.
    (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines[:1] + lines[2:]))
    assert list(learning_curve(read_run(run).metrics)[1]) == [50, 75, 100]


def test_a_dqn_run_none_of_whose_seeds_ended_an_episode_at_the_end_reports_a_training_row_saying_so(tmp_path, cli):
    """Not a report without its training row and without a word (a hard family on a short budget):
    the row names the window, has no value (n = 0, null in the files), and the table says "none".
    (Its name holds what rich would read as markup: printed as it is, never a MarkupError.)"""
    run = tmp_path / "dqn[" / "b]"
    run.mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"tool": "metarl", "algo": "dqn"}))
    write_config(DqnConfig(env="cartpole", seeds=2, total_steps=1000, learning_starts=128), "dqn", run / "config.toml")
    lines = [{"iteration": 25 * (i + 1), "seed": seed, "env_steps": 250 * (i + 1), "return": None, "episodes": 0}
             for i in range(4) for seed in (0, 1)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    write_eval(run, {"trained (seed 0)": [[-500.0, -480.0]], "trained (seed 1)": [[-490.0, -470.0]]}, adapts=False)
    training, evaluated = run_rows(read_run(run), step=None)
    assert training.metric == "final return (episodes of the last 250 env steps; no seed's ended there)"
    assert (training.seeds, training.n) == (2, 0) and math.isnan(training.estimate)
    assert (evaluated.split, evaluated.n) == ("test", 4)
    code, out, err = cli("report", str(run), "-o", str(tmp_path / "rep"))
    [row_line] = [line for line in out.splitlines() if "no seed's ended there" in line]
    assert code == 0 and row_line.split()[-4:] == ["2", "0", "none", "n/a"], (out, err)  # seeds, n, estimate, CI
    assert json.loads((tmp_path / "rep.json").read_text())[0]["estimate"] is None
    with open(tmp_path / "rep.csv", newline="") as f:
        written = next(csv.DictReader(f))
    assert (written["n"], written["estimate"], written["low"], written["high"]) == ("0", "", "", "")
    # The plot draws its evaluation, and says that it has no learning curve to draw.
    code, out, err = cli("plot", str(run), "-o", str(tmp_path / "curves.png"))
    assert code == 0 and f"{run} has no learning curve yet" in " ".join(err.split()), err
    # An earlier window's returns, in the thousands: whole numbers, not 3 figures and an exponent.
    (run / "metrics.jsonl").write_text("".join(json.dumps({**line, "return": -1654.3 - line["seed"], "episodes": 1}) + "\n" for line in lines))
    code, out, err = cli("report", str(run), "-o", str(tmp_path / "rep"))
    assert code == 0 and "-1655" in out.split() and "e+03" not in out, (out, err)
    code, out, err = cli("plot", str(run), "-o", str(tmp_path / "curves.png"))
    assert code == 0 and "no learning curve" not in err, err


def test_seed_curves_carry_each_seeds_latest_value_into_every_later_iteration_it_skips():
    from metarl_cli.run_outputs import seed_curves

    logged = {0: [1.0, 2.0, 3.0], 1: [5.0, None, 7.0]}  # seed 1 logs nothing at the second iteration
    records = [{"iteration": i + 1, "seed": seed, "return": v} for i in range(3) for seed, vs in logged.items()
               if (v := vs[i]) is not None]
    curves = seed_curves(records)
    assert (curves.metric, curves.iterations.tolist(), curves.values.tolist()) == (
        "return", [1, 2, 3], [[1.0, 5.0], [2.0, 5.0], [3.0, 7.0]])


@pytest.mark.parametrize("checkpoint, evaluated_at, planned, note", [
    ("latest", 3, 10, " (evaluated at iteration 3; the run is at 7)"),
    ("latest", 7, 10, " at iteration 7 of 10 (unfinished)"),
    ("best", 3, 10, " (best checkpoint, iteration 3; the run, unfinished, is at 7 of 10)"),
    ("best", 3, 7, " (best checkpoint, iteration 3)"),
    ("latest", 7, 7, "")])
def test_plot_and_report_say_alike_which_checkpoint_an_evaluation_scored(tmp_path, checkpoint, evaluated_at, planned, note):
    # Logged to 7, its checkpoints elsewhere (a copy without them; a run saving every few chunks stands where it logged too).
    run = fake_run(tmp_path / "run", seeds=1, iterations=7, evaluated=False, planned=planned)
    rows = {row.method: row.metric for row in run_rows(read_run(run), step=None)}
    assert rows["training"] == ("return after adaptation at iteration 7 of 10 (unfinished)" if planned == 10
                                else "final return after adaptation")  # where the eval rows say it stands
    write_eval(run, {"meta-learned": [[0.0] * 4, [1.0, 2.0, 3.0, 4.0]], "random init": [[0.0] * 4, [0.5] * 4]},
               iteration=evaluated_at, checkpoint=checkpoint, checkpointed=["meta-learned"])
    rows = {row.method: row.metric for row in run_rows(read_run(run), step=None) if row.split == "test"}
    assert rows == {"meta-learned": f"return after 1 step{note}", "random init": "return after 1 step"}
    fig, _ = draw_runs([read_run(run)])
    try:
        legend = [" ".join(text.get_text().split()) for text in fig.axes[1].get_legend().get_texts()]
    finally:
        plt.close(fig)
    assert legend == [f"meta-learned (test){note}", "random init (test)"]  # the baseline did not score the run's checkpoint

def test_plot_leaves_a_gap_where_a_method_diverged_and_says_so(tmp_path):
    from metarl_cli.plot import adaptation_series

    run = fake_run(tmp_path / "run", seeds=1, iterations=3, evaluated=False)
    write_eval(run, {"meta-learned": [[0.0, 2.0, 4.0], [1.0, 3.0, 8.0], [2.0, 2.0, 2.0]],
                     "random init": [[0.0, 2.0, 4.0], [1.0, None, 8.0], [3.0, 3.0, 6.0]]})
    (_, _, ks, mean, half), (_, _, _, random_mean, _) = adaptation_series(json.loads((run / "eval.json").read_text())["test"])
    assert list(ks) == [0, 1, 2] and list(mean) == [2.0, 4.0, 2.0]
    # Over the three tasks, t(0.975, 2 df) = 4.3027 times sd 2 and sqrt(13) over sqrt(3); no spread at k = 2.
    np.testing.assert_allclose(half, [4.9683, 8.9567, 0.0], atol=1e-4)
    assert random_mean[0] == 2.0 and np.isnan(random_mean[1]) and random_mean[2] == 4.0

    def legend() -> list[str]:
        """The adaptation panel's legend, each entry's lines joined; no line wider than LEGEND_WIDTH."""
        fig, _ = draw_runs([read_run(run)])
        try:
            texts = [text.get_text() for text in fig.axes[1].get_legend().get_texts()]
        finally:
            plt.close(fig)
        assert all(len(line) <= LEGEND_WIDTH for text in texts for line in text.splitlines()), texts
        return [" ".join(text.split()) for text in texts]

    assert legend() == ["meta-learned (test)", "random init (test); diverged at k = 1 on some task, not drawn"]
    # Runs of three or more diverged steps are spans.
    finite, diverged = [1.0, 2.0], [1.0, None]
    write_eval(run, {"meta-learned": [finite, diverged, finite, diverged, diverged, diverged, finite, diverged, diverged]})
    assert legend() == ["meta-learned (test); diverged at k = 1, 3–5, 7, 8 on some task, not drawn"]
    # In an RL^2 trial the gap is an episode of the trial.
    write_eval(run, {"trained": [[1.0, 2.0], [3.0, None]]}, trial=True)
    assert legend() == ["trained (test); diverged in episode 2 on some task, not drawn"]


@pytest.mark.parametrize("evaluated", [True, False], ids=["finished", "still-training"])
def test_plot_writes_a_png(tmp_path, cli, evaluated):
    run = fake_run(tmp_path / "run", seeds=3, iterations=5, evaluated=evaluated, planned=5 if evaluated else 100)
    code, _, err = cli("plot", str(run), "-o", str(tmp_path / "curves.png"))
    assert code == 0, err
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fig, _ = draw_runs([read_run(run)])  # what it drew: the learning curves' panel, and the adaptation curves' once evaluated
    try:
        panels = [(ax.get_xlabel(), len(ax.get_lines()) > 0) for ax in fig.axes if ax.get_visible()]
    finally:
        plt.close(fig)
    assert panels == [("meta-iteration", True), *([("adaptation steps k", True)] if evaluated else [])]


def test_plot_says_in_one_line_which_characters_of_run_names_its_font_lacks(tmp_path, cli):
    runs = [fake_run(tmp_path / name, seeds=1, iterations=2, evaluated=False) for name in ("run 日本", "run b")]
    code, _, err = cli("plot", *map(str, runs), "-o", str(tmp_path / "curves.png"))
    assert code == 0, err
    assert "note: the plot's font has no 日, 本 (in run names): drawn as boxes" in " ".join(err.split()), err
    assert "Warning" not in err and "Glyph" not in err, err


def test_report_labels_an_rl2_trial_by_episode_and_trial_total(tmp_path):
    run = fake_run(tmp_path / "run", seeds=2, iterations=1, evaluated=False)
    # Two seeds, two tasks each, two episodes a trial: episode 1 pools 1, 2, 3, 4; episode 2 pools
    # 5, 6, 7, 8; the trial totals pool 6, 8, 10, 12.
    write_eval(run, {"trained (seed 0)": [[1.0, 2.0], [5.0, 6.0]], "trained (seed 1)": [[3.0, 4.0], [7.0, 8.0]]}, trial=True)
    rows = [(r.method, r.metric, r.seeds, r.n, r.estimate) for r in run_rows(read_run(run), step=None) if r.split == "test"]
    assert rows == [("trained", "return in episode 1 of 2", 2, 4, 2.5), ("trained", "return in episode 2 of 2", 2, 4, 6.5),
                    ("trained", "trial total return", 2, 4, 9.0)]
    assert run_rows(read_run(run), step=5) == run_rows(read_run(run), step=None)  # a trial has no adaptation steps to pick
    # As an RL^2 run's: its training return is the trial's, as plot names it.
    (run / "manifest.json").write_text(json.dumps({"tool": "metarl", "algo": "rl2"}))
    write_config(Rl2Config(seeds=2, iterations=1), "rl2", run / "config.toml")
    (run / "metrics.jsonl").write_text("".join(json.dumps({"iteration": 1, "seed": s, "return": 10.0 + s}) + "\n" for s in (0, 1)))
    assert [r.metric for r in run_rows(read_run(run), step=None) if r.split == "train"] == ["final trial return (training)"]


@pytest.mark.parametrize("given, written", [("rep-lr0.1", "rep-lr0.1"), ("rep.csv", "rep"), ("rep.json", "rep")])
def test_report_files_keep_a_dotted_prefix_whole(tmp_path, given, written):
    assert report_paths(tmp_path / given) == (tmp_path / f"{written}.csv", tmp_path / f"{written}.json")


def test_trying_an_output_leaves_what_was_there(tmp_path):
    from metarl_cli.files import check_writable

    new, kept, link, pipe = (tmp_path / name for name in ("new.csv", "kept.csv", "link.csv", "pipe.png"))
    kept.write_bytes(b"a,b\n1,2\n")
    before = kept.stat()
    link.symlink_to(tmp_path / "nowhere.csv")
    os.mkfifo(pipe)
    for path in (new, kept, link, pipe, tmp_path / "made" / "deeper" / "new.csv"):  # the folders tried, then removed
        check_writable(path)  # a pipe is not opened: that would end its reader's input, and no reader would refuse it
    assert not new.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["kept.csv", "link.csv", "pipe.png"]
    assert kept.read_bytes() == b"a,b\n1,2\n" and kept.stat().st_mtime_ns == before.st_mtime_ns
    assert link.is_symlink() and not (tmp_path / "nowhere.csv").exists()


@pytest.mark.parametrize("command, name", [("report", "rep"), ("plot", "curves.png")])
def test_an_output_that_cannot_be_written_is_refused_before_the_work(tmp_path, cli, command, name):
    run = fake_run(tmp_path / "run", seeds=1, iterations=2, evaluated=True)
    (tmp_path / "taken").write_text("")  # a file where the output's folder would be
    code, out, err = cli(command, str(run), "-o", str(tmp_path / "taken" / name))
    assert code == 2 and out == ""  # no table first
    assert err.startswith(f"error: cannot write {tmp_path / 'taken' / name}") and err.count("\n") == 1
    assert f"{tmp_path / 'taken'} is not a directory" in err
    taken = tmp_path / "out" / (f"{name}.json" if command == "report" else name)
    taken.mkdir(parents=True)  # a directory where the output (report: its JSON, written second) would be
    code, out, err = cli(command, str(run), "-o", str(tmp_path / "out" / name))
    said = "is a directory" if command == "report" else "names a directory"  # plot's own output; report's second file
    assert code == 2 and out == "" and f"{taken}" in err and said in err and err.count("\n") == 1
    assert [p.name for p in (tmp_path / "out").iterdir()] == [taken.name]  # nothing written first (report: its CSV)


def test_plot_shows_the_test_split_or_else_the_first_by_name():
    from metarl_cli.plot import shown_results

    result = {"score": "return"}
    runs = {Path("a"): {"train": result, "ood": result}, Path("b"): {"ood": result, "test": result}}
    families = {Path("a"): "cartpole-family", Path("b"): "cartpole-family"}
    shown = shown_results(runs, families)[("return", False, "cartpole-family")]
    assert {run: split for run, (split, _) in shown.items()} == {Path("a"): "ood", Path("b"): "test"}


def test_plot_gives_each_task_family_its_own_panels_and_names_it_where_there_are_several(tmp_path):
    """A return on Pendulum (about -1650) and one on CartPole (up to 200) on one axis flatten both:
    each family has its own learning and adaptation panels, their titles naming it."""
    runs = []
    for name, env, scale in (("cartpole", "cartpole-family", 100.0), ("pendulum", "pendulum-family", -1000.0)):
        run = tmp_path / name
        run.mkdir()
        (run / "manifest.json").write_text(json.dumps({"tool": "metarl", "algo": "maml"}))
        write_config(MamlRLConfig(env=env, iterations=2), "maml", run / "config.toml")
        (run / "metrics.jsonl").write_text("".join(json.dumps({"iteration": i, "seed": 0, "post_return": scale * i}) + "\n" for i in (1, 2)))
        write_eval(run, {"meta-learned": [[scale, scale], [2 * scale, 2 * scale]]})
        runs.append(run)
    fig, _ = draw_runs(list(map(read_run, runs)))
    try:
        panels = {" ".join(ax.get_title().split("\n")[0].split()): [text.get_text() for text in ax.get_legend().get_texts()] for ax in fig.axes}
    finally:
        plt.close(fig)
    assert panels == {
        "learning curves: return after adaptation on cartpole-family": ["cartpole (1 seed)"],
        "learning curves: return after adaptation on pendulum-family": ["pendulum (1 seed)"],
        "adaptation on held-out cartpole-family tasks: return per episode after k steps": ["cartpole: meta-learned (test)"],
        "adaptation on held-out pendulum-family tasks: return per episode after k steps": ["pendulum: meta-learned (test)"],
    }


def test_plot_gives_each_kind_of_score_its_own_adaptation_axes(tmp_path):
    runs = [fake_run(tmp_path / name, seeds=1, iterations=3, evaluated=False) for name in ("sinusoid", "dqn", "rl2")]
    write_eval(runs[0], {"meta-learned": [[1.0, 2.0], [0.5, 0.7]]}, score="mse")
    write_eval(runs[1], {"trained": [[1.0, 2.0]]})
    write_eval(runs[2], {"trained": [[1.0, 2.0], [3.0, 4.0]]}, trial=True)
    fig, _ = draw_runs(list(map(read_run, runs)))
    try:
        adaptation = {(ax.get_xlabel(), ax.get_ylabel()): [text.get_text() for text in ax.get_legend().get_texts()]
                      for ax in fig.axes[1:]}
        scales = {(ax.get_xlabel(), ax.get_ylabel()): ax.get_yscale() for ax in fig.axes[1:]}
        titles = [ax.get_title() for ax in fig.axes[1:]]
    finally:
        plt.close(fig)
    assert titles == ["adaptation on held-out tasks: query MSE after k steps (log scale)\n(95% CI over tasks)",
                      "adaptation on held-out tasks: return per episode after k steps\n(95% CI over tasks)",
                      "RL^2 trials on held-out tasks: return per episode in each episode\n(95% CI over tasks)"]
    assert adaptation == {
        ("adaptation steps k", "query MSE"): ["sinusoid: meta-learned (test)"],
        ("adaptation steps k", "return per episode"): ["dqn: trained (test)"],
        ("episode of the trial (memory carried across episodes)", "return per episode"): ["rl2: trained (test)"],
    }
    assert scales == {("adaptation steps k", "query MSE"): "log", ("adaptation steps k", "return per episode"): "linear",
                      ("episode of the trial (memory carried across episodes)", "return per episode"): "linear"}


def test_plot_draws_a_method_once_however_many_seeds_and_tells_runs_of_one_name_apart(tmp_path):
    from metarl_cli.plot import adaptation_series

    runs = [fake_run(tmp_path / sweep / "inner_lr=0.1", seeds=2, iterations=3, evaluated=False) for sweep in ("sweep-a", "sweep-b")]
    # Two seeds on the same two tasks: after 1 step the tasks average 2 and 4 over the seeds.
    write_eval(runs[0], {"meta-learned (seed 0)": [[0.0, 0.0], [1.0, 3.0]], "meta-learned (seed 1)": [[0.0, 0.0], [3.0, 5.0]],
                         "random init": [[0.0, 0.0], [1.0, 1.0]]})
    write_eval(runs[1], {"meta-learned (seed 0)": [[0.0, 0.0], [1.0, 1.0]], "meta-learned (seed 1)": [[0.0, 0.0], [1.0, 1.0]]})
    (method, seeds, ks, mean, _), _ = adaptation_series(json.loads((runs[0] / "eval.json").read_text())["test"])
    assert (method, seeds, list(ks), list(mean)) == ("meta-learned", 2, [0, 1], [0.0, 3.0])
    fig, _ = draw_runs(list(map(read_run, runs)))
    try:
        legends = [[" ".join(text.get_text().split()) for text in ax.get_legend().get_texts()] for ax in fig.axes]
    finally:
        plt.close(fig)
    assert legends == [["sweep-a/inner_lr=0.1 (2 seeds)", "sweep-b/inner_lr=0.1 (2 seeds)"],
                       ["sweep-a/inner_lr=0.1: meta-learned (2 seeds, test)", "sweep-a/inner_lr=0.1: random init (test)",
                        "sweep-b/inner_lr=0.1: meta-learned (2 seeds, test)"]]


def test_plot_puts_learning_curves_on_shared_axes_only_where_x_and_y_mean_the_same(tmp_path):
    maml_runs = [fake_run(tmp_path / f"maml-{i}", seeds=1, iterations=3, evaluated=False) for i in range(12)]
    dqn = tmp_path / "dqn"
    dqn.mkdir()
    (dqn / "manifest.json").write_text(json.dumps({"tool": "metarl", "algo": "dqn"}))
    write_config(DqnConfig(), "dqn", dqn / "config.toml")
    (dqn / "metrics.jsonl").write_text("".join(json.dumps({"iteration": 2500 * i, "seed": 0, "return": 20.0 * i}) + "\n" for i in (1, 2)))
    fig, _ = draw_runs([read_run(run) for run in (*maml_runs, dqn)])
    try:
        panels = {(ax.get_xlabel(), ax.get_ylabel()): ax for ax in fig.axes}
        styles = {(line.get_color(), line.get_linestyle()) for line in panels[("meta-iteration", "return after adaptation")].get_lines()}
        dqn_lines = panels[("iteration (train_every env steps, then a gradient step once learning starts)", "episode return (training)")].get_lines()
    finally:
        plt.close(fig)
    assert len(panels) == 2
    assert len(styles) == 12  # every run's curve drawn its own way, past the ten colours
    assert [list(line.get_xdata()) for line in dqn_lines] == [[2500, 5000]]


@pytest.mark.parametrize("seeds, half", [(1, None), (3, 4.3027 / np.sqrt(3))])  # 10, 11, 12: t(0.975, 2 df) sd 1 over sqrt(3)
def test_plot_marks_a_learning_curve_of_one_chunk(tmp_path, seeds, half):
    fig, _ = draw_runs([read_run(fake_run(tmp_path / "run", seeds=seeds, iterations=1, evaluated=False))])
    try:
        markers = [line.get_marker() for line in fig.axes[0].get_lines()]
        bars = [bar[2][0].get_segments() for bar in fig.axes[0].containers if bar.has_yerr]
    finally:
        plt.close(fig)
    assert "o" in markers
    if half is None:
        assert bars == []  # one seed: no interval
    else:  # the point's bar is its 95% CI across seeds
        np.testing.assert_allclose(np.asarray(bars[0])[0, :, 1], [11.0 - half, 11.0 + half], atol=1e-3)


def test_plot_draws_the_learning_band_and_the_adaptation_bars_as_95_percent_intervals(tmp_path):
    """The learning band is the mean +- the t interval's half-width across seeds, not the seeds'
    range; an adaptation point is the mean over tasks of each task's mean over the seeds, its bar
    the t interval over tasks."""
    run = fake_run(tmp_path / "run", seeds=2, iterations=3, evaluated=False)  # post_return 10 i + seed
    # The panel reads eval.json alone, so its three seeds need not be the run's two. Three seeds on two
    # tasks: after 1 step the tasks average 1 and 4 over the seeds (their medians are 0 and 3).
    write_eval(run, {"meta-learned (seed 0)": [[0.0, 0.0], [0.0, 3.0]], "meta-learned (seed 1)": [[0.0, 0.0], [0.0, 3.0]],
                     "meta-learned (seed 2)": [[0.0, 0.0], [3.0, 6.0]]})
    fig, _ = draw_runs([read_run(run)])
    try:
        [band] = fig.axes[0].collections
        band_y = band.get_paths()[0].vertices[:, 1]
        [point] = fig.axes[1].containers
        means, bars = point[0].get_ydata(), np.asarray(point[2][0].get_segments())[:, :, 1]
    finally:
        plt.close(fig)
    # Means 10.5 .. 30.5, half-width t(0.975, 1 df) = 12.7062 times sd 0.7071 over sqrt(2) = 6.3531.
    np.testing.assert_allclose([band_y.min(), band_y.max()], [10.5 - 6.3531, 30.5 + 6.3531], atol=1e-3)
    # After 1 step: mean 2.5, half-width 12.7062 times sd 2.1213 over sqrt(2) = 19.0593; no spread before it.
    np.testing.assert_allclose(means, [0.0, 2.5])
    np.testing.assert_allclose(bars, [[0.0, 0.0], [2.5 - 19.0593, 2.5 + 19.0593]], atol=1e-3)


def test_runs_are_found_through_links_once_and_a_foreign_manifest_is_not_a_run(tmp_path, cli, monkeypatch):
    from metarl_cli.run_outputs import expand_runs

    runs = [fake_run(tmp_path / "elsewhere" / name, seeds=1, iterations=1, evaluated=False) for name in ("a", "b")]
    compare = tmp_path / "compare"
    compare.mkdir()
    for run in runs:
        (compare / run.name).symlink_to(run, target_is_directory=True)
    (compare / "loop").symlink_to(compare, target_is_directory=True)  # visited once, not forever
    (compare / "site" / "public").mkdir(parents=True)
    (compare / "site" / "public" / "manifest.json").write_text('{"name": "a web app"}')  # another tool's
    assert expand_runs([compare]) == [compare / "a", compare / "b"]
    monkeypatch.chdir(tmp_path)  # one run named three ways: relative, absolute and through a link
    assert expand_runs([Path("elsewhere/a"), runs[0], compare / "a"]) == [Path("elsewhere/a")]
    code, out, err = cli("report", str(compare), "-o", str(tmp_path / "rep"))
    assert code == 0 and len((tmp_path / "rep.csv").read_text().splitlines()) == 3, err  # header and the two runs


def test_a_single_value_has_no_interval(tmp_path):
    run = fake_run(tmp_path / "run", seeds=1, iterations=2, evaluated=False)
    write_eval(run, {"meta-learned": [[1.0], [2.0]]})  # one task, one seed
    rows = run_rows(read_run(run), step=None)
    assert [(r.split, r.n, r.estimate) for r in rows] == [("train", 1, 20.0), ("test", 1, 2.0)]
    assert all(np.isnan(r.low) and np.isnan(r.high) and r.diverged == 0 for r in rows)
    # Two tasks, 0 and 100, have one: a resample's mean is 0, 50 or 100 (chances 1/4, 1/2, 1/4).
    write_eval(run, {"meta-learned": [[1.0, 1.0], [0.0, 100.0]]})
    [row] = [r for r in run_rows(read_run(run), step=None) if r.split == "test"]
    assert (row.n, row.estimate, row.low, row.high) == (2, 50.0, 0.0, 100.0)


def logged_run(path: Path, metric: str, by_seed: list[list[float]]) -> Path:
    """A MAML run whose seeds logged `metric` at iterations 1, 2, ...: by_seed[s][i] for seed s."""
    run = fake_run(path, seeds=len(by_seed), iterations=1, evaluated=False)
    lines = [{"iteration": i + 1, "seed": seed, metric: v} for seed, vs in enumerate(by_seed) for i, v in enumerate(vs)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return run


@pytest.mark.parametrize("metric, by_seed, title, scale, limits", [
    ("post_return", [[10.0, 20.0, 30.0]], "(one seed: no band)", "linear", None),
    # Over two seeds the t band at the ends (10.5 and 30.5 +- 6.35) runs past 10 and 31: the axis
    # shows 10..31 and a margin of 5% of the span.
    ("post_return", [[10.0, 20.0, 30.0], [11.0, 21.0, 31.0]], "across seeds, cut at the seeds' range)", "linear", (8.95, 32.05)),
    # Seeds that agree: a band of rounding error at most, not a cut.
    ("post_return", [[40.0, 46.8]] * 3, "(mean over seeds, band: 95% CI across seeds)", "linear", None),
    # An MSE: a log axis, cut at the positive values' decades (0.01..2) and 5% of them as margins.
    ("post_mse", [[1.0, 0.1, 0.01], [2.0, 0.2, 0.02]], "cut at the seeds' range)", "log",
     (10 ** (-2 - 0.05 * np.log10(200)), 10 ** (np.log10(2) + 0.05 * np.log10(200)))),
    # One chunk logged: a point and its error bar (10.5 +- 6.35), whose ends stay in view.
    ("post_return", [[10.0], [11.0]], "(mean over seeds, band: 95% CI across seeds)", "linear", None),
    # A hand-written Infinity: a line metarl does not write (it writes null), left out, so seed 0 keeps
    # its 10.0 at iteration 2; the band over 10 and 12 is cut at them.
    ("post_return", [[10.0, float("inf")], [11.0, 12.0]], "cut at the seeds' range)", "linear", (9.9, 12.1)),
])
def test_a_learning_band_wider_than_the_seeds_values_is_cut_there(tmp_path, metric, by_seed, title, scale, limits):
    fig, _ = draw_runs([read_run(logged_run(tmp_path / "run", metric, by_seed))])
    try:
        ax = fig.axes[0]
        shown = (" ".join(ax.get_title().split()), ax.get_yscale(), ax.get_ylim())
    finally:
        plt.close(fig)
    assert title in shown[0] and shown[1] == scale, shown
    if limits:
        np.testing.assert_allclose(shown[2], limits, rtol=1e-9)


def test_beside_a_band_cut_at_the_values_a_one_chunk_runs_error_bar_stays_in_view(tmp_path):
    banded = logged_run(tmp_path / "banded", "post_return", [[10.0, 20.0, 30.0], [11.0, 21.0, 31.0]])
    point = logged_run(tmp_path / "point", "post_return", [[25.0], [26.0]])  # 25.5 +- 6.35
    fig, _ = draw_runs([read_run(banded), read_run(point)])
    try:
        ax = fig.axes[0]
        title, (low, high) = " ".join(ax.get_title().split()), ax.get_ylim()
    finally:
        plt.close(fig)
    half = 0.5 * 12.706204736174698  # the t quantile (0.975, one degree of freedom) times the standard error
    # the band of the first is cut at its values (10 to 31) and the bar's ends (19.15, 31.85): 10 to 31.85, and margins of 5%
    assert "cut at the seeds' range" in title
    np.testing.assert_allclose((low, high), (10.0 - 0.05 * (25.5 + half - 10.0), 25.5 + half + 0.05 * (25.5 + half - 10.0)), rtol=1e-9)


def test_a_report_writes_no_number_json_cannot_hold(tmp_path):
    from metarl_cli.report import ReportRow, write_report

    rows = [ReportRow("run", "maml", "cartpole-family", "train", "training", "return", 2, 2, "mean", math.inf, -math.inf, math.nan)]
    csv_path, json_path = paths = report_paths(tmp_path / "rep")
    write_report(rows, paths)
    written = json.loads(json_path.read_text(), parse_constant=lambda word: pytest.fail(f"{word} in {json_path}"))
    assert [written[0][key] for key in ("estimate", "low", "high")] == [None, None, None]
    assert csv_path.read_text().splitlines()[1].endswith(",mean,,,,0")
