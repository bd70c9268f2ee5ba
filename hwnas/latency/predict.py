"""Vectorised latency prediction from a table: sum of op medians, then a per-device calibration.

``predict = scale * sum(table[key] for key in ops) + per_op_ms * n_ops + offset``. The calibration
(fitted on a few end-to-end measured subnets, see :mod:`hwnas.latency.validate`) captures fusion
across ops and the per-inference overhead that per-op measurements miss (nn-Meter, Zhang et al.
2021, Sec. 4): each one-op model pays the runtime's invoke overhead once, a whole network pays it
once in total, hence the per-op term (usually negative) and the offset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hwnas.errors import HwnasError
from hwnas.latency.keys import op_key, space_ops
from hwnas.latency.table import LatencyTable, space_tag
from hwnas.spaces.base import SearchSpace


def profile_command(table: LatencyTable, space: SearchSpace, resolution: int | None = None) -> str:
    """The ``hwnas profile`` command that adds the keys of ``space`` to ``table``: its device,
    runtime and precision, the space's width, resolution and classes, ``--resume``."""
    meta = table.metadata
    parts = ["hwnas profile", f"--device {meta.get('device', 'DEVICE')}", f"--space {space.name}",
             f"--width {space.width:g}", f"--resolution {space.resolution if resolution is None else resolution}",
             f"--num-classes {space.num_classes}"]
    if meta.get("runtime") not in (None, "tflite"):
        parts.append(f"--runtime {meta['runtime']}")
    if meta.get("precision") not in (None, "fp32"):
        parts.append(f"--precision {meta['precision']}")
    path = table.path
    if path is not None and path.parent.name == meta.get("device") and path.parent.parent not in _default_roots():
        parts.append(f"--tables-dir {path.parent.parent}")
    return " ".join([*parts, "--resume"])


def _default_roots() -> tuple[Path, ...]:
    """Where ``hwnas profile`` looks without ``--tables-dir`` (your folder, then the shipped one)."""
    from hwnas.latency.table import table_roots

    return tuple(table_roots())


class LatencyPredictor:
    """Predicted latency (ms) of many architectures of one space from one table.

    Built once (per-block lookup tables from ``space.block_table``); each call is a few numpy
    gathers, so it evaluates hundreds of thousands of architectures per second.
    """

    def __init__(self, table: LatencyTable, space: SearchSpace, resolution: int | None = None,
                 calibrated: bool = True) -> None:
        table.check_compatible(space=space)
        self.table = table
        self.space = space
        self.resolution = space.resolution if resolution is None else resolution
        missing = table.missing(space_ops(space, self.resolution))
        if missing:
            where = table.path or "the latency table"
            shown = ", ".join(missing[:3])
            raise HwnasError(
                f"{where} lacks {len(missing)} op keys of {space_tag(space, self.resolution)} "
                f"(e.g. {shown}); measure them with `{profile_command(table, space, self.resolution)}`")
        self.ms = space.block_table(lambda op: table.median_ms(op_key(op)), self.resolution)
        self.counts = space.block_table(lambda op: 1.0, self.resolution)
        cal = table.calibration(space_tag(space, self.resolution)) if calibrated else None
        self.scale = 1.0 if cal is None else float(cal["scale"])
        self.offset = 0.0 if cal is None else float(cal["offset_ms"])
        self.per_op = 0.0 if cal is None else float(cal.get("per_op_ms", 0.0))
        self.is_calibrated = cal is not None

    def _idx(self, genes_matrix) -> np.ndarray:
        return self.space.group_index(self.space.validate_matrix(genes_matrix))

    def raw(self, genes_matrix) -> np.ndarray:
        """Uncalibrated sum of per-op medians (ms)."""
        return self.ms.gather(self._idx(genes_matrix))

    def n_ops(self, genes_matrix) -> np.ndarray:
        """Number of executed ops (identity blocks execute none)."""
        return self.counts.gather(self._idx(genes_matrix))

    def __call__(self, genes_matrix) -> np.ndarray:
        idx = self._idx(genes_matrix)
        raw = self.ms.gather(idx)
        if self.per_op:
            raw = raw + (self.per_op / self.scale) * self.counts.gather(idx)
        return self.scale * raw + self.offset


def fit_calibration(raw: np.ndarray, nops: np.ndarray, measured: np.ndarray) -> tuple[float, float, float]:
    """Least squares ``measured ~ scale * raw + per_op * nops + offset``, falling back to fewer terms
    when the design is degenerate (too few points, constant op count) or the scale comes out <= 0."""
    designs = [np.stack([raw, nops, np.ones_like(raw)], 1), np.stack([raw, np.ones_like(raw)], 1)]
    for design in designs:
        if len(raw) <= design.shape[1] or np.linalg.matrix_rank(design) < design.shape[1]:
            continue
        coef, *_ = np.linalg.lstsq(design, measured, rcond=None)
        if coef[0] > 0:
            if design.shape[1] == 3:
                return float(coef[0]), float(coef[1]), float(coef[2])
            return float(coef[0]), 0.0, float(coef[1])
    return float(measured.sum() / raw.sum()), 0.0, 0.0
