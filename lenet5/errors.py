"""The one exception type the project raises for bad input.

Its message is a single line that names the file, key or value at fault and what was expected.
The CLI prints it as ``error: <message>`` on stderr and exits with status 1, without a traceback
(``--debug`` shows the traceback).
"""


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
