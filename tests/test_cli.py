"""End to end through the CLI on a tiny config: train, eval, exact resume, and every user error."""

import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_same_final_state, checkpoints_stub, set_args, tiny_sets, wait_for
from metarl_cli.config import ALGORITHMS
from metarl_cli.devices import local_devices_text
from metarl_cli.families import FAMILY_NAMES


def test_train_three_iterations_then_eval(cli, tmp_path, monkeypatch):
    run = tmp_path / "run"
    code, _, err = cli("train", "maml", "--env", "cartpole-family", *tiny_sets("iterations=3"), "-o", str(run), "-q")
    assert code == 0, err
    assert local_devices_text().startswith("cpu, ") and f"maml on cartpole-family ({local_devices_text()}) ->" in " ".join(err.split())
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["iteration"] for x in lines] == [1, 2, 3]
    assert (run / "config.toml").is_file()
    manifest = json.loads((run / "manifest.json").read_text())
    import jax

    import metarl_cli  # the commit of the source it ran, where that is a git checkout

    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(metarl_cli.__file__).parent).stdout.strip()
    assert {key: manifest[key] for key in ("tool", "algo", "env", "seed", "command", "git_commit")} == {
        "tool": "metarl", "algo": "maml", "env": "cartpole-family", "seed": 0, "git_commit": head or None,
        "command": ["metarl", "train", "maml", "--env", "cartpole-family", *tiny_sets("iterations=3"), "-o", str(run), "-q"]}
    assert manifest["devices"] == [str(d) for d in jax.devices()] and manifest["packages"]["jax"] == jax.__version__
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["1", "2", "3"]

    (run / "eval.json").write_text("[1, 2]\n")  # JSON, but not an eval's: the first eval replaces it
    for split in ("test", "ood"):
        if split == "ood":  # as if interrupted before its last save: scored at iteration 2, its baselines on all 3
            (run / "checkpoints" / "3").rename(tmp_path / "3")
        code, out, err = cli("eval", str(run), "--split", split, "-q")
        assert code == 0, err
        assert "meta-learned" in out and "random init" in out and "pretrained" in out
        unfinished = f"warning: {run} has done 2 of its 3 iterations; its baselines train on the budget of all 3"
        assert (unfinished in " ".join(err.split())) == (split == "ood"), err
    (tmp_path / "3").rename(run / "checkpoints" / "3")
    # A cached baseline whose latest checkpoint is damaged trains again, to the same network.
    scored = json.loads((run / "eval.json").read_text())["test"]["per_task"]
    saves = run / "baselines" / "pretrained" / "checkpoints"
    latest = max((p for p in saves.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    next(latest.rglob("state.npz")).write_bytes(b"not a zip file")
    code, out, err = cli("eval", str(run), "--split", "test", "-q")
    assert code == 0 and f"the cached pretrained baseline trains again from the start: {latest} cannot be read" in " ".join(err.split()), err
    assert json.loads((run / "eval.json").read_text())["test"]["per_task"] == scored
    # A run it cannot write to (a read-only disk): the tables first, then the reason eval.json is not updated.
    from metarl_cli import evaluate

    def read_only(run_dir, result):
        raise OSError(30, "Read-only file system", str(run_dir / "eval.json"))

    with monkeypatch.context() as patched:
        patched.setattr(evaluate, "write_evaluation", read_only)
        code, out, err = cli("eval", str(run), "--split", "test", "-q")
    assert code == 1 and "meta-learned" in out and f"Read-only file system: {run / 'eval.json'}" in " ".join(err.split()), err
    result = json.loads((run / "eval.json").read_text())
    assert set(result) == {"test", "ood"}
    rows = result["ood"]["methods"]["meta-learned"]
    assert [r["after_steps"] for r in rows] == [0, 1]
    # Each split its own tasks: the same network on the same keys scores them differently.
    assert result["ood"]["per_task"]["random init"] != result["test"]["per_task"]["random init"]
    assert all(np.isfinite(r["mean"]) and r["ci95"] >= 0 for r in rows)
    assert result["ood"]["checkpointed"] == ["meta-learned"]  # the run's own network; the baselines do not score its checkpoint

    # A config edited after training, or a damaged checkpoint: one line saying so, not a wrong table.
    config = (run / "config.toml").read_text()
    (run / "config.toml").write_text(config.replace("hidden = [", "hidden = [3, "))
    code, _, err = cli("eval", str(run), "-q")
    assert code == 2 and "was config.toml edited after training?" in err and "Traceback" not in err
    (run / "config.toml").write_text(config)
    next((run / "checkpoints" / "3").rglob("state.npz")).unlink()
    code, _, err = cli("eval", str(run), "-q")
    assert code == 2 and "(damaged or incomplete)" in err and "Traceback" not in err
    manifest = (run / "manifest.json").read_text()
    code, _, err = cli("train", "maml", "--resume", "-o", str(run), "--set", "iterations=4", "-q")
    assert code == 2 and "(damaged or incomplete)" in err
    assert (run / "config.toml").read_text() == config and (run / "manifest.json").read_text() == manifest

    # Without its checkpoints: a dry run of --resume says it would start again, and eval has none to score; neither writes.
    shutil.rmtree(run / "checkpoints")
    code, _, err = cli("train", "maml", "--resume", "-o", str(run), "--dry-run", "-q")
    assert code == 0 and f"would resume {run} from iteration 0 of 3" in " ".join(err.split()), err
    code, _, err = cli("eval", str(run), "-q")
    assert code == 2 and "has no latest checkpoint yet" in err
    assert not (run / "checkpoints").exists()


def test_maml_seeds_in_one_program_log_and_evaluate_each_seed(cli, tmp_path):
    # Meta-SGD, whose algorithm adapts {"init", "inner_lr"}: eval adapts the pretrained baseline by it, every rate at inner_lr.
    run = tmp_path / "seeds"
    sets = ["iterations=200", "chunk=100", "hidden=[8]", "meta_batch=4", "eval_tasks=4", "eval_steps=1", "learn_inner_lr=true"]
    code, _, err = cli("train", "maml", "--env", "sinusoid", "--seeds", "2", "--set", "seed=5", *set_args(*sets), "-o", str(run), "-q")
    assert code == 0, err
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(x["iteration"], x["seed"]) for x in lines] == [(100, 5), (100, 6), (200, 5), (200, 6)]
    assert lines[2]["post_mse"] != lines[3]["post_mse"]  # two different runs
    code, out, err = cli("eval", str(run), "-q")
    assert code == 0, err
    methods = json.loads((run / "eval.json").read_text())["test"]["methods"]
    assert {"meta-learned (seed 5)", "meta-learned (seed 6)", "random init"} <= set(methods)
    per_task = json.loads((run / "eval.json").read_text())["test"]["per_task"]
    assert per_task["meta-learned (seed 5)"] != per_task["meta-learned (seed 6)"]  # each seed's own network
    assert any(name.startswith("pretrained") for name in methods)


def test_short_sinusoid_run_lowers_query_mse_in_chunks_then_evals(cli, tmp_path):
    run = tmp_path / "sine"
    sets = ["iterations=1300", "chunk=500", "hidden=[16,16]", "meta_batch=10", "shots=10", "eval_tasks=200", "eval_steps=2"]
    code, _, err = cli("train", "maml", "--env", "sinusoid", *set_args(*sets), "-o", str(run), "-q")
    assert code == 0, err
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["iteration"] for x in lines] == [500, 1000, 1300]  # one line a chunk; a shorter last chunk
    assert sorted(int(p.name) for p in (run / "checkpoints").iterdir()) == [500, 1000, 1300]
    assert lines[-1]["post_mse"] < 0.8 * lines[0]["post_mse"]
    assert all(x["post_mse"] < x["pre_mse"] for x in lines)  # one inner step already helps

    code, out, err = cli("eval", str(run), "-q")
    assert code == 0, err
    assert "oracle" in out and "pretrained (multi-task, step" in out and "paper" not in out  # K=10: no published row
    assert "query MSE on 200 'test' tasks after k adaptation steps" in " ".join(out.split())  # named as training names it
    methods = json.loads((run / "eval.json").read_text())["test"]["methods"]
    ours, oracle, scratch = methods["meta-learned"], methods["oracle (task given)"], methods["random init"]
    # The same tasks and points for every method and step (a paired comparison): means suffice here;
    # the training metrics above carry the statistics (every chunk's mean over 5,000 tasks).
    assert ours[1]["mean"] < ours[0]["mean"] and ours[1]["mean"] + ours[1]["ci95"] < scratch[1]["mean"] - scratch[1]["ci95"]
    # The oracle does not adapt (its step is 0): the same network at steps 0 and 2, scored by two parts of
    # the program, which XLA may round differently (some jaxlibs do, in the last bits).
    assert oracle[0]["mean"] < ours[0]["mean"] and oracle[2]["mean"] == pytest.approx(oracle[0]["mean"], rel=1e-6, abs=0)
    assert oracle[0]["mean"] < 0.25 * ours[2]["mean"]  # it reads the task: far below what two steps reach
    code, out, err = cli("eval", str(run), "--steps", "0", "-q")  # no step to tune the pretrained network's for
    assert code == 0 and "pretrained (multi-task)" in out and "step 0" not in out, err


def test_a_resume_of_a_run_killed_before_its_first_checkpoint_starts_it_again(cli, tmp_path):
    straight, run = tmp_path / "straight", tmp_path / "run"
    assert cli("train", "maml", *tiny_sets("iterations=3"), "-o", str(straight), "-q")[0] == 0
    assert cli("train", "maml", *tiny_sets("iterations=3"), "-o", str(run), "-q")[0] == 0
    shutil.rmtree(run / "checkpoints")  # as a run killed before its first save leaves it, its metrics ahead of any checkpoint
    code, _, err = cli("train", "maml", "--resume", "-o", str(run), "-q")
    assert code == 0 and f"{run} has no complete checkpoint: starting it again from iteration 0" in " ".join(err.split()), err
    assert_same_final_state(straight, run, 3)
    assert (run / "metrics.jsonl").read_text() == (straight / "metrics.jsonl").read_text()


