"""Files on user paths: atomic writes (temporary file in the same folder, fsync, rename) and
checked reads (a missing file, a folder given for a file, unreadable bytes, text that is not UTF-8,
JSON of the wrong type: each one :class:`~hwnas.errors.HwnasError` naming the file).

JSON written here never holds NaN or infinity (:func:`atomic_write_json` refuses them, naming
the key), so no table, state or result file can carry one.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hwnas.errors import HwnasError, os_error


def atomic_write(path: str | os.PathLike[str], writer: Callable[[Path], object]) -> Path:
    """Call ``writer(tmp_path)`` and atomically move the result to ``path``.

    A crash at any point leaves either the old file or the new one, never a partial file. An OS
    error (read-only folder, a file where the folder should be, full disk) is a one-line
    :class:`HwnasError` naming ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            raise IsADirectoryError(21, "Is a directory", str(path))
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise os_error(exc, "write", path) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        # mkstemp makes 0600: start from the usual file mode; a writer may set its own (copymode)
        os.chmod(tmp_path, 0o666 & ~_umask())
        writer(tmp_path)
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except BaseException as exc:
        tmp_path.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise os_error(exc, "write", path) from None
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def non_finite(obj: Any, where: str = "") -> str | None:
    """The JSON path of the first NaN / infinite float in ``obj`` (None when all are finite)."""
    if isinstance(obj, float):
        return None if math.isfinite(obj) else (where or "value")
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return None
    for k, v in items:
        found = non_finite(v, f"{where}.{k}" if where else str(k))
        if found:
            return found
    return None


def json_text(obj: Any, path: str | os.PathLike[str], indent: int = 2) -> str:
    """``obj`` as the JSON text of the file ``path``; NaN / infinity are refused (HwnasError naming
    the key)."""
    try:
        return json.dumps(obj, indent=indent, sort_keys=False, allow_nan=False) + "\n"
    except ValueError:
        raise HwnasError(f"refusing to write {path}: {non_finite(obj) or 'a value'} is not a finite "
                         f"number (NaN and infinity never enter hwnas files)") from None


def atomic_write_json(path: str | os.PathLike[str], obj: Any, indent: int = 2) -> Path:
    """Write ``obj`` as JSON atomically; NaN / infinity are refused (HwnasError naming the key)."""
    return atomic_write_text(path, json_text(obj, path, indent))


def read_text(path: str | os.PathLike[str], what: str = "file") -> str:
    """The UTF-8 text of the user's file ``path``; every problem is one HwnasError naming it."""
    path = Path(path)
    if path.is_dir():
        raise HwnasError(f"{what} {path} is a folder, not a file")
    if not path.exists():
        raise HwnasError(f"{what} {path} does not exist")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise os_error(exc, f"read {what}", path) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HwnasError(f"{what} {path} is not UTF-8 text (byte {exc.start}: "
                         f"{data[exc.start:exc.start + 1]!r})") from None


def read_json(path: str | os.PathLike[str], what: str = "file", expect: type | tuple[type, ...] = dict) -> Any:
    """The JSON document of ``path``, checked to be of type ``expect`` (default an object) and to
    hold no NaN / infinity."""
    text = read_text(path, what)
    try:
        doc = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise HwnasError(f"{what} {path} is not valid JSON: {exc}") from None
    if not isinstance(doc, expect):
        names = " or ".join(t.__name__ for t in (expect if isinstance(expect, tuple) else (expect,)))
        kinds = {"dict": "a JSON object", "list": "a JSON list"}
        raise HwnasError(f"{what} {path} holds {kinds.get(type(doc).__name__, type(doc).__name__)}, "
                         f"expected {' or '.join(kinds.get(n, n) for n in names.split(' or '))}")
    return doc


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed (NaN and infinity never enter hwnas files)")


def check_writable_dir(path: str | os.PathLike[str], option: str = "--out") -> Path:
    """Check, before any work, that the folder ``path`` exists or can be created and is writable:
    not a file, no file on the way to it, not read-only. Creates nothing."""
    path = Path(path)
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        where = "is a file" if probe == path else f"cannot be created: {probe} is a file"
        raise HwnasError(f"{option} {path} {where}, a folder is needed")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise HwnasError(f"{option} {path} is not writable (no write permission on {probe})")
    return path


def check_writable_file(path: str | os.PathLike[str], option: str = "--out") -> Path:
    """Check, before any work, that the file ``path`` can be written: not a folder, and its folder
    exists or can be created and is writable. Creates nothing."""
    path = Path(path)
    if path.is_dir():
        raise HwnasError(f"{option} {path} is a folder, a file is needed")
    check_writable_dir(path.parent, option=f"{option} {path}: its folder")
    return path
