"""Typed, validated configs: one frozen dataclass per algorithm, loaded from TOML layers.

Layers, later ones winning: the dataclass defaults, the experiment file shipped for the (algorithm,
env) pair in experiments/, a user's `--config FILE`, then `--set key=value` overrides. Unknown keys
and invalid values raise UserError naming them.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import math
import tomllib
import typing
from pathlib import Path
from typing import Any

import tomli_w

from metarl_cli.errors import UserError
from metarl_cli.files import write_atomically


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """What the runner reads from every algorithm's config: seeds, chunking, checkpoints, ranges.

    `iterations` (a field or a property) is the number of calls of the algorithm's step;
    `LENGTH_KEY` names the key a user sets to extend a run on `--resume`, and `RETUNABLE_KEYS` the
    keys `--resume` may also change for what follows (step sizes, a later phase's start and batch:
    the saved state stays valid; `check_resume` in the runner refuses a change that would alter the
    iterations already run). `FAMILY_KEYS` maps a key that shapes one family only to that family;
    setting it for another family is refused.
    """

    LENGTH_KEY: typing.ClassVar[str] = "iterations"
    RETUNABLE_KEYS: typing.ClassVar[tuple[str, ...]] = ()
    SAVE_KEYS: typing.ClassVar[tuple[str, ...]] = ("checkpoint_every", "keep_checkpoints")  # `--resume` may change: saves only
    FAMILY_KEYS: typing.ClassVar[dict[str, str]] = {}

    env: str = "cartpole-family"
    seed: int = 0
    seeds: int = 1  # independent runs in one compiled program (vmapped or mapped); run i uses seed + i
    chunk: int = 1  # iterations per compiled call; metrics are summarised and checkpoints taken per chunk
    checkpoint_every: int = 1  # saves at the first chunk end that reaches each multiple of this, and after the last iteration
    keep_checkpoints: int = 3
    ranges: dict = dataclasses.field(default_factory=dict)  # [ranges.train] / [ranges.ood] overrides

    def largest_count(self) -> int:
        """The largest number the training state's counters reach (they are 32-bit): its iterations."""
        return self.iterations

    def warnings(self) -> list[str]:
        """What is valid but likely not meant: `metarl train` says it before training."""
        return []

    def schedule_reads_length(self) -> bool:
        """Whether training reads the run's length (`LENGTH_KEY`) as it goes, as a schedule over the
        whole run does: then a run extended on `--resume` differs from one that long from the start."""
        return False

    def check_length(self) -> None:
        """Refuse (UserError) a length (`LENGTH_KEY`) that training cannot run to exactly: asked of a
        length given to train to (a new run's, an extension's), not of the runs already written."""

    def check_retuned(self, saved: "RunConfig", done: int) -> None:
        """Refuse (UserError) a `RETUNABLE_KEYS` change from `saved` that would have no effect on the
        iterations after `done`, where the run resumes; every change has one unless a config says otherwise."""

    def validate(self) -> None:
        _check_at_least(self, 1, "seeds", "chunk", "checkpoint_every", "keep_checkpoints")
        _check_at_least(self, 0, "seed")
        if self.seed + self.seeds >= 2**31 - 2:
            raise UserError(f"seed + seeds must be below {2**31 - 2}, got {self.seed + self.seeds}")


def _check_at_least(config, low: int, *names: str) -> None:
    """Integer fields that must be at least `low`."""
    for name in names:
        if getattr(config, name) < low:
            raise UserError(f"{name} must be >= {low}, got {getattr(config, name)}")


def _check_positive(config, *names: str) -> None:
    """Step sizes and the like: finite and above 0."""
    for name in names:
        value = getattr(config, name)
        if value <= 0 or not math.isfinite(value):
            raise UserError(f"{name} must be a positive number, got {value}")


