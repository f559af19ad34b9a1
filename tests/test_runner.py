"""The training loop: a non-finite loss, or gradient, stops the run and leaves the last good checkpoint
latest; a stop (the event, or Ctrl-C) between saves saves the last finished iteration;
checkpoints in Orbax's standard format (with or without OCDBT) still restore; a later phase's step
takes over at its iteration; the best-scoring checkpoint is kept beside the latest, also in runs
that recorded the score as an Orbax metric; a run whose saves cost more than a tenth of its
training time is told how to save less often."""

import dataclasses
import json
import os
import pickle
import re
import shutil
import signal
import threading

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from metarl_cli.algos import Algorithm, Phase
from metarl_cli.config import MamlRLConfig
from metarl_cli.errors import UserError
from metarl_cli.training.checkpoint import CHOICES, Checkpoints, PackedSave, PackedStateHandler, pack
from metarl_cli.training.runner import DivergedError, Interrupted, TrainSummary, stop_signals_set, train


def toy_algorithm(step, params_shape=(), **extra) -> Algorithm:
    """An Algorithm around `step` on a state of float params and an iteration count (1 env step an iteration)."""
    return Algorithm(
        init=lambda key: {"params": jnp.zeros(params_shape), "iteration": jnp.zeros((), jnp.int32)},
        step=step,
        adaptation_curve=None,
        init_params=None,
        env_steps_per_iteration=1,
        score_name="return",
        **extra,
    )


def diverging_algorithm(bad_iteration: int, metric: str = "loss") -> Algorithm:
    """Its `metric` (the loss, or the gradient's norm beside a finite loss) and its params turn NaN at `bad_iteration`."""

    def step(state):
        it = state["iteration"] + 1
        bad = jnp.where(it == bad_iteration, jnp.nan, 1.0 / it)
        metrics = {"loss": 1.0 / it, "grad_norm": 1.0 / it, metric: bad, "pre_return": -bad, "post_return": -bad}
        return {"params": state["params"] + bad, "iteration": it}, metrics

    return toy_algorithm(step, params_shape=(3,))


@pytest.mark.parametrize("metric, what", [("loss", "loss"), ("grad_norm", "gradient")])
def test_non_finite_loss_or_gradient_stops_and_keeps_last_good_checkpoint(tmp_path, metric, what):
    config = MamlRLConfig(iterations=10, keep_checkpoints=5)
    with pytest.raises(DivergedError, match=f"^{what} became non-finite at iteration 4.*iteration 3"):
        train(diverging_algorithm(4, metric), config, tmp_path, resume=False, show_progress=False)
    with Checkpoints(tmp_path, 5) as ckpt:
        assert ckpt.step() == 3
        state = ckpt.restore_chosen(diverging_algorithm(4).init(None))[1]
        assert jnp.all(jnp.isfinite(state["params"]))
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 3


def test_an_iteration_whose_score_is_not_finite_never_ranks_best_and_logs_null(tmp_path):
    """A score of NaN beside a finite loss (an RL^2 or DQN chunk in which no episode ended) is no
    score: the best checkpoint is the best finite one, and metrics.jsonl stays strict JSON."""
    def step(state):
        it = state["iteration"] + 1
        score = jnp.where((it == 1) | (it == 4), jnp.nan, jnp.where(it <= 3, it, 0).astype(jnp.float32))
        return {"params": state["params"] + 1.0, "iteration": it}, {"loss": jnp.float32(1.0), "pre_return": score, "post_return": score}

    train(toy_algorithm(step), MamlRLConfig(iterations=6, keep_checkpoints=1), tmp_path, resume=False, show_progress=False)
    with Checkpoints(tmp_path, 1) as ckpt:
        assert (ckpt.step("best"), ckpt.step()) == (3, 6)
        assert ckpt.scored(3) and ckpt.scored(6)
    # No iteration with a score: "best" is the latest, which has none.
    unscored = tmp_path / "unscored"
    nan_step = lambda state: (step(state)[0], {**step(state)[1], "post_return": jnp.float32(jnp.nan)})  # noqa: E731
    train(toy_algorithm(nan_step), MamlRLConfig(iterations=3, keep_checkpoints=1), unscored, resume=False, show_progress=False)
    with Checkpoints(unscored, 1) as ckpt:
        assert (ckpt.step("best"), ckpt.step()) == (3, 3) and not ckpt.scored(3)

    def strict(constant):
        raise ValueError(f"{constant} in metrics.jsonl")

    lines = [json.loads(line, parse_constant=strict) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["post_return"] for line in lines] == [None, 2.0, 3.0, None, 0.0, 0.0]


