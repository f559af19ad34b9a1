"""Benchmark: DQN on CartPole-v1 with CleanRL's settings, one seed and many seeds in one program.

Prints, from one run on this machine, for `metarl train dqn --env cartpole` (500k env steps,
10 environments, a gradient step of batch 128 every 10 env steps, checkpoints every 25k steps):
  - compile time, training time (compilation excluded), env steps/s and gradient steps/s, for one
    seed and for --seeds N seeds in one program, each trained in a process of its own started as
    `metarl train` starts it (scratch.py: one seed on one device with a one-thread pool), whose
    devices each line names;
  - the time of N seeds over N times the time of one seed (target on the 2-core CPU: 8 seeds at
    most 3 times one seed, a ratio of 0.375), training alone and with compilation counted once on
    each side (see bench_seeds.py);
  - the training time beside purejaxrl's dqn.py on the same settings, as shared/PROTOCOLS.md
    records it for the 2-core CPU (about 27 s plus about 10 s of compilation): a reference figure
    from that machine, not run here;
  - an arithmetic floor for the seeds' ratio: the time the N seeds' gradient steps spend in their
    four products with the largest layer alone (the online and target networks' forward passes,
    the backward pass's input and weight gradients), timed as training runs them
    (vmapped, the seeds split over the devices), over N times one seed's training time.

Usage: python scripts/bench_dqn.py [--total-steps 500000] [--seeds 8]
"""

from __future__ import annotations

import argparse
import time

import jax

from bench_seeds import print_seed_ratios, timed_run
from metarl_cli.devices import local_devices_text
from metarl_cli.training.runner import compile_chunks, seed_mesh

PUREJAXRL_SECONDS, PUREJAXRL_COMPILE = 27.0, 10.0  # shared/PROTOCOLS.md, 500k steps on the 2-core CPU


def product_seconds(seeds: int, batch: int, hidden: list[int], repeats: int = 2000) -> float:
    """Seconds per gradient step that `seeds` seeds spend in the four products of their largest
    layer (hidden[0] x hidden[1]) with a batch, run as training runs its seeds: vmapped, and split
    over the devices by the same mesh (the best of five calls of `repeats` steps)."""
    width_in, width_out = hidden[0], hidden[1]
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    state = {"x": jax.random.normal(keys[0], (seeds, batch, width_in)),
             "w": jax.random.normal(keys[1], (seeds, width_in, width_out)),
             "w_target": jax.random.normal(keys[2], (seeds, width_in, width_out)),
             "dy": jax.random.normal(keys[3], (seeds, batch, width_out))}

    def step(s):  # one seed: online and target forward products, then the backward pass's two
        online, target = s["x"] @ s["w"], s["x"] @ s["w_target"]
        dx, dw = s["dy"] @ s["w"].T, s["x"].T @ s["dy"]
        feedback = 1e-9 * (online.mean() + target.mean() + dx.mean() + dw.mean())  # keeps every product live
        return {**s, "x": s["x"] + feedback, "dy": s["dy"] + feedback}, {"loss": feedback}

    run = compile_chunks(jax.vmap(step), seed_mesh(seeds))
    state, _ = jax.block_until_ready(run(state, repeats))
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        state, _ = jax.block_until_ready(run(state, repeats))
        best = min(best, (time.perf_counter() - t0) / repeats)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--total-steps", type=int, default=500_000)
    parser.add_argument("--seeds", type=int, default=8)
    args = parser.parse_args()
    print(f"device: {local_devices_text()}; DQN CartPole-v1, "
          f"{args.total_steps:,} env steps per seed, CleanRL settings")
    results = {}
    for seeds in (1, args.seeds):
        overrides = [f"total_steps={args.total_steps}", f"seeds={seeds}", "double_dqn=false", "lr=0.00025"]  # CleanRL's exact settings
        compile_s, train_s, config, devices = timed_run("dqn", "cartpole", overrides)
        results[seeds] = compile_s, train_s
        env_rate = seeds * config.total_steps / train_s
        grad_rate = seeds * (config.total_steps - config.learning_starts) / config.train_every / train_s
        print(f"{seeds} seed(s): compile {compile_s:5.1f} s, training {train_s:6.1f} s, "
              f"{env_rate:10,.0f} env steps/s, {grad_rate:8,.0f} gradient steps/s (all seeds; {devices})")
    (_, one), (_, many) = results[1], results[args.seeds]
    print(f"{args.seeds} seeds / one seed, training alone: {many / one:6.2f} x")
    print_seed_ratios("", args.seeds, results[1], results[args.seeds], 0.375)
    gradient_steps = (config.total_steps - config.learning_starts) // config.train_every
    products = product_seconds(args.seeds, config.batch_size, config.hidden) * gradient_steps
    layer = "x".join(map(str, config.hidden[:2]))
    print(f"{args.seeds} seeds' four {layer}-layer products alone: {products:6.1f} s of their gradient steps, "
          f"a floor of {products / (args.seeds * one):.3f} on the training-alone ratio")
    if args.total_steps == 500_000:
        print(f"one seed / purejaxrl dqn.py (reference {PUREJAXRL_SECONDS:.0f} s + {PUREJAXRL_COMPILE:.0f} s compile, PROTOCOLS.md): "
              f"{one / PUREJAXRL_SECONDS:.2f}   (target <= 1)")


if __name__ == "__main__":
    main()
