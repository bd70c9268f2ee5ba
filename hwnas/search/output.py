"""Search result files, all written atomically.

* ``pareto.csv`` / ``pareto.json``: the feasible non-dominated architectures, sorted by the first
  objective: genes, decoded config (``space.describe``), every metric (objectives, constraints,
  MACs, FLOPs, params, BitOps, peak activation bytes); the JSON adds the run settings, the space,
  the objectives and budgets, and :func:`hwnas.checkpoint.version_stamp`.
* ``history.csv``: every distinct architecture evaluated, with its generation and feasibility.
* ``pareto.png``: first objective against the second (or against the first budgeted metric, or
  MACs, for a single objective), every evaluation in grey, the front highlighted, budgets as lines.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.checkpoint import version_stamp
from hwnas.io import atomic_write, atomic_write_json, atomic_write_text
from hwnas.search.problem import ArchProblem

RESULT_FORMAT = "hwnas.search_result"


def genes_text(genes) -> str:
    return ",".join(str(int(v)) for v in genes)


def config_text(space, genes) -> str:
    return " | ".join(row["choice"] for row in space.describe(genes))


def _num(v: float) -> float | int | None:
    v = float(v)
    if not np.isfinite(v):
        return None
    return int(v) if v.is_integer() and abs(v) < 2**53 else v


def _cell(v: float) -> float | int | str:
    n = _num(v)
    return str(float(v)) if n is None else n


def _csv(header: list[str], rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def write_history(problem: ArchProblem, out_dir: Path) -> Path:
    h = problem.history
    header = ["index", "generation", "feasible", "genes", *h.columns]
    rows = [[i, int(h.gen[i]), int(h.feasible[i]), genes_text(h.genes[i]),
             *[_cell(v) for v in h.values[i]]]
            for i in range(len(h))]
    return atomic_write_text(Path(out_dir) / "history.csv", _csv(header, rows))


def pareto_rows(result) -> list[dict[str, Any]]:
    problem = result.problem
    rows = []
    for rank, i in enumerate(result.pareto_index):
        genes = result.history.genes[i]
        rows.append({"rank": rank, "genes": [int(v) for v in genes],
                     "config": problem.space.describe(genes),
                     "metrics": {c: _num(v) for c, v in zip(result.history.columns,
                                                             result.history.values[i])},
                     "generation": int(result.history.gen[i])})
    return rows


def write_results(result, out_dir: str | Path, plot: bool = True) -> dict[str, Path]:
    """Write the four result files; returns their paths by name."""
    out = Path(out_dir)
    problem = result.problem
    space = problem.space
    cols = list(result.history.columns)
    files: dict[str, Path] = {}

    rows = pareto_rows(result)
    csv_rows = [[r["rank"], genes_text(r["genes"]),
                 *[_cell(v) for v in result.history.values[i]], config_text(space, r["genes"])]
                for r, i in zip(rows, result.pareto_index)]
    files["pareto.csv"] = atomic_write_text(out / "pareto.csv",
                                            _csv(["rank", "genes", *cols, "config"], csv_rows))
    doc = {
        "format": RESULT_FORMAT,
        "format_version": 1,
        "settings": result.settings,
        "space": space.config(),
        "objectives": [{"name": o.name, "unit": o.unit, "budget": o.budget} for o in problem.objectives],
        "constraints": [{"name": o.name, "unit": o.unit, "budget": o.budget}
                        for o in problem.budgeted],
        "metrics": cols,
        "units": {c: problem.unit_of(c) for c in cols},
        "n_evaluated": len(result.history),
        "best": rows[0] if rows else None,
        "pareto": rows,
        "versions": version_stamp(),
    }
    files["pareto.json"] = atomic_write_json(out / "pareto.json", doc)
    files["history.csv"] = write_history(problem, out)
    if plot:
        files["pareto.png"] = plot_pareto(result, out / "pareto.png")
    return files


def plot_axes(problem: ArchProblem) -> tuple[str, str]:
    """(x, y) metric names of the Pareto plot: y = first objective."""
    y = problem.objectives[0].name
    if len(problem.objectives) > 1:
        return problem.objectives[1].name, y
    others = [o.name for o in problem.budgeted if o.name != y]
    return (others[0] if others else "macs"), y


def _axis_label(problem: ArchProblem, name: str) -> str:
    unit = problem.unit_of(name)
    return name if unit in ("", name) else f"{name} ({unit})"


def plot_pareto(result, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    problem = result.problem
    h = result.history
    xname, yname = plot_axes(problem)
    x, y = h.column(xname), h.column(yname)
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=120)
    finite = np.isfinite(x) & np.isfinite(y)
    ax.scatter(x[finite & ~h.feasible], y[finite & ~h.feasible], s=8, c="0.85", label="over budget")
    ax.scatter(x[finite & h.feasible], y[finite & h.feasible], s=8, c="0.55", label="evaluated")
    front = result.pareto_index
    order = front[np.argsort(x[front], kind="stable")]
    ax.plot(x[order], y[order], "-o", c="tab:red", ms=4, lw=1.2, label="Pareto front")
    for o in problem.budgeted:
        if o.name == xname:
            ax.axvline(o.budget, ls="--", c="tab:blue", lw=1, label=f"budget {o.name}")
        elif o.name == yname:
            ax.axhline(o.budget, ls="--", c="tab:blue", lw=1, label=f"budget {o.name}")
    ax.set_xlabel(_axis_label(problem, xname))
    ax.set_ylabel(_axis_label(problem, yname))
    ax.set_title(f"{problem.space.name}: {result.settings.get('algorithm')} search, "
                 f"{len(h)} evaluated, {len(front)} on the front", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()

    def write(tmp: Path) -> None:
        fig.savefig(tmp, format="png")

    try:
        return atomic_write(path, write)
    finally:
        plt.close(fig)
