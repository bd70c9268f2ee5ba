"""Advisory file locks (the ``filelock`` package) on the files and folders several processes may
write: one lock per latency table file (:func:`file_lock`: a second writer waits, then merges, see
:meth:`hwnas.latency.table.LatencyTable.save`) and one per run folder (:func:`folder_lock`: a second
run into the folder is refused at once, naming the folder).

The lock files are hidden siblings (``.mbv2-tflite.json.lock``, ``RUN/.hwnas.lock``); they stay on
disk, which is harmless: an advisory lock lives in the kernel and ends with its process, so a
killed writer never leaves a stale lock behind.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from hwnas.errors import HwnasError, os_error

#: how long a writer waits for another process's lock on a file before giving up
FILE_LOCK_WAIT_S = 600.0
#: after this long waiting, the writer says that it waits (``on_wait``)
WAIT_NOTICE_S = 2.0
FOLDER_LOCK_NAME = ".hwnas.lock"


def lock_path(path: str | os.PathLike[str]) -> Path:
    """The lock file of ``path``: ``.NAME.lock`` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


@contextmanager
def file_lock(path: str | os.PathLike[str], *, wait_s: float = FILE_LOCK_WAIT_S,
              on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the advisory lock of the file ``path`` (wait up to ``wait_s`` for another writer;
    after :data:`WAIT_NOTICE_S` ``on_wait`` gets a one-line message)."""
    lp = lock_path(path)
    try:
        lp.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(lp), thread_local=False)
        try:
            lock.acquire(timeout=min(WAIT_NOTICE_S, wait_s))
        except Timeout:
            if on_wait is not None:
                on_wait(f"waiting for another process writing {path} (lock {lp})")
            try:
                lock.acquire(timeout=max(wait_s - WAIT_NOTICE_S, 0))
            except Timeout:
                raise HwnasError(f"{path} is locked by another process (lock {lp}) for more than "
                                 f"{wait_s:.0f} s; wait for it to finish") from None
    except OSError as exc:
        raise os_error(exc, "lock", path) from None
    try:
        yield
    finally:
        lock.release()


@contextmanager
def folder_lock(folder: str | os.PathLike[str], what: str = "run folder") -> Iterator[None]:
    """Hold the lock of ``folder`` for the whole block; refuse at once if another process holds it.

    A folder this call created that holds nothing but the lock file when the block ends (the run
    failed before writing anything) is removed again."""
    folder = Path(folder)
    lp = folder / FOLDER_LOCK_NAME
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(lp), thread_local=False)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise HwnasError(f"{what} {folder} is in use by another hwnas process (lock {lp}); "
                             f"wait for it to finish or choose another folder") from None
    except OSError as exc:
        raise os_error(exc, f"lock {what}", folder) from None
    try:
        yield
    finally:
        try:
            if created and {p.name for p in folder.iterdir()} <= {FOLDER_LOCK_NAME}:
                lp.unlink(missing_ok=True)  # still held: no other process can take it meanwhile
                folder.rmdir()
        except OSError:
            pass  # something appeared in it meanwhile: keep the folder
        lock.release()