def test_the_mean_over_seeds_leaves_out_a_seed_without_a_value():
    from metarl_cli.training.runner import _seed_mean

    assert _seed_mean([1.0, np.nan]) == 1.0 and np.isnan(_seed_mean([np.nan, np.nan]))


def test_a_divergence_crosses_to_the_process_waiting_on_the_training(tmp_path):
    """The benchmarks train in a process of their own (scripts/scratch.py): the error must unpickle there."""
    with pytest.raises(DivergedError) as raised:
        train(diverging_algorithm(2), MamlRLConfig(iterations=3), tmp_path, resume=False, show_progress=False)
    again = pickle.loads(pickle.dumps(raised.value))
    assert str(again) == str(raised.value) and again.run_dir == tmp_path


def test_a_non_finite_value_in_one_seed_mid_chunk_stops_at_its_iteration(tmp_path):
    """Two seeds, chunks of three: only seed 1 turns NaN, at iteration 5 (the middle of the second chunk)."""

    def step(state):
        it = state["iteration"] + 1
        bad = jnp.where((it == 5) & (state["seed"] == 1), jnp.nan, 1.0 / it)
        metrics = {"loss": bad, "pre_return": -bad, "post_return": -bad}
        return {**state, "params": state["params"] + bad, "iteration": it}, metrics

    algo = toy_algorithm(step)._replace(init=lambda key: {"params": jnp.zeros(()), "iteration": jnp.zeros((), jnp.int32),
                                                          "seed": key[1].astype(jnp.int32)})  # a PRNGKey(s) holds s
    with pytest.raises(DivergedError, match=r"^loss became non-finite at iteration 5; .*\(iteration 3\)"):
        train(algo, MamlRLConfig(iterations=9, chunk=3, seeds=2), tmp_path, resume=False, show_progress=False)


@pytest.fixture
def signals_handled():
    """SIGINT and SIGTERM as in a terminal's foreground (a runner started in the background with them
    ignored leaves them ignored)."""
    before = {signum: signal.signal(signum, handler) for signum, handler in
              ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL))}
    yield
    for signum, handler in before.items():
        signal.signal(signum, handler)


@pytest.mark.parametrize("how", ["stop event", "ctrl-c"])
def test_a_stop_between_saves_saves_the_last_finished_iteration(tmp_path, how, signals_handled):
    stop = threading.Event()
    interrupt = stop.set if how == "stop event" else lambda: os.kill(os.getpid(), signal.SIGINT)

    def step(state):
        it = state["iteration"] + 1
        jax.debug.callback(lambda i: interrupt() if i == 7 else None, it)  # once iteration 7 is done
        zero = jnp.zeros(())
        return {"params": state["params"] + 1.0, "iteration": it}, {"loss": zero, "pre_return": zero, "post_return": zero}

    config = dataclasses.replace(MamlRLConfig(iterations=20), checkpoint_every=5)
    with pytest.raises(Interrupted) as interrupted:
        train(toy_algorithm(step), config, tmp_path, resume=False, show_progress=False,
              stop=stop if how == "stop event" else None)
    assert interrupted.value.latest == 7  # not 5, the last save that checkpoint_every made
    with Checkpoints(tmp_path, 5) as ckpt:
        assert float(ckpt.restore_chosen(toy_algorithm(step).init(None))[1]["params"]) == 7.0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_sets_the_stop_event_then_raises_on_a_second(signum, signals_handled):
    stop, before = threading.Event(), signal.getsignal(signum)
    with stop_signals_set(stop):
        signal.raise_signal(signum)  # in this thread: handled before the next line runs
        assert stop.is_set()
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signum)
    assert signal.getsignal(signum) is before


