"""The one exception type for user errors (bad files, bad arguments)."""


class DHashError(ValueError):
    """A user-facing error whose message is one line; the CLI prints it without a traceback."""
