#!/usr/bin/env bash
# Speed benchmarks with the PyTorch peer: makes a separate environment for the peer on first use
# (torch 2.13.0 CPU, gymnasium), then prints our throughput beside the raw env's and the peer's.
set -euo pipefail
cd "$(dirname "$0")/.."
PEER_VENV=${PEER_VENV:-.peer-venv}
if [ ! -x "$PEER_VENV/bin/python" ]; then
  python3 -m venv "$PEER_VENV"
  "$PEER_VENV/bin/pip" install -q torch==2.13.0 gymnasium numpy
fi
"${PYTHON:-python3}" scripts/bench_maml_rl.py --peer-python "$PEER_VENV/bin/python" "$@"