def test_a_signal_the_process_ignores_stays_ignored():
    before = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        stop = threading.Event()
        with stop_signals_set(stop):
            signal.raise_signal(signal.SIGTERM)
            assert not stop.is_set() and signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_sigterm_raises_keyboard_interrupt_within_terminations_as_interrupts_and_is_restored_after(signals_handled):
    from metarl_cli.interrupts import terminations_as_interrupts

    with terminations_as_interrupts():
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGTERM)  # in this thread: handled before the next line runs
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    before = signal.signal(signal.SIGTERM, signal.SIG_IGN)  # started to ignore it: it stays ignored
    try:
        with terminations_as_interrupts():
            signal.raise_signal(signal.SIGTERM)
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, before)


@pytest.mark.parametrize("handles", ["stop_signals_set", "terminations_as_interrupts", "interrupts_held"])
def test_a_handler_set_outside_python_is_left_in_place(monkeypatch, signals_handled, handles):
    """`signal.getsignal` gives None for a handler set outside Python, which `signal.signal` cannot put back."""
    from metarl_cli import interrupts

    context = {"stop_signals_set": lambda: stop_signals_set(threading.Event()),
               "terminations_as_interrupts": interrupts.terminations_as_interrupts,
               "interrupts_held": interrupts.interrupts_held}[handles]
    real_getsignal, real_signal, set_ = signal.getsignal, signal.signal, []
    monkeypatch.setattr(signal, "getsignal", lambda signum: None if signum in (signal.SIGINT, signal.SIGTERM) else real_getsignal(signum))
    monkeypatch.setattr(signal, "signal", lambda signum, handler: set_.append(signum) or real_signal(signum, handler))
    with context():
        pass
    assert set_ == []


@pytest.mark.parametrize("use_ocdbt", [True, False])
def test_checkpoints_in_the_standard_format_still_restore(tmp_path, use_ocdbt):
    """Runs saved by Orbax's standard handler (earlier runs: OCDBT, Orbax's default, then without it)
    restore as before; such a step holds no score, so it ranks below any scored step for "best"."""
    state = {"params": jnp.arange(5.0), "iteration": jnp.asarray(7, jnp.int32)}
    options = ocp.CheckpointManagerOptions(create=True, enable_async_checkpointing=False)
    handler = ocp.StandardCheckpointHandler(use_ocdbt=use_ocdbt)
    with ocp.CheckpointManager((tmp_path / "checkpoints").absolute(), options=options, item_handlers=handler) as manager:
        manager.save(7, args=ocp.args.StandardSave(pack(state)))
    with Checkpoints(tmp_path, keep=2) as checkpoints:
        restored = checkpoints.restore_chosen({"params": jnp.zeros(5), "iteration": jnp.zeros((), jnp.int32)})[1]
        np.testing.assert_array_equal(restored["params"], np.arange(5.0))
        assert int(restored["iteration"]) == 7
        assert checkpoints.step("best") == 7
        checkpoints.save(8, {"params": jnp.ones(5), "iteration": jnp.asarray(8, jnp.int32)}, score=-1e30)
        assert (checkpoints.step("best"), checkpoints.step()) == (8, 8)


def test_runs_that_scored_checkpoints_as_orbax_metrics_keep_their_best(tmp_path):
    """Earlier runs recorded each step's score as an Orbax metric: their best step is still found,
    still kept when a resumed run saves later, worse steps, and still restores."""
    options = ocp.CheckpointManagerOptions(create=True, enable_async_checkpointing=False, best_fn=lambda m: m["score"])
    directory = (tmp_path / "checkpoints").absolute()
    with ocp.CheckpointManager(directory, options=options, item_handlers=PackedStateHandler()) as manager:
        for step, score in ((1, -4.0), (2, 5.0), (3, 1.0)):
            manager.save(step, args=PackedSave(pack({"params": jnp.asarray(float(step))})), metrics={"score": score})
    with Checkpoints(tmp_path, keep=1) as checkpoints:
        assert (checkpoints.step("best"), checkpoints.step()) == (2, 3)
        checkpoints.save(4, {"params": jnp.asarray(4.0)}, score=0.0)
        checkpoints.save(5, {"params": jnp.asarray(5.0)}, score=-1.0)
        assert (checkpoints.step("best"), checkpoints.step()) == (2, 5)
        assert checkpoints.manager.all_steps() == [2, 5]
        assert float(checkpoints.restore_chosen({"params": jnp.zeros(())}, "best")[1]["params"]) == 2.0