def test_resume_equals_uninterrupted_run(cli, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert cli("train", "maml", *tiny_sets("iterations=6"), "-o", str(straight), "-q")[0] == 0
    assert cli("train", "maml", *tiny_sets("iterations=3"), "-o", str(split), "-q")[0] == 0
    files = lambda run: {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}  # noqa: E731
    before = files(split)
    code, out, err = cli("train", "maml", "--resume", "-o", str(split), "--set", "iterations=6", "--dry-run")
    assert code == 0 and f"would resume {split} from iteration 3 of 6; nothing was trained or written" in err, err
    assert tomllib.loads(out)["iterations"] == 6 and files(split) == before
    code, _, err = cli("train", "maml", "--resume", "-o", str(split), "--set", "iterations=6", "-q")
    assert code == 0, err

    assert_same_final_state(straight, split, 6)
    metrics = lambda run: (run / "metrics.jsonl").read_text().splitlines()  # noqa: E731
    assert metrics(straight) == metrics(split)

    saved = [(split / name).read_text() for name in ("config.toml", "manifest.json")]
    code, _, err = cli("train", "maml", "--resume", "-o", str(split), "--set", "iterations=4", "-q")
    assert code != 0 and "already has 6 iterations" in err
    assert [(split / name).read_text() for name in ("config.toml", "manifest.json")] == saved  # a refused resume writes nothing
    code, _, err = cli("train", "maml", "--resume", "-o", str(split), "-q")
    assert code == 0 and "had already run its iterations = 6; --set iterations=N extends it" in err, err
    assert [(split / name).read_text() for name in ("config.toml", "manifest.json")] == saved  # nothing ran, nothing recorded
    code, _, err = cli("train", "maml", "--resume", "-o", str(split), "--dry-run")
    assert code == 0 and f"would do nothing: {split} had already run its iterations = 6" in err, err


def test_ctrl_c_names_the_latest_checkpoint_and_how_to_resume(tmp_path):
    run = tmp_path / "interrupted"
    sets = set_args("iterations=100000000", "chunk=100", "hidden=[8]", "meta_batch=4")
    argv = ["metarl", "train", "maml", "--env", "sinusoid", *sets, "-o", str(run), "-q"]
    # Ctrl-C raises KeyboardInterrupt in the child even where this process was started with SIGINT ignored.
    child = f"import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); sys.argv = {argv!r}; " \
            "from metarl_cli.cli import main; main()"
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(proc, lambda: any(p.name.isdigit() for p in (run / "checkpoints").glob("*")), 120, "no checkpoint was written")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err, err
    latest = int(re.search(r"interrupted: the latest checkpoint is iteration (\d+);", err).group(1))
    assert f"`metarl train maml --resume -o {run}` continues from there" in err
    assert latest == max(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())


def run_patched_metarl(script: str, argv: list[str], **fill) -> tuple[int, str]:
    """Run `script` (patches, then metarl's `main` on `argv`, filled in for `{argv!r}` as `fill` is for
    its other fields) in a child Python: its exit status and stderr."""
    code = script.format(argv=argv, **fill)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=180)
    finally:
        proc.kill()
    return proc.returncode, err


# metarl with a Ctrl-C (SIGINT at its default; or the signal `signum` names) `delay` seconds into XLA's compilation of the program
# `program`, which goes on in XLA's own threads once the wait on it is cut short: for `metarl train`
# 4.5 s into its training step, an exit through the interpreter's teardown then aborted or crashed
# (rc 134 or 139) in 5 of 6 runs from a shell and 1 of 3 under pytest on the 2-core CPU, timings differing.
INTERRUPTED_WHILE_COMPILING = """
import os, signal, sys, threading
signal.signal(signal.SIGINT, signal.default_int_handler)
import jax
jax.config.update("jax_enable_compilation_cache", False)  # the suite's cache would load the program, not compile it
import jax._src.compiler as compiler
compile_and_load = compiler.backend_compile_and_load
def interrupt_while_compiling(backend, module, *args, **kwargs):
    if str(module.operation.attributes["sym_name"]) == '"jit_{program}"':
        threading.Timer({delay}, os.kill, (os.getpid(), signal.{signum})).start()
    return compile_and_load(backend, module, *args, **kwargs)
compiler.backend_compile_and_load = interrupt_while_compiling
sys.argv = {argv!r}
from metarl_cli.cli import main
main()
"""


def test_ctrl_c_while_compiling_exits_with_its_message_not_a_crash(tmp_path):
    run = tmp_path / "run"
    argv = ["metarl", "train", "maml", "--env", "cartpole-family", "--set", "iterations=200", "-o", str(run), "-q"]
    code, err = run_patched_metarl(INTERRUPTED_WHILE_COMPILING, argv, program="chunk", delay=4.5, signum="SIGINT")
    assert code == 130 and "Traceback" not in err, (code, err)
    assert f"`metarl train maml --resume -o {run}`" in " ".join(err.split())


# metarl with a Ctrl-C (SIGINT at its default) as Python starts to import `module`. Raised inside
# jaxlib's loading (C++ calling Python), a KeyboardInterrupt aborted the process or crashed it (rc 134
# or 139, 2 of 6 Ctrl-Cs sent 0.45 to 0.55 s into `metarl train` on the 2-core CPU); one raised as the
# CLI was imported, before its handler, printed a traceback.
INTERRUPTED_WHILE_IMPORTING = """
import atexit, os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
class InterruptOnImport:
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
sys.meta_path.insert(0, InterruptOnImport())
atexit.register(lambda: print("jax imported:", hasattr(sys.modules.get("jax"), "jit"), file=sys.stderr))
sys.argv = {argv!r}
from metarl_cli.__main__ import main
main()
"""


@pytest.mark.parametrize("module", ["typer", "jaxlib.xla_client"])
def test_ctrl_c_while_metarl_imports_says_interrupted_once_the_imports_are_done(module, tmp_path):
    run = tmp_path / "run"
    argv = ["metarl", "train", "maml", "--env", "sinusoid", "-o", str(run), "-q"]
    code, err = run_patched_metarl(INTERRUPTED_WHILE_IMPORTING, argv, module=module)
    lines = err.strip().splitlines()
    assert code == 130 and lines[0] == "interrupted" and not run.exists(), (code, err)
    if module.startswith("jax"):
        assert lines[1:] == ["jax imported: True"], err  # not raised inside the import


# `metarl eval` with a Ctrl-C (SIGINT at its default) once both baselines have saved a checkpoint: the
# first to save waits for the other, so neither can have run to its end, however their timings go.
EVAL_INTERRUPTED_ONCE_BOTH_BASELINES_SAVED = """
import os, signal, sys, threading
signal.signal(signal.SIGINT, signal.default_int_handler)
from metarl_cli.training.checkpoint import Checkpoints
save, savers, both_saved = Checkpoints.save, set(), threading.Event()
def save_then_interrupt(self, *args):
    save(self, *args)
    savers.add(id(self))
    if len(savers) == 2 and not both_saved.is_set():
        both_saved.set()
        os.kill(os.getpid(), signal.SIGINT)
    both_saved.wait(120)
Checkpoints.save = save_then_interrupt
sys.argv = {argv!r}
from metarl_cli.cli import main
main()
"""


def test_ctrl_c_while_eval_trains_the_baselines_keeps_their_checkpoints_for_the_next_eval(cli, tmp_path, monkeypatch):
    from metarl_cli import evaluate

    run = tmp_path / "run"  # baselines of 10,000 iterations each, a checkpoint every 1,000
    sets = set_args("iterations=5000", "chunk=100", "hidden=[8]", "meta_batch=4", "eval_tasks=4", "eval_steps=1", "tune_baseline_lr=false")
    assert cli("train", "maml", "--env", "sinusoid", *sets, "-o", str(run), "-q")[0] == 0
    baselines = [run / "baselines" / name for name in ("pretrained", "oracle")]

    def steps(base_dir) -> list[int]:
        return sorted(int(p.name) for p in (base_dir / "checkpoints").glob("*") if p.name.isdigit())

    code, err = run_patched_metarl(EVAL_INTERRUPTED_ONCE_BOTH_BASELINES_SAVED, ["metarl", "eval", str(run), "-q"])
    assert code == 130 and "Traceback" not in err, err
    assert f"the next `metarl eval {run}` resumes their training (from their latest checkpoints, where they have one)" in " ".join(err.split())
    saved = {b.name: max(steps(b)) for b in baselines}
    assert all(0 < step < 10_000 for step in saved.values()), saved

    resumed = {}  # what the next eval hands the trainer: each baseline resumed from the step it had saved
    train_all = evaluate.train_all
    monkeypatch.setattr(evaluate, "train_all", lambda jobs, show: (
        resumed.update({job.run_dir.name: (job.resume, max(steps(job.run_dir))) for job in jobs}), train_all(jobs, show))[1])
    code, out, err = cli("eval", str(run), "-q")
    assert code == 0 and "oracle" in out, err
    assert resumed == {name: (True, step) for name, step in saved.items()}
    assert all(max(steps(b)) == 10_000 for b in baselines)

    # A Ctrl-C while scoring, its baselines trained: one line, and the eval.json before it kept.
    written = (run / "eval.json").read_text()
    argv = ["metarl", "eval", str(run), "--split", "ood", "--tasks", "3", "--checkpoint", "best", "-q"]
    again = f"metarl eval {run} --split ood --tasks 3 --checkpoint best"  # the evaluation that was interrupted
    for signum in ("SIGINT", "SIGTERM"):  # and a SIGTERM (a scheduler's preemption) the same, not a silent exit
        code, err = run_patched_metarl(INTERRUPTED_WHILE_COMPILING, argv, program="curve", delay=0, signum=signum)
        assert code == 130 and "Traceback" not in err, (signum, code, err)
        assert f"interrupted before this evaluation was written to eval.json; the next `{again}` starts it again" in " ".join(err.split())
        assert (run / "eval.json").read_text() == written


def test_a_baseline_whose_training_diverges_stops_eval_with_one_line(cli, tmp_path):
    run = tmp_path / "run"  # Adam's first step of 1e30 makes the baselines' second loss overflow
    sets = set_args("iterations=1", "outer_lr=1e30", "hidden=[8]", "meta_batch=4", "eval_tasks=4", "eval_steps=1")
    assert cli("train", "maml", "--env", "sinusoid", *sets, "-o", str(run), "-q")[0] == 0
    code, _, err = cli("eval", str(run), "-q")
    err = " ".join(err.split())
    assert code == 1 and "Traceback" not in err, err
    assert re.search(r"error: the (pretrained|oracle) baseline's training \(.*\): loss became non-finite at iteration 2", err), err


def test_resume_across_chunk_boundaries_equals_uninterrupted_run(cli, tmp_path):
    sets = set_args("hidden=[8,8]", "meta_batch=4", "chunk=50")
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert cli("train", "maml", "--env", "sinusoid", *sets, "--set", "iterations=150", "-o", str(straight), "-q")[0] == 0
    assert cli("train", "maml", "--env", "sinusoid", *sets, "--set", "iterations=70", "-o", str(split), "-q")[0] == 0
    code, _, err = cli("train", "maml", "--resume", "-o", str(split), "--set", "iterations=150", "-q")
    assert code == 0, err
    # chunks of 50, 50, 50 against 50, 20 then 50, 30: the same 150 meta-iterations
    assert [json.loads(x)["iteration"] for x in (split / "metrics.jsonl").read_text().splitlines()] == [50, 70, 120, 150]
    assert_same_final_state(straight, split, 150)


