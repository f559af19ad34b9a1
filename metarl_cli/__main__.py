"""The `metarl` command's entry point, and `python -m metarl_cli`'s: it loads the CLI with a Ctrl-C
held back (`interrupts.interrupts_held`), so one that lands while Python imports it says
"interrupted" and exits with status 130, as one that lands later does, rather than a traceback."""

import sys

from metarl_cli.interrupts import interrupts_held


def main() -> None:
    try:
        with interrupts_held():
            from metarl_cli.cli import main as run_command
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    run_command()


if __name__ == "__main__":
    main()