def test_a_reader_beside_a_run_still_training_reads_the_steps_its_saves_leave(tmp_path):
    """A run's saves delete its older checkpoints while an eval or a report reads them: a step gone
    before it is read is chosen again, and one gone before its score is read is left out."""
    for which in ("latest", "best"):
        with Checkpoints(tmp_path / which, keep=1) as writer:
            for step, score in ((1, 3.0), (2, 1.0), (3, 2.0)):  # keeps 3 (the latest) and 1 (the best)
                writer.save(step, {"params": jnp.asarray(float(step))}, score)
            writer.wait()
            with Checkpoints(tmp_path / which, keep=1, create=False) as reader:
                assert (reader.step(), reader.step("best")) == (3, 1)
                writer.save(4, {"params": jnp.asarray(4.0)}, score=5.0)  # the latest and the best: 1 and 3 deleted
                writer.wait()
                step, state = reader.restore_chosen({"params": jnp.zeros(())}, which)
                assert (step, float(state["params"])) == (4, 4.0), which
                reader.manager.all_steps = lambda: [4, 9]  # 9 deleted between the listing and the reading
                assert reader._scores_on_disk() == {4: 5.0}
    with Checkpoints(tmp_path / "none", keep=2, create=False) as empty:
        assert empty.restore_chosen({"params": jnp.zeros(())}) == (None, None)


def test_a_reader_chooses_again_only_where_its_step_vanished_and_at_most_choices_times(tmp_path):
    """A damaged step that is still there is reported at once; a step deleted before it is read is
    chosen again, `CHOICES` times in all, then reported."""
    template = {"params": jnp.zeros(())}
    with Checkpoints(tmp_path, keep=2) as checkpoints:
        checkpoints.save(1, {"params": jnp.asarray(1.0)}, score=0.0)
        checkpoints.wait()
        (tmp_path / "checkpoints" / "1" / "default" / PackedStateHandler.FILE).write_bytes(b"")
        reloads = []
        checkpoints.manager.reload = lambda: reloads.append(1)
        with pytest.raises(UserError, match="damaged or incomplete"):
            checkpoints.restore_chosen(template)
        assert reloads == []
        tried = []

        def vanished(target, which="latest", step=None):
            tried.append(step)
            if len(tried) > CHOICES:
                raise RuntimeError("chose again past CHOICES")
            raise UserError(f"step {step} is gone")

        checkpoints.restore, checkpoints.step = vanished, lambda which="latest": 7  # no directory 7
        with pytest.raises(UserError, match="step 7 is gone"):
            checkpoints.restore_chosen(template)
        assert tried == [7] * CHOICES and len(reloads) == CHOICES - 1


@pytest.mark.parametrize("content", [b"", b"garbage\n"], ids=["empty", "text"])
def test_a_damaged_checkpoint_file_is_reported_in_one_line(tmp_path, content):
    with Checkpoints(tmp_path, keep=2) as checkpoints:
        checkpoints.save(1, {"params": jnp.asarray(1.0)}, score=0.0)
        checkpoints.wait()
        (tmp_path / "checkpoints" / "1" / "default" / PackedStateHandler.FILE).write_bytes(content)
        with pytest.raises(UserError) as refused:
            checkpoints.restore_chosen({"params": jnp.zeros(())})
    assert re.fullmatch(rf"cannot read the checkpoint in \S+/1 \(damaged or incomplete\): {PackedStateHandler.FILE} is not an \.npz archive; "
                        r"it is the run's only checkpoint", str(refused.value)), refused.value


def test_a_second_writer_of_a_run_is_refused_or_with_wait_waits_for_the_first(tmp_path, capsys):
    import fcntl

    from metarl_cli.training.rundir import holding

    first = os.open(tmp_path, os.O_RDONLY)  # another process's lock: another open file description
    fcntl.flock(first, fcntl.LOCK_EX)
    with pytest.raises(UserError, match="is being written by another metarl process"):
        with holding(tmp_path):
            pass
    threading.Timer(0.3, os.close, (first,)).start()  # the first ends
    entered = []
    with holding(tmp_path, wait=True):
        entered.append(True)
    assert entered and f"waiting for another metarl process writing {tmp_path}" in capsys.readouterr().err