def test_a_dry_run_checks_and_prints_the_config_and_writes_nothing(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("train", "maml", "--env", "point-nav", "--seeds", "2", "--set", "seeds=2", "--dry-run")
    assert code == 0 and "would write a new run in runs/ (named maml-point-nav-DATE-TIME when it starts)" in err, err
    assert tomllib.loads(out)["seeds"] == 2  # the same number twice is no disagreement
    assert not (tmp_path / "runs").exists()
    run = tmp_path / "run"
    code, out, err = cli("train", "maml", *tiny_sets("iterations=7"), "-o", str(run), "--dry-run")
    assert code == 0 and f"dry run: maml on cartpole-family would write {run}; nothing was trained or written" in err, err
    config = tomllib.loads(out)
    assert config["algo"] == "maml" and config["iterations"] == 7 and config["hidden"] == [16, 16] and not run.exists()
    code, out, err = cli("train", "maml", "--set", "ranges.train.masspole=[0.1234567, 0.2]", "-o", str(run), "--dry-run")
    assert code == 0 and tomllib.loads(out)["ranges"] == {"train": {"masspole": [0.1234567, 0.2]}}, err
    assert out.splitlines()[-4:] == ["# the task ranges in effect (the family's, [ranges] applied):",
                                     "# force_mag: train and test [5, 15], ood [1, 5] ∪ [15, 20]",
                                     "# length: train and test [0.25, 0.75], ood [0.05, 0.25] ∪ [0.75, 1]",
                                     "# masspole: train and test [0.1234567, 0.2], ood [0.01, 0.05] ∪ [0.5, 1]"]
    code, _, err = cli("train", "maml", *tiny_sets("inner_lr=-1"), "-o", str(run), "--dry-run")
    assert code == 2 and "inner_lr must be a number >= 0" in err and not run.exists()
    run.mkdir()
    (run / "manifest.json").write_text('{"tool": "metarl"}')
    code, _, err = cli("train", "maml", "-o", str(run), "--dry-run")
    assert code == 2 and "already exists; pass --resume to continue it or --overwrite" in err
    code, _, err = cli("train", "maml", "-o", str(run), "--overwrite", "--dry-run")
    assert code == 0 and f"would replace the run in {run}" in err and (run / "manifest.json").is_file()


def test_a_config_lists_the_family_keys_of_its_own_family_only(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for env, listed in (("bandit", True), ("cartpole-family", False)):
        code, out, err = cli("train", "rl2", "--env", env, "--dry-run")
        config = tomllib.loads(out)
        assert code == 0 and config["env"] == env and ("arms" in config) == listed and ("pulls" in config) == listed, out


def test_runs_named_by_default_in_the_same_second_each_get_their_own_directory(tmp_path, monkeypatch):
    from metarl_cli.errors import UserError
    from metarl_cli.training.rundir import claim_default_run_dir, default_run_dir, first_free

    monkeypatch.chdir(tmp_path)
    name = default_run_dir("maml", "sinusoid")
    assert name.parent == Path("runs") and name.name.startswith("maml-sinusoid-")
    # Runs that chose the same name (started together): each later one to make it takes the next number.
    assert [claim_default_run_dir(name) for _ in range(3)] == [name, *(name.with_name(f"{name.name}-{i}") for i in (2, 3))]
    assert first_free(name) == name.with_name(f"{name.name}-4")
    (tmp_path / "elsewhere").symlink_to(tmp_path / "gone")  # a dangling link where the runs would go
    with pytest.raises(UserError, match="elsewhere cannot be made: file exists; choose another --run-dir"):
        claim_default_run_dir(Path("elsewhere") / name.name)


def test_existing_run_is_not_overwritten(cli, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text('{"tool": "metarl"}')
    code, _, err = cli("train", "maml", *tiny_sets("iterations=1"), "-o", str(run), "-q")
    assert code != 0 and "already exists; pass --resume to continue it or --overwrite" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = cli("train", "maml", *tiny_sets("iterations=1"), "-o", str(empty), "--dry-run", "-q")
    assert code == 0 and f"would write {empty}" in " ".join(err.split()), err  # an empty directory is no run to protect
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    for overwrite in ([], ["--overwrite"]):
        code, _, err = cli("train", "maml", *tiny_sets("iterations=1"), "-o", str(mine), *overwrite, "-q")
        assert code != 0 and "not a metarl run (no manifest.json); choose another --run-dir" in err
    assert (mine / "notes.txt").read_text() == "mine"
    # --overwrite replaces the run's own files and keeps the user's beside them.
    (run / "metrics.jsonl").write_text('{"iteration": 99}\n')
    (run / "eval.json").write_text("{}")  # the replaced run's evaluations go with it, those kept aside too
    (run / "eval.json.unreadable").write_text("{")
    (run / "eval.json.unreadable.2").write_text("{")
    (run / "analysis").mkdir()
    (run / "analysis" / "notes.txt").write_text("mine")
    code, _, err = cli("train", "maml", *tiny_sets("iterations=1"), "-o", str(run), "--overwrite", "-q")
    assert code == 0, err
    assert [json.loads(line)["iteration"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1]
    assert (run / "analysis" / "notes.txt").read_text() == "mine"
    assert not [path.name for path in run.glob("eval.json*")]


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "dqnn"], f"unknown algorithm 'dqnn'; valid: {', '.join(ALGORITHMS)}\n"),
        (["train", "maml", "--env", "cartpol"], f"unknown env 'cartpol'; valid: {', '.join(FAMILY_NAMES)}\n"),
        (["train", "maml", "--set", "ranges.train.length=[0.9, 0.2]"], "min > max"),
        (["train", "maml", "--set", "ranges.train.masspole=[-0.1, 0.2]"], "must be positive"),
        (["train", "maml", "--set", "learning_rate=0.1"], "unknown config key(s) learning_rate"),
        (["train", "maml", "--set", "inner_lr=-0.1"], "inner_lr must be a number >= 0"),
        (["train", "maml", "--set", "outer_lr=-1e-3"], "outer_lr must be a positive number"),
        (["train", "maml", "--set", "meta_batch=many"], "meta_batch' expects int"),
        (["train", "maml", "--set", "iterations=true"], "config key 'iterations' expects int, got true"),
        (["train", "maml", "--set", "hidden=[true, 8]"], "config key 'hidden' expects list of int, got [true, 8]"),
        (["train", "maml", "--set", "hidden=[64, inf]"], "config key 'hidden' expects list of int, got [64, inf]"),
        (["train", "maml", "--set", "iterations=-inf"], "config key 'iterations' expects int, got -inf"),
        (["train", "maml", "--config", "CONFIG"], "malformed TOML"),
        (["train", "maml", "--config", "MISSING"], "config file not found"),
        (["eval", "MISSING"], "run directory not found"),
        (["eval", "FOREIGN"], "not a metarl run directory"),
        (["eval", "FOREIGN", "--tasks", "0"], "--tasks must be at least 2"),
        (["eval", "FOREIGN", "--tasks", "1"], "--tasks must be at least 2"),
        (["eval", "FOREIGN", "--steps", "-1"], "--steps must be >= 0, got -1"),
        (["train", "maml", "--set", "eval_tasks=1"], "eval_tasks must be >= 2"),
        (["train", "maml", "--set", "ranges.train.masspole=[0, 0.2]"], "must be positive"),
        (["train", "maml", "--set", "ranges.ood.length=[[0.1, 0.5]]"], "ood range [0.1, 0.5] for 'length' overlaps its train range [0.25, 0.75]"),
        (["train", "maml", "--set", "seed=2147483645"], "seed + seeds must be below 2147483646, got 2147483646"),
        (["train", "dqn", "--set", "learning_starts=127"], "learning_starts (127) must be at least batch_size (128)"),
        (["train", "dqn", "--set", "target_update_every=505"], "target_update_every (505) must be a multiple of train_every (10)"),
        (["train", "maml", "--env", ""], "unknown env ''; valid: "),
        (["train", "dqn", "--set", "env="], "unknown env ''; valid: "),
        (["train", "maml", "--set", "max_grad_norm=nan"], "max_grad_norm must be a number >= 0"),
        (["train", "maml", "--set", "outer_lr=inf"], "outer_lr must be a positive number, got inf"),
        (["train", "maml", "--set", "outer_lr=nan"], "outer_lr must be a positive number, got nan"),
        (["train", "maml", "--set", "keep_checkpoints=0"], "keep_checkpoints must be >= 1, got 0"),
        (["train", "maml", "--set", "meta_batch=0"], "meta_batch must be >= 1, got 0"),
        (["eval", "FOREIGN", "--split", "val"], "unknown split 'val'"),
        (["train", "maml", "--env", "sinusoid", "--set", "shots=0"], "shots must be >= 1"),
        (["train", "maml", "--env", "sinusoid", "--set", "lanes=4"], "unknown config key(s) lanes for maml on sinusoid"),
        (["train", "maml", "--env", "sinusoid", "--set", "chunk=0"], "chunk must be >= 1"),
        (["train", "dqn", "--env", "sinusoid"], "dqn does not run on regression family 'sinusoid'"),
        (["train", "dqn", "--seeds", "0"], "seeds must be >= 1"),
        (["train", "dqn", "--set", "train_every=15"], "train_every (15) must be a multiple of num_envs (10)"),
        (["train", "dqn", "--set", "lr=0"], "lr must be a positive number"),
        (["train", "dqn", "--set", "total_steps=3005"], "total_steps (3005) must be a multiple of train_every (10)"),
        (["train", "dqn", "--set", "total_steps=3000000000"], "total_steps = 3000000000 is more than a run can count (its counters are 32-bit); at most 2147483647"),
        (["train", "maml", "--set", "iterations=2147483648"], "iterations = 2147483648 is more than a run can count"),
        (["train", "maml", "--set", "iterations=1e40"], "iterations = 1e+40 is more than a run can count"),
        (["train", "maml-dqn", "--env", "point-nav"], "point-nav has continuous actions"),
        (["train", "maml-dqn", "--set", "epsilon=2"], "epsilon must be in [0, 1]"),
        (["train", "rl2", "--set", "second_phase_at=-1"], "second_phase_at must be >= 0 (0: no second phase), got -1"),
        (["train", "rl2", "--set", "second_phase_lr=0"], "second_phase_lr must be a positive number"),
        (["train", "maml", "--set", "gamma=0"], "gamma must be in (0, 1], got 0.0"),
        (["train", "dqn", "--set", "tau=1.5"], "tau must be in (0, 1], got 1.5"),
        (["train", "rl2", "--set", "gae_lambda=-0.1"], "gae_lambda must be in [0, 1], got -0.1"),
        (["train", "rl2", "--set", "arms=1"], "arms must be >= 2, got 1"),
        (["train", "rl2", "--set", "clip=-0.2"], "clip must be a number >= 0, got -0.2"),
        (["train", "dqn", "--resume", "-o", "SEEDED", "--seeds", "3"], "not 'seeds' (the run's is 2)"),
        (["train", "dqn", "--resume", "-o", "SEEDED", "--set", "seeds=3"], "not 'seeds' (the run's is 2)"),
        (["train", "maml", "--config", "FOREIGN"], "is a directory, not a TOML file"),
        (["train", "maml", "--config", "BINARY"], "is not a TOML file (not UTF-8 text)"),
        (["train", "maml", "-o", "FILE"], "exists and is not a directory; choose another --run-dir"),
        (["train", "maml", "-o", "FILE/run", "--dry-run"], "/a-file is not a directory; choose another --run-dir"),
        (["train", "maml", "--env", "sinusoid", "-o", "/proc/metarl-run"], "/proc/metarl-run cannot be made: "),  # the reason: root's or a user's
        (["train", "maml", "--env", "sinusoid", "-o", "/proc/metarl-run", "--dry-run"], "/proc/metarl-run cannot be made: "),  # tried, as root too
        (["train", "maml", "--env", "sinusoid", "-o", "SEEDED/inner", "--dry-run"], "/inner is inside the run in "),
        (["train", "maml", "--env", "sinusoid", "--set", "env=linear"], "--env sinusoid and --set env=linear disagree"),
        (["train", "maml", "--env", "cartpole-family", "--config", "POINTNAV"], "--env cartpole-family and env = 'point-nav' in "),
        (["train", "maml", "--set", "env=cartpole-family", "--config", "POINTNAV"], "--set env=cartpole-family and env = 'point-nav' in "),
        (["train", "maml", "--seeds", "2", "--set", "seeds=3"], "give the number of seeds once"),
        (["eval", "FILE"], "is not a directory"),
        (["train", "rl2", "--env", "tabular-mdp", "--set", "arms=5"], "config key 'arms' shapes the bandit family only"),
        (["train", "rl2", "--env", "bandit", "--set", "horizon=5"], "horizon = 5: a bandit's episode is its pulls (now 100); set pulls, not horizon"),
        (["train", "maml", "--set", "hidden=[]"], "hidden must be a non-empty list of positive widths, got []"),
        (["train", "maml", "--set", "estimator=x"], "estimator must be 'dice' or 'lvc', got 'x'"),
        (["train", "dqn", "--set", "total_steps=4", "--set", "train_every=10", "--set", "num_envs=1"], "total_steps (4) must be at least train_every (10)"),
        (["train", "rl2", "--set", "cell=rnn"], "cell must be 'gru' or 'lstm', got 'rnn'"),
        (["train", "rl2", "--set", "large_batch_at=-1"], "large_batch_at must be >= 0 (0: never), got -1"),
        (["train", "rl2", "--env", "point-nav"], "rl2 needs a family with discrete actions; 'point-nav' has none"),
        (["train", "maml", "--set", "env=5"], "config key 'env' expects a family name, got 5"),
        (["train", "maml", "--set", "ranges.train.masspole=5"], "range for 'masspole' must be [min, max] or a list of [min, max], got 5"),
        (["eval", "FOREIGN", "--checkpoint", "worst"], "--checkpoint must be 'latest' or 'best', got 'worst'"),
        (["eval", "FOREIGN", "--split", "bogus"], "unknown split 'bogus'; valid: train, test, and ood where the run's family has held-out ranges"),
        (["plot", "FOREIGN", "-o", "curves.jpg"], "--output must be a .png file, got curves.jpg"),
        (["train", "maml", "--env", "bandit", "--set", "horizon=5"], "horizon = 5: a bandit's episode is its pulls (now 100); only rl2 can set the pulls (--set pulls=N)"),
        (["report", "FOREIGN", "-o", ""], "--out is empty; give a file prefix such as report"),
        (["plot", "FOREIGN", "-o", ""], "--output is empty; give the PNG file to write"),
        (["train", "rl2", "--env", "bandit", "--set", "episodes=3"], "episodes = 3: a bandit's trial is one episode of its pulls (now 100); set pulls, not episodes"),
        (["train", "dqn", "--set", "ranges.train.force_mag=[6, 14]"], "cartpole has no parameter ranges to set ('force_mag')"),
        (["report", "FOREIGN", "-o", "FOREIGN"], "names a directory; give a file prefix"),
        (["plot", "FOREIGN", "-o", "PNGDIR"], "names a directory; give the PNG file to write"),
        (["report", "FOREIGN", "-o", "MISSING/"], "names a directory; give a file prefix such as "),  # not nope.csv beside it
        (["plot", "FOREIGN", "-o", "MISSING/"], "names a directory; give the PNG file to write"),
        (["report", "FOREIGN", "-o", "MISSING/."], "names a directory; give a file prefix such as "),
        (["plot", "FOREIGN", "-o", "MISSING/."], "names a directory; give the PNG file to write"),
        (["train", "dqn", "--set", "buffer_size=5"], "buffer_size (5) must be at least num_envs (10)"),
        (["train", "maml", "--set", "=3"], "--set expects key=value, got '=3'"),
        (["report", "MISSING"], "not found: "),
        (["train", "maml", "--config", "DQNCONFIG"], "config is for algorithm 'dqn', not 'maml'"),
        (["eval", "BADMANIFEST"], "manifest.json is not valid JSON"),
        (["report", "BADMANIFEST"], "manifest.json is not valid JSON"),
        (["eval", "EDITED"], "edited/config.toml: config key 'total_steps' expects int"),
        (["train", "maml", "--resume", "--overwrite", "-o", "MISSING"], "--resume and --overwrite contradict each other; pass one"),
        (["train", "maml", "--resume"], "--resume needs --run-dir naming the run to continue"),
        (["train", "maml", "-o", ""], "--run-dir is empty; give a path"),  # not '.', as Path reads it
        (["train", "maml", "--config", ""], "--config is empty; give a path"),
        (["eval", ""], "RUN_DIR is empty; give a path"),
        (["report", "FOREIGN", "--step", "-1"], "--step must be >= 0, got -1"),
        (["train", "maml", "--set", "eval_steps=3e9"], "eval_steps = 3000000000 is more than eval can count; at most 2147483647"),
        (["report", "FOREIGN", ""], "DIR is empty; give a path"),
        (["plot", "", "-o", "PNGDIR"], "DIR is empty; give a path"),
    ],
)
def test_user_errors_exit_nonzero_with_one_clear_line(cli, tmp_path, args, message):
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("iterations = = 3\n")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"iterations = \xff\xfe")
    a_file = tmp_path / "a-file"
    a_file.write_text("not a run")
    png_dir = tmp_path / "plots.png"
    png_dir.mkdir()
    point_nav = tmp_path / "point_nav.toml"
    point_nav.write_text('env = "point-nav"\nhorizon = 100\n')
    dqn_config = tmp_path / "dqn.toml"  # a DQN run's config.toml
    dqn_config.write_text('algo = "dqn"\nenv = "cartpole"\nbuffer_size = 100\n')
    bad_manifest = tmp_path / "bad-manifest"  # a run whose manifest.json is not UTF-8
    bad_manifest.mkdir()
    (bad_manifest / "manifest.json").write_bytes(b"\xff\xfe\x00")
    edited = tmp_path / "edited"  # a run whose config.toml was edited by hand
    edited.mkdir()
    (edited / "manifest.json").write_text('{"tool": "metarl", "algo": "dqn"}')
    (edited / "config.toml").write_text('algo = "dqn"\nenv = "cartpole"\ntotal_steps = "x"\n')
    seeded = untrained_dqn_run(tmp_path / "seeded", seeds=2)
    subst = {"CONFIG": str(bad_toml), "SEEDED": str(seeded), "SEEDED/inner": str(seeded / "inner"), "MISSING": str(tmp_path / "nope"), "MISSING/": f"{tmp_path / 'nope'}/", "MISSING/.": f"{tmp_path / 'nope'}/.", "FOREIGN": str(foreign), "BINARY": str(binary),
             "FILE": str(a_file), "FILE/run": str(a_file / "run"), "PNGDIR": str(png_dir),
             "POINTNAV": str(point_nav), "DQNCONFIG": str(dqn_config), "BADMANIFEST": str(bad_manifest), "EDITED": str(edited)}
    code, _, err = cli(*(subst.get(a, a) for a in args))
    assert code != 0
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def untrained_dqn_run(path: Path, seeds: int) -> Path:
    """A DQN run's directory as `metarl train` starts it, with `seeds` seeds: its manifest and config."""
    path.mkdir()
    (path / "manifest.json").write_text('{"tool": "metarl", "algo": "dqn"}')
    (path / "config.toml").write_text(f'algo = "dqn"\nenv = "cartpole"\nseeds = {seeds}\n')
    return path


