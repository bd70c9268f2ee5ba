"""The one error type raised at hwnas boundaries.

Bad input (a gene vector, a profile, a table, a path) raises :class:`HwnasError` with a message
that names the file, key or value and what is allowed. The CLI turns it into a one-line message
and exit code 2.
"""

from __future__ import annotations


class HwnasError(Exception):
    """A user-facing error: the message is complete and fits on one line."""

    exit_code: int = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))