def test_a_step_emptied_of_its_files_is_reported_in_one_line_where_it_is_read_and_passed_over_where_it_is_not(tmp_path):
    """As a kill in the middle of Orbax's deleting an old step can leave it: its metadata gone too.
    The message names the checkpoints that removing the step falls back on."""
    with Checkpoints(tmp_path, keep=3) as checkpoints:
        for step in (1, 2, 3):
            checkpoints.save(step, {"params": jnp.asarray(float(step))}, score=float(step))
        checkpoints.wait()
    shutil.rmtree(tmp_path / "checkpoints" / "3")
    (tmp_path / "checkpoints" / "3").mkdir()
    with Checkpoints(tmp_path, keep=3, create=False) as checkpoints:
        with pytest.raises(UserError, match=r"checkpoints/3 \(damaged or incomplete\).*falls back on the run's other checkpoints \(iterations 1, 2\)$"):
            checkpoints.restore_chosen({"params": jnp.zeros(())})
    shutil.rmtree(tmp_path / "checkpoints" / "3")
    for step in (1, 2):
        shutil.rmtree(tmp_path / "checkpoints" / str(step))
        (tmp_path / "checkpoints" / str(step)).mkdir()
        with Checkpoints(tmp_path, keep=3, create=False) as checkpoints:  # opened, as eval, report and resume do
            if step == 1:
                assert float(checkpoints.restore_chosen({"params": jnp.zeros(())})[1]["params"]) == 2.0
            else:
                with pytest.raises(UserError, match=r"checkpoints/2 \(damaged or incomplete\).*falls back on the run's other checkpoint \(iteration 1\)$"):
                    checkpoints.restore_chosen({"params": jnp.zeros(())})


def two_phase_algorithm(switch_at: int) -> Algorithm:
    """Adds 1 a step (1 env step) until `switch_at` iterations are done, then 10 a step (4 env steps)."""

    def adding(amount):
        def step(state):
            metrics = {"loss": jnp.asarray(1.0), "pre_return": state["params"], "post_return": state["params"]}
            return {"params": state["params"] + amount, "iteration": state["iteration"] + 1}, metrics

        return step

    return toy_algorithm(adding(1.0), later_phase=Phase(switch_at, adding(10.0), 4))


def test_later_phase_starts_at_its_iteration_with_no_chunk_across_the_switch_and_resumes(tmp_path):
    algo = two_phase_algorithm(switch_at=3)
    assert [algo.env_steps_after(n) for n in range(7)] == [0, 1, 2, 3, 7, 11, 15]
    config = MamlRLConfig(iterations=6, chunk=2)
    train(algo, config, tmp_path / "straight", resume=False, show_progress=False)
    lines = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    # chunks [0, 2), [2, 3) (cut at the switch), [3, 5), [5, 6); each line's return is its chunk's mean start value
    assert [(r["iteration"], r["env_steps"], r["post_return"]) for r in lines] == [(2, 2, 0.5), (3, 3, 2.0), (5, 11, 8.0), (6, 15, 23.0)]
    halfway = tmp_path / "halfway"
    train(algo, MamlRLConfig(iterations=4, chunk=2), halfway, resume=False, show_progress=False)
    train(algo, config, halfway, resume=True, show_progress=False)
    for run in (tmp_path / "straight", halfway):
        with Checkpoints(run, 3) as ckpt:
            assert float(ckpt.restore_chosen(algo.init(None))[1]["params"]) == 3 * 1.0 + 3 * 10.0


def test_best_checkpoint_is_kept_beside_the_latest_and_survives_resume(tmp_path):
    """keep_checkpoints latest states plus the one with the best post-adaptation score; `which="best"`
    restores that one, also after a resumed run adds later, worse iterations."""

    def step(state):  # params counts iterations; the score peaks at the 3rd
        it = state["iteration"] + 1
        metrics = {"loss": jnp.asarray(1.0), "pre_return": jnp.asarray(0.0), "post_return": -((it - 3.0) ** 2)}
        return {"params": state["params"] + 1.0, "iteration": it}, metrics

    algo = toy_algorithm(step)
    train(algo, MamlRLConfig(iterations=6, keep_checkpoints=2), tmp_path, resume=False, show_progress=False)
    train(algo, MamlRLConfig(iterations=9, keep_checkpoints=2), tmp_path, resume=True, show_progress=False)
    with Checkpoints(tmp_path, 2) as ckpt:
        assert ckpt.manager.all_steps() == [3, 8, 9]
        assert (ckpt.step("best"), ckpt.step()) == (3, 9)
        assert float(ckpt.restore_chosen(algo.init(None), "best")[1]["params"]) == 3.0
        assert float(ckpt.restore_chosen(algo.init(None))[1]["params"]) == 9.0


