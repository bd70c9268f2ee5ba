"""The early predictor (SparseNAS Sec. 5.2): a regressor from architecture to proxy-supernet accuracy.

SparseNAS fits a GBDT (Friedman 2001; scikit-learn's ``GradientBoostingRegressor``) with 100
estimators and learning rate 0.01 (Sec. 5.2.1) on architecture / accuracy pairs from a briefly
trained proxy supernet; its Fig. 5 / Table 3 compare it with a random forest (100 estimators, as
in AttentiveNAS) and the three-layer feed-forward predictor of Once-for-All (400 hidden units per
layer). All three are here (``kind``: ``gbdt``, ``rf``, ``mlp``), on the one-hot encoding of
:mod:`hwnas.sparse.encoding`; targets are top-1 accuracy in percent, standardised for the fit.

A held-out fraction of the pairs (``test_fraction``, seeded split) scores the predictor:
RMSE in accuracy points, the RMSE after shifting the predictions by the difference of the means
("we shift the data domain of predicted accuracy to the domain of actual accuracy", Sec. 5.2.2;
a GBDT with learning rate 0.01 and 100 stages moves only ~63 % of the way from the mean), and
Kendall tau (what decides which subnets the sparse space keeps). The model is fitted on the
training part only, so the stored metrics are out-of-sample.

Predictor files are JSON (no pickles): the model through :mod:`hwnas.learn.serialize`, the
encoding, the target scaling, the metrics, the pairs file's SHA-256 and the versions.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.errors import HwnasError
from hwnas.io import read_json
from hwnas.sparse.encoding import ENCODING, encode
from hwnas.sparse.pairs import Pairs, file_sha256

FORMAT = "hwnas.early_predictor"
FORMAT_VERSION = 1
KINDS = ("gbdt", "rf", "mlp")
#: SparseNAS Sec. 5.2.1: "The RF, GBDT and XGBoost regressor contain 100 estimators trained with
#: a learning rate of 0.01"
PAPER_ESTIMATORS = 100
PAPER_LEARNING_RATE = 0.01
#: Once-for-All's accuracy predictor: 3 hidden layers of 400 units
OFA_HIDDEN = (400, 400, 400)


def make_regressor(kind: str, seed: int = 0) -> Any:
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
    from sklearn.neural_network import MLPRegressor

    if kind == "gbdt":
        return GradientBoostingRegressor(n_estimators=PAPER_ESTIMATORS, learning_rate=PAPER_LEARNING_RATE,
                                         random_state=seed)
    if kind == "rf":
        return RandomForestRegressor(n_estimators=PAPER_ESTIMATORS, random_state=seed, n_jobs=1)
    if kind == "mlp":
        return MLPRegressor(hidden_layer_sizes=OFA_HIDDEN, learning_rate_init=1e-3, max_iter=500,
                            early_stopping=True, n_iter_no_change=20, random_state=seed)
    raise HwnasError(f"unknown predictor kind {kind!r}; allowed: {', '.join(KINDS)}")


@dataclass
class EarlyPredictor:
    """A fitted accuracy predictor for one space: ``predict(genes_matrix)`` -> top-1 in percent."""

    kind: str
    model: Any
    space: dict[str, Any]
    y_mean: float
    y_std: float
    metrics: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def space_obj(self) -> Any:
        from hwnas.spaces.registry import space_from_config

        return space_from_config(self.space)

    def predict(self, genes_matrix: np.ndarray, space: Any = None) -> np.ndarray:
        space = space if space is not None else self.space_obj()
        return self.y_mean + self.y_std * self.model.predict(encode(space, genes_matrix))

    def to_dict(self) -> dict[str, Any]:
        from hwnas.learn.serialize import model_to_dict, versions

        return {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": self.kind, "space": self.space,
                "encoding": ENCODING, "target": "top1_percent", "y_mean": self.y_mean, "y_std": self.y_std,
                "metrics": self.metrics, "settings": self.settings, "versions": versions(),
                "model": model_to_dict(self.model)}

    def save(self, path: str | Path) -> Path:
        from hwnas.io import atomic_write_text

        return atomic_write_text(path, json.dumps(self.to_dict()) + "\n")


def load_predictor(path: str | Path) -> EarlyPredictor:
    from hwnas.learn.serialize import model_from_dict

    path = Path(path)
    if not path.exists():
        raise HwnasError(f"predictor file {path} does not exist (fit one with `hwnas sparse fit`)")
    d = read_json(path, "predictor file")
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise HwnasError(f"{path} is not an early-predictor file (no format={FORMAT!r} entry)")
    if int(d.get("format_version", 0)) > FORMAT_VERSION:
        raise HwnasError(f"predictor file {path} has format version {d['format_version']}; this hwnas reads "
                         f"up to {FORMAT_VERSION}")
    if d.get("encoding") != ENCODING:
        raise HwnasError(f"predictor file {path} uses encoding {d.get('encoding')!r}; this hwnas knows "
                         f"{ENCODING!r}")
    model = model_from_dict(d.get("model"), where=f"predictor file {path}")
    from hwnas.spaces.registry import read_space_config

    space = read_space_config(d.get("space", {}), f"predictor file {path}",
                              "its pairs are of the old network; fit it again with `hwnas sparse fit`")
    return EarlyPredictor(kind=d["kind"], model=model, space=space, y_mean=float(d["y_mean"]),
                          y_std=float(d["y_std"]), metrics=d.get("metrics", {}), settings=d.get("settings", {}),
                          path=path)


def score(pred: np.ndarray, truth: np.ndarray) -> dict[str, float | None]:
    """RMSE, mean-shifted RMSE (SparseNAS Sec. 5.2.2) in accuracy points, and Kendall tau."""
    from hwnas.ranking.metrics import correlations

    pred, truth = np.asarray(pred, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    rmse = float(np.sqrt(np.mean((pred - truth) ** 2)))
    shifted = pred - pred.mean() + truth.mean()
    return {"rmse": rmse, "rmse_shifted": float(np.sqrt(np.mean((shifted - truth) ** 2))),
            "kendall": correlations(pred, truth)["kendall"]}


def split_indices(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if not 0 < test_fraction < 1:
        raise HwnasError(f"--test-fraction must lie in (0, 1), got {test_fraction:g}")
    n_test = max(1, int(round(n * test_fraction)))
    if n - n_test < 2:
        raise HwnasError(f"{n} pairs are too few to fit a predictor and hold out {test_fraction:g} of them")
    perm = np.random.default_rng(seed).permutation(n)
    return perm[n_test:], perm[:n_test]


def fit_predictor(pairs: Pairs, kind: str = "gbdt", *, test_fraction: float = 0.2, seed: int = 0) -> EarlyPredictor:
    """Fit ``kind`` on the training part of ``pairs`` and score it on the held-out part."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from hwnas.spaces.registry import space_from_config

    space = space_from_config(pairs.space)
    tr, te = split_indices(len(pairs), test_fraction, seed)
    X = encode(space, pairs.genes)
    y = 100.0 * pairs.top1
    mean, std = float(y[tr].mean()), float(y[tr].std()) or 1.0
    model = make_regressor(kind, seed)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X[tr], (y[tr] - mean) / std)
    seconds = time.perf_counter() - t0
    pred = EarlyPredictor(kind, model, dict(pairs.space), mean, std)
    metrics = {**score(pred.predict(pairs.genes[te], space), y[te]), "n_train": int(len(tr)),
               "n_test": int(len(te)), "fit_seconds": round(seconds, 4)}
    pred.metrics = metrics
    pred.settings = {"test_fraction": test_fraction, "seed": seed, "params": _params(model)}
    if pairs.path is not None:
        pred.settings["pairs"] = {"file": str(pairs.path), "sha256": file_sha256(pairs.path), "n": len(pairs),
                                  "checkpoint_sha256": pairs.header.get("checkpoint_sha256")}
    return pred


def _params(model: Any) -> dict[str, Any]:
    keys = ("n_estimators", "learning_rate", "max_depth", "hidden_layer_sizes", "learning_rate_init")
    p = model.get_params()
    return {k: (list(p[k]) if isinstance(p[k], tuple) else p[k]) for k in keys if k in p}
