"""The one exception type a user is meant to see: the CLI prints its message and exits non-zero."""


class UserError(Exception):
    """Bad input from the user (config, env name, run directory): one line, no traceback."""
