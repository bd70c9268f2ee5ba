"""scikit-learn regressors <-> JSON-able dicts, without pickles.

:func:`model_to_dict` turns a fitted ``GradientBoostingRegressor``, ``RandomForestRegressor``,
``DecisionTreeRegressor`` or ``MLPRegressor`` into plain lists, numbers and strings (the trees'
node arrays, the MLP's weight matrices, the constructor parameters); :func:`model_from_dict` builds
the fitted estimator back. Floats go through JSON as their shortest ``repr``, which reads back to
the same float64, so the rebuilt model predicts bit-identically (tested). The dict carries
``format`` / ``format_version`` and the versions of scikit-learn, numpy and hwnas that wrote it;
a model written by a newer format, or of an unknown kind, is a one-line :class:`HwnasError`.

Use :func:`save_model` / :func:`load_model` for a file of its own, or embed the dict in a larger
JSON document (a predictor file with its encoding and metrics).
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.errors import HwnasError
from hwnas.io import read_json

FORMAT = "hwnas.sklearn_model"
FORMAT_VERSION = 1
KINDS = ("gbdt", "random_forest", "decision_tree", "mlp")


def versions() -> dict[str, str]:
    import sklearn

    from hwnas import __version__

    return {"hwnas": __version__, "sklearn": sklearn.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def _kind(model: Any) -> str:
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
    from sklearn.neural_network import MLPRegressor
    from sklearn.tree import DecisionTreeRegressor

    for cls, kind in ((GradientBoostingRegressor, "gbdt"), (RandomForestRegressor, "random_forest"),
                      (DecisionTreeRegressor, "decision_tree"), (MLPRegressor, "mlp")):
        if type(model) is cls:
            return kind
    raise HwnasError(f"cannot serialize a {type(model).__name__}; supported: GradientBoostingRegressor, "
                     f"RandomForestRegressor, DecisionTreeRegressor, MLPRegressor")


def _jsonable(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_jsonable(v) for v in value)
    return False


def _params(model: Any) -> dict[str, Any]:
    """Constructor parameters that JSON holds (a RandomState, callables or an init estimator are
    dropped: they only matter for fitting)."""
    out = {}
    for k, v in model.get_params(deep=False).items():
        if isinstance(v, np.generic):
            v = v.item()
        if _jsonable(v):
            out[k] = list(v) if isinstance(v, tuple) else v
    return out


def _check_fitted(model: Any) -> None:
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(model)
    except NotFittedError:
        raise HwnasError(f"cannot serialize an unfitted {type(model).__name__}; fit it first") from None


# ---- trees ------------------------------------------------------------------------------------
def tree_to_dict(tree: Any) -> dict[str, Any]:
    """A fitted :class:`~sklearn.tree.DecisionTreeRegressor` as its node arrays."""
    state = tree.tree_.__getstate__()
    nodes = state["nodes"]
    return {
        "params": _params(tree),
        "n_features": int(tree.n_features_in_),
        "n_outputs": int(tree.n_outputs_),
        "max_features": int(tree.max_features_),
        "max_depth": int(state["max_depth"]),
        "node_count": int(state["node_count"]),
        "nodes": {name: nodes[name].tolist() for name in nodes.dtype.names},
        "values": np.asarray(state["values"]).tolist(),
    }


def tree_from_dict(d: dict[str, Any]) -> Any:
    from sklearn.tree import DecisionTreeRegressor
    from sklearn.tree._tree import NODE_DTYPE, Tree

    n_outputs = int(d["n_outputs"])
    est = DecisionTreeRegressor(**_ctor(DecisionTreeRegressor, d["params"]))
    tree = Tree(int(d["n_features"]), np.ones(n_outputs, dtype=np.intp), n_outputs)
    count = int(d["node_count"])
    nodes = np.zeros(count, dtype=NODE_DTYPE)
    for name in NODE_DTYPE.names:
        if name in d["nodes"]:
            nodes[name] = np.asarray(d["nodes"][name], dtype=NODE_DTYPE.fields[name][0])
    values = np.asarray(d["values"], dtype=np.float64).reshape(count, n_outputs, -1)
    tree.__setstate__({"max_depth": int(d["max_depth"]), "node_count": count, "nodes": nodes,
                       "values": np.ascontiguousarray(values)})
    est.tree_ = tree
    est.n_features_in_ = int(d["n_features"])
    est.n_outputs_ = n_outputs
    est.max_features_ = int(d["max_features"])
    return est


def _ctor(cls: Any, params: dict[str, Any]) -> dict[str, Any]:
    """Parameters ``cls`` takes (a model written by another scikit-learn may hold extra ones)."""
    allowed = set(cls().get_params(deep=False))
    out = {k: v for k, v in params.items() if k in allowed}
    if "hidden_layer_sizes" in out:
        out["hidden_layer_sizes"] = tuple(out["hidden_layer_sizes"])
    return out


# ---- models -----------------------------------------------------------------------------------
def model_to_dict(model: Any) -> dict[str, Any]:
    """A fitted regressor as a JSON-able dict (see module docstring)."""
    kind = _kind(model)
    _check_fitted(model)
    head = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind, "versions": versions()}
    if kind == "decision_tree":
        return {**head, "tree": tree_to_dict(model)}
    if kind == "random_forest":
        return {**head, "params": _params(model), "n_features": int(model.n_features_in_),
                "n_outputs": int(model.n_outputs_), "trees": [tree_to_dict(t) for t in model.estimators_]}
    if kind == "gbdt":
        if model.n_trees_per_iteration_ != 1:
            raise HwnasError("cannot serialize a GradientBoostingRegressor with several trees per stage")
        init = None if isinstance(model.init_, str) else np.asarray(model.init_.constant_).tolist()
        if init is None and model.init_ != "zero":
            raise HwnasError(f"cannot serialize a GradientBoostingRegressor with init={model.init_!r}")
        return {**head, "params": _params(model), "n_features": int(model.n_features_in_),
                "n_estimators": int(model.n_estimators_), "max_features": int(model.max_features_),
                "init_constant": init, "train_score": model.train_score_.tolist(),
                "trees": [tree_to_dict(t) for t in model.estimators_[:, 0]]}
    return {**head, "params": _params(model), "n_features": int(model.n_features_in_),
            "n_outputs": int(model.n_outputs_), "n_layers": int(model.n_layers_),
            "out_activation": model.out_activation_, "n_iter": int(model.n_iter_),
            "loss": float(model.loss_) if model.loss_ is not None else None,
            "coefs": [c.tolist() for c in model.coefs_],
            "intercepts": [b.tolist() for b in model.intercepts_]}


def model_from_dict(d: dict[str, Any], where: str = "model") -> Any:
    """The fitted estimator :func:`model_to_dict` described (``where`` names it in errors)."""
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise HwnasError(f"{where} is not a serialized scikit-learn model (no format={FORMAT!r} entry)")
    if int(d.get("format_version", 0)) > FORMAT_VERSION:
        raise HwnasError(f"{where} has model format version {d.get('format_version')}; this hwnas reads "
                         f"up to {FORMAT_VERSION}")
    kind = d.get("kind")
    if kind not in KINDS:
        raise HwnasError(f"{where} has model kind {kind!r}; allowed: {', '.join(KINDS)}")
    try:
        return _build(kind, d)
    except (KeyError, TypeError, ValueError) as exc:
        raise HwnasError(f"{where} is damaged: cannot rebuild its {kind} model ({type(exc).__name__}: "
                         f"{str(exc)[:120]})") from None


def _build(kind: str, d: dict[str, Any]) -> Any:
    from sklearn.dummy import DummyRegressor
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
    from sklearn.neural_network import MLPRegressor
    from sklearn.tree import DecisionTreeRegressor

    if kind == "decision_tree":
        return tree_from_dict(d["tree"])
    if kind == "random_forest":
        est = RandomForestRegressor(**_ctor(RandomForestRegressor, d["params"]))
        est.estimators_ = [tree_from_dict(t) for t in d["trees"]]
        est.estimator_ = DecisionTreeRegressor()
        est.n_features_in_ = int(d["n_features"])
        est.n_outputs_ = int(d["n_outputs"])
        return est
    if kind == "gbdt":
        est = GradientBoostingRegressor(**_ctor(GradientBoostingRegressor, d["params"]))
        trees = [tree_from_dict(t) for t in d["trees"]]
        est.estimators_ = np.empty((len(trees), 1), dtype=object)
        for i, t in enumerate(trees):
            est.estimators_[i, 0] = t
        est.n_estimators_ = int(d["n_estimators"])
        est.n_features_in_ = int(d["n_features"])
        est.max_features_ = int(d["max_features"])
        est.n_trees_per_iteration_ = 1
        est.train_score_ = np.asarray(d["train_score"], dtype=np.float64)
        if d["init_constant"] is None:
            est.init_ = "zero"
        else:
            init = DummyRegressor()
            init.constant_ = np.asarray(d["init_constant"], dtype=np.float64).reshape(1, -1)
            init.n_outputs_ = 1
            init.n_features_in_ = est.n_features_in_
            est.init_ = init
        est._loss = est._get_loss(sample_weight=None)
        return est
    est = MLPRegressor(**_ctor(MLPRegressor, d["params"]))
    est.coefs_ = [np.asarray(c, dtype=np.float64) for c in d["coefs"]]
    est.intercepts_ = [np.asarray(b, dtype=np.float64) for b in d["intercepts"]]
    est.n_features_in_ = int(d["n_features"])
    est.n_outputs_ = int(d["n_outputs"])
    est.n_layers_ = int(d["n_layers"])
    est.out_activation_ = str(d["out_activation"])
    est.n_iter_ = int(d["n_iter"])
    est.loss_ = d.get("loss")
    return est


def save_model(path: str | Path, model: Any, **meta: Any) -> Path:
    """Write ``model`` (plus ``meta`` entries) to a JSON file atomically."""
    from hwnas.io import atomic_write_text

    d = model_to_dict(model)
    clash = set(meta) & set(d)
    if clash:
        raise ValueError(f"meta keys clash with model keys: {sorted(clash)}")
    return atomic_write_text(path, json.dumps({**d, **meta}) + "\n")


def load_model(path: str | Path) -> Any:
    """The fitted estimator stored in ``path`` by :func:`save_model`."""
    d = read_json(path, "model file")
    return model_from_dict(d, where=f"model file {path}")
