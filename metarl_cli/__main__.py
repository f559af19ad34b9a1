"""`python -m metarl_cli` is the `metarl` command."""

from metarl_cli.cli import main

main()