# metarl with its evaluation interrupted at once, as by a Ctrl-C while it scores (the exit skips the
# interpreter's teardown, so it runs in a child process).
EVAL_INTERRUPTED = """
import sys
import metarl_cli.evaluate as evaluate
def interrupted(*args, **kwargs):
    raise KeyboardInterrupt
evaluate.evaluate = interrupted
sys.argv = {argv!r}
from metarl_cli.cli import main
main()
"""


def test_an_interrupted_eval_speaks_of_kept_baselines_only_where_the_run_has_some(tmp_path):
    run = untrained_dqn_run(tmp_path / "run", seeds=1)
    code, err = run_patched_metarl(EVAL_INTERRUPTED, ["metarl", "eval", str(run), "--tasks", "3"])
    assert code == 130 and " ".join(err.split()).endswith(f"the next `metarl eval {run} --tasks 3` starts it again"), err
    (run / "baselines").mkdir()
    code, err = run_patched_metarl(EVAL_INTERRUPTED, ["metarl", "eval", str(run), "--tasks", "3"])
    assert code == 130 and " ".join(err.split()).endswith("starts it again (keeping the run's baselines that finished training)"), err


def test_resume_takes_seeds_equal_to_the_runs(cli, tmp_path):
    run = untrained_dqn_run(tmp_path / "run", seeds=2)
    for seeds in (["--seeds", "2"], ["--set", "seeds=2"], ["--set", "seeds=2.0"]):
        code, _, err = cli("train", "dqn", "--resume", "-o", str(run), *seeds, "--dry-run")
        assert code == 0 and f"would resume {run} from iteration 0" in " ".join(err.split()), err


def test_a_config_file_for_a_family_serves_the_family_and_its_one_task(tmp_path):
    """`cartpole` and `cartpole-family` share their settings, so a file for one is not refused for
    the other (another family is: test_user_errors_exit_nonzero_with_one_clear_line)."""
    from metarl_cli.config import resolve_config

    path = tmp_path / "cartpole.toml"
    path.write_text('env = "cartpole-family"\nhorizon = 150\n')
    assert (resolve_config("maml", "cartpole", path, []).env, resolve_config("maml", "cartpole", path, []).horizon) == ("cartpole", 150)
    assert resolve_config("maml", None, path, ["env=cartpole-family"]).horizon == 150


def test_every_shipped_experiment_names_the_family_it_is_shipped_for():
    """A shipped file given as `--config` alone trains on its own family (not the algorithm's
    default), and beside another family's --env it is refused rather than applied to it."""
    from metarl_cli.config import ALGORITHMS, experiment_file, read_toml

    files = sorted((Path(__file__).resolve().parent.parent / "experiments").glob("*.toml"))
    assert len(files) >= 10
    for path in files:
        env = read_toml(path).get("env")
        assert isinstance(env, str), f"{path.name} names no env"
        assert path in [experiment_file(algo, env) for algo in ALGORITHMS], f"{path.name}: env = {env!r} is not its family"


@pytest.mark.parametrize("text, value", [("outer_lr=.001", 0.001), ("outer_lr=1.", 1.0), ("hidden=[8, 8]", [8, 8]),
                                         ("estimator=lvc", "lvc"), ("first_order=true", True)])
def test_set_values_read_as_toml_or_as_python_numbers(text, value):
    from metarl_cli.config import parse_override

    assert parse_override(text) == (text.split("=")[0], value)


