"""Latency table files: ``latency_tables/<device>/<space>-<runtime>[-<precision>].json``
(precision omitted for fp32: ``mbv2-tflite.json``, ``mbv2-mp-tflite-int8.json``).

One JSON document: ``metadata`` (device, SoC, runtime and version, delegate, threads, warm-up, runs,
dates, versions, the space configs profiled, the fingerprint of the machine that measured it:
:mod:`hwnas.latency.fingerprint`), ``entries`` (per key: count, mean, median, std, min,
max in ms, temperatures) and ``calibrations`` (per space config: scale and offset fitted on
end-to-end measurements). Keys carry shapes, so one table can hold several resolutions/widths.
Every update is written atomically: an interrupted profile loses nothing already measured.

Several processes may write one table (two ``hwnas profile`` runs of one space at two
resolutions): :meth:`LatencyTable.save` holds the table's advisory lock
(:func:`hwnas.locking.file_lock`), re-reads the file when another process changed it, adds the
entries and calibrations this process never had, and writes atomically. What this process
measured, replaced or removed stays as it has it; a file stamped with other settings (threads,
delegate, runtime version, versions...) is refused, not merged.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwnas.errors import HwnasError
from hwnas.io import atomic_write_text, json_text, non_finite, read_text
from hwnas.locking import file_lock
from hwnas.runtimes import resolve
from hwnas.spaces.base import SearchSpace
from hwnas.spaces.registry import read_space_config

FORMAT = "hwnas.latency_table"
FORMAT_VERSION = 1
ENTRY_FIELDS = ("count", "mean_ms", "median_ms", "std_ms", "min_ms", "max_ms")
#: metadata a table must carry (device, SoC, runtime + version, delegate, threads, warm-up, runs...)
REQUIRED_METADATA = ("device", "soc", "runtime", "runtime_version", "delegate", "threads", "warmup",
                     "runs", "space")
#: settings stamped in a table that two writers must share: a save that finds the file on disk
#: stamped otherwise is refused (``runtime_version`` "unknown" matches any version)
STAMP_METADATA = ("device", "soc", "runtime", "precision", "runtime_version", "delegate", "threads",
                  "warmup", "runs", "repetitions", "space", "versions", "method", "sustained_s",
                  "fingerprint")


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


#: environment variable naming your own tables folder (replaces the default user folder)
ENV_TABLES_DIR = "HWNAS_TABLES_DIR"


def default_table_dir() -> Path:
    """The shipped tables (package data: ``hwnas/latency_tables/``), never written by hwnas."""
    return Path(__file__).resolve().parents[1] / "latency_tables"


def user_table_dir() -> Path:
    """Your measured tables: ``$HWNAS_TABLES_DIR`` when set, else ``latency_tables`` in the
    platform's user data folder (``$XDG_DATA_HOME/hwnas``, by default ``~/.local/share/hwnas`` on
    Linux; ``platformdirs.user_data_dir``). ``hwnas profile`` writes here unless ``--tables-dir``."""
    env = os.environ.get(ENV_TABLES_DIR, "").strip()
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("hwnas", appauthor=False)) / "latency_tables"


def table_roots(root: str | Path | None = None) -> list[Path]:
    """Folders searched for a table, first match wins: ``root`` alone when given, else your
    folder (:func:`user_table_dir`) before the shipped one."""
    return [Path(root)] if root is not None else [user_table_dir(), default_table_dir()]


def sustained_suffix(sustained_s: float | None) -> str:
    """``-sustained30s`` for a table measured after 30 s of continuous inference, "" for burst
    latency: a sustained table is another target, in another file."""
    return f"-sustained{sustained_s:g}s" if sustained_s else ""


def table_path(device: str, space_name: str, runtime: str, root: str | Path | None = None,
               precision: str | None = None, sustained_s: float | None = None) -> Path:
    """Where the table of ``device`` / ``space_name`` / ``runtime`` at ``precision`` is written:
    under ``root``, by default your tables folder (:func:`user_table_dir`); sustained-latency
    tables (``sustained_s`` > 0) end in ``-sustained<S>s.json``."""
    root = user_table_dir() if root is None else Path(root)
    spec, precision = resolve(runtime, precision)
    return root / device / f"{space_name}-{spec.tag(precision)}{sustained_suffix(sustained_s)}.json"


def find_table(device: str, space_name: str, runtime: str, root: str | Path | None = None,
               precision: str | None = None, sustained_s: float | None = None) -> Path:
    """The table file to read: the first of :func:`table_roots` that holds it (else where it
    would be written, for the "does not exist" message)."""
    for r in table_roots(root):
        path = table_path(device, space_name, runtime, r, precision, sustained_s)
        if path.exists():
            return path
    return table_path(device, space_name, runtime, root, precision, sustained_s)


def writable(table: LatencyTable, root: str | Path | None = None) -> LatencyTable:
    """``table``, moved (in memory) to your tables folder when it was read from the shipped one,
    so that a calibration or validation never writes into the package."""
    shipped = default_table_dir().resolve()
    if table.path is not None and root is None and table.path.resolve().is_relative_to(shipped):
        table.path = user_table_dir() / table.path.resolve().relative_to(shipped)
        table._disk_sig = None  # noqa: SLF001 (a new file: nothing to merge from the shipped one)
        table._base = {"entries": {}, "calibrations": {}}  # noqa: SLF001
    return table


def load_table(device: str, space: SearchSpace, runtime: str, root: str | Path | None = None,
               precision: str | None = None, sustained_s: float | None = None) -> LatencyTable:
    """The table of ``device`` / ``runtime`` at ``precision`` (default fp32) for ``space``: under
    ``root``, or by default the first of your tables folder and the shipped
    ``hwnas/latency_tables/`` that has it; checked to belong to them (and to the same latency
    target: burst, or sustained after ``sustained_s`` seconds)."""
    path = find_table(device, space.name, runtime, root, precision, sustained_s)
    if sustained_s and not path.exists():
        raise HwnasError(f"latency table {path} does not exist (run `hwnas profile --device {device} "
                         f"--space {space.name} --sustained {sustained_s:g}` to build it)")
    table = LatencyTable.load(path)
    table.check_compatible(space=space, runtime=runtime, precision=precision)
    have = float(table.metadata.get("sustained_s") or 0.0)
    if have != float(sustained_s or 0.0):
        raise HwnasError(f"{table.path} holds {'sustained latency after %gs' % have if have else 'burst latency'}, "
                         f"not {'sustained latency after %gs' % sustained_s if sustained_s else 'burst latency'}")
    return table


def space_tag(space: SearchSpace, resolution: int | None = None) -> str:
    """Identifies a space configuration for calibration: name, width, resolution, and the
    ``tag_suffix`` of a space that builds several networks at one resolution (``fbnet``'s layout)."""
    res = space.resolution if resolution is None else resolution
    return f"{space.name}@w{space.width:g}r{res}{getattr(space, 'tag_suffix', '')}"


@dataclass
class LatencyTable:
    """An in-memory latency table; :meth:`save` writes it atomically."""

    metadata: dict[str, Any]
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    calibrations: dict[str, dict[str, Any]] = field(default_factory=dict)
    path: Path | None = None
    #: where a save's waiting message goes (default: stderr, verbatim)
    on_wait: Callable[[str], None] | None = field(default=None, repr=False, compare=False)
    # the entries and calibrations as they were on disk when this object last read or wrote the
    # file: a save takes from disk what this object has not changed since (three-way merge)
    _base: dict[str, dict[str, Any]] = field(default_factory=lambda: {"entries": {}, "calibrations": {}},
                                             init=False, repr=False, compare=False)
    # (inode, mtime, size) of the file as this object last read or wrote it: unchanged -> no re-read
    _disk_sig: tuple[int, int, int] | None = field(default=None, init=False, repr=False, compare=False)

    # ---- construction / IO ------------------------------------------------------------------------
    @classmethod
    def new(cls, *, device: str, soc: str, runtime: str, runtime_version: str, delegate: str,
            threads: int, warmup: int, runs: int, space: SearchSpace, path: Path | None = None,
            precision: str | None = None, **extra: Any) -> LatencyTable:
        from hwnas.checkpoint import version_stamp  # imports torch: only when a table is made

        spec, precision = resolve(runtime, precision)
        meta = {
            "device": device, "soc": soc, "runtime": spec.name, "precision": precision,
            "runtime_version": runtime_version,
            "delegate": delegate, "threads": threads, "warmup": warmup, "runs": runs,
            "space": space.name, "space_configs": [space.config()],
            "created": now_iso(), "updated": now_iso(), "versions": version_stamp(), **extra,
        }
        return cls(meta, path=path)

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        """Read and check a table file: every problem (not UTF-8, not JSON, entries or calibrations
        of the wrong type, NaN / infinity) is one HwnasError naming the file and the key."""
        path = Path(path)
        if not path.exists():
            raise HwnasError(f"latency table {path} does not exist (run `hwnas profile` to build it)")
        sig = _signature(path)
        text = read_text(path, "latency table")
        table = cls(*_check_doc(_parse(text, path), path), path)
        base = json.loads(text)  # separate objects: edits of the table do not reach them
        table._base = {"entries": base.get("entries", {}), "calibrations": base.get("calibrations", {})}
        table._disk_sig = sig
        return table

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "metadata": self.metadata,
                "calibrations": self.calibrations, "entries": dict(sorted(self.entries.items()))}

    def save(self, path: str | Path | None = None) -> Path:
        """Write the table atomically under its lock. When another process wrote the file since this
        object last read or wrote it, its entries and calibrations are taken first except those
        this object changed, added or removed since (a three-way merge against the last version
        seen on disk); a file stamped with other settings (:data:`STAMP_METADATA`) is refused."""
        path = Path(path) if path is not None else self.path
        if path is None:
            raise ValueError("no path to save the latency table to")
        if path != self.path:
            self._disk_sig = None
            self._base = {"entries": {}, "calibrations": {}}
        self.path = path
        with file_lock(path, on_wait=self.on_wait or _say_waiting):
            if path.exists() and _signature(path) != self._disk_sig:
                self._merge(LatencyTable.load(path))
            self.metadata["updated"] = now_iso()
            text = json_text(self.to_json(), path)
            atomic_write_text(path, text)
            self._disk_sig = _signature(path)
        written = json.loads(text)
        self._base = {"entries": written["entries"], "calibrations": written["calibrations"]}
        return path

    def _merge(self, disk: LatencyTable) -> None:
        """Take from ``disk`` (this file as another process wrote it) what this object did not change."""
        for k in STAMP_METADATA:
            mine, theirs = self.metadata.get(k), disk.metadata.get(k)
            if k == "runtime_version" and "unknown" in (mine, theirs):
                continue
            if k in self.metadata and k in disk.metadata and mine != theirs:
                raise HwnasError(f"{disk.path} was written meanwhile by another process measuring with "
                                 f"{k}={theirs!r}; this one uses {k}={mine!r}: write to another "
                                 f"--tables-dir (nothing of this process was saved to it)")
        for name, ours, theirs in (("entries", self.entries, disk.entries),
                                   ("calibrations", self.calibrations, disk.calibrations)):
            base = self._base[name]
            for key, value in theirs.items():
                if key not in ours:
                    if key not in base:  # new from the other process; else removed here on purpose
                        ours[key] = value
                elif key in base and ours[key] == base[key]:  # not changed here since last seen
                    ours[key] = value
        configs = self.metadata.setdefault("space_configs", [])
        for cfg in disk.metadata.get("space_configs", []):
            if cfg not in configs:
                configs.append(cfg)
        for k, v in disk.metadata.items():
            self.metadata.setdefault(k, v)

    # ---- content ------------------------------------------------------------------------------------
    def add(self, key: str, stats: dict[str, Any], save: bool = True) -> None:
        """Record one measured key (and by default write the table atomically)."""
        missing = [f for f in ENTRY_FIELDS if f not in stats]
        if missing:
            raise ValueError(f"measurement for {key} lacks {missing}")
        self.entries[key] = dict(stats)
        if save and self.path is not None:
            self.save()

    def note_space(self, space: SearchSpace) -> None:
        cfg = space.config()
        if cfg not in self.metadata.setdefault("space_configs", []):
            self.metadata["space_configs"].append(cfg)

    @property
    def runtime_precision(self) -> tuple[str, str]:
        """(runtime, precision) of the measurements; tables of older versions that name the runtime
        ``tflite-int8`` read as (``tflite``, ``int8``)."""
        spec, precision = resolve(self.metadata["runtime"], self.metadata.get("precision"))
        return spec.name, precision

    def check_compatible(self, *, space: SearchSpace | None = None, runtime: str | None = None,
                         precision: str | None = None) -> None:
        """Refuse a table from another space, runtime or precision (one-line HwnasError)."""
        where = self.path or "latency table"
        if space is not None and self.metadata.get("space") != space.name:
            raise HwnasError(f"{where} is for space {self.metadata.get('space')!r}, not {space.name!r}")
        if runtime is not None:
            spec, want = resolve(runtime, precision)
            have = self.runtime_precision
            if have[0] != spec.name:
                raise HwnasError(f"{where} is for runtime {have[0]!r}, not {spec.name!r}")
            if have[1] != want:
                raise HwnasError(f"{where} is for runtime {have[0]!r} at precision {have[1]!r}, "
                                 f"not {want!r} (pass --precision {have[1]})")

    def missing(self, keys) -> list[str]:
        return [k for k in keys if k not in self.entries]

    def rounds_done(self, key: str) -> int:
        """Measured rounds of ``key`` (0 when missing; an entry without rounds counts as one)."""
        entry = self.entries.get(key)
        if entry is None:
            return 0
        return len(entry.get("rounds", [None]))

    def unfinished(self, keys, rounds: int) -> list[str]:
        """Keys missing or measured in fewer than ``rounds`` rounds, in order."""
        return [k for k in keys if self.rounds_done(k) < rounds]

    def median_ms(self, key: str) -> float:
        return float(self.entries[key]["median_ms"])

    def calibration(self, tag: str) -> dict[str, Any] | None:
        return self.calibrations.get(tag)

    def set_calibration(self, tag: str, scale: float, offset_ms: float, **info: Any) -> None:
        self.calibrations[tag] = {"scale": float(scale), "offset_ms": float(offset_ms),
                                  "fitted": now_iso(), **info}


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _say_waiting(message: str) -> None:
    from hwnas.ui import note

    note(message, label="waiting")


