"""Benchmark: many seeds in one program against one seed, for the default MAML and DQN experiments.

For `maml` on cartpole-family (its defaults, --maml-iterations meta-iterations) and `dqn` on
cartpole (its defaults, --dqn-steps env steps), prints the compile and training times of one seed
and of N seeds in one program (each run in a process of its own started as `metarl train` starts
it, scratch.py, its devices named), and the ratio of N seeds' time to N times one seed's two ways:
training alone (T_N / (N T_1)), and with compilation counted once on each side ((C_N + T_N) /
(C_1 + N T_1): one program compiled for the N seeds, one compilation for N runs of one seed).
Targets on the 2-core CPU: at most 1.0 for MAML (its meta-batch already fills both cores) and at
most 0.375 for DQN.

Usage: python scripts/bench_seeds.py [--seeds 8] [--maml-iterations 20] [--dqn-steps 500000]
"""

from __future__ import annotations

import argparse


from metarl_cli.config import resolve_config
from metarl_cli.devices import local_devices_text
from scratch import scratch_run


def timed_run(algo_name: str, env: str, overrides: list[str]):
    """(compile seconds, training seconds without compilation, config, its devices) of one run in a
    scratch directory."""
    config = resolve_config(algo_name, env, None, overrides)
    summary, devices = scratch_run(algo_name, config)
    return summary.compile_seconds, summary.seconds - summary.compile_seconds, config, devices


def print_seed_ratios(label: str, seeds: int, one: tuple[float, float], many: tuple[float, float], target: float) -> None:
    """The N-seed ratios from (compile, training) seconds of one seed and of `seeds` seeds; `target`
    is the 2-core CPU target (README, Speed) for 8 seeds, and printed only beside 8."""
    (c1, t1), (cn, tn) = one, many
    aim = f"   (target <= {target})" if seeds == 8 else ""
    print(f"{label}{seeds} seeds / ({seeds} x one seed), training alone:           {tn / (seeds * t1):.3f}{aim}")
    print(f"{label}{seeds} seeds / ({seeds} x one seed), compilation counted once: {(cn + tn) / (c1 + seeds * t1):.3f}")


def seed_ratio(algo_name: str, env: str, overrides: list[str], seeds: int, target: float) -> None:
    times = {}
    for n in (1, seeds):
        compile_s, train_s, _, devices = timed_run(algo_name, env, [*overrides, f"seeds={n}"])
        times[n] = compile_s, train_s
        print(f"{algo_name:8s} {env:16s} {n} seed(s): compile {compile_s:5.1f} s, training {train_s:7.1f} s ({devices})")
    print_seed_ratios(f"{algo_name:8s} ", seeds, times[1], times[seeds], target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--maml-iterations", type=int, default=20)
    parser.add_argument("--dqn-steps", type=int, default=500_000)
    args = parser.parse_args()
    print(f"device: {local_devices_text()}")
    seed_ratio("maml", "cartpole-family", [f"iterations={args.maml_iterations}"], args.seeds, 1.0)
    seed_ratio("dqn", "cartpole", [f"total_steps={args.dqn_steps}"], args.seeds, 0.375)


if __name__ == "__main__":
    main()