def test_a_count_written_as_a_whole_float_is_taken_and_a_fraction_refused():
    """TOML reads 1e6 as a float: a count (total_steps) takes it as 1,000,000; 2.5 is refused, and 1e16
    for what it is, more than a run can count."""
    from metarl_cli.config import resolve_config
    from metarl_cli.errors import UserError

    assert resolve_config("dqn", "cartpole", None, ["total_steps=1e6", "learning_starts=1e4"]).total_steps == 1_000_000
    with pytest.raises(UserError, match="config key 'iterations' expects int, got 2.5"):
        resolve_config("maml", "cartpole-family", None, ["iterations=2.5"])
    with pytest.raises(UserError, match="iterations = 10000000000000000 is more than a run can count"):
        resolve_config("maml", "cartpole-family", None, ["iterations=1e16"])


def test_an_eval_cell_keeps_a_huge_value_short():
    from metarl_cli.tables import mean_ci
    from metarl_cli.stats import Summary

    assert mean_ci(Summary(708412626479976649031698874368.0, 1.5259e30, 0), 10) == "7.08e+29 ± 1.53e+30"
    assert mean_ci(Summary(199.891, 0.1, 0), 10, digits=3) == "199.891 ± 0.100"
    assert mean_ci(Summary(float("nan"), float("nan"), 3), 10) == "[red]diverged on 3/10[/]"


@pytest.mark.parametrize("progress, said", [((3, 10), True), ((10, 10), False)])
def test_an_eval_table_says_when_its_run_is_unfinished(tmp_path, progress, said):
    from metarl_cli.tables import eval_tables
    from metarl_cli.evaluate import EvalResult
    from metarl_cli.stats import Summary

    result = EvalResult("test", 4, 0, "best", 2, "return", {"meta-learned": [Summary(1.0, 0.5, 0)]}, {}, [], progress)
    title = " ".join(eval_tables(tmp_path, result)[0].title.split())
    assert ("best checkpoint, iteration 2; the run, unfinished, has done 3 of 10" in title) == said, title


@pytest.mark.parametrize("width, tables", [(80, 4), (250, 1)])
def test_a_wide_trial_table_splits_into_tables_that_fit_the_terminal(tmp_path, monkeypatch, width, tables):
    from rich.console import Console

    from metarl_cli import tables as tables_module
    from metarl_cli.evaluate import EvalResult
    from metarl_cli.stats import Summary

    monkeypatch.setattr(tables_module, "out", Console(width=width, file=io.StringIO()))
    methods = {"meta-learned": [Summary(10.0 + j, 5.0, 0) for j in range(10)],
               "posterior greedy (true prior)": [Summary(20.0 + j, 5.0, 0) for j in range(10)]}
    result = EvalResult("test", 100, 9, "latest", 5, "return", methods, {}, [], trial=True,
                        totals={name: Summary(150.0, 30.0, 0) for name in methods})
    drawn = tables_module.trial_tables(tmp_path, result)
    assert len(drawn) == tables
    for table in drawn:
        tables_module.out.print(table)
    text = tables_module.out.file.getvalue()
    assert "…" not in text and max(map(len, text.splitlines())) <= width
    for label in [*methods, *(f"episode {j}" for j in range(1, 11)), "trial total", "19.00 ± 5.00", "150.00 ± 30.00"]:
        assert label in text  # every row label whole in every table, every column in one of them
    assert text.count("posterior greedy (true prior)") == tables


def test_eval_json_holds_no_nan_where_tasks_diverged(tmp_path):
    from metarl_cli.evaluate import EvalResult, write_evaluation
    from metarl_cli.stats import summarise

    diverged, fine = summarise([1.0, float("nan")]), summarise([1.0, 2.0])
    result = EvalResult("test", 2, 0, "best", 2, "return", {"meta-learned": [diverged]},
                        {"meta-learned": np.array([[1.0], [np.nan]])}, [], (3, 3), trial=True,
                        totals={"meta-learned": diverged, "random": fine})
    write_evaluation(tmp_path, result)

    def refuse(constant):
        raise AssertionError(f"eval.json holds {constant}, which JSON does not have")

    written = json.loads((tmp_path / "eval.json").read_text(), parse_constant=refuse)["test"]
    assert written["totals"]["meta-learned"] == {"mean": None, "ci95": None, "diverged": 1}
    assert written["totals"]["random"]["mean"] == 1.5
    assert (written["checkpoint"], written["iteration"]) == ("best", 2)  # what report's notes on the evaluation read


def test_two_evals_writing_eval_json_at_once_keep_both_splits(tmp_path, monkeypatch):
    import threading
    import time

    from metarl_cli import evaluate
    from metarl_cli.stats import summarise

    # Each write held between its read and its rename long enough for the other to read too.
    write_atomically = evaluate.write_atomically
    monkeypatch.setattr(evaluate, "write_atomically", lambda path, text: (time.sleep(0.3), write_atomically(path, text)))
    path = tmp_path / "eval.json"
    writers = [
        threading.Thread(target=evaluate.write_evaluation, args=(tmp_path, evaluate.EvalResult(
            split, 2, 0, "latest", 3, "return", {"meta-learned": [summarise([1.0, 2.0])]}, {"meta-learned": np.ones((2, 1))}, [])))
        for split in ("test", "ood")
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert set(json.loads(path.read_text())) == {"test", "ood"}
    # Where its lock cannot be made, the error names the file that cannot be updated, not the lock.
    with pytest.raises(OSError) as raised:
        evaluate.write_evaluation(tmp_path / "gone", evaluate.EvalResult(
            "test", 2, 0, "latest", 3, "return", {"meta-learned": [summarise([1.0, 2.0])]}, {}, []))
    assert raised.value.filename == str(tmp_path / "gone" / "eval.json")


def test_an_eval_json_that_does_not_read_is_kept_aside_not_overwritten(tmp_path, capsys):
    from metarl_cli.evaluate import EvalResult, write_evaluation
    from metarl_cli.stats import summarise

    def evaluation(split):
        return EvalResult(split, 2, 0, "latest", 3, "return", {"meta-learned": [summarise([1.0, 2.0])]},
                          {"meta-learned": np.ones((2, 1))}, [])

    write_evaluation(tmp_path, evaluation("test"))
    write_evaluation(tmp_path, evaluation("ood"))
    assert set(json.loads((tmp_path / "eval.json").read_text())) == {"test", "ood"} and capsys.readouterr().err == ""
    damaged = (tmp_path / "eval.json").read_bytes()[:-10]  # cut short: its splits' numbers are still there to recover
    for foreign in (damaged, b'{"test": 3}'):
        (tmp_path / "eval.json").write_bytes(foreign)
        write_evaluation(tmp_path, evaluation("train"))
        assert set(json.loads((tmp_path / "eval.json").read_text())) == {"train"}
        assert "did not read as an evaluation metarl wrote; it is kept as eval.json.unreadable" in " ".join(capsys.readouterr().err.split())
    assert (tmp_path / "eval.json.unreadable").read_bytes() == damaged  # the first kept, the second numbered beside it
    assert (tmp_path / "eval.json.unreadable.2").read_bytes() == b'{"test": 3}'

def test_eval_restores_the_checkpoint_asked_for_and_draws_the_splits_held_out_tasks(tmp_path, monkeypatch, capsys):
    from metarl_cli import evaluate
    from metarl_cli.config import MamlRLConfig, write_config

    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({"tool": "metarl", "algo": "maml"}))
    write_config(MamlRLConfig(iterations=3), "maml", run / "config.toml")
    chosen, drawn = [], []

    class Drawn(Exception):
        pass

    def draw_tasks(family, seed, tasks, split):
        drawn.append((seed, split))
        raise Drawn

    # A run whose best checkpoint is iteration 2 of the 3 saved.
    monkeypatch.setattr(evaluate, "Checkpoints", checkpoints_stub(restored=2, latest=3, chosen=chosen))
    monkeypatch.setattr(evaluate, "draw_tasks", draw_tasks)
    with pytest.raises(Drawn):
        evaluate.evaluate(run, "ood", None, None, "best", show_progress=False)
    # The held-out tasks: the split's, from their own key (a baseline's step is tuned on others).
    assert chosen == ["best"] and drawn == [(evaluate.EVAL_KEY, "ood")] and evaluate.EVAL_KEY != evaluate.VALIDATION_KEY
    assert "has a score" not in capsys.readouterr().err
    # Where no checkpoint has a score (DQN chunks in which no episode ended), "best" is the latest, and eval says so.
    monkeypatch.setattr(evaluate, "Checkpoints", checkpoints_stub(restored=3, latest=3, scored=False))
    with pytest.raises(Drawn):
        evaluate.evaluate(run, "ood", None, None, "best", show_progress=False)
    assert f"no checkpoint of {run} has a score" in " ".join(capsys.readouterr().err.split())


def test_the_eval_command_a_message_suggests_quotes_a_path_the_shell_would_split_or_metarl_read_as_an_option(cli):
    from metarl_cli.training.rundir import eval_command

    assert eval_command(Path("my runs/a")) == "metarl eval 'my runs/a'" and eval_command(Path("runs/a")) == "metarl eval runs/a"
    assert eval_command(Path("runs/a"), split="ood", tasks=None, steps=2) == "metarl eval runs/a --split ood --steps 2"
    assert eval_command(Path("-a")) == "metarl eval ./-a" and eval_command(Path("/tmp/-a")) == "metarl eval /tmp/-a"
    assert "No such option" in cli("eval", "-a")[2] and "run directory not found: -a" in cli("eval", "./-a")[2]


def test_a_training_that_diverges_exits_with_one_line_and_keeps_the_last_good_checkpoint(cli, tmp_path):
    from metarl_cli.training.checkpoint import Checkpoints

    run = tmp_path / "run"
    sets = set_args("iterations=5", "chunk=1", "outer_lr=1e30", "hidden=[8]", "meta_batch=4")
    code, _, err = cli("train", "maml", "--env", "sinusoid", *sets, "-o", str(run), "-q")
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code != 0 and "Traceback" not in err and len(errors) == 1 and err.rstrip().endswith(errors[0]), err
    assert ("loss became non-finite at iteration 2; stopped, and the latest checkpoint (iteration 1) is the last good state"
            in errors[0]), err
    with Checkpoints(run, 5, create=False) as checkpoints:
        assert checkpoints.step() == 1


def test_a_dqn_run_that_would_never_learn_is_warned_about(cli):
    code, _, err = cli("train", "dqn", "--set", "total_steps=5000", "--dry-run")
    assert code == 0 and "warning: learning_starts (10000) is not below total_steps (5000): no gradient step will be taken" in " ".join(err.split())
    assert "warning" not in cli("train", "dqn", "--dry-run")[2]


def test_an_rl2_run_that_ends_before_its_second_phase_or_larger_batches_is_warned_about(cli):
    code, _, err = cli("train", "rl2", "--set", "iterations=600", "--set", "large_batch_at=700", "--dry-run")
    err = " ".join(err.split())
    assert code == 0 and "warning: second_phase_at (600) is not below iterations (600): the run ends before its second phase" in err
    assert "warning: large_batch_at (700) is not below iterations (600): the run ends before its larger batches" in err
    assert "warning" not in cli("train", "rl2", "--dry-run")[2]


