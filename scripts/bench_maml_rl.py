"""Benchmark: MAML-RL training throughput against the raw environment and the PyTorch peer.

Prints, from one run on this machine:
  - compile time of the experiment's meta-step;
  - MAML-RL env steps/s in steady-state training (every simulated step is used by the learner);
  - random-policy gymnax throughput for the same family, tasks, lanes and horizon, rolled out as
    training rolls out a task's lanes, on one device and split over the local devices as training
    is, and the ratio to the faster;
  - shared/peers/torch_maml_cartpole.py's env steps/s when a Python with torch is given
    (--peer-python or $PEER_PYTHON), run for as many meta-iterations as ours, and our ratio to it;
    only where the experiment is the peer's (cartpole-family, 20 tasks x 20 lanes x 200 steps, one
    inner step, second order, a 64-64 policy, one seed): the peer runs no other;
  - the cost of checkpointing every meta-iteration (every `checkpoint_every`, where --set gives it):
    alternating blocks of meta-iterations with and without those saves, in one process, the median
    over rounds of their time ratio; and the env steps/s of the blocks without saves.

Usage: python scripts/bench_maml_rl.py [--env cartpole-family] [--iterations 20] [--set first_order=true]
                                      [--peer-python PATH] [--peer-iterations N] [--checkpoint-rounds 16]
The peer takes about 1.7 s a meta-iteration on the 2-core CPU; --peer-iterations (default: --iterations) bounds it.
The 2-core CPU targets (README, Speed) are printed beside the default experiment's figures only (the
peer's, a checkpoint every meta-iteration).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

from metarl_cli.algos import make_algorithm
from metarl_cli.config import resolve_config
from metarl_cli.devices import even_mesh, local_devices_text, split_tasks
from metarl_cli.families import family_for
from metarl_cli.rl.rollout import rollout
from metarl_cli.training.checkpoint import Checkpoints
from metarl_cli.training.runner import compile_chunks
from peers import peer_rate
from scratch import scratch_run



def random_actions(space, key, lanes: int) -> jax.Array:
    """Uniform actions of a gymnax Discrete or Box `space` for `lanes` lanes in one draw (the space's
    own `sample` draws one action from a key of its own, which would hash a key per lane)."""
    shape = (lanes, *space.shape)
    if hasattr(space, "n"):
        return jax.random.randint(key, shape, 0, space.n, space.dtype)
    return jax.random.uniform(key, shape, minval=space.low, maxval=space.high).astype(space.dtype)


def raw_throughput(family, n_tasks: int, lanes: int, horizon: int, mesh, repeats: int = 20, rounds: int = 5) -> dict[str, float]:
    """Random-policy env steps/s of `n_tasks` tasks of `lanes` lanes for `horizon` steps (MAML-RL's
    batch), each task's lanes rolled out as training rolls them out (one draw of actions a step for
    all of them): on one device, and with the tasks split over the devices of `mesh`
    (training's split; None: not split), each the best of several rounds (the raw rollout is short
    and noisy). Its random draws are hashed as training's are (metarl_cli/threefry.py, registered by
    importing metarl_cli.algos): a random policy's step is mostly hashing, so JAX's own CPU lowering
    would show a lower rate."""
    space = family.env.action_space(family.base_params)

    def random_policy(params, obs, key):
        return random_actions(space, key, obs.shape[0])

    tasks = family.sample(jax.random.PRNGKey(0), n_tasks, "train")

    def one_device(_, tasks, keys):
        traj = jax.vmap(lambda t, k: rollout(family.env, random_policy, None, t, k, lanes, horizon))(tasks, keys)
        return traj.rewards.mean()

    layouts = {"one device": one_device}
    if mesh is not None:
        layouts[f"split over {mesh.size} devices"] = split_tasks(one_device, mesh)
    rates = {}
    for name, fn in layouts.items():
        run = jax.jit(lambda key, fn=fn: fn(None, tasks, jax.random.split(key, n_tasks)))
        run(jax.random.PRNGKey(0)).block_until_ready()
        best = 0.0
        for round_ in range(rounds):
            t0 = time.perf_counter()
            for i in range(repeats):
                run(jax.random.PRNGKey(round_ * repeats + i + 1)).block_until_ready()
            best = max(best, repeats * n_tasks * lanes * horizon / (time.perf_counter() - t0))
        rates[name] = best
    return rates


def peer_comparable(config, horizon: int) -> bool:
    """Whether the experiment is the one shared/peers/torch_maml_cartpole.py runs, one seed of it."""
    return (config.env, config.meta_batch, config.lanes, horizon, config.inner_steps, config.first_order,
            tuple(config.hidden), config.seeds) == ("cartpole-family", 20, 20, 200, 1, False, (64, 64), 1)


def training(config) -> tuple[float, float, str]:
    """(compile seconds, steady env steps/s, its devices) of a `metarl train` run (a checkpoint every
    `checkpoint_every` meta-iterations)."""
    summary, devices = scratch_run("maml", config)
    return summary.compile_seconds, summary.env_steps_per_second, devices


class Overhead(NamedTuple):
    median: float  # the time with saves over the time without, less 1, median over rounds
    lowest: float
    highest: float
    unsaved_rate: float  # env steps/s of the blocks without saves (median block time)


def checkpoint_overhead(config, family, rounds: int) -> Overhead:
    """Median, min and max over `rounds` of: the time of a block of meta-iterations with a save as
    the runner makes it after every `config.checkpoint_every`-th (the block's last save waited for)
    over the time of the same block without; and the env steps/s of the blocks without saves. A
    block is 4 saves' worth of meta-iterations.

    The blocks alternate in one process on one compiled step, the one with saves first in every
    other round: the machine's drift between separate runs (10 to 20%) was larger than the effect
    measured, and within a run it moves single rounds by as much.
    """
    every = config.checkpoint_every
    algo = make_algorithm("maml", config, family)
    run_chunk = compile_chunks(algo.step)
    state, _ = jax.block_until_ready(run_chunk(algo.init(jax.random.PRNGKey(config.seed)), 1))
    ratios, unsaved, iteration = [], [], 1
    with tempfile.TemporaryDirectory() as tmp, Checkpoints(Path(tmp), config.keep_checkpoints) as checkpoints:
        for round_ in range(rounds):
            seconds = {}
            for saving in (False, True) if round_ % 2 == 0 else (True, False):
                t0 = time.perf_counter()
                for _ in range(4 * every):
                    state, metrics = run_chunk(state, 1)
                    jax.device_get(metrics)
                    iteration += 1
                    if saving and iteration % every == 0:
                        checkpoints.save(iteration, state, 0.0)
                checkpoints.wait()
                seconds[saving] = time.perf_counter() - t0
            ratios.append(seconds[True] / seconds[False] - 1)
            unsaved.append(seconds[False])
    unsaved_rate = 4 * every * algo.env_steps_per_iteration / float(np.median(unsaved))
    return Overhead(float(np.median(ratios)), min(ratios), max(ratios), unsaved_rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="cartpole-family")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--peer-iterations", type=int, help="the peer's meta-iterations (default: --iterations)")
    parser.add_argument("--checkpoint-rounds", type=int, default=16, help="rounds of the checkpoint overhead's alternating blocks")
    parser.add_argument("--peer-python", default=os.environ.get("PEER_PYTHON"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override key=value")
    args = parser.parse_args()

    config = resolve_config("maml", args.env, None, [*args.overrides, f"iterations={args.iterations}"])
    family = family_for(config)  # with the config's horizon, as `metarl train` builds it
    horizon = family.horizon
    print(f"device: {local_devices_text()}; env {config.env}; "
          f"{config.meta_batch} tasks x {config.lanes} lanes x {horizon} steps, inner steps {config.inner_steps}, "
          f"{'first' if config.first_order else 'second'} order")

    compile_s, ours, devices = training(config)
    rounds = args.checkpoint_rounds
    overhead = checkpoint_overhead(config, family, rounds)
    raw_rates = raw_throughput(family, config.meta_batch, config.lanes, horizon, even_mesh(config.meta_batch, "tasks"))
    raw = max(raw_rates.values())
    every = "every meta-iteration" if config.checkpoint_every == 1 else f"every {config.checkpoint_every} meta-iterations"
    # The 2-core CPU targets are for the default experiment, the peer's, with a checkpoint every meta-iteration.
    default = peer_comparable(config, horizon) and config.checkpoint_every == 1

    def aim(target: str) -> str:
        return f"   (target {target})" if default else ""

    print(f"compile time of the meta-step:         {compile_s:8.1f} s{aim('< 30 s')}")
    print(f"MAML-RL training (checkpoints {every}): {ours:,.0f} env steps/s (trained on {devices})")
    for layout, rate in raw_rates.items():
        print(f"raw random-policy gymnax, same batch:  {rate:12,.0f} env steps/s  ({layout})")
    print(f"ratio ours / raw:                      {ours / raw:12.3f}{aim('>= 0.25')}")
    print(f"checkpoint overhead, {every} (median of {rounds}): {100 * overhead.median:.1f} %  ("
          f"{'target < 10%; ' if default else ''}rounds {100 * overhead.lowest:.1f} to {100 * overhead.highest:.1f} %)")
    print(f"MAML-RL without checkpoints (the overhead's blocks without saves): {overhead.unsaved_rate:,.0f} env steps/s, "
          f"{overhead.unsaved_rate / raw:.3f} of raw")
    if not peer_comparable(config, horizon):
        print("torch peer: not run (it runs cartpole-family, 20 tasks x 20 lanes x 200 steps, one inner step, second order, "
              "a 64-64 policy, one seed only)")
        return
    peer = peer_rate(args.peer_python, "torch_maml_cartpole.py", args.peer_iterations or args.iterations, "env steps/s", env={"H": "200"})
    if peer:
        print(f"torch peer (torch_maml_cartpole.py):   {peer:12,.0f} env steps/s")
        print(f"ratio ours / peer:                     {ours / peer:12.1f}   (target >= 100)")


if __name__ == "__main__":
    main()
