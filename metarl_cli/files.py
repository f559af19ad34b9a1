"""Writing a run's small files so that a kill or a full disk mid-write never leaves one cut short."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(path: Path, text: str) -> None:
    """`path` holds `text` whole, or what it held before: written beside it, then renamed over it."""
    part = path.with_name(f".{path.name}.part")
    try:
        part.write_text(text, encoding="utf-8")
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)