def test_a_run_of_one_chunk_has_a_rate_and_its_compilation_is_timed_apart(tmp_path):
    def step(state):
        metrics = {"loss": jnp.asarray(1.0), "pre_return": jnp.asarray(0.0), "post_return": jnp.asarray(0.0)}
        return {**state, "iteration": state["iteration"] + 1}, metrics

    summary = train(toy_algorithm(step), MamlRLConfig(iterations=3, chunk=3), tmp_path, resume=False, show_progress=False)
    assert summary.iterations_done == 3 and 0 < summary.compile_seconds < summary.seconds
    assert summary.iterations_per_second > 0  # the one call's run is training, not compiling
    assert summary.iterations_per_second > summary.iterations_done / summary.seconds  # its time leaves compiling out
    assert summary.env_steps_per_second == pytest.approx(summary.iterations_per_second)  # one env step an iteration


def test_best_checkpoint_of_a_score_to_minimise_is_its_lowest_and_of_equal_scores_the_latest(tmp_path):
    def step(state, score):
        it = state["iteration"] + 1
        metrics = {"loss": jnp.asarray(1.0), "pre_return": jnp.asarray(0.0), "post_return": score(it)}
        return {"params": state["params"] + 1.0, "iteration": it}, metrics

    lowest_at_3 = toy_algorithm(lambda s: step(s, lambda it: (it - 3.0) ** 2), maximize=False)  # as an MSE is
    equal = toy_algorithm(lambda s: step(s, lambda it: jnp.asarray(1.0)))
    for algo, name, best in ((lowest_at_3, "lowest", 3), (equal, "equal", 6)):
        train(algo, MamlRLConfig(iterations=6, keep_checkpoints=2), tmp_path / name, resume=False, show_progress=False)
        with Checkpoints(tmp_path / name, 2) as ckpt:
            assert ckpt.step("best") == best, name


def test_checkpoint_advice_only_where_saves_take_more_than_a_tenth_of_training():
    """A run's figures on a GPU, where a meta-iteration took 17 ms and a save 100 ms, draw the
    advice; the 2-core CPU's (0.3 s of saves in 8.8 s of training) and a run of a few saves do not."""
    gpu = TrainSummary(100, seconds=25.0, compile_seconds=13.0, checkpoint_seconds=10.0, checkpoints_saved=100,
                       iterations_per_second=8.0, env_steps_per_second=1.3e6)
    assert gpu.checkpoint_advice(100) == ("checkpoints took 83% of the training time (100 ms a save, 20.0 ms an iteration without "
                                       "them): with `--set checkpoint_every=50` (on a new run or a --resume) a save would cost at "
                                       "most 10% of the iterations between saves")
    cpu = dataclasses.replace(gpu, seconds=15.4, compile_seconds=6.6, checkpoint_seconds=0.3)
    assert cpu.checkpoint_advice(100) is None
    assert dataclasses.replace(gpu, checkpoints_saved=9).checkpoint_advice(100) is None
    assert dataclasses.replace(gpu, checkpoints_saved=10).checkpoint_advice(100) is not None  # at least ten saves
    assert "`--set checkpoint_every=64`" in gpu.checkpoint_advice(100, chunk=32)  # saves are taken at a chunk's end
    short = dataclasses.replace(gpu, checkpoints_saved=10)  # 1 s a save: an interval of 500, past the run's 100 iterations
    assert "a run this short is best saved at its end alone, with `--set checkpoint_every=100`" in short.checkpoint_advice(100)
    # A resume that ran the last 50 of a run's iterations, 40 ms each: an interval of 250, past the end of a run of 200.
    resumed = dataclasses.replace(short, iterations_done=50)
    assert "its end alone, with `--set checkpoint_every=200`" in resumed.checkpoint_advice(200)
    assert "with `--set checkpoint_every=250` (on a new run or a --resume) a save would cost" in resumed.checkpoint_advice(1000)


