"""The one error type raised at hwnas boundaries, and the conversion of OS errors into it.

Bad input (a gene vector, a profile, a table, a path) raises :class:`HwnasError` with a message
that names the file, key or value and what is allowed. The CLI turns it into a one-line message
and exit code 2. An :class:`OSError` on a user's path becomes one through :func:`os_error` /
:func:`user_path` (the path, the operation and the system's reason).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


class HwnasError(Exception):
    """A user-facing error: the message is complete and fits on one line."""

    exit_code: int = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


def os_error(exc: OSError, operation: str, path: str | os.PathLike[str] | None = None) -> HwnasError:
    """``cannot <operation> <path>: <reason>`` for an OS error (permission, read-only disk, a file
    where a folder is needed, a full disk...)."""
    where = path if path is not None else (exc.filename or "")
    reason = exc.strerror or type(exc).__name__
    if isinstance(exc, IsADirectoryError):
        reason = "it is a folder, a file is needed"
    elif isinstance(exc, NotADirectoryError):
        reason = "a part of it is a file, a folder is needed"
    elif isinstance(exc, PermissionError):
        reason = "permission denied (read-only or not yours)"
    return HwnasError(f"cannot {operation} {where}: {reason}")


@contextmanager
def user_path(operation: str, path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn any :class:`OSError` inside the block into :func:`os_error` naming ``path``."""
    try:
        yield
    except HwnasError:
        raise
    except OSError as exc:
        raise os_error(exc, operation, path) from None
