"""What `metarl train` settles before training: the config (new or resumed), the algorithm, where the
run goes and whether there is anything to train (`plan_training`); what the run should know first
(`notes_before_training`); what a dry run would do (`dry_run_plan`); and taking the run directory
to write in, held by this process alone from then on (`take_run_dir`).
"""

from __future__ import annotations

import threading
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from metarl_cli.algos import make_algorithm
from metarl_cli.backend import start_for_training
from metarl_cli.config import parse_override, resolve_config, resumed_config, write_config
from metarl_cli.devices import uneven_split_note
from metarl_cli.errors import UserError
from metarl_cli.evaluate import baselines_of
from metarl_cli.families import check_ood_apart, family_for
from metarl_cli.training.rundir import (check_new, check_own_run, check_unheld, claim_default_run_dir, command_line, default_run_dir,
                                        first_free, holding, load_run, prepare_new, record_resume, write_manifest)
from metarl_cli.training.runner import check_resume


@dataclass(frozen=True)
class TrainingPlan:
    algo: str
    config: Any  # the resolved config (a resumed run's, with what --set may change applied)
    family: Any
    algorithm: Any
    run_dir: Path  # where the run goes: as named, or the default name (made unique when the run starts)
    named: bool  # whether --run-dir named it
    overwrite: bool  # --overwrite: a new run may replace one
    saved: Any = None  # a resumed run's saved config
    done: int = 0  # the iterations a resumed run had done
    replaces: bool = False  # a new run replaces one with --overwrite

    @property
    def resume(self) -> bool:
        return self.saved is not None

    @property
    def nothing_to_do(self) -> bool:
        """A resumed run that had already done its iterations."""
        return self.resume and self.done == self.config.iterations

    @property
    def finished(self) -> str:
        """What is said of a run with nothing to do."""
        length_key = type(self.config).LENGTH_KEY
        return f"{self.run_dir} had already run its {length_key} = {getattr(self.config, length_key)}; --set {length_key}=N extends it"


def plan_training(algo: str, *, env: Optional[str], config_file: Optional[Path], overrides: list[str], seeds: Optional[int],
                  run_dir: Optional[Path], resume: bool, overwrite: bool) -> TrainingPlan:
    """The run `metarl train` is asked for, checked (a UserError where it cannot go ahead), with JAX
    started for it."""
    if resume and overwrite:
        raise UserError("--resume and --overwrite contradict each other; pass one")
    if seeds is not None:
        given = [value for key, value in map(parse_override, overrides) if key == "seeds" and value != seeds]
        if given:
            raise UserError(f"--seeds {seeds} and --set seeds={given[0]} disagree; give the number of seeds once")
        overrides = [*overrides, f"seeds={seeds}"]
    saved = None
    if resume:
        if run_dir is None:
            raise UserError("--resume needs --run-dir naming the run to continue")
        saved_algo, saved, _ = load_run(run_dir)
        check_own_run(run_dir)
        if saved_algo != algo:
            raise UserError(f"{run_dir} is a '{saved_algo}' run, not '{algo}'")
        config = resumed_config(saved, env, config_file, overrides)
    else:
        config = resolve_config(algo, env, config_file, overrides)
    start_for_training(algo, config)  # before anything starts JAX, as building a family does
    family = family_for(config)
    if not resume:  # a run made before the check keeps the ranges it trained on
        check_ood_apart(family)
    algorithm = make_algorithm(algo, config, family)
    where = run_dir or default_run_dir(algo, config.env)
    done, replaces = 0, False
    if resume:
        check_unheld(run_dir, False)  # first: the checkpoints of a run another process trains change as they are read
        done = check_resume(algorithm, config, run_dir, saved_algo=make_algorithm(algo, saved, family))
        config.check_retuned(saved, done)
    else:
        replaces = check_new(run_dir or first_free(where), overwrite)
    return TrainingPlan(algo, config, family, algorithm, where, named=run_dir is not None, overwrite=overwrite, saved=saved,
                        done=done, replaces=replaces)


def notes_before_training(plan: TrainingPlan) -> list[str]:
    """The warnings and notes a run about to train should know, each a line."""
    config = plan.config
    lines = [f"warning: {warning}" for warning in config.warnings()]
    uneven_seeds = uneven_split_note(config.seeds, "the seeds", "seeds")
    lines += [f"note: {note}" for note in (*plan.algorithm.notes, *([uneven_seeds] if uneven_seeds else []))]
    try:  # the baselines `metarl eval` trains for this run: one too long to train is refused there, said here first
        baselines_of(plan.algorithm, plan.algo, config, plan.family)
    except UserError as e:
        lines.append(f"warning: `metarl eval` will refuse this run: {e}")
    return lines


def dry_run_plan(plan: TrainingPlan) -> str:
    """What the run would do, as `--dry-run` says it; a UserError where it would be refused as
    another process holds the run it would resume or replace."""
    if plan.replaces:  # (a run to resume was checked by plan_training)
        check_unheld(plan.run_dir, True)
    if plan.resume:
        return f"do nothing: {plan.finished}" if plan.nothing_to_do else f"resume {plan.run_dir} from iteration {plan.done} of {plan.config.iterations}"
    if plan.named:
        return f"{'replace the run in' if plan.replaces else 'write'} {plan.run_dir}"
    return f"write a new run in {plan.run_dir.parent}/ (named {plan.algo}-{plan.config.env}-DATE-TIME when it starts)"


class InterruptedBeforeTraining(Exception):
    """A Ctrl-C (or SIGTERM) came before training began; the message says what it left."""


def take_run_dir(plan: TrainingPlan, stop: threading.Event, stack: ExitStack) -> Path:
    """The run directory, held by this process alone until `stack` closes, with the run's files
    written (a new run's manifest and config; a resumed run's resume record and config); its path
    (a default name is made unique here). `stop` set (a Ctrl-C) before the first file is written
    raises `InterruptedBeforeTraining`, having removed a directory made just now."""
    run_dir = plan.run_dir
    if plan.resume:
        stack.enter_context(holding(run_dir))
        if stop.is_set():
            raise InterruptedBeforeTraining("interrupted before training began")
        record_resume(run_dir, plan.saved, plan.config, command_line())
        write_config(plan.config, plan.algo, run_dir / "config.toml")
        return run_dir
    made = not (plan.named and run_dir.exists())
    if plan.named:
        prepare_new(run_dir, False)
    else:
        run_dir = claim_default_run_dir(run_dir)
    stack.enter_context(holding(run_dir))
    replaced = False
    if plan.named and not stop.is_set():  # again, alone now: another process may have written a run there, or still trained the one replaced
        replaced = check_new(run_dir, plan.overwrite)
        prepare_new(run_dir, replaced)
    if stop.is_set():
        if made:
            with suppress(OSError):
                run_dir.rmdir()  # made empty just now
        raise InterruptedBeforeTraining("interrupted before training began" + (f"; the run that was in {run_dir} is removed" if replaced else ""))
    write_manifest(run_dir, plan.algo, plan.config, command_line())
    return run_dir