def published(config, split: str, steps: int):
    """The papers' rows that eval prints beside a run of `config`, on the family it trains on."""
    from metarl_cli.families import family_for
    from metarl_cli.published import published_for

    return published_for(config, family_for(config), split, steps)


@pytest.mark.parametrize("sets, shown", [([], True), (["horizon=0"], True), (["horizon=20"], False), (["lanes=4"], False), (["inner_lr=0.05"], False)])
def test_the_maml_papers_point_nav_numbers_stand_only_beside_its_protocol(sets, shown):
    from metarl_cli.config import resolve_config

    config = resolve_config("maml", "point-nav", None, sets)
    assert bool(published(config, "test", 3)) == shown


def test_a_published_row_with_no_value_at_the_steps_evaluated_is_left_out():
    from metarl_cli.config import resolve_config

    config = resolve_config("maml", "sinusoid", None, [])  # the paper's values after 1, 5 and 10 steps
    assert published(config, "test", 0) == []
    assert [sorted(row.values) for row in published(config, "test", 5)] == [[1, 5], [1, 5]]


def test_the_rl2_papers_rows_pair_each_number_with_its_method_at_the_papers_protocol_and_split():
    from metarl_cli.config import resolve_config

    bandit = resolve_config("rl2", "bandit", None, ["arms=5", "pulls=10"])  # Table 1, n = 10, k = 5
    rows = {row.label: (row.method, row.values) for row in published(bandit, "test", 0)}
    assert rows == {"Random": ("random policy", {0: 5.0}), "Gittins": ("gittins", {0: 6.6}), "TS": ("thompson", {0: 5.7}),
                    "UCB1": ("ucb1", {0: 6.7}), "eps-greedy": ("epsilon-greedy", {0: 6.6}), "Greedy": ("greedy", {0: 6.6}),
                    "RL^2": ("meta-learned", {0: 6.7})}
    mdp = resolve_config("rl2", "tabular-mdp", None, [])  # Table 2, 10 episodes: trial totals, whatever the steps
    rows = {row.label: (row.method, row.values) for row in published(mdp, "test", 0)}
    assert len(rows) == 5 and rows["Greedy"] == ("greedy", {"total": 134.8})
    assert len(published(resolve_config("rl2", "tabular-mdp", None, ["horizon=10"]), "test", 0)) == 5  # the family's own, spelled out
    assert published(resolve_config("rl2", "tabular-mdp", None, ["horizon=20"]), "test", 0) == []
    sinusoid = resolve_config("maml", "sinusoid", None, [])
    assert len(published(sinusoid, "test", 10)) == 2 and published(sinusoid, "ood", 10) == []
    assert published(resolve_config("maml", "sinusoid", None, ["inner_lr=0.5"]), "test", 10) == []  # not the paper's alpha
    assert published(resolve_config("maml", "sinusoid", None, ["later_lr_scale=0.5"]), "test", 10) == []  # nor at every step


def test_envs_shows_every_family_parameter_and_range_whole_at_80_columns_and_descriptions_whole_where_wider_and_a_list_where_narrow(cli, monkeypatch):
    from rich.console import Console

    from metarl_cli import tables as tables_module
    from metarl_cli.tables import interval
    from metarl_cli.families import FAMILY_NAMES, get_family

    monkeypatch.setattr(tables_module, "out", Console(width=80))  # as a terminal of 80 columns would be
    code, out, err = cli("envs")
    assert code == 0, err
    assert max(len(line) for line in out.splitlines()) <= 80
    words = set(out.split())
    for name in FAMILY_NAMES:
        assert name in words  # not cut to "mountain…"
        for r in get_family(name).ranges:
            assert r.name in words
            for a, b in [r.train, *r.ood]:
                assert f"[{a:g}, {b:g}]" in out  # each interval on one line, none broken after its comma
    assert "[5, 15]" in out and "∪ [15, 20]" in out  # cartpole-family's force_mag: train, and ood's second interval
    # Wider, a family's description of what it draws takes a line of its own rather than wrapping.
    monkeypatch.setattr(tables_module, "out", Console(width=160))
    code, out, err = cli("envs")
    assert code == 0 and "arm probabilities p ~ U[0, 1]^10" in out, err
    for name in FAMILY_NAMES:
        draw_text = getattr(get_family(name), "draw_text", None)
        assert not draw_text or draw_text in out, draw_text
    # Narrower, the intervals wrap after their commas rather than run off the edge.
    monkeypatch.setattr(tables_module, "out", Console(width=70))
    code, out, err = cli("envs")
    assert code == 0 and max(len(line) for line in out.splitlines()) <= 70, err
    assert "[0.0001," in out.split() and "0.0005]" in out.split() and "…" not in out
    monkeypatch.setattr(tables_module, "out", Console(width=63))  # as narrow as the columns go: the numbers fold, never cut
    code, out, err = cli("envs")
    assert code == 0 and max(len(line) for line in out.splitlines()) <= 63 and "…" not in out, err
    assert any({"env", "parameter", "default", "ood"} <= set(line.split()) for line in out.splitlines())  # a table, its headers whole
    assert "default 10" not in " ".join(out.split())  # not the list
    # Narrower still, a list: nothing dropped (rich would drop the columns that do not fit).
    for width in (62, 40):
        monkeypatch.setattr(tables_module, "out", Console(width=width))
        code, out, err = cli("envs")
        assert code == 0 and max(len(line) for line in out.splitlines()) <= width and "…" not in out, err
        text = " ".join(out.split())
        for name in FAMILY_NAMES:
            assert name in out.split()
            for r in get_family(name).ranges:
                assert r.name in out.split() and f"default {r.default:g}" in text
                assert f"train / test {interval(r.train)}" in out and all(interval(b) in out for b in r.ood)  # each on one line


def test_config_layers_a_file_over_the_shipped_defaults_and_set_over_both(tmp_path):
    from metarl_cli.config import parse_overrides, resolve_config, resumed_config
    from metarl_cli.errors import UserError

    assert parse_overrides(["outer_lr=1", "outer_lr=2"]) == {"outer_lr": 2}  # of a key given twice, the later
    path = tmp_path / "mine.toml"
    path.write_text("iterations = 5\nouter_lr = 0.01\n")
    config = resolve_config("maml", "cartpole-family", path, ["iterations=7"])
    assert (config.iterations, config.outer_lr) == (7, 0.01)
    for key in ("outer_lr=0.1", "hidden=[8]"):  # neither the length nor retunable: a resume refuses it
        with pytest.raises(UserError, match="--resume only accepts"):
            resumed_config(config, None, None, [key])
    resumed = resumed_config(config, None, None, ["checkpoint_every=5", "keep_checkpoints=2"])  # saves only: accepted
    assert (resumed.checkpoint_every, resumed.keep_checkpoints, resumed.iterations) == (5, 2, 7)
    with pytest.raises(UserError, match="drop --config"):  # nor a file, which it would not read
        resumed_config(config, None, path, [])
    assert resumed_config(config, "cartpole-family", None, []) == config  # --env naming the run's family changes nothing
    with pytest.raises(UserError, match="on its own family, cartpole-family; drop --env point-nav"):
        resumed_config(config, "point-nav", None, [])
    with pytest.raises(UserError, match="unknown config key 'bogus' for this maml run on cartpole-family; valid: env, seed,"):
        resumed_config(config, None, None, ["bogus=1"])
    # A task range is a table: set by its dotted key or inline, over the run's other ranges, as a new run sets it.
    ranged = resolve_config("maml", "cartpole-family", None, ["ranges.train.force_mag=[6, 14]", "ranges.ood.length=[[1.0, 1.5]]"])
    for same in (["ranges.train.force_mag=[6, 14]"], ["ranges={train={force_mag=[6.0, 14.0]}}"], ["ranges.ood.length=[[1, 1.5]]"]):
        assert resumed_config(ranged, None, None, same) == ranged, same
    for changed in (["ranges.train.force_mag=[6, 15]"], ["ranges={train={force_mag=[6, 15]}}"], ["ranges.train.length=[0.3, 0.7]"]):
        with pytest.raises(UserError, match="--resume only accepts .* not 'ranges' \\(the run's is (.*)\\)$") as refused:
            resumed_config(ranged, None, None, changed)
        kept = refused.value.args[0].rsplit("the run's is ", 1)[1][:-1]  # as --set takes it back
        assert resumed_config(ranged, None, None, [f"ranges={kept}"]) == ranged, kept
    path.write_bytes(b"\xef\xbb\xbfiterations = 5\n")  # UTF-8 with the byte-order mark some editors write
    assert resolve_config("maml", "cartpole-family", path, []).iterations == 5
    # A family's sibling in the file (the one-task cartpole beside cartpole-family) yields to --set env.
    path.write_text('env = "cartpole-family"\n')
    assert resolve_config("maml", None, path, ["env=cartpole"]).env == "cartpole"
    path.write_text("arms = 5\n")  # from a file as from --set: a key another family's
    with pytest.raises(UserError, match="config key 'arms' shapes the bandit family only"):
        resolve_config("rl2", "tabular-mdp", path, [])


def test_a_batch_that_leaves_devices_idle_is_noted_before_training(cli, tmp_path, monkeypatch):
    """A MAML-RL meta-batch (or seeds) that the local devices cannot share evenly runs on fewer of
    them: `metarl train` says so; a batch they share says nothing."""
    import jax

    from metarl_cli.devices import shares, uneven_split_note

    devices = len(jax.local_devices())
    assert uneven_split_note(3 * devices, "the seeds", "seeds") is None and uneven_split_note(1, "the seeds", "seeds") is None
    if devices == 1 or jax.default_backend() != "cpu":
        pytest.skip("one device: nothing can be left idle; an accelerator does not split a meta-batch")
    monkeypatch.chdir(tmp_path)
    used = shares(devices + 1, devices)
    idle = f"do not split evenly over the {devices} devices: they run on {used} (a multiple of {devices} uses every device)"
    code, _, err = cli("train", "maml", "--env", "cartpole-family", "--set", f"meta_batch={devices + 1}", "--dry-run")
    assert code == 0 and f"note: the meta-batch's tasks (meta_batch = {devices + 1}) {idle}" in err.replace("\n", " "), err
    code, _, err = cli("train", "maml", "--env", "cartpole-family", "--set", f"meta_batch={2 * devices}", "--dry-run")
    assert code == 0 and "note:" not in err, err


def test_the_local_devices_are_counted_in_words(monkeypatch):
    import jax

    one = jax.local_devices()[:1]
    platform = one[0].platform
    for devices, text in ((one, f"{platform}, 1 device"), (one * 2, f"{platform}, 2 devices")):
        monkeypatch.setattr(jax, "local_devices", lambda devices=devices: devices)
        assert local_devices_text() == text


