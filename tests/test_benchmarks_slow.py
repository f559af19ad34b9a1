"""Every benchmark in scripts/ runs to its last figure on a workload cut down to seconds (slow set)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
RL2_TINY = ["--set", "arms=3", "--set", "pulls=5", "--set", "meta_batch=8", "--set", "minibatches=2", "--set", "hidden=8"]

# script: (arguments, a pattern its last figure's line matches)
BENCHMARKS = {
    "bench_dqn.py": (["--total-steps", "50000", "--seeds", "2"], r"a floor of \d\.\d{3} on the training-alone ratio"),
    "bench_maml_rl.py": (["--iterations", "2", "--set", "meta_batch=4", "--set", "lanes=4", "--set", "checkpoint_every=2", "--checkpoint-rounds", "4"],
                         r"checkpoint overhead, every 2 meta-iterations \(median of 4\): -?\d+\.\d %"),
    "bench_maml_sine.py": (["--iterations", "1000", "--skip-protocol"], r"ours, training with checkpoints: +\d+ meta-iterations/s"),
    "bench_rl2.py": (["--iterations", "2", *RL2_TINY], r"ratio ours / raw: +\d+\.\d{3}"),
    "bench_seeds.py": (["--seeds", "2", "--maml-iterations", "2", "--dqn-steps", "50000"], r"dqn +2 seeds / \(2 x one seed\), compilation counted once: \d\.\d{3}"),
}


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(BENCHMARKS))
def test_benchmark_runs_to_its_last_figure(script):
    args, last_figure = BENCHMARKS[script]
    out = subprocess.run([sys.executable, str(SCRIPTS / script), *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert re.search(last_figure, out.stdout), out.stdout
