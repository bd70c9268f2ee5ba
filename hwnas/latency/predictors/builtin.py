"""The built-in latency predictors (see :mod:`hwnas.latency.predictors.base` for the protocol).

* ``table-sum``: the device's latency table, summed over the subnet's ops, with the affine
  calibration ``scale * sum + per_op * n_ops + offset`` fitted on the measurements (nn-Meter,
  Zhang et al. 2021, Sec. 4: the per-inference overhead and fusion the one-op models miss).
* ``physical``: non-negative least squares on the subnet's dense MACs, depthwise MACs, activation
  and weight bytes and op count (:mod:`hwnas.latency.predictors.features`): six coefficients,
  each a cost per unit that cannot be negative, so few measurements pin it down.
* ``gbdt-genes`` / ``gbdt-features`` / ``mlp-genes`` / ``mlp-features``: scikit-learn gradient
  boosting / MLP regressors on the gene encoding (GBDT: gene values; MLP: one-hot) or on the
  per-stage features (log scale), predicting log latency (BRP-NAS and HELP learn from the
  architecture encoding, nn-Meter's kernel predictors from per-layer features).
* ``hybrid``: gradient boosting on the features and the table sum, predicting the log ratio of
  measured latency to table sum: with few measurements it falls back to a scaled table sum, with
  more it learns where the table misses (fusion, caches).

Learned models persist through :mod:`hwnas.learn.serialize` (trees and weights as JSON, no pickles).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from hwnas.errors import HwnasError
from hwnas.latency.predictors.base import PredictorContext, register_predictor

GBDT_PARAMS = {"n_estimators": 100, "learning_rate": 0.1, "max_depth": 3, "subsample": 0.8,
               "min_samples_leaf": 2, "random_state": 0}
MLP_PARAMS = {"hidden_layer_sizes": (32, 32), "solver": "lbfgs", "alpha": 1e-2, "max_iter": 2000,
              "random_state": 0}


def _targets(latency_ms: Sequence[float], n_genes: int, name: str, min_fit: int) -> np.ndarray:
    y = np.asarray(latency_ms, dtype=np.float64).reshape(-1)
    if len(y) != n_genes:
        raise HwnasError(f"{name}: {n_genes} architectures but {len(y)} latencies")
    if len(y) < min_fit:
        raise HwnasError(f"latency predictor {name!r} needs at least {min_fit} measured subnets to fit, got {len(y)}")
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise HwnasError(f"{name}: latencies must be finite and > 0 ms")
    return y


class _Base:
    name: ClassVar[str] = ""
    block_additive: ClassVar[bool] = False
    needs_table: ClassVar[bool] = False
    min_fit: ClassVar[int] = 3

    def __init__(self) -> None:
        self.context: PredictorContext | None = None

    def _ctx(self) -> PredictorContext:
        if self.context is None:
            raise HwnasError(f"latency predictor {self.name!r} is not fitted")
        return self.context

    def _matrix(self, genes: Any) -> np.ndarray:
        return self._ctx().space.validate_matrix(np.asarray(genes, dtype=np.int64))


@register_predictor
class TableSum(_Base):
    name = "table-sum"
    block_additive = True
    needs_table = True
    min_fit = 3

    def __init__(self) -> None:
        super().__init__()
        self.scale, self.per_op, self.offset = 1.0, 0.0, 0.0

    def fit(self, genes_list, latency_ms, context: PredictorContext) -> None:
        from hwnas.latency.predict import fit_calibration

        m = context.space.validate_matrix(np.asarray(genes_list, dtype=np.int64))
        y = _targets(latency_ms, len(m), self.name, self.min_fit)
        ts = context.table_sum()
        self.scale, self.per_op, self.offset = fit_calibration(ts.raw(m), ts.n_ops(m), y)
        self.context = context

    def predict(self, genes) -> np.ndarray:
        ts = self._ctx().table_sum()
        m = self._matrix(genes)
        return self.scale * ts.raw(m) + self.per_op * ts.n_ops(m) + self.offset

    def to_json(self) -> dict[str, Any]:
        return {"scale": self.scale, "per_op_ms": self.per_op, "offset_ms": self.offset}

    @classmethod
    def from_json(cls, d: dict[str, Any], context: PredictorContext) -> TableSum:
        p = cls()
        p.scale, p.per_op, p.offset = float(d["scale"]), float(d["per_op_ms"]), float(d["offset_ms"])
        context.table_sum()  # the table must be there
        p.context = context
        return p


@register_predictor
class Physical(_Base):
    """``latency = sum_k c_k * feature_k + c_0`` with every ``c >= 0`` (scipy's NNLS)."""

    name = "physical"
    block_additive = True  # non-negative weights on block-additive features
    min_fit = 6

    def __init__(self) -> None:
        super().__init__()
        self.coef = np.zeros(0)

    def _design(self, m: np.ndarray) -> np.ndarray:
        x = self._ctx().features().totals(m)
        return np.concatenate([x, np.ones((len(x), 1))], axis=1)

    def fit(self, genes_list, latency_ms, context: PredictorContext) -> None:
        from scipy.optimize import nnls

        self.context = context
        m = context.space.validate_matrix(np.asarray(genes_list, dtype=np.int64))
        y = _targets(latency_ms, len(m), self.name, self.min_fit)
        x = self._design(m)
        col = np.where(x.max(axis=0) > 0, x.max(axis=0), 1.0)
        w, _ = nnls(x / col, y)
        self.coef = w / col

    def predict(self, genes) -> np.ndarray:
        return self._design(self._matrix(genes)) @ self.coef

    def to_json(self) -> dict[str, Any]:
        from hwnas.latency.predictors.features import OP_FEATURES

        return {"features": [*OP_FEATURES, "offset"], "coef": self.coef.tolist()}

    @classmethod
    def from_json(cls, d: dict[str, Any], context: PredictorContext) -> Physical:
        from hwnas.latency.predictors.features import OP_FEATURES

        if list(d["features"]) != [*OP_FEATURES, "offset"]:
            raise ValueError(f"features {d['features']} are not {[*OP_FEATURES, 'offset']}")
        p = cls()
        p.coef = np.asarray(d["coef"], dtype=np.float64)
        p.context = context
        return p


class _Learned(_Base):
    """A scikit-learn regressor on an encoding, predicting (standardized) log latency."""

    model_kind: ClassVar[str] = "gbdt"
    encoding: ClassVar[str] = "genes"

    def __init__(self, **params: Any) -> None:
        super().__init__()
        base = GBDT_PARAMS if self.model_kind == "gbdt" else MLP_PARAMS
        self.params = {**base, **params}
        self.model: Any = None
        self.x_mean = self.x_std = np.zeros(0)
        self.y_mean, self.y_std = 0.0, 1.0
        self.t_range = (-np.inf, np.inf)

    def _regressor(self) -> Any:
        if self.model_kind == "gbdt":
            from sklearn.ensemble import GradientBoostingRegressor

            return GradientBoostingRegressor(**self.params)
        from sklearn.neural_network import MLPRegressor

        return MLPRegressor(**self.params)

    def _raw_inputs(self, m: np.ndarray) -> np.ndarray:
        ctx = self._ctx()
        if self.encoding == "genes":
            if self.model_kind == "gbdt":
                return m.astype(np.float64)
            choices = ctx.space.choices
            offsets = np.concatenate([[0], np.cumsum(choices)[:-1]])
            out = np.zeros((len(m), int(sum(choices))))
            out[np.arange(len(m))[:, None], offsets[None, :] + m] = 1.0
            return out
        return np.log1p(ctx.features()(m))

    def _base(self, m: np.ndarray) -> np.ndarray:
        """Log of what the model corrects (0: the model predicts log latency itself)."""
        return np.zeros(len(m))

    def fit(self, genes_list, latency_ms, context: PredictorContext) -> None:
        self.context = context
        m = context.space.validate_matrix(np.asarray(genes_list, dtype=np.int64))
        y = _targets(latency_ms, len(m), self.name, self.min_fit)
        x = self._raw_inputs(m)
        self.x_mean = x.mean(axis=0)
        std = x.std(axis=0)
        self.x_std = np.where(std > 0, std, 1.0)
        t = np.log(y) - self._base(m)
        self.t_range = (float(t.min()), float(t.max()))
        self.y_mean = float(t.mean())
        self.y_std = float(t.std()) if t.std() > 0 else 1.0
        model = self._regressor()
        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit((x - self.x_mean) / self.x_std, (t - self.y_mean) / self.y_std)
        self.model = model

    def predict(self, genes) -> np.ndarray:
        if self.model is None:
            raise HwnasError(f"latency predictor {self.name!r} is not fitted")
        m = self._matrix(genes)
        z = self.model.predict((self._raw_inputs(m) - self.x_mean) / self.x_std)
        t = self.y_mean + self.y_std * np.asarray(z, dtype=np.float64)
        # an MLP far outside its training inputs extrapolates without bound: keep the predicted
        # (log) target within a factor 2 of the range it was fitted on (GBDT stays inside anyway)
        t = np.clip(t, self.t_range[0] - np.log(2.0), self.t_range[1] + np.log(2.0))
        return np.exp(self._base(m) + t)

    def to_json(self) -> dict[str, Any]:
        from hwnas.learn.serialize import model_to_dict

        return {"kind": self.model_kind, "encoding": self.encoding, "target": "log_ms",
                "x_mean": self.x_mean.tolist(), "x_std": self.x_std.tolist(),
                "y_mean": self.y_mean, "y_std": self.y_std, "target_range": list(self.t_range),
                "model": model_to_dict(self.model)}

    @classmethod
    def from_json(cls, d: dict[str, Any], context: PredictorContext) -> _Learned:
        from hwnas.learn.serialize import model_from_dict

        if (d["kind"], d["encoding"]) != (cls.model_kind, cls.encoding):
            raise ValueError(f"model {d['kind']}/{d['encoding']} is not {cls.model_kind}/{cls.encoding}")
        p = cls()
        p.context = context
        p.model = model_from_dict(d["model"], where=f"the {cls.name} model")
        p.x_mean = np.asarray(d["x_mean"], dtype=np.float64)
        p.x_std = np.asarray(d["x_std"], dtype=np.float64)
        p.y_mean, p.y_std = float(d["y_mean"]), float(d["y_std"])
        lo, hi = d["target_range"]
        p.t_range = (float(lo), float(hi))
        want = p._raw_inputs(context.space.validate_matrix(np.asarray([context.space.smallest()]))).shape[1]
        if len(p.x_mean) != want or int(p.model.n_features_in_) != want:
            raise ValueError(f"model takes {len(p.x_mean)} inputs; the space gives {want}")
        return p


@register_predictor
class GbdtGenes(_Learned):
    name = "gbdt-genes"
    model_kind, encoding, min_fit = "gbdt", "genes", 8


@register_predictor
class GbdtFeatures(_Learned):
    name = "gbdt-features"
    model_kind, encoding, min_fit = "gbdt", "features", 8


@register_predictor
class MlpGenes(_Learned):
    name = "mlp-genes"
    model_kind, encoding, min_fit = "mlp", "genes", 10


@register_predictor
class MlpFeatures(_Learned):
    name = "mlp-features"
    model_kind, encoding, min_fit = "mlp", "features", 10


@register_predictor
class Hybrid(_Learned):
    """Gradient boosting on ``[features, log table sum]`` fitted to the log ratio of measured
    latency to the calibrated table sum (the ``table-sum`` calibration, fitted on the same
    measurements): where the boosting has nothing to learn it is the calibrated table sum."""

    name = "hybrid"
    model_kind, encoding, min_fit = "gbdt", "hybrid", 8
    needs_table = True

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.calibration = (1.0, 0.0, 0.0)

    def fit(self, genes_list, latency_ms, context: PredictorContext) -> None:
        from hwnas.latency.predict import fit_calibration

        m = context.space.validate_matrix(np.asarray(genes_list, dtype=np.int64))
        y = _targets(latency_ms, len(m), self.name, self.min_fit)
        ts = context.table_sum()
        self.calibration = fit_calibration(ts.raw(m), ts.n_ops(m), y)
        super().fit(genes_list, latency_ms, context)

    def _raw_inputs(self, m: np.ndarray) -> np.ndarray:
        ctx = self._ctx()
        raw = ctx.table_sum().raw(m)
        return np.concatenate([np.log1p(ctx.features()(m)), np.log(np.maximum(raw, 1e-9))[:, None]], axis=1)

    def _base(self, m: np.ndarray) -> np.ndarray:
        ts = self._ctx().table_sum()
        scale, per_op, offset = self.calibration
        return np.log(np.maximum(scale * ts.raw(m) + per_op * ts.n_ops(m) + offset, 1e-9))

    def to_json(self) -> dict[str, Any]:
        scale, per_op, offset = self.calibration
        return {**super().to_json(), "calibration": {"scale": scale, "per_op_ms": per_op, "offset_ms": offset}}

    @classmethod
    def from_json(cls, d: dict[str, Any], context: PredictorContext) -> Hybrid:
        cal = d["calibration"]
        calibration = (float(cal["scale"]), float(cal["per_op_ms"]), float(cal["offset_ms"]))
        p = super().from_json(d, context)
        p.calibration = calibration
        return p
