"""Ranking reports: the per-subnet CSV and the scatter plot (stand-alone vs supernet top-1, coloured by MACs)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from hwnas.io import atomic_write


def plot_ranking(path: Path, rows: list[dict[str, Any]], corr: dict[str, float | None], title: str) -> None:
    """Scatter of stand-alone vs supernet top-1 (colour: MMACs) with the correlations in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [100 * r["supernet_top1"] for r in rows]
    y = [100 * r["standalone_top1"] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 4.5), dpi=120)
    sc = ax.scatter(x, y, c=[r["macs"] / 1e6 for r in rows], cmap="viridis", s=28)
    fig.colorbar(sc, ax=ax, label="MMACs")
    ax.set_xlabel("supernet top-1 (inherited weights, BN recalibrated) %")
    ax.set_ylabel("stand-alone top-1 %")
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    ax.set_title(f"{title}\nKendall {fmt(corr['kendall'])}  Spearman {fmt(corr['spearman'])}  "
                 f"Pearson {fmt(corr['pearson'])}", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png"))
    plt.close(fig)


def write_rows_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """One row per subnet, columns in the order of the first row; written atomically."""

    def write(p: Path) -> None:
        with open(p, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)

    atomic_write(path, write)
