"""Typed, validated configs: one frozen dataclass per algorithm, loaded from TOML layers.

Layers, later ones winning: the dataclass defaults, the experiment file shipped for the (algorithm,
env) pair in experiments/, a user's `--config FILE`, then `--set key=value` overrides. Unknown keys
and invalid values raise UserError naming them.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import math
import tomllib
import typing
from pathlib import Path
from typing import Any

import tomli_w

from metarl_cli.errors import UserError


@dataclasses.dataclass(frozen=True)
class MamlConfig:
    """MAML (Finn et al. 2017): what every task family shares. Meta-SGD is `learn_inner_lr = true`."""

    env: str = "cartpole-family"
    seed: int = 0
    iterations: int = 100  # meta-iterations (outer updates)
    meta_batch: int = 20  # tasks per meta-iteration
    inner_steps: int = 1
    inner_lr: float = 0.1
    learn_inner_lr: bool = False  # Meta-SGD (Li et al. 2017): a per-parameter inner rate, meta-learned
    outer_lr: float = 1e-3
    max_grad_norm: float = 10.0  # outer gradient clipping; 0 turns it off
    first_order: bool = False
    hidden: tuple[int, ...] = (64, 64)
    chunk: int = 1  # meta-iterations per compiled call; metrics are averaged and checkpoints taken per chunk
    checkpoint_every: int = 1  # meta-iterations between checkpoints (rounded up to a whole chunk)
    keep_checkpoints: int = 3
    eval_tasks: int = 100  # defaults for `metarl eval`
    eval_steps: int = 3
    later_lr_scale: float = 1.0  # at eval, steps after the first use inner_lr times this
    tune_baseline_lr: bool = False  # at eval, fine-tune the pretrained baseline with its best step size
    ranges: dict = dataclasses.field(default_factory=dict)  # [ranges.train] / [ranges.ood] overrides

    def validate(self) -> None:
        positive = ("iterations", "meta_batch", "chunk", "checkpoint_every", "keep_checkpoints")
        for name in positive:
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("inner_steps", "eval_steps", "seed"):
            if getattr(self, name) < 0:
                raise UserError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.eval_tasks < 2:
            raise UserError(f"eval_tasks must be >= 2 (a confidence interval needs two tasks), got {self.eval_tasks}")
        if self.seed >= 2**31 - 2:
            raise UserError(f"seed must be below {2**31 - 2}, got {self.seed}")
        if self.inner_lr < 0 or not math.isfinite(self.inner_lr):
            raise UserError(f"inner_lr must be a non-negative number, got {self.inner_lr}")
        if self.outer_lr <= 0 or not math.isfinite(self.outer_lr):
            raise UserError(f"outer_lr must be a positive number, got {self.outer_lr}")
        if self.later_lr_scale < 0 or not math.isfinite(self.later_lr_scale):
            raise UserError(f"later_lr_scale must be a non-negative number, got {self.later_lr_scale}")
        if self.max_grad_norm < 0 or not math.isfinite(self.max_grad_norm):
            raise UserError(f"max_grad_norm must be a number >= 0, got {self.max_grad_norm}")
        if not self.hidden or any(w < 1 for w in self.hidden):
            raise UserError(f"hidden must be a non-empty list of positive widths, got {list(self.hidden)}")


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
        if self.lanes < 1:
            raise UserError(f"lanes must be >= 1, got {self.lanes}")
        if self.horizon < 0:
            raise UserError(f"horizon must be >= 0, got {self.horizon}")
        if not 0.0 < self.gamma <= 1.0:
            raise UserError(f"gamma must be in (0, 1], got {self.gamma}")
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
        for name in ("shots", "eval_query_points"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.query_points < 0:
            raise UserError(f"query_points must be >= 0, got {self.query_points}")


# Each algorithm has a config per kind of task family: "rl" (gymnax) or "regression".
CONFIGS: dict[str, dict[str, type]] = {"maml": {"rl": MamlRLConfig, "regression": MamlRegressionConfig}}
ALGORITHMS = tuple(CONFIGS)


def config_class(algo: str, env: str) -> type:
    from metarl_cli.families import is_regression

    return CONFIGS[algo]["regression" if is_regression(env) else "rl"]


def experiment_file(algo: str, env: str) -> Path | None:
    """The shipped defaults for (algo, env), e.g. experiments/maml_cartpole.toml, if there is one."""
    stem = f"{algo}_{env.removesuffix('-family').replace('-', '_')}.toml"
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
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise UserError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"malformed TOML in {path}: {e}") from None


def parse_override(text: str) -> tuple[str, Any]:
    """`key=value` with a TOML value (numbers, true/false, [lists], "strings"); bare words are strings."""
    if "=" not in text:
        raise UserError(f"--set expects key=value, got '{text}'")
    key, raw = (part.strip() for part in text.split("=", 1))
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


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


def build_config(algo: str, values: dict[str, Any]):
    """A validated config of the algorithm's type (for its env's kind) from a plain dict."""
    env = values.get("env")
    if not isinstance(env, str):
        raise UserError(f"config key 'env' expects a family name, got {env!r}")
    cls = config_class(algo, env)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields) - {"algo"})
    if unknown:
        raise UserError(f"unknown config key(s) {', '.join(unknown)} for {algo} on {env}; valid: {', '.join(fields)}")
    if values.get("algo", algo) != algo:
        raise UserError(f"config is for algorithm '{values['algo']}', not '{algo}'")
    hints = typing.get_type_hints(cls)
    kwargs = {name: _coerce(name, hints[name], v) for name, v in values.items() if name != "algo"}
    config = cls(**kwargs)
    config.validate()
    return config


def _coerce(name: str, hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
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
    raise UserError(f"config key '{name}' expects {expected}, got {value!r}")


def resolve_config(algo: str, env: str | None, config_file: Path | None, overrides: list[str]):
    """Apply the layers in the module docstring and return (config, the dict that was applied)."""
    if algo not in CONFIGS:
        raise UserError(f"unknown algorithm '{algo}'; valid: {', '.join(ALGORITHMS)}")
    user = read_toml(config_file) if config_file else {}
    sets: dict[str, Any] = {}
    for text in overrides:
        key, value = parse_override(text)
        _set_dotted(sets, key, value)
    chosen_env = env or sets.get("env") or user.get("env") or MamlConfig.env
    if not isinstance(chosen_env, str):
        raise UserError(f"config key 'env' expects a family name, got {chosen_env!r}")
    from metarl_cli.families import FAMILY_NAMES

    if chosen_env not in FAMILY_NAMES:
        raise UserError(f"unknown env '{chosen_env}'; valid: {', '.join(FAMILY_NAMES)}")
    shipped = experiment_file(algo, chosen_env)
    values = _merge(_merge(read_toml(shipped) if shipped else {}, user), sets)
    values["env"] = chosen_env
    return build_config(algo, values)


def resumed_config(saved, env: str | None, config_file: Path | None, overrides: list[str]):
    """A resumed run keeps its saved config; only `iterations` may change (to extend the run)."""
    if env or config_file:
        raise UserError("--resume continues a run with its saved config; drop --env and --config")
    values = config_to_dict(saved)
    for text in overrides:
        key, value = parse_override(text)
        if key != "iterations":
            raise UserError(f"--resume only accepts --set iterations=N, not '{key}'")
        values[key] = value
    return build_config(_algo_of(saved), values)


def _algo_of(config) -> str:
    return next(name for name, kinds in CONFIGS.items() if type(config) in kinds.values())


def config_to_dict(config) -> dict[str, Any]:
    d = dataclasses.asdict(config)
    d["hidden"] = list(d["hidden"])
    return d


def write_config(config, algo: str, path: Path) -> None:
    with open(path, "wb") as f:
        tomli_w.dump({"algo": algo, **config_to_dict(config)}, f)