def _check_non_negative(config, *names: str) -> None:
    """Coefficients and scales where 0 turns a thing off: finite and at least 0."""
    for name in names:
        value = getattr(config, name)
        if value < 0 or not math.isfinite(value):
            raise UserError(f"{name} must be a number >= 0, got {value}")


def _check_unit(config, *names: str, above_zero: bool = False) -> None:
    """Probabilities, fractions and discounts: in [0, 1], or (0, 1] where `above_zero`."""
    for name in names:
        value = getattr(config, name)
        if not (0.0 < value <= 1.0 if above_zero else 0.0 <= value <= 1.0):
            raise UserError(f"{name} must be in {'(0' if above_zero else '[0'}, 1], got {value}")


def _check_eval(config) -> None:
    """Every config's `eval_tasks`, the default held-out tasks of `metarl eval`, and its `eval_steps`
    where it has them: no more than eval takes as --tasks and --steps."""
    if config.eval_tasks < 2:
        raise UserError(f"eval_tasks must be >= 2 (a confidence interval needs two tasks), got {config.eval_tasks}")
    for name in ("eval_tasks", "eval_steps"):
        check_eval_count(f"{name} =", getattr(config, name, None))


def check_eval_count(label: str, count: int | None) -> None:
    """Refuse (UserError) a number of held-out tasks or adaptation steps above what eval's 32-bit
    arrays count (larger, XLA aborts the process as it sizes them); `label` names it in the message
    ("--tasks", "eval_tasks =")."""
    if count is not None and count > MAX_COUNT:
        raise UserError(f"{label} {_count_text(count)} is more than eval can count; at most {MAX_COUNT}")


def _count_text(count: int) -> str:
    """A count for messages: its digits, or where it has more than 20 (a count written 1e40), in
    exponent form."""
    return str(count) if count < 10**20 else f"{count:.6g}"


def _check_hidden(hidden: tuple[int, ...]) -> None:
    """An MLP's hidden widths."""
    if not hidden or any(w < 1 for w in hidden):
        raise UserError(f"hidden must be a non-empty list of positive widths, got {list(hidden)}")


def _check_rollouts(config) -> None:
    """What every rollout-based config shares: lanes, horizon (0: the family's) and gamma."""
    _check_at_least(config, 1, "lanes")
    _check_at_least(config, 0, "horizon")
    _check_unit(config, "gamma", above_zero=True)


@dataclasses.dataclass(frozen=True)
class MamlConfig(RunConfig):
    """MAML (Finn et al. 2017): what every task family shares. Meta-SGD is `learn_inner_lr = true`."""

    iterations: int = 100  # meta-iterations (outer updates)
    meta_batch: int = 20  # tasks per meta-iteration
    inner_steps: int = 1
    inner_lr: float = 0.1
    learn_inner_lr: bool = False  # Meta-SGD (Li et al. 2017): a per-parameter inner rate, meta-learned
    outer_lr: float = 1e-3
    max_grad_norm: float = 10.0  # outer gradient clipping; 0 turns it off
    first_order: bool = False
    hidden: tuple[int, ...] = (64, 64)
    eval_tasks: int = 100  # defaults for `metarl eval`
    eval_steps: int = 3
    later_lr_scale: float = 1.0  # at eval, steps after the first use inner_lr times this
    tune_baseline_lr: bool = False  # at eval, fine-tune the pretrained baseline with its best step size

    def validate(self) -> None:
        super().validate()
        _check_at_least(self, 1, "iterations", "meta_batch")
        _check_at_least(self, 0, "inner_steps", "eval_steps")
        _check_eval(self)
        _check_non_negative(self, "inner_lr", "later_lr_scale", "max_grad_norm")
        _check_positive(self, "outer_lr")
        _check_hidden(self.hidden)


