"""Shared fixtures: a tiny MAML config that compiles fast, and a helper that runs the CLI in-process."""

from __future__ import annotations

import sys

import pytest

TINY = ["meta_batch=2", "lanes=4", "horizon=20", "hidden=[16,16]", "eval_tasks=4", "eval_steps=1"]


def set_args(*sets: str) -> list[str]:
    """["--set", s1, "--set", s2, ...]"""
    return [arg for s in sets for arg in ("--set", s)]


def tiny_sets(*extra: str) -> list[str]:
    return set_args(*TINY, *extra)


@pytest.fixture
def cli(monkeypatch, capsys):
    """Run `metarl ARGS...` in this process; returns (exit code, stdout, stderr)."""
    from metarl_cli.cli import main

    def run(*args: str):
        monkeypatch.setattr(sys, "argv", ["metarl", *args])
        code = 0
        try:
            main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
