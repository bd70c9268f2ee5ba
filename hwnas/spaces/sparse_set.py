"""Sparse spaces: a versioned file naming the member architectures of a space (SparseNAS Sec. 4).

SparseNAS trains its supernet only on a sparse set A* of a base space A: a few architectures per
MACs bucket that an early accuracy predictor rates best (SparseNAS Eq. (6), Algorithm 1). The file
that holds A* is JSON::

    {"format": "hwnas.sparse_space", "format_version": 1,
     "space": {...},                      # SearchSpace.config() of the base space
     "buckets": {"cost": "macs", "lo": ..., "hi": ..., "count": ..., "per_bucket": ...},
     "search": {...}, "predictor": {...}, # how the members were found
     "members": [{"genes": [...], "macs": ..., "predicted": ..., "bucket": ...}, ...],
     "versions": {...}}

It lives with the spaces because training (``--strategy sparse``), selection (``hwnas pick``) and
the builder (:mod:`hwnas.sparse`) all read it. A file for another space (name, width, resolution,
classes) is refused with a one-line :class:`HwnasError` naming the difference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.errors import HwnasError
from hwnas.io import read_json
from hwnas.spaces.base import SearchSpace

FORMAT = "hwnas.sparse_space"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class SparseSet:
    """The members of a sparse space (genes rows) and the file's metadata."""

    space: dict[str, Any]
    genes: np.ndarray
    macs: np.ndarray
    predicted: np.ndarray
    bucket: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def __len__(self) -> int:
        return int(self.genes.shape[0])

    def members(self) -> list[tuple[int, ...]]:
        return [tuple(int(v) for v in g) for g in self.genes]

    def check_space(self, space: SearchSpace, what: str = "this run") -> None:
        """Refuse a file built for another space than ``space``."""
        have, want = self.space, space.config()
        where = f"sparse-space file {self.path}" if self.path else "the sparse space"
        if have.get("name") != want["name"]:
            raise HwnasError(f"{where} is for space {have.get('name')!r}, not {want['name']!r} ({what}); "
                             f"build one for {want['name']!r} with `hwnas sparse space`")
        for key, value in want.items():
            if have.get(key) != value:
                raise HwnasError(f"{where} was built for {key}={have.get(key)!r} of space {want['name']!r}, "
                                 f"{what} has {key}={value!r}")
        space.validate_matrix(self.genes)

    def to_dict(self) -> dict[str, Any]:
        members = [{"genes": [int(v) for v in g], "macs": int(m), "predicted": float(p), "bucket": int(b)}
                   for g, m, p, b in zip(self.genes, self.macs, self.predicted, self.bucket)]
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "space": dict(self.space),
                **{k: v for k, v in self.meta.items() if k not in ("format", "format_version", "space")},
                "members": members}

    def save(self, path: str | Path) -> Path:
        """Write atomically: the header indented, one member per line."""
        from hwnas.io import atomic_write_text

        d = self.to_dict()
        members = d.pop("members")
        head = json.dumps(d, indent=2)[:-2]
        body = ",\n    ".join(json.dumps(m) for m in members)
        return atomic_write_text(path, head + ',\n  "members": [\n    ' + body + "\n  ]\n}\n")


def load_sparse_set(path: str | Path, space: SearchSpace | None = None, what: str = "this run") -> SparseSet:
    """Read a sparse-space file (and check it against ``space`` when given)."""
    path = Path(path)
    d = read_json(path, "sparse-space file")
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise HwnasError(f"{path} is not a sparse-space file (no format={FORMAT!r} entry); "
                         f"write one with `hwnas sparse space`")
    if int(d.get("format_version", 0)) > FORMAT_VERSION:
        raise HwnasError(f"sparse-space file {path} has format version {d.get('format_version')}; "
                         f"this hwnas reads up to {FORMAT_VERSION}")
    try:
        members = d["members"]
        if not members:
            raise HwnasError(f"sparse-space file {path} has no members")
        genes = np.array([m["genes"] for m in members], dtype=np.int64)
        from hwnas.spaces.registry import read_space_config

        space_cfg = read_space_config(d["space"], f"sparse-space file {path}",
                                      "its MACs buckets are of the old network; build it again with "
                                      "`hwnas sparse space`")
        out = SparseSet(space=space_cfg, genes=genes,
                        macs=np.array([m["macs"] for m in members], dtype=np.float64),
                        predicted=np.array([m["predicted"] for m in members], dtype=np.float64),
                        bucket=np.array([m.get("bucket", -1) for m in members], dtype=np.int64),
                        meta={k: v for k, v in d.items() if k not in ("members",)}, path=path)
    except (KeyError, TypeError, ValueError) as exc:
        raise HwnasError(f"sparse-space file {path} is damaged: {type(exc).__name__} {exc}") from None
    if space is not None:
        out.check_space(space, what)
    return out