@dataclasses.dataclass(frozen=True)
class MamlRLConfig(MamlConfig):
    """MAML for RL with a DiCE or LVC meta-gradient, on a gymnax task family."""

    lanes: int = 20  # parallel environments per task per rollout; each runs `horizon` steps
    horizon: int = 0  # steps per rollout and episode cap; 0 takes the family's default
    estimator: str = "lvc"  # second-order surrogate: "dice" (unbiased) or "lvc" (ProMP, lower variance)
    gamma: float = 0.99
    normalize_advantages: bool = True  # scale each policy-gradient step by 1/std(advantages)

    def validate(self) -> None:
        super().validate()
        _check_rollouts(self)
        if self.estimator not in ("dice", "lvc"):
            raise UserError(f"estimator must be 'dice' or 'lvc', got '{self.estimator}'")


@dataclasses.dataclass(frozen=True)
class MamlRegressionConfig(MamlConfig):
    """MAML for few-shot regression: K support points per task, MSE on query points."""

    env: str = "sinusoid"
    shots: int = 5  # K: support points per task (the inner loop steps on these K points)
    query_points: int = 0  # query points per task in meta-training; 0 takes `shots`
    eval_query_points: int = 100  # query points per task at eval (more points, a tighter estimate)
    task_input: bool = False  # the network also sees the task's parameters (the oracle baseline)

    def validate(self) -> None:
        super().validate()
        _check_at_least(self, 1, "shots", "eval_query_points")
        _check_at_least(self, 0, "query_points")


@dataclasses.dataclass(frozen=True)
class MamlDqnConfig(MamlConfig):
    """MAML on a Q-network (maml-dqn): an initialisation that a few TD steps adapt to a new task.

    Support and query batches are `lanes` x `horizon` epsilon-greedy transitions of one task; an
    inner step is a TD step on the support batch; the meta-loss is the adapted network's TD loss on
    query transitions it collected itself. The pretrained baseline at eval is a multi-task DQN
    (`dqn` on the same family) given as many env steps as meta-training drew.
    """

    env: str = "cartpole-family"
    lanes: int = 5  # environments per task per batch; each runs `horizon` steps
    horizon: int = 0  # steps per rollout and episode cap; 0 takes the family's default
    gamma: float = 0.99
    epsilon: float = 0.1  # exploration while collecting support and query transitions
    inner_lr: float = 1e-3
    hidden: tuple[int, ...] = (120, 84)

    def validate(self) -> None:
        super().validate()
        _check_rollouts(self)
        _check_unit(self, "epsilon")


