"""Running a PyTorch peer in its own Python and reading its rate off its last line. The peers are read
from the folder METARL_PEERS names, or else from shared/peers/ beside the checkout."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

PEERS = Path(os.environ.get("METARL_PEERS") or Path(__file__).resolve().parent.parent.parent / "shared" / "peers")


def peer_rate(python: str | None, script: str, iterations: int, unit: str, env: dict[str, str] | None = None) -> float | None:
    """The peer's figure before `unit` (e.g. "it/s"), or None with the reason printed."""
    path = PEERS / script
    if not python or not path.is_file():
        print(f"torch peer: not run (give --peer-python PATH to a Python with torch; peer {path} present: {path.is_file()})")
        return None
    out = subprocess.run([python, str(path), str(iterations)], capture_output=True, text=True, env={**os.environ, **(env or {})})
    match = re.search(rf"([\d.]+) {re.escape(unit)}", out.stdout)
    if not match:
        print(f"peer failed: {out.stderr.strip().splitlines()[-1:] or out.stdout}")
        return None
    return float(match.group(1))