def test_pack_and_unpack_give_back_every_leaf_with_its_dtype():
    from metarl_cli.training.checkpoint import unpack

    tree = {"a": np.arange(4, dtype=np.float32), "b": np.full((2, 2), 7.0, np.float32), "c": np.array([5.0, 6.0], np.float32),
            "n": np.array([3, 1], np.int32)}
    back = unpack(pack(tree), tree)
    for name in tree:
        assert back[name].dtype == tree[name].dtype, name
        np.testing.assert_array_equal(back[name], tree[name])


def counting_algorithm() -> Algorithm:
    """Adds 1 to params a step; the loss and scores are the iteration reached, so each metrics line says which it is."""

    def step(state):
        it = state["iteration"] + 1
        value = it.astype(jnp.float32)
        return {"params": state["params"] + 1.0, "iteration": it}, {"loss": value, "pre_return": -value, "post_return": value}

    return toy_algorithm(step)


def test_chunks_shorter_than_checkpoint_every_save_only_at_its_multiples_and_the_last_iteration(tmp_path):
    """Chunks of one, a save every 3 of 7 iterations: saves at 3, 6 and the last (7), not after every chunk."""
    config = MamlRLConfig(iterations=7, chunk=1, checkpoint_every=3, keep_checkpoints=10)
    saved = []
    original_save = Checkpoints.save

    def recording_save(self, step, state, score):
        saved.append(step)
        return original_save(self, step, state, score)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Checkpoints, "save", recording_save)
        summary = train(counting_algorithm(), config, tmp_path, resume=False, show_progress=False)
    assert saved == [3, 6, 7]
    assert summary.checkpoints_saved == 3
    with Checkpoints(tmp_path, 10) as ckpt:
        assert ckpt.manager.all_steps() == [3, 6, 7]


def test_a_resume_from_before_the_last_metrics_line_leaves_one_line_per_iteration_and_seed(tmp_path):
    """A run killed after logging iterations past its latest checkpoint (its last save deleted here)
    resumes from that checkpoint: the lines after it are dropped and written again, once, per seed."""
    import shutil

    algo, config = counting_algorithm(), MamlRLConfig(iterations=9, checkpoint_every=3, keep_checkpoints=5, seeds=2)
    train(algo, config, tmp_path, resume=False, show_progress=False)
    metrics = tmp_path / "metrics.jsonl"
    before = [json.loads(line) for line in metrics.read_text().splitlines()]
    shutil.rmtree(tmp_path / "checkpoints" / "9")  # the latest checkpoint is now iteration 6's; the log goes to 9
    with Checkpoints(tmp_path, 5) as ckpt:
        assert ckpt.step() == 6
    assert train(algo, config, tmp_path, resume=True, show_progress=False).iterations_done == 3  # 7 to 9 again
    with Checkpoints(tmp_path, 5) as ckpt:
        assert ckpt.step() == 9
    after = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert sorted((r["iteration"], r["seed"]) for r in after) == [(i, s) for i in range(1, 10) for s in (0, 1)]
    assert after == before  # the lines for 7 to 9 written again are the same run's


def test_a_resume_says_where_the_metrics_lack_the_line_of_the_iteration_it_resumes_from(tmp_path, capsys):
    """A kill cuts short only a line past the latest checkpoint, which the resume writes again; a
    line of the checkpoint's own iteration that does not read was damaged, and the resume says so."""
    algo, config = counting_algorithm(), MamlRLConfig(iterations=6, checkpoint_every=3, seeds=2)
    train(algo, config, tmp_path, resume=False, show_progress=False)
    longer = dataclasses.replace(config, iterations=9)
    metrics = tmp_path / "metrics.jsonl"
    lines = metrics.read_text().splitlines(keepends=True)
    metrics.write_text("".join(lines) + lines[-1][:20])  # a kill's cut line, past the checkpoint at 6
    capsys.readouterr()
    train(algo, longer, tmp_path, resume=True, show_progress=False)
    assert "lacks" not in capsys.readouterr().err and len(metrics.read_text().splitlines()) == 18  # written again whole
    lines = metrics.read_text().splitlines(keepends=True)
    metrics.write_text("".join(lines[:-1]) + lines[-1][:20])  # iteration 9's line of seed 1 cut short, the checkpoint at 9 saved
    train(algo, dataclasses.replace(config, iterations=12), tmp_path, resume=True, show_progress=False)
    said = " ".join(capsys.readouterr().err.split())
    assert f"note: {metrics} lacks lines for iteration 9, where the run resumes (damaged or edited)" in said, said