@dataclasses.dataclass(frozen=True)
class DqnConfig(RunConfig):
    """DQN (Mnih et al. 2015) with replay and a target network; CleanRL's CartPole settings by default.

    One iteration is `train_every` env steps (`train_every / num_envs` steps of every environment)
    followed by one gradient step; `total_steps` counts env steps over all environments. On a
    family with randomised parameters each environment draws a new train-split task per episode
    (one multi-task DQN: the domain-randomisation baseline).
    """

    LENGTH_KEY: typing.ClassVar[str] = "total_steps"

    env: str = "cartpole"
    total_steps: int = 500_000
    num_envs: int = 10
    horizon: int = 0  # steps per episode at most; 0 takes the family's default
    train_every: int = 10  # env steps (over all environments) per gradient step
    learning_starts: int = 10_000  # env steps before the first gradient step
    buffer_size: int = 10_000
    batch_size: int = 128
    lr: float = 2.5e-4
    gamma: float = 0.99
    target_update_every: int = 500  # env steps between target-network updates
    tau: float = 1.0  # target <- tau * online + (1 - tau) * target: 1 is a hard copy, below 1 Polyak
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    exploration_fraction: float = 0.5  # epsilon decays linearly over this fraction of total_steps
    double_dqn: bool = False
    huber: bool = False  # Huber instead of squared TD error
    hidden: tuple[int, ...] = (120, 84)
    chunk: int = 2_500  # iterations per compiled call and per checkpoint (25,000 env steps by default)
    eval_tasks: int = 100  # defaults for `metarl eval`: held-out tasks, one greedy episode each

    @property
    def iterations(self) -> int:
        return self.total_steps // self.train_every

    def largest_count(self) -> int:
        return self.total_steps  # its env steps, counted as iterations x train_every

    def schedule_reads_length(self) -> bool:
        return self.exploration_fraction > 0 and self.epsilon_start != self.epsilon_end  # epsilon decays over a share of it

    def check_length(self) -> None:
        if self.total_steps % self.train_every:  # a run on disk may hold such a length: it trained to the multiple below
            raise UserError(f"total_steps ({self.total_steps}) must be a multiple of train_every ({self.train_every})")

    def warnings(self) -> list[str]:
        if self.learning_starts >= self.total_steps:
            return [f"learning_starts ({self.learning_starts}) is not below total_steps ({self.total_steps}): "
                    "no gradient step will be taken, and the network stays as initialised"]
        return []

    def validate(self) -> None:
        super().validate()
        _check_at_least(self, 1, "total_steps", "num_envs", "train_every", "buffer_size", "batch_size", "target_update_every")
        _check_at_least(self, 0, "horizon")
        if self.train_every % self.num_envs:
            raise UserError(f"train_every ({self.train_every}) must be a multiple of num_envs ({self.num_envs})")
        if self.buffer_size < self.num_envs:  # a step writes a transition of every environment at once
            raise UserError(f"buffer_size ({self.buffer_size}) must be at least num_envs ({self.num_envs})")
        if self.target_update_every % self.train_every:
            raise UserError(f"target_update_every ({self.target_update_every}) must be a multiple of train_every ({self.train_every})")
        if self.total_steps < self.train_every:
            raise UserError(f"total_steps ({self.total_steps}) must be at least train_every ({self.train_every})")
        if self.learning_starts < self.batch_size:
            raise UserError(f"learning_starts ({self.learning_starts}) must be at least batch_size ({self.batch_size})")
        _check_positive(self, "lr")
        _check_unit(self, "gamma", "tau", above_zero=True)
        _check_unit(self, "epsilon_start", "epsilon_end", "exploration_fraction")
        _check_hidden(self.hidden)
        _check_eval(self)