def test_help_names_the_commands_the_algorithms_and_the_family_each_trains_on_by_default(cli):
    code, out, err = cli("--help")
    assert code == 0, err
    assert {"train", "eval", "report", "plot", "envs"} <= set(out.split())
    code, out, err = cli("train", "--help")
    text = " ".join(out.replace("│", " ").split())  # the panel's borders and wrapping aside
    assert code == 0 and "Algorithm: maml, dqn, maml-dqn, rl2." in text, err
    assert ("default cartpole-family for maml, cartpole for dqn, cartpole-family for maml-dqn, bandit for rl2" in text)
    # --resume's help names what each algorithm's resume accepts, as its config says it
    from metarl_cli.config import Rl2Config

    assert ("--resume Continue the run in --run-dir from its latest checkpoint (--set iterations=N, or total_steps=N for dqn, extends it; "
            "--set checkpoint_every=N and keep_checkpoints=N change how it saves; rl2 also takes --set lr=..., " in text)
    retunable = text[text.index("rl2 also takes"):text.index("for what follows")]
    assert [word.strip(",") for word in retunable.split() if word.endswith(("=...", "=...,"))] == [f"{key}=..." for key in Rl2Config.RETUNABLE_KEYS]
    import importlib.metadata

    assert cli("--version")[:2] == (0, f"metarl {importlib.metadata.version('metarl')}\n")


@pytest.mark.parametrize("checkpoint, step, done, said", [
    ("latest", 10, 10, None), ("best", 10, 10, None), ("latest", 3, 3, "has done 3 of its 10 iterations;"),
    ("best", 4, 10, "is scored at its best checkpoint, iteration 4 of its 10 iterations;"),
    ("best", 2, 6, "has done 6 of its 10 iterations and is scored at its best checkpoint, iteration 2;")])
def test_budget_warning_where_the_scored_checkpoint_has_less_training_than_its_baselines(tmp_path, checkpoint, step, done, said):
    from metarl_cli.evaluate import budget_warning

    warning = budget_warning(tmp_path, checkpoint, step, done, 10)
    assert (warning is None) if said is None else (said in warning and "favours them" in warning), warning


def test_resume_refuses_a_run_of_another_algorithm(cli, tmp_path):
    """A (hand-made) dqn run resumed as maml: one line naming both, exit status 2."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text('{"tool": "metarl", "algo": "dqn"}')
    (run / "config.toml").write_text('algo = "dqn"\nenv = "cartpole"\n')
    code, _, err = cli("train", "maml", "--resume", "-o", str(run))
    assert code == 2 and f"{run} is a 'dqn' run, not 'maml'" in " ".join(err.split()) and "Traceback" not in err


def test_an_eval_cell_with_a_huge_interval_is_written_in_powers_of_ten():
    """mean 1, CI half-width 2e6: max(|1|, |2e6|) >= 1e6, so both in e-notation: '1.00e+00 ± 2.00e+06'
    (not '1.00 ± 2000000.00')."""
    from metarl_cli.tables import mean_ci
    from metarl_cli.stats import Summary

    assert mean_ci(Summary(1.0, 2e6, 0), 10) == "1.00e+00 ± 2.00e+06"


def test_an_os_error_exits_with_status_1_naming_the_paths(cli, monkeypatch):
    """A path that cannot be read or written: exit 1 (a user error is 2), the system's reason and the paths."""
    from metarl_cli import cli as cli_module

    def fail():
        raise PermissionError(13, "Permission denied", "/a", None, "/b")  # (errno, strerror, filename, winerror, filename2)

    monkeypatch.setattr(cli_module, "app", fail)
    code, _, err = cli("envs")
    assert code == 1 and "error: Permission denied: /a -> /b" in err


def test_memory_xla_cannot_allocate_exits_with_status_1_and_one_line(cli, monkeypatch):
    """XLA's out-of-memory error (a --tasks or meta_batch too large for the machine): the size asked
    for and what to ask for less of, exit 1, no traceback; another error of JAX's is left as it is."""
    import jax.numpy as jnp
    from jax.errors import JaxRuntimeError

    from metarl_cli import cli as cli_module
    from metarl_cli.errors import out_of_memory

    for words, size in (("RESOURCE_EXHAUSTED: Out of memory allocating 4000000000000 bytes.", "4,000.0 GB"),  # XLA's CPU
                        ("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 31457280 bytes.", "31.5 MB")):  # a GPU's

        def fail(words=words):
            raise JaxRuntimeError(words)

        monkeypatch.setattr(cli_module, "app", fail)
        code, _, err = cli("envs")
        err = " ".join(err.split())
        assert code == 1 and f"error: out of memory: a buffer of {size} could not be allocated; ask for less" in err and "Traceback" not in err
    # XLA's words as it says them now, for an array larger than a process's address space (4 PB: refused
    # at once, whatever the system's overcommit policy, without touching memory).
    with pytest.raises(JaxRuntimeError) as raised:
        jnp.zeros((10**15,)).block_until_ready()
    assert out_of_memory(raised.value) == "4,000,000.0 GB", raised.value

    def another_error():
        raise JaxRuntimeError("INTERNAL: something else")

    monkeypatch.setattr(cli_module, "app", another_error)
    with pytest.raises(JaxRuntimeError, match="something else"):
        cli("envs")


def test_eval_refuses_counts_above_32_bits_before_xla_sizes_its_arrays():
    """--tasks or --steps of 2**31 or more: one line (XLA aborted the process, rc 134, at 1e11 tasks)."""
    from metarl_cli.errors import UserError
    from metarl_cli.evaluate import check_eval_options

    for tasks, steps, option in ((10**11, None, "--tasks"), (None, 2**31, "--steps")):
        with pytest.raises(UserError, match=f"{option} .* is more than eval can count; at most 2147483647"):
            check_eval_options("test", tasks, steps, "latest")
    check_eval_options("test", 2**31 - 1, 2**31 - 1, "latest")  # the largest counts pass


def test_envs_says_a_drawn_family_without_an_ood_split_has_none(cli, monkeypatch):
    """bandit draws its arms per task and has splits (train, test): its ood column says 'none'."""
    from rich.console import Console

    from metarl_cli import tables as tables_module

    monkeypatch.setattr(tables_module, "out", Console(width=200))
    code, out, err = cli("envs")
    assert code == 0, err
    bandit = next(line for line in out.splitlines() if line.split()[:1] == ["bandit"])
    assert bandit.split()[-4:] == ["drawn", "per", "task", "none"], bandit  # the train / test and ood columns
    assert "see parameter" not in out


def test_an_eval_table_has_a_row_for_each_number_of_adaptation_steps_from_zero(tmp_path):
    """Evaluated after 0, 1 and 2 steps: the k column reads 0, 1, 2 beside the means 1.00, 2.00, 3.00."""
    from metarl_cli.tables import eval_tables
    from metarl_cli.evaluate import EvalResult
    from metarl_cli.stats import Summary

    result = EvalResult("test", 4, 2, "latest", 5, "return", {"meta-learned": [Summary(1.0 + j, 0.5, 0) for j in range(3)]}, {}, [], (5, 5))
    (table,) = eval_tables(tmp_path, result)
    assert list(table.columns[0].cells) == ["0", "1", "2"]
    assert list(table.columns[1].cells) == ["1.00 ± 0.50", "2.00 ± 0.50", "3.00 ± 0.50"]


def test_a_finished_runs_eval_table_does_not_call_it_unfinished(tmp_path):
    """progress (10, 10): the run has done all 10 of its iterations, so the title says nothing of it."""
    from metarl_cli.tables import eval_tables
    from metarl_cli.evaluate import EvalResult
    from metarl_cli.stats import Summary

    result = EvalResult("test", 4, 0, "latest", 10, "return", {"meta-learned": [Summary(1.0, 0.5, 0)]}, {}, [], (10, 10))
    title = " ".join(eval_tables(tmp_path, result)[0].title.split())
    assert title.endswith("(mean ± 95% CI; latest checkpoint, iteration 10)") and "unfinished" not in title, title


def test_a_trial_table_lists_the_papers_methods_that_were_not_run_after_those_that_were(tmp_path):
    """Run: meta-learned and random policy; published: RL^2 (pairs with meta-learned, 6.7) and Gittins (not run,
    6.6). Rows: meta-learned, random policy, then a dim row for gittins alone; the paper column pairs
    6.7 with meta-learned, nothing with random policy, 6.6 with gittins."""
    from metarl_cli.tables import trial_tables
    from metarl_cli.evaluate import EvalResult
    from metarl_cli.published import DUAN, Published
    from metarl_cli.stats import Summary

    methods = {"meta-learned": [Summary(6.0, 0.5, 0)], "random policy": [Summary(5.0, 0.5, 0)]}
    published = [Published("bandit", "test", {}, "RL^2", DUAN, {0: 6.7}, "meta-learned"),
                 Published("bandit", "test", {}, "Gittins", DUAN, {0: 6.6}, "gittins")]
    result = EvalResult("test", 100, 0, "latest", 5, "return", methods, {}, published, (5, 5), trial=True,
                        totals={name: rows[0] for name, rows in methods.items()})
    (table,) = trial_tables(tmp_path, result)
    assert list(table.columns[0].cells) == ["meta-learned", "random policy", "[dim]gittins[/]"]
    assert list(table.columns[-1].cells) == ["[dim]6.7 (RL^2)[/]", "", "[dim]6.6 (Gittins)[/]"]


def test_a_report_row_of_two_values_has_an_interval():
    """n = 2 values pooled: the interval [4, 6] is shown; 'n/a (one value)' is for n = 1 only."""
    from metarl_cli.tables import report_table
    from metarl_cli.report import ReportRow

    rows = [ReportRow("run", "maml", "cartpole-family", "test", "meta-learned", "return", 2, 2, "IQM", 5.0, 4.0, 6.0),
            ReportRow("run", "maml", "cartpole-family", "ood", "meta-learned", "return", 1, 1, "IQM", 5.0, 5.0, 5.0)]
    table = report_table(rows, "title", with_run=True)
    assert list(table.columns[-1].cells) == ["[4, 6]", "n/a (one value)"]


def test_a_run_being_written_by_another_process_is_neither_resumed_nor_replaced(cli, tmp_path):
    """Two processes in one run directory (a second --resume, an --overwrite of a run still training,
    a sweep's point started twice) would mix their metrics and checkpoints: the second is refused."""
    import fcntl

    from metarl_cli.training.checkpoint import PackedStateHandler

    run = tmp_path / "run"
    code, _, err = cli("train", "maml", "--env", "sinusoid", "--set", "iterations=2", "--set", "hidden=[8]", "-o", str(run), "-q")
    assert code == 0, err
    files = {path: path.read_bytes() for path in run.iterdir() if path.is_file()}
    # The training process deletes and writes checkpoints as another reads them: refused before they are read.
    latest = max((run / "checkpoints").glob("[0-9]*"), key=lambda path: int(path.name)) / "default" / PackedStateHandler.FILE
    saved = latest.read_bytes()
    other = os.open(run, os.O_RDONLY)  # as another process's lock would: another open file description
    try:
        fcntl.flock(other, fcntl.LOCK_EX)
        latest.write_bytes(b"")
        for args in (["--resume", "--set", "iterations=4"], ["--overwrite", "--env", "sinusoid"],  # a dry run says so too
                     ["--resume", "--set", "iterations=4", "--dry-run"], ["--overwrite", "--env", "sinusoid", "--dry-run"]):
            code, _, err = cli("train", "maml", "-o", str(run), *args, "-q")
            assert code == 2 and "is being written by another metarl process" in " ".join(err.split()), (args, err)
            assert {path: path.read_bytes() for path in run.iterdir() if path.is_file()} == files
    finally:
        os.close(other)
        latest.write_bytes(saved)
    code, _, err = cli("train", "maml", "-o", str(run), "--overwrite", "--env", "sinusoid", "--dry-run", "-q")
    assert code == 0 and f"would replace the run in {run}" in " ".join(err.split()), err
    assert {path: path.read_bytes() for path in run.iterdir() if path.is_file()} == files  # no lock file made either


