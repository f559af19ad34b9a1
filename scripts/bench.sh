#!/usr/bin/env bash
# Speed benchmarks with the PyTorch peers: makes a separate environment for the peers on first use
# (torch 2.13.0, the CPU build where pip finds it, and gymnasium), then runs one benchmark with it.
#   scripts/bench.sh maml-rl   [args]   MAML-RL throughput vs raw gymnax and torch_maml_cartpole.py
#   scripts/bench.sh maml-sine [args]   sinusoid MAML vs torch_maml_sine.py, and the whole protocol's wall time
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  maml-rl) script=scripts/bench_maml_rl.py ;;
  maml-sine) script=scripts/bench_maml_sine.py ;;
  *) echo "usage: scripts/bench.sh maml-rl|maml-sine [args]" >&2; exit 2 ;;
esac
shift
PEER_VENV=${PEER_VENV:-.peer-venv}
if [ ! -x "$PEER_VENV/bin/python" ]; then
  python3 -m venv "$PEER_VENV"
  "$PEER_VENV/bin/pip" install -q torch==2.13.0 gymnasium numpy
fi
"${PYTHON:-python3}" "$script" --peer-python "$PEER_VENV/bin/python" "$@"
