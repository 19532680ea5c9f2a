"""The one exception type the project raises for bad input, and the one way it talks to the user.

A ``Lenet5Error`` message is a single line that names the file, key or value at fault and what was
expected. The command line and the stage scripts print it as ``error: <message>`` on stderr and exit
with status 1, without a traceback (``lenet5 --debug`` or ``LENET5_DEBUG=1`` shows it).
Progress and results go to stderr through ``echo``, so stdout stays clean for data.
"""

import sys


class Lenet5Error(Exception):
    """A user-facing failure: bad data, bad parameters, a bad file or an unreachable source."""

    def __init__(self, message: str):
        # keep it one line, whatever the caller passed
        super().__init__(" ".join(str(message).split()))


def describe(exc: BaseException) -> str:
    """The one line shown for a known failure (``Lenet5Error`` or an ``OSError``)."""
    if isinstance(exc, OSError) and not isinstance(exc, Lenet5Error):
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    return str(exc)


def echo(msg) -> None:
    """Print a progress or result line on stderr."""
    print(msg, file=sys.stderr, flush=True)