@dataclasses.dataclass(frozen=True)
class Rl2Config(RunConfig):
    """RL^2 (Duan et al. 2016): a recurrent agent whose memory carries across the episodes of a trial.

    An iteration runs one trial on each of `meta_batch` train-split tasks (a trial: `episodes`
    episodes of one task, the memory reset only between trials) and takes a recurrent-PPO update on
    them. `arms` and `pulls` shape the `bandit` family (a trial there is one episode of `pulls` pulls).
    """

    RETUNABLE_KEYS: typing.ClassVar[tuple[str, ...]] = (
        "lr", "entropy_coef", "second_phase_lr", "second_phase_entropy_coef", "large_batch_at", "large_meta_batch")
    FAMILY_KEYS: typing.ClassVar[dict[str, str]] = {"arms": "bandit", "pulls": "bandit"}
    # The keys a second phase replaces from its start on.
    SECOND_PHASE_KEYS: typing.ClassVar[dict[str, str]] = {"lr": "second_phase_lr", "entropy_coef": "second_phase_entropy_coef"}

    env: str = "bandit"
    iterations: int = 500
    meta_batch: int = 256  # trials (one task each) per iteration
    episodes: int = 1  # episodes per trial
    horizon: int = 0  # steps per episode at most; 0 takes the family's default
    arms: int = 10  # bandit only
    pulls: int = 100  # bandit only: pulls per trial
    cell: str = "gru"  # the memory: "gru" or "lstm"
    hidden: int = 128
    # Also feed the previous action's one-hot times the observation it was taken in, and both times
    # the reward it earned: per (state, action) counts and reward sums become linear inputs.
    multiplicative_inputs: bool = False
    # The policy and value heads read the memory and, per observation entry, the memory times that
    # entry: with one-hot states a separate linear read-out of the memory in each state.
    gated_heads: bool = False
    lr: float = 1e-3
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip: float = 0.2
    epochs: int = 4
    minibatches: int = 4  # of the trials, per epoch
    entropy_coef: float = 0.01
    # The entropy coefficient falls linearly to 0 over the first phase: by `second_phase_at` or
    # `iterations`, whichever comes first.
    entropy_anneal: bool = False
    # From iteration `second_phase_at` on (0: never) the learning rate is `second_phase_lr` and the
    # entropy coefficient `second_phase_entropy_coef`: a second, finer phase within one run.
    second_phase_at: int = 0
    second_phase_lr: float = 3e-4
    second_phase_entropy_coef: float = 0.0
    # From iteration `large_batch_at` on (0: never) an iteration runs `large_meta_batch` trials
    # instead of `meta_batch`: updates from more trials, less noisy, for the last stretch.
    large_batch_at: int = 0
    large_meta_batch: int = 1024
    value_coef: float = 0.5
    max_grad_norm: float = 0.5  # 0 turns clipping off
    eval_tasks: int = 1000  # held-out tasks for `metarl eval`

    def schedule_reads_length(self) -> bool:
        # The bonus anneals over the first phase: to second_phase_at, or to iterations before it.
        return self.entropy_anneal and not 0 < self.second_phase_at <= self.iterations

    def warnings(self) -> list[str]:
        return [f"{key} ({getattr(self, key)}) is not below iterations ({self.iterations}): the run ends before {what} "
                "(a --resume to more iterations reaches it)"
                for key, what in (("second_phase_at", "its second phase"), ("large_batch_at", "its larger batches"))
                if getattr(self, key) >= self.iterations]

    def check_retuned(self, saved: "Rl2Config", done: int) -> None:
        """From `second_phase_at` on the second phase's step size and bonus replace `lr` and
        `entropy_coef`, so a change of those on a resume there would be recorded but do nothing."""
        if not self.second_phase_at or done < self.second_phase_at:
            return
        for key, instead in self.SECOND_PHASE_KEYS.items():
            if getattr(self, key) != getattr(saved, key):
                raise UserError(f"this run's second phase began at iteration {self.second_phase_at} (second_phase_at), and from there "
                                f"{instead} replaces {key}; --set {instead}=... changes it for what follows")

    def validate(self) -> None:
        super().validate()
        _check_at_least(self, 1, "iterations", "meta_batch", "large_meta_batch", "episodes", "pulls", "hidden", "epochs", "minibatches")
        _check_at_least(self, 2, "arms")
        _check_at_least(self, 0, "horizon")
        for name in ("meta_batch", "large_meta_batch"):
            if getattr(self, name) % self.minibatches:
                raise UserError(f"{name} ({getattr(self, name)}) must be a multiple of minibatches ({self.minibatches})")
        if self.cell not in ("gru", "lstm"):
            raise UserError(f"cell must be 'gru' or 'lstm', got '{self.cell}'")
        _check_positive(self, "lr", "second_phase_lr")
        if self.second_phase_at < 0:
            raise UserError(f"second_phase_at must be >= 0 (0: no second phase), got {self.second_phase_at}")
        if self.large_batch_at < 0:
            raise UserError(f"large_batch_at must be >= 0 (0: never), got {self.large_batch_at}")
        _check_unit(self, "gamma", "gae_lambda")
        _check_non_negative(self, "clip", "entropy_coef", "second_phase_entropy_coef", "value_coef", "max_grad_norm")
        _check_eval(self)


# Each algorithm has a config per kind of task family: "rl" (gymnax) or "regression".
CONFIGS: dict[str, dict[str, type]] = {
    "maml": {"rl": MamlRLConfig, "regression": MamlRegressionConfig},
    "dqn": {"rl": DqnConfig},
    "maml-dqn": {"rl": MamlDqnConfig},
    "rl2": {"rl": Rl2Config},
}
ALGORITHMS = tuple(CONFIGS)


