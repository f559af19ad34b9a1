"""Benchmark: RL^2 training throughput against the raw environment, from one run.

Prints the compile time, the agent steps/s of training as `metarl train rl2` runs it (the trials'
steps, the recurrent-PPO update and a checkpoint every iteration included, compilation not), the
random-policy gymnax throughput for the same family, number of trials and trial length, and their ratio.

Usage: python scripts/bench_rl2.py [--env bandit] [--iterations 20] [--set arms=10 --set pulls=100]
"""

from __future__ import annotations

import argparse

from bench_maml_rl import raw_throughput
from metarl_cli.config import resolve_config
from metarl_cli.devices import local_devices_text
from metarl_cli.families import family_for
from scratch import scratch_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="bandit")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override key=value")
    args = parser.parse_args()

    config = resolve_config("rl2", args.env, None, [*args.overrides, f"iterations={args.iterations}"])
    family = family_for(config)
    trial_steps = config.episodes * family.horizon
    print(f"device: {local_devices_text()}; env {config.env}; "
          f"{config.meta_batch} trials x {trial_steps} steps per iteration, {config.cell.upper()} {config.hidden}, "
          f"{config.epochs} epochs x {config.minibatches} minibatches")
    summary, devices = scratch_run("rl2", config)
    # One RL^2 run is not split over the devices, so neither is the raw rollout it is set beside: a
    # task a trial, each rolled out alone for the trial's steps.
    raw = raw_throughput(family, config.meta_batch, 1, trial_steps, mesh=None)["one device"]
    print(f"compile time of the training step:   {summary.compile_seconds:8.1f} s")
    print(f"RL^2 training:                       {summary.env_steps_per_second:12,.0f} agent steps/s (trained on {devices})")
    print(f"raw random-policy gymnax, same batch: {raw:12,.0f} env steps/s")
    print(f"ratio ours / raw:                    {summary.env_steps_per_second / raw:12.3f}")


if __name__ == "__main__":
    main()