def test_a_run_being_evaluated_is_not_replaced_and_a_run_written_before_the_lock_is(cli, tmp_path, monkeypatch):
    """An eval holds the run's eval lock (shared) while it runs, and --overwrite refuses meanwhile; a run
    another process wrote into a new run's directory before this one took it is replaced with --overwrite."""
    from metarl_cli.errors import UserError
    from metarl_cli.files import lock
    from metarl_cli.training import launch, rundir

    sets = set_args("hidden=[8]", "chunk=2")
    run, other = tmp_path / "run", tmp_path / "other"
    for path, iterations in ((run, 2), (other, 4)):
        assert cli("train", "maml", "--env", "sinusoid", *sets, "--set", f"iterations={iterations}", "-o", str(path), "-q")[0] == 0
    held_while_evaluating = []

    def evaluate(run_dir, *args, **kwargs):
        try:
            os.close(lock(run_dir / rundir.EVAL_LOCK, wait=False))
        except BlockingIOError:
            held_while_evaluating.append(run_dir)
        raise UserError("stopped here")

    with monkeypatch.context() as patched:
        patched.setattr("metarl_cli.evaluate.evaluate", evaluate)
        assert cli("eval", str(run), "-q")[0] == 2 and held_while_evaluating == [run]
    files = {path: path.read_bytes() for path in run.iterdir() if path.is_file()}
    evaluating = lock(run / rundir.EVAL_LOCK, shared=True)  # as another process's eval would
    try:
        for dry_run in ([], ["--dry-run"]):
            code, _, err = cli("train", "maml", "--env", "sinusoid", *sets, "--set", "iterations=2", "--overwrite", "-o", str(run), "-q", *dry_run)
            assert code == 2 and f"{run} is being evaluated by another metarl process" in " ".join(err.split()), err
            assert {path: path.read_bytes() for path in run.iterdir() if path.is_file()} == files
    finally:
        os.close(evaluating)
    code, _, err = cli("train", "maml", "--env", "sinusoid", *sets, "--set", "iterations=2", "--overwrite", "-o", str(run), "-q", "--dry-run")
    assert code == 0 and f"would replace the run in {run}" in " ".join(err.split()), err

    holding = rundir.holding

    @contextlib.contextmanager
    def written_meanwhile(run_dir, wait=False):  # another run copied in as this one takes the lock
        shutil.copytree(other, run_dir, dirs_exist_ok=True)
        with holding(run_dir, wait):
            yield

    fresh = tmp_path / "fresh"  # no run there when the command starts
    with monkeypatch.context() as patched:
        patched.setattr(launch, "holding", written_meanwhile)
        code, _, err = cli("train", "maml", "--env", "sinusoid", *sets, "--set", "iterations=2", "--overwrite", "-o", str(fresh), "-q")
    assert code == 0, err
    assert sorted(p.name for p in (fresh / "checkpoints").iterdir()) == ["2"]
    assert [json.loads(line)["iteration"] for line in (fresh / "metrics.jsonl").read_text().splitlines()] == [2]


@pytest.fixture
def interrupts_exit_in_process(monkeypatch):
    """`metarl train`'s exit on an interruption as a SystemExit(130) after its line, not os._exit,
    so that a test in this process goes on after it."""
    from metarl_cli import cli as cli_module

    def exit_interrupted(text):
        print(text, file=sys.stderr)
        raise SystemExit(130)

    monkeypatch.setattr(cli_module, "_exit_interrupted", exit_interrupted)


def test_a_ctrl_c_python_swallowed_while_starting_stops_a_run_before_its_first_file(cli, tmp_path, monkeypatch, interrupts_exit_in_process):
    monkeypatch.setattr("metarl_cli.training.runner.interrupted_while_starting", lambda: True)
    run = tmp_path / "run"  # the directory it made is removed; one that was there stays, empty
    code, _, err = cli("train", "maml", "--env", "sinusoid", "-o", str(run), "-q")
    assert code == 130 and "interrupted before training began" in err and not run.exists()
    run.mkdir()
    code, _, err = cli("train", "maml", "--env", "sinusoid", "-o", str(run), "-q")
    assert code == 130 and "interrupted before training began" in err and run.is_dir() and not any(run.iterdir())


def test_a_ctrl_c_as_a_run_takes_its_directory_or_writes_its_manifest_or_ends_says_what_it_left(
        cli, tmp_path, monkeypatch, interrupts_exit_in_process):
    from metarl_cli.training import launch, rundir, runner

    def interrupting(fn):
        """`fn`, then a Ctrl-C to this process, as a user's landing just after it."""
        def call(*args, **kwargs):
            result = fn(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGINT)
            return result
        return call

    run = tmp_path / "run"
    with monkeypatch.context() as patched:  # as it takes the lock: nothing written, the directory it made removed
        patched.setattr(launch, "holding", contextlib.contextmanager(interrupting(rundir.holding.__wrapped__)))
        code, _, err = cli("train", "maml", "--env", "sinusoid", "-o", str(run), "-q")
    assert code == 130 and "interrupted before training began" in err and not run.exists(), err
    with monkeypatch.context() as patched:  # once its manifest is written: the command that starts it again
        patched.setattr(launch, "write_manifest", interrupting(rundir.write_manifest))
        code, _, err = cli("train", "maml", "--env", "sinusoid", "-o", str(run), "-q")
    err = " ".join(err.split())
    assert code == 130 and f"interrupted before the first checkpoint; `metarl train maml --resume -o {run}` starts the run again" in err, err
    files = {path: path.read_bytes() for path in run.iterdir() if path.is_file()}
    with monkeypatch.context() as patched:  # an --overwrite interrupted as it takes the lock: the run there is kept
        patched.setattr(launch, "holding", contextlib.contextmanager(interrupting(rundir.holding.__wrapped__)))
        code, _, err = cli("train", "maml", "--env", "sinusoid", "--overwrite", "-o", str(run), "-q")
    assert code == 130 and "interrupted before training began" in err and "removed" not in err, err
    assert {path: path.read_bytes() for path in run.iterdir() if path.is_file()} == files
    finished = tmp_path / "finished"
    with monkeypatch.context() as patched:  # during the last call: nothing left to stop, the run ends as a finished one
        patched.setattr(runner, "train", interrupting(runner.train))
        code, _, err = cli("train", "maml", "--env", "sinusoid", *set_args("hidden=[8]", "chunk=2", "iterations=2"),
                           "-o", str(finished), "-q")
    err = " ".join(err.split())
    assert code == 0 and "done: 2 iterations" in err and "interrupted" not in err, err
    assert "the stop (Ctrl-C or SIGTERM) came during the run's last call; it has done all its 2 iterations" in err, err


def test_a_directory_holding_only_lock_files_takes_a_new_run_and_another_tools_manifest_is_never_replaced(tmp_path):
    from metarl_cli.errors import UserError
    from metarl_cli.training.rundir import LOCK_FILES, check_new

    for name in LOCK_FILES:  # left by an eval, or by an --overwrite interrupted after it replaced the run
        (tmp_path / name).touch()
    assert check_new(tmp_path, overwrite=False) is False
    (tmp_path / "manifest.json").write_text('{"name": "dataset"}')
    (tmp_path / "config.toml").write_text("x = 1\n")
    with pytest.raises(UserError, match="holds a manifest.json that metarl did not write"):
        check_new(tmp_path, overwrite=True)


def test_a_ctrl_c_that_reaches_typer_is_said(cli, monkeypatch):
    def interrupted(name):
        raise KeyboardInterrupt

    monkeypatch.setattr("metarl_cli.families.get_family", interrupted)  # as if while the command starts up
    code, _, err = cli("envs")
    assert code == 130 and err.strip() == "interrupted", err
    monkeypatch.setattr("typer.main.get_command", interrupted)  # as typer builds the commands, before it handles a Ctrl-C
    code, _, err = cli("envs")
    assert code == 130 and err.strip() == "interrupted", err


def test_metrics_are_rewritten_whole_on_resume_and_only_where_lines_are_dropped(tmp_path):
    from metarl_cli.training.rundir import MetricsLog

    log = MetricsLog(tmp_path / "metrics.jsonl")
    for i in (1, 2, 3):
        log.append({"iteration": i, "loss": 1.0})
    before = log.path.stat().st_ino
    log.truncate_after(3)
    assert log.path.stat().st_ino == before  # nothing to drop: the file is left alone
    log.truncate_after(2)
    assert [r["iteration"] for r in log.read()] == [1, 2] and log.path.stat().st_ino != before  # replaced, not cut in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl"]


def test_the_manifest_records_the_command_as_metarl_also_when_run_as_a_module(monkeypatch):
    from metarl_cli.training.rundir import command_line

    for program in ("/venv/bin/metarl", "/src/metarl_cli/__main__.py"):
        monkeypatch.setattr(sys, "argv", [program, "train", "maml"])
        assert command_line() == ["metarl", "train", "maml"]


def test_eval_json_counts_every_diverged_task_and_holds_each_mean_and_interval(tmp_path):
    from metarl_cli.evaluate import EvalResult, write_evaluation
    from metarl_cli.stats import mean_ci95, summarise

    two = summarise([1.0, float("nan"), float("inf")])
    fine = summarise([1.0, 2.0, 4.0])
    result = EvalResult("test", 3, 1, "latest", 1, "mse", {"meta-learned": [fine, two]},
                        {"meta-learned": np.array([[1.0, 1.0], [2.0, np.nan], [4.0, np.inf]])}, [], (1, 1))
    write_evaluation(tmp_path, result)
    rows = json.loads((tmp_path / "eval.json").read_text())["test"]["methods"]["meta-learned"]
    mean, half = mean_ci95([1.0, 2.0, 4.0])
    assert rows[0] == {"after_steps": 0, "mean": mean, "ci95": half, "diverged": 0}
    assert rows[1] == {"after_steps": 1, "mean": None, "ci95": None, "diverged": 2}
    assert type(rows[1]["diverged"]) is int


def test_the_papers_sinusoid_rows_need_its_k_of_5_points():
    from metarl_cli.config import resolve_config

    assert len(published(resolve_config("maml", "sinusoid", None, []), "test", 10)) == 2
    assert published(resolve_config("maml", "sinusoid", None, ["shots=10"]), "test", 10) == []