def resume_help() -> str:
    """What `metarl train --resume` accepts, as its help says it, from each config's `LENGTH_KEY`,
    `SAVE_KEYS` and `RETUNABLE_KEYS`."""
    classes = [(algo, cls) for algo, kinds in CONFIGS.items() for cls in kinds.values()]
    length_keys: dict[str, list[str]] = {}
    for algo, cls in classes:
        if algo not in length_keys.setdefault(cls.LENGTH_KEY, []):
            length_keys[cls.LENGTH_KEY].append(algo)
    lengths = ", or ".join(f"{key}=N" + ("" if key == RunConfig.LENGTH_KEY else f" for {_listed(algos)}") for key, algos in length_keys.items())
    save_keys = dict.fromkeys(key for _, cls in classes for key in cls.SAVE_KEYS)
    retunable = {algo: cls.RETUNABLE_KEYS for algo, cls in classes if cls.RETUNABLE_KEYS}
    also = "".join(f"; {algo} also takes --set {_listed([f'{key}=...' for key in keys])} for what follows" for algo, keys in retunable.items())
    return (f"Continue the run in --run-dir from its latest checkpoint (--set {lengths}, extends it; "
            f"--set {_listed([f'{key}=N' for key in save_keys])} change how it saves{also}).")


def _listed(words: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return " and ".join([", ".join(words[:-1]), words[-1]] if len(words) > 1 else words)


def config_class(algo: str, env: str) -> type:
    from metarl_cli.families import is_regression

    kind = "regression" if is_regression(env) else "rl"
    if kind not in CONFIGS[algo]:
        valid = [name for name in CONFIGS if kind in CONFIGS[name]]
        raise UserError(f"{algo} does not run on {kind} family '{env}'; algorithms for it: {', '.join(valid)}")
    return CONFIGS[algo][kind]


def experiment_file(algo: str, env: str) -> Path | None:
    """The shipped defaults for (algo, env), e.g. experiments/maml_cartpole.toml, if there is one."""
    stem = f"{algo.replace('-', '_')}_{env.removesuffix('-family').replace('-', '_')}.toml"
    for root in _experiment_roots():
        if (root / stem).is_file():
            return root / stem
    return None


def _experiment_roots() -> list[Path]:
    roots = [Path(__file__).resolve().parent.parent / "experiments"]
    try:
        roots.append(Path(str(importlib.resources.files("metarl_cli") / "experiments")))
    except (ModuleNotFoundError, TypeError):
        pass
    return roots


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML file at `path` (UTF-8, with or without the byte-order mark some editors write)."""
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8-sig"))
    except FileNotFoundError:
        raise UserError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a directory, not a TOML file") from None
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a TOML file (not UTF-8 text)") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"malformed TOML in {path}: {e}") from None


def parse_override(text: str) -> tuple[str, Any]:
    """`key=value` with a TOML value (numbers, true/false, [lists], "strings"); a number TOML does not
    spell (.001, 1.) as Python reads it; other bare words are strings."""
    key, raw = (part.strip() for part in text.partition("=")[::2])
    if "=" not in text or not key:
        raise UserError(f"--set expects key=value, got '{text}'")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        try:
            value = float(raw)
        except ValueError:
            value = raw
    return key, value


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """The `--set key=value` arguments as {key: value}; of a key given twice, the later value (as a
    later layer wins over an earlier one, so a script may append its own `--set` to a user's)."""
    return dict(map(parse_override, overrides))


def _nested_overrides(overrides: list[str]) -> dict[str, Any]:
    """The `--set key=value` arguments as a table, a dotted key (`ranges.train.force_mag`) set inside
    its tables."""
    sets: dict[str, Any] = {}
    for key, value in parse_overrides(overrides).items():
        _set_dotted(sets, key, value)
    return sets


def _set_dotted(table: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for p in parents:
        table = table.setdefault(p, {})
        if not isinstance(table, dict):
            raise UserError(f"cannot set '{dotted}': '{p}' is not a table")
    table[leaf] = value


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


MAX_COUNT = 2**31 - 1  # the largest value of a training state's iteration (and env step) counters


def build_config(algo: str, values: dict[str, Any]):
    """A validated config of the algorithm's type (for its env's kind) from a plain dict."""
    env = values.get("env")
    if not isinstance(env, str):
        raise UserError(f"config key 'env' expects a family name, got {env!r}")
    cls = config_class(algo, env)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if values.get("algo", algo) != algo:  # before its keys, which are another algorithm's
        raise UserError(f"config is for algorithm '{values['algo']}', not '{algo}'")
    unknown = sorted(set(values) - set(fields) - {"algo"})
    if unknown:
        raise UserError(f"unknown config key(s) {', '.join(unknown)} for {algo} on {env}; valid: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {name: _coerce(name, hints[name], v) for name, v in values.items() if name != "algo"}
    config = cls(**kwargs)
    config.validate()
    check_count(config)
    return config


def check_count(config) -> None:
    """Refuse (UserError) a config longer than its training state's 32-bit counters can count."""
    if config.largest_count() > MAX_COUNT:
        key = type(config).LENGTH_KEY
        raise UserError(f"{key} = {_count_text(getattr(config, key))} is more than a run can count (its counters are 32-bit); at most {MAX_COUNT}")


def _coerce(name: str, hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():  # a count written 1e6, a float in TOML
            return int(value)
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif origin is tuple:
        if isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return tuple(value)
    elif hint is dict or origin is dict:
        if isinstance(value, dict):
            return value
    expected = getattr(hint, "__name__", str(hint)).replace("tuple", "list of int")
    raise UserError(f"config key '{name}' expects {expected}, got {_as_toml(value)}")


def _as_toml(value: Any) -> str:
    """A value for messages, spelt as --set takes it: JSON's spelling, which TOML shares for
    booleans, finite numbers, strings and lists (true, "text", [1, 2]); TOML's inf, -inf and nan,
    and its inline tables ({train = {force_mag = [6, 14]}})."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (list, tuple)):
        return f"[{', '.join(map(_as_toml, value))}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key} = {_as_toml(item)}" for key, item in value.items()) + "}"
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _same_settings(a: Any, b: Any) -> bool:
    """Whether families `a` and `b` share their settings: the same family, or a family and its one
    task (`cartpole-family` and `cartpole` share experiments/maml_cartpole.toml)."""
    return isinstance(a, str) and isinstance(b, str) and a.removesuffix("-family") == b.removesuffix("-family")


def default_env(algo: str) -> str:
    """The family a run of `algo` trains on where neither --env, --set env nor a file names one."""
    return next(iter(CONFIGS[algo].values())).env


def resolve_config(algo: str, env: str | None, config_file: Path | None, overrides: list[str]):
    """The config of a new run: the layers in the module docstring applied, validated, its length checked."""
    if algo not in CONFIGS:
        raise UserError(f"unknown algorithm '{algo}'; valid: {', '.join(ALGORITHMS)}")
    user = read_toml(config_file) if config_file else {}
    sets = _nested_overrides(overrides)
    if env is not None and "env" in sets and sets["env"] != env:
        raise UserError(f"--env {env} and --set env={sets['env']} disagree; give the family once")
    on_command_line = env if env is not None else sets.get("env")
    if "env" in user and on_command_line is not None and not _same_settings(user["env"], on_command_line):
        option = f"--env {env}" if env is not None else f"--set env={sets['env']}"  # the file's other keys suit its family
        raise UserError(f"{option} and env = {user['env']!r} in {config_file} disagree; give the family once")
    given = [e for e in (env, sets.get("env"), user.get("env")) if e is not None]  # an empty name is refused, not defaulted
    chosen_env = given[0] if given else default_env(algo)
    if not isinstance(chosen_env, str):
        raise UserError(f"config key 'env' expects a family name, got {chosen_env!r}")
    from metarl_cli.families import FAMILY_NAMES

    if chosen_env not in FAMILY_NAMES:
        raise UserError(f"unknown env '{chosen_env}'; valid: {', '.join(FAMILY_NAMES)}")
    for key, family in config_class(algo, chosen_env).FAMILY_KEYS.items():
        if chosen_env != family and (key in user or key in sets):
            raise UserError(f"config key '{key}' shapes the {family} family only; {chosen_env} does not use it")
    shipped = experiment_file(algo, chosen_env)
    values = _merge(_merge(read_toml(shipped) if shipped else {}, user), sets)
    values["env"] = chosen_env
    config = build_config(algo, values)
    config.check_length()
    return config


def resumed_config(saved, env: str | None, config_file: Path | None, overrides: list[str]):
    """A resumed run keeps its saved config; only its length (`LENGTH_KEY`) may change, to extend it,
    the config's `RETUNABLE_KEYS`, for the iterations that follow, and its `SAVE_KEYS`, how it saves.
    Another key set to the saved value (`--seeds N` of a run of N seeds, `--env` naming the run's
    family) changes nothing, and is taken."""
    if config_file is not None:
        raise UserError("--resume continues a run with its saved config; drop --config")
    if env is not None and env != saved.env:
        raise UserError(f"--resume continues a run on its own family, {saved.env}; drop --env {env}")
    values = config_to_dict(saved)
    kind = type(saved)
    changes = _nested_overrides(overrides)  # dotted keys into tables, as a new run reads them
    keys = {field.name for field in dataclasses.fields(kind)}
    for key, value in changes.items():
        if key not in keys:
            raise UserError(f"unknown config key '{key}' for this {_algo_of(saved)} run on {saved.env}; valid: {', '.join(values)}")
        if isinstance(value, dict) and isinstance(values.get(key), dict):  # a table's keys over the run's, as for a new run
            value = _merge(values[key], value)
        if key not in (kind.LENGTH_KEY, *kind.RETUNABLE_KEYS, *kind.SAVE_KEYS) and not _unchanged(saved, key, value):
            retunable = ", ".join(f"--set {k}=..." for k in kind.RETUNABLE_KEYS)
            also = f"{retunable} for what follows; " if retunable else ""
            saves = ", ".join(f"--set {k}=N" for k in kind.SAVE_KEYS)
            kept = f" (the run's is {_as_toml(values[key])})" if key in values else ""
            raise UserError(f"--resume only accepts --set {kind.LENGTH_KEY}=N ({also}{saves} for its saves), not '{key}'{kept}")
        values[key] = value
    config = build_config(_algo_of(saved), values)
    if kind.LENGTH_KEY in changes:
        config.check_length()
    return config


def _unchanged(config, key: str, value: Any) -> bool:
    """Whether `--set key=value` gives `config` its own value of `key` (one of its fields)."""
    try:
        return _coerce(key, typing.get_type_hints(type(config))[key], value) == getattr(config, key)
    except UserError:  # not even of the key's type
        return False


def _algo_of(config) -> str:
    return next(name for name, kinds in CONFIGS.items() if type(config) in kinds.values())


def config_to_dict(config) -> dict[str, Any]:
    """The config's keys and values, less those that shape another family than the config's (`FAMILY_KEYS`)."""
    unused = {key for key, family in type(config).FAMILY_KEYS.items() if family != config.env}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items() if k not in unused}


def config_toml(config, algo: str) -> str:
    """The resolved config as the TOML a run directory keeps (`config.toml`)."""
    return tomli_w.dumps({"algo": algo, **config_to_dict(config)})


def write_config(config, algo: str, path: Path) -> None:
    write_atomically(path, config_toml(config, algo))
