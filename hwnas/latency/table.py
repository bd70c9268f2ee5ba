"""Latency table files: ``latency_tables/<device>/<space>-<runtime>[-<precision>].json``
(precision omitted for fp32: ``mbv2-tflite.json``, ``mbv2-mp-tflite-int8.json``).

One JSON document: ``metadata`` (device, SoC, runtime and version, delegate, threads, warm-up, runs,
dates, versions, the space configs profiled), ``entries`` (per key: count, mean, median, std, min,
max in ms, temperatures) and ``calibrations`` (per space config: scale and offset fitted on
end-to-end measurements). Keys carry shapes, so one table can hold several resolutions/widths.
Every update is written atomically: an interrupted profile loses nothing already measured.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwnas.checkpoint import version_stamp
from hwnas.errors import HwnasError
from hwnas.io import atomic_write_json
from hwnas.runtimes import resolve
from hwnas.spaces.base import SearchSpace

FORMAT = "hwnas.latency_table"
FORMAT_VERSION = 1
ENTRY_FIELDS = ("count", "mean_ms", "median_ms", "std_ms", "min_ms", "max_ms")
#: metadata a table must carry (device, SoC, runtime + version, delegate, threads, warm-up, runs...)
REQUIRED_METADATA = ("device", "soc", "runtime", "runtime_version", "delegate", "threads", "warmup",
                     "runs", "space")


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def default_table_dir() -> Path:
    """The shipped tables (package data: ``hwnas/latency_tables/``)."""
    return Path(__file__).resolve().parents[1] / "latency_tables"


def table_path(device: str, space_name: str, runtime: str, root: str | Path | None = None,
               precision: str | None = None) -> Path:
    """Where the table of ``device`` / ``space_name`` / ``runtime`` at ``precision`` lives."""
    root = default_table_dir() if root is None else Path(root)
    spec, precision = resolve(runtime, precision)
    return root / device / f"{space_name}-{spec.tag(precision)}.json"


def load_table(device: str, space: SearchSpace, runtime: str, root: str | Path | None = None,
               precision: str | None = None) -> LatencyTable:
    """The table of ``device`` / ``runtime`` at ``precision`` (default fp32) for ``space`` under
    ``root`` (default: the shipped ``hwnas/latency_tables/``), checked to belong to them."""
    table = LatencyTable.load(table_path(device, space.name, runtime, root, precision))
    table.check_compatible(space=space, runtime=runtime, precision=precision)
    return table


def space_tag(space: SearchSpace, resolution: int | None = None) -> str:
    """Identifies a space configuration for calibration: name, width, resolution."""
    res = space.resolution if resolution is None else resolution
    return f"{space.name}@w{space.width:g}r{res}"


@dataclass
class LatencyTable:
    """An in-memory latency table; :meth:`save` writes it atomically."""

    metadata: dict[str, Any]
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    calibrations: dict[str, dict[str, Any]] = field(default_factory=dict)
    path: Path | None = None

    # ---- construction / IO ------------------------------------------------------------------------
    @classmethod
    def new(cls, *, device: str, soc: str, runtime: str, runtime_version: str, delegate: str,
            threads: int, warmup: int, runs: int, space: SearchSpace, path: Path | None = None,
            precision: str | None = None, **extra: Any) -> LatencyTable:
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
        path = Path(path)
        if not path.is_file():
            raise HwnasError(f"latency table {path} does not exist (run `hwnas profile` to build it)")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise HwnasError(f"cannot read latency table {path}: {exc}") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise HwnasError(f"{path} is not an hwnas latency table (no format={FORMAT!r})")
        if doc.get("format_version", 0) > FORMAT_VERSION:
            raise HwnasError(f"latency table {path} has format version {doc.get('format_version')}; "
                             f"this hwnas reads up to {FORMAT_VERSION}")
        meta = doc.get("metadata")
        if not isinstance(meta, dict):
            raise HwnasError(f"latency table {path} has no metadata object")
        missing = [k for k in REQUIRED_METADATA if k not in meta]
        if missing:
            raise HwnasError(f"latency table {path}: metadata lacks {', '.join(missing)}")
        entries = doc.get("entries", {})
        for key, e in entries.items():
            bad = [f for f in ENTRY_FIELDS if not isinstance(e.get(f), (int, float))]
            if bad:
                raise HwnasError(f"latency table {path}: entry {key!r} lacks numeric {', '.join(bad)}")
        return cls(meta, entries, doc.get("calibrations", {}), path)

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "metadata": self.metadata,
                "calibrations": self.calibrations, "entries": dict(sorted(self.entries.items()))}

    def save(self, path: str | Path | None = None) -> Path:
        path = Path(path) if path is not None else self.path
        if path is None:
            raise ValueError("no path to save the latency table to")
        self.path = path
        self.metadata["updated"] = now_iso()
        return atomic_write_json(path, self.to_json())

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