def test_a_ctrl_c_among_a_chunks_metrics_lines_saves_the_chunk_before(tmp_path, monkeypatch):
    """A second Ctrl-C stops at once, also between two seeds' lines: the checkpoint it saves is of the
    last chunk whose lines are all written, so that the resume writes the cut chunk's lines again."""
    from metarl_cli.training.rundir import MetricsLog

    algo, config = counting_algorithm(), MamlRLConfig(iterations=6, chunk=1, checkpoint_every=3, seeds=2)
    append = MetricsLog.append

    def cut_at_iteration_3_seed_1(log, record):
        if (record["iteration"], record["seed"]) == (3, 1):
            raise KeyboardInterrupt
        append(log, record)

    monkeypatch.setattr(MetricsLog, "append", cut_at_iteration_3_seed_1)
    with pytest.raises(KeyboardInterrupt):
        train(algo, config, tmp_path, resume=False, show_progress=False)
    with Checkpoints(tmp_path, 5) as ckpt:
        assert ckpt.step() == 2
    monkeypatch.setattr(MetricsLog, "append", append)
    train(algo, config, tmp_path, resume=True, show_progress=False)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert sorted((r["iteration"], r["seed"]) for r in lines) == [(i, s) for i in range(1, 7) for s in (0, 1)]

def test_the_env_steps_rate_counts_every_seeds_steps(tmp_path):
    """Two seeds of one env step an iteration: env steps/s is twice iterations/s."""
    config = MamlRLConfig(iterations=4, chunk=2, seeds=2)
    summary = train(counting_algorithm(), config, tmp_path, resume=False, show_progress=False)
    assert summary.iterations_done == 4 and summary.iterations_per_second > 0
    assert summary.env_steps_per_second == pytest.approx(2 * summary.iterations_per_second)


def test_a_resume_asked_for_fewer_iterations_than_done_is_refused_by_train_itself(tmp_path):
    """eval resumes its cached baselines without `check_resume`: `train` refuses to shorten a run too."""
    algo = counting_algorithm()
    train(algo, MamlRLConfig(iterations=3), tmp_path, resume=False, show_progress=False)
    with pytest.raises(UserError, match="already has 3 iterations, more than the 2 this config asks for"):
        train(algo, MamlRLConfig(iterations=2), tmp_path, resume=True, show_progress=False)


def test_resume_continues_from_the_latest_checkpoint_not_the_best(tmp_path):
    """A run whose best checkpoint (iteration 3) is older than its latest (6): --resume to 9 runs
    iterations 7 to 9 only, from the latest state."""
    from metarl_cli.algos.base import Algorithm
    from metarl_cli.config import MamlRLConfig
    from metarl_cli.training.checkpoint import Checkpoints
    from metarl_cli.training.runner import train

    def step(state):  # params counts iterations; the score peaks at the 3rd
        it = state["iteration"] + 1
        metrics = {"loss": jnp.asarray(1.0), "pre_return": jnp.asarray(0.0), "post_return": -((it - 3.0) ** 2)}
        return {"params": state["params"] + 1.0, "iteration": it}, metrics

    algo = Algorithm(init=lambda key: {"params": jnp.zeros(()), "iteration": jnp.zeros((), jnp.int32)}, step=step,
                     adaptation_curve=None, init_params=None, env_steps_per_iteration=1, score_name="return")
    train(algo, MamlRLConfig(iterations=6, keep_checkpoints=2), tmp_path, resume=False, show_progress=False)
    with Checkpoints(tmp_path, 2) as ckpt:
        assert (ckpt.step("best"), ckpt.step()) == (3, 6)
    summary = train(algo, MamlRLConfig(iterations=9, keep_checkpoints=2), tmp_path, resume=True, show_progress=False)
    assert summary.iterations_done == 3
    with Checkpoints(tmp_path, 2) as ckpt:  # from the best (3) it would have counted to 6
        state = ckpt.restore_chosen(algo.init(None))[1]
        assert (ckpt.step(), float(state["params"]), int(state["iteration"])) == (9, 9.0, 9)
