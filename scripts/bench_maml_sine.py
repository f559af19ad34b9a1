"""Benchmark: supervised MAML on the sinusoid protocol against the PyTorch peer, and the whole protocol's wall time.

Prints, from one run on this machine:
  - our meta-iterations/s in steady-state training through the runner (K = 10, meta-batch 25, one
    second-order inner step, 1-40-40-1, Adam; checkpoints every chunk, in a process of its own
    started as `metarl train` starts it: one device on a one-thread pool, scratch.py);
  - shared/peers/torch_maml_sine.py's meta-iterations/s on the same protocol when a Python with
    torch is given (--peer-python or $PEER_PYTHON), and the ratio ours / peer (K = 10 only, the
    peer's protocol; the targets are printed for K = 10 only);
  - the wall time of the whole protocol as a user runs it: `metarl train maml --env sinusoid`
    (70,000 meta-iterations) then `metarl eval` on 600 held-out tasks, which also trains the
    pretrained and oracle baselines; both processes timed from start to exit.

Usage: python scripts/bench_maml_sine.py [--iterations 10000] [--shots 10] [--peer-python PATH]
                                         [--peer-iterations 200] [--skip-protocol]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


from metarl_cli.config import resolve_config
from metarl_cli.devices import local_devices_text
from peers import peer_rate
from scratch import scratch_run



def ours(iterations: int, shots: int) -> tuple[float, float, str]:
    """(compile seconds, steady meta-iterations/s, its devices) of a run in a scratch directory."""
    summary, devices = scratch_run("maml", resolve_config("maml", "sinusoid", None, [f"iterations={iterations}", f"shots={shots}"]))
    return summary.compile_seconds, summary.iterations_per_second, devices


def whole_protocol(shots: int) -> tuple[float, float]:
    """Wall seconds of `metarl train maml --env sinusoid` and of `metarl eval` on its run, compiling
    as a fresh machine would (no persistent compilation cache)."""
    metarl = [sys.executable, "-m", "metarl_cli"]
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    with tempfile.TemporaryDirectory() as tmp:
        run = str(Path(tmp) / "run")
        t0 = time.perf_counter()
        subprocess.run([*metarl, "train", "maml", "--env", "sinusoid", "--set", f"shots={shots}", "-o", run, "-q"], check=True, env=env)
        t1 = time.perf_counter()
        subprocess.run([*metarl, "eval", run, "-q"], check=True, stdout=subprocess.DEVNULL, env=env)
        return t1 - t0, time.perf_counter() - t1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=10000)
    parser.add_argument("--shots", type=int, default=10, help="K; the peer's protocol is K = 10")
    parser.add_argument("--peer-iterations", type=int, default=200)
    parser.add_argument("--peer-python", default=os.environ.get("PEER_PYTHON"))
    parser.add_argument("--skip-protocol", action="store_true", help="skip the whole 70,000-iteration protocol")
    args = parser.parse_args()

    print(f"device: {local_devices_text()}; sinusoid, K = {args.shots}, meta-batch 25, one second-order inner step")
    compile_s, rate, devices = ours(args.iterations, args.shots)
    print(f"compile time of a chunk of meta-steps:  {compile_s:8.1f} s")
    print(f"ours, training with checkpoints:        {rate:8.0f} meta-iterations/s (trained on {devices})")
    if args.shots != 10:
        print("torch peer: not run (its protocol is K = 10 only)")
        peer = None
    else:
        peer = peer_rate(args.peer_python, "torch_maml_sine.py", args.peer_iterations, "it/s")
    if peer:
        print(f"torch peer (torch_maml_sine.py):        {peer:8.1f} meta-iterations/s")
        print(f"ratio ours / peer:                      {rate / peer:8.1f}   (target >= 60)")
    if not args.skip_protocol:
        train_s, eval_s = whole_protocol(args.shots)
        print(f"whole protocol, metarl train (70k it):  {train_s:8.1f} s wall")
        print(f"whole protocol, metarl eval (600 tasks, baselines trained): {eval_s:8.1f} s wall")
        aim = "   (target < 120)" if args.shots == 10 else ""
        print(f"whole protocol, total:                  {train_s + eval_s:8.1f} s{aim}")


if __name__ == "__main__":
    main()
