"""Architecture / accuracy pairs from a proxy supernet (SparseNAS Sec. 5.2.1, step 2).

``n`` distinct architectures (paper: 1000) are drawn uniformly (seeded) and evaluated with
inherited weights on the run's ``search-val`` split after BN recalibration (SPOS Sec. 3.3, as
``hwnas rank-check`` evaluates). The pairs file is JSON lines: a header (format, space, the
checkpoint's SHA-256 and step, the settings, versions), then one ``{"genes", "macs", "top1"}``
per architecture, appended as each is evaluated, so an interrupted run resumes where it stopped
(a header of other settings is refused).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from hwnas.errors import HwnasError

FORMAT = "hwnas.sparse_pairs"
FORMAT_VERSION = 1
#: SparseNAS Sec. 5.2.1: "Randomly sample and evaluate 1000 sub-networks"
PAPER_PAIRS = 1000


@dataclass
class Pairs:
    space: dict[str, Any]
    genes: np.ndarray
    top1: np.ndarray  # fractions in [0, 1]
    macs: np.ndarray
    header: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def __len__(self) -> int:
        return int(self.genes.shape[0])


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def distinct_uniform(space: Any, n: int, seed: int) -> np.ndarray:
    """``n`` distinct uniform architectures (fewer when the space is smaller), canonical: with
    elastic depth the genes of switched-off layers are 0, so distinct rows are distinct subnets."""
    rng = np.random.default_rng(seed)
    n = min(int(n), int(space.size()))
    rows: dict[bytes, np.ndarray] = {}
    while len(rows) < n:
        for g in space.canonical_matrix(space.sample_many(rng, max(64, 2 * (n - len(rows))))):
            rows.setdefault(g.tobytes(), g)
            if len(rows) >= n:
                break
    return np.stack(list(rows.values()))


def collect_pairs(checkpoint: str | Path, out: str | Path, *, n: int = PAPER_PAIRS, seed: int = 0,
                  calib_batches: int = 20, batch_size: int = 256, max_images: int | None = None,
                  device: str | None = None, quiet: bool = False, console: Console | None = None) -> Pairs:
    """Evaluate ``n`` uniform subnets of the supernet in ``checkpoint`` into the pairs file ``out``."""
    from hwnas.checkpoint import version_stamp
    from hwnas.cost import CostModel
    from hwnas.train.evaluate import SubnetEvaluator

    if n < 2:
        raise HwnasError(f"--n must be >= 2 (pairs to fit and test a predictor), got {n}")
    from hwnas.io import check_writable_file

    checkpoint, out = Path(checkpoint), check_writable_file(out)
    console = console or Console(stderr=True)
    ev = SubnetEvaluator.from_checkpoint(checkpoint, split="search-val", batch_size=batch_size,
                                         calib_batches=calib_batches, device=device, max_images=max_images)
    space = ev.space
    import torch

    step = int(torch.load(checkpoint, map_location="cpu", weights_only=True).get("step", 0))
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "space": space.config(),
              "checkpoint": str(checkpoint), "checkpoint_sha256": file_sha256(checkpoint),
              "checkpoint_step": step, "n": int(n), "seed": int(seed), "split": "search-val",
              "calib_batches": int(calib_batches), "max_images": max_images, "versions": version_stamp()}
    keep = ("space", "checkpoint_sha256", "n", "seed", "split", "calib_batches", "max_images")
    done: dict[tuple[int, ...], dict[str, Any]] = {}
    if out.exists():
        old = read_pairs(out, allow_partial=True)
        diff = [k for k in keep if old.header.get(k) != header[k]]
        if diff:
            raise HwnasError(f"pairs file {out} was written with other settings ({diff[0]}="
                             f"{old.header.get(diff[0])!r}, now {header[diff[0]]!r}); choose another --out")
        done = {tuple(int(v) for v in g): {"top1": float(t), "macs": float(m)}
                for g, t, m in zip(old.genes, old.top1, old.macs)}
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(header) + "\n", encoding="utf-8")
    archs = distinct_uniform(space, n, seed)
    macs = CostModel(space)(archs)["macs"]
    from hwnas.ui import progress as progress_lines

    t0 = time.perf_counter()
    with progress_lines(console, enabled=not quiet) as progress, open(out, "a", encoding="utf-8") as fh:
        task = progress.add_task("pairs", total=len(archs), completed=len(done))
        for g, m in zip(archs, macs):
            key = tuple(int(v) for v in g)
            if key in done:
                continue
            r = ev(key)
            fh.write(json.dumps({"genes": list(key), "macs": int(m), "top1": r.top1}) + "\n")
            fh.flush()
            done[key] = {"top1": r.top1, "macs": float(m)}
            progress.update(task, advance=1)
    if not quiet:
        console.print(f"{len(done)} pairs in {out} ({time.perf_counter() - t0:.1f} s this run)", highlight=False)
    return read_pairs(out)


def read_pairs(path: str | Path, allow_partial: bool = False) -> Pairs:
    """Read a pairs file; a line cut by a crash is skipped."""
    from hwnas.io import read_text

    path = Path(path)
    if not path.exists():
        raise HwnasError(f"pairs file {path} does not exist (write it with `hwnas sparse pairs`)")
    lines = read_text(path, "pairs file").splitlines()  # a folder, unreadable, not UTF-8
    try:
        header = json.loads(lines[0]) if lines else {}
    except ValueError:
        header = {}
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise HwnasError(f"{path} is not a pairs file (no format={FORMAT!r} header line); "
                         f"write one with `hwnas sparse pairs`")
    version = header.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise HwnasError(f"pairs file {path}: format_version must be an integer, got {version!r}")
    if not isinstance(header.get("space"), dict):
        raise HwnasError(f"pairs file {path}: the header's space must be a space config")
    if version > FORMAT_VERSION:
        raise HwnasError(f"pairs file {path} has format version {header['format_version']}; this hwnas "
                         f"reads up to {FORMAT_VERSION}")
    rows = []
    width = None
    for number, line in enumerate(lines[1:], start=2):
        try:
            rec = json.loads(line)
        except ValueError:
            if number == len(lines):
                continue  # the last line, cut by a crash
            raise HwnasError(f"pairs file {path}, line {number}: not valid JSON") from None
        genes = rec.get("genes") if isinstance(rec, dict) else None
        values = [rec.get(k) for k in ("top1", "macs")] if isinstance(rec, dict) else [None]
        if not (isinstance(genes, list) and genes and all(type(g) is int for g in genes)
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                        for v in values)) or (width is not None and len(genes) != width):
            raise HwnasError(f"pairs file {path}, line {number}: expected genes (integers, "
                             f"{width or 'as many as the space has'}), top1 and macs (finite numbers)")
        width = len(genes)
        rows.append((genes, float(values[0]), float(values[1])))
    if not rows and not allow_partial:
        raise HwnasError(f"pairs file {path} holds no pairs")
    genes = np.array([r[0] for r in rows], dtype=np.int64).reshape(len(rows), -1)
    from hwnas.spaces.registry import read_space_config

    space = read_space_config(header["space"], f"pairs file {path}",
                              "its accuracies are of the old network; sample them again with "
                              "`hwnas sparse pairs`")
    return Pairs(space=space, genes=genes, top1=np.array([r[1] for r in rows]),
                 macs=np.array([r[2] for r in rows]), header={**header, "space": space}, path=path)
