"""Ranking metrics: Kendall tau, Spearman rho, Pearson r (``scipy.stats``) and top-k overlap.

Kendall tau is what SPOS (Sec. 4.4, Table 8) and K-shot NAS (Sec. 5, Table 4) report; Pearson r
is the metric of the CVPR 2022 lightweight NAS challenge that PGONAS reports (Sec. 4); Spearman rho
is reported by GreedyNAS (Sec. 5.3.1, Table 3).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def correlations(a: np.ndarray, b: np.ndarray) -> dict[str, float | None]:
    """Kendall tau (tau-b), Spearman rho, Pearson r; None when undefined (constant input)."""
    from scipy import stats

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return {"kendall": None, "spearman": None, "pearson": None}
    vals = {"kendall": stats.kendalltau(a, b)[0], "spearman": stats.spearmanr(a, b)[0],
            "pearson": stats.pearsonr(a, b)[0]}
    return {k: (None if v is None or not np.isfinite(v) else float(v)) for k, v in vals.items()}




def top_k_found(truth: Sequence[float], pred: Sequence[float], k: int = 5, within: int = 10) -> int:
    """How many of the ``k`` best subnets by ``truth`` are among the ``within`` best by ``pred``
    (higher is better in both; ties broken by position, stable)."""
    t = np.argsort(-np.asarray(truth, dtype=np.float64), kind="stable")[:k]
    p = np.argsort(-np.asarray(pred, dtype=np.float64), kind="stable")[:within]
    return len(set(t.tolist()) & set(p.tolist()))