def _parse(text: str, path: Path) -> Any:
    try:
        return json.loads(text)  # NaN parses here, to be refused below naming its key
    except ValueError as exc:
        raise HwnasError(f"cannot read latency table {path}: not valid JSON ({exc})") from None


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), type(value).__name__)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_doc(doc: Any, path: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(metadata, entries, calibrations) of a table document, every field checked."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise HwnasError(f"{path} is not an hwnas latency table (no format={FORMAT!r})")
    version = doc.get("format_version", 0)
    if not _number(version):
        raise HwnasError(f"latency table {path}: format_version is {_kind(version)}, expected a number")
    if version > FORMAT_VERSION:
        raise HwnasError(f"latency table {path} has format version {version}; "
                         f"this hwnas reads up to {FORMAT_VERSION}")
    meta = doc.get("metadata")
    if not isinstance(meta, dict):
        raise HwnasError(f"latency table {path} has no metadata object")
    missing = [k for k in REQUIRED_METADATA if k not in meta]
    if missing:
        raise HwnasError(f"latency table {path}: metadata lacks {', '.join(missing)}")
    configs = meta.get("space_configs", [])
    if not isinstance(configs, list):
        raise HwnasError(f"latency table {path}: metadata space_configs is {_kind(configs)}, expected a "
                         f"list of space configs")
    remedy = (f"its calibration and end-to-end measurements are of the old network; re-profile "
              f"(hwnas profile --device {meta['device']} --space {meta['space']}) into a new table, "
              f"moving this one aside")
    meta["space_configs"] = [read_space_config(c, f"latency table {path}", remedy) for c in configs]
    entries = doc.get("entries", {})
    if not isinstance(entries, dict):
        raise HwnasError(f"latency table {path}: entries is {_kind(entries)}, expected an object "
                         f"of op key -> measurement")
    for key, e in entries.items():
        if not isinstance(e, dict):
            raise HwnasError(f"latency table {path}: entry {key!r} is {_kind(e)}, expected an object "
                             f"with {', '.join(ENTRY_FIELDS)}")
        for f in ENTRY_FIELDS:
            v = e.get(f)
            if f not in e:
                raise HwnasError(f"latency table {path}: entry {key!r} lacks numeric {f}")
            if not _number(v):
                raise HwnasError(f"latency table {path}: entry {key!r} field {f} is {_kind(v)} "
                                 f"({v!r}), expected a number")
            if not math.isfinite(v) or v < 0:
                raise HwnasError(f"latency table {path}: entry {key!r} field {f} is {v}, expected a "
                                 f"finite number >= 0")
    cals = doc.get("calibrations", {})
    if not isinstance(cals, dict):
        raise HwnasError(f"latency table {path}: calibrations is {_kind(cals)}, expected an object "
                         f"of space tag -> calibration")
    for tag, cal in cals.items():
        if not isinstance(cal, dict):
            raise HwnasError(f"latency table {path}: calibration {tag!r} is {_kind(cal)}, expected an "
                             f"object with scale and offset_ms")
        for f in ("scale", "offset_ms", "per_op_ms"):
            if f not in cal and f == "per_op_ms":
                continue
            v = cal.get(f)
            if not _number(v):
                raise HwnasError(f"latency table {path}: calibration {tag!r} field {f} is "
                                 f"{'missing' if f not in cal else f'{_kind(v)} ({v!r})'}, expected a number")
            if not math.isfinite(v):
                raise HwnasError(f"latency table {path}: calibration {tag!r} field {f} is {v}, "
                                 f"expected a finite number")
        if cal["scale"] <= 0:
            raise HwnasError(f"latency table {path}: calibration {tag!r} scale is {cal['scale']}, "
                             f"expected a number > 0")
    bad = non_finite(doc)
    if bad:
        raise HwnasError(f"latency table {path}: {bad} is not a finite number (NaN and infinity "
                         f"never enter hwnas files)")
    return meta, entries, cals
