"""The one exception type a user is meant to see: the CLI prints its message and exits non-zero;
and the one error of JAX's it also words for a user, running out of memory."""

import re


class UserError(Exception):
    """Bad input from the user (config, env name, run directory): one line, no traceback."""


# XLA's words for a buffer it could not allocate ("Out of memory allocating 200000000000 bytes."),
# under a RESOURCE_EXHAUSTED or an INTERNAL status by where it failed.
OUT_OF_MEMORY = re.compile(r"Out of memory (?:while trying to allocate|allocating) (\d+) bytes")


def out_of_memory(error: BaseException) -> str | None:
    """Where `error` is JAX's for memory XLA could not allocate, the size it asked for, in words
    ("200.0 GB", "30.0 MB"); else None."""
    if type(error).__name__ not in ("JaxRuntimeError", "XlaRuntimeError") or not (found := OUT_OF_MEMORY.search(str(error))):
        return None
    size = int(found.group(1))
    unit, scale = next(((unit, scale) for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)) if size >= scale), ("bytes", 1))
    return f"{size / scale:,.1f} {unit}" if scale > 1 else f"{size} bytes"
