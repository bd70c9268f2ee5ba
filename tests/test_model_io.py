"""scikit-learn regressors round-trip through JSON (no pickles) with bit-identical predictions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwnas.errors import HwnasError
from hwnas.learn.serialize import load_model, model_from_dict, model_to_dict, save_model


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 2, size=(120, 15)).astype(np.float64)
    y = X @ rng.normal(size=15) + 0.1 * rng.normal(size=120)
    return X, y, rng.integers(0, 2, size=(50, 15)).astype(np.float64)


def _models():
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
    from sklearn.neural_network import MLPRegressor
    from sklearn.tree import DecisionTreeRegressor

    return [GradientBoostingRegressor(n_estimators=20, learning_rate=0.05, subsample=0.8, random_state=0),
            GradientBoostingRegressor(n_estimators=5, loss="huber", max_depth=2, random_state=0),
            RandomForestRegressor(n_estimators=6, max_depth=5, random_state=0),
            DecisionTreeRegressor(max_depth=4, random_state=0),
            MLPRegressor(hidden_layer_sizes=(16, 8), max_iter=300, random_state=0)]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("i", range(5))
def test_round_trip_is_exact(i, data, tmp_path):
    X, y, Xt = data
    model = _models()[i].fit(X, y)
    d = model_to_dict(model)
    text = json.dumps(d)
    assert "pickle" not in text
    back = model_from_dict(json.loads(text))
    assert type(back) is type(model)
    assert np.array_equal(back.predict(Xt), model.predict(Xt))  # bit-identical
    path = save_model(tmp_path / "m.json", model, note="x")
    assert json.loads(path.read_text())["note"] == "x"
    assert np.array_equal(load_model(path).predict(Xt), model.predict(Xt))
    assert d["versions"]["sklearn"]


def test_errors(data, tmp_path):
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.linear_model import LinearRegression

    X, y, _ = data
    with pytest.raises(HwnasError, match="unfitted GradientBoostingRegressor"):
        model_to_dict(GradientBoostingRegressor())
    with pytest.raises(HwnasError, match="cannot serialize a LinearRegression"):
        model_to_dict(LinearRegression().fit(X, y))
    d = model_to_dict(GradientBoostingRegressor(n_estimators=2).fit(X, y))
    with pytest.raises(HwnasError, match="format version 99"):
        model_from_dict({**d, "format_version": 99})
    with pytest.raises(HwnasError, match="model kind 'svm'"):
        model_from_dict({**d, "kind": "svm"})
    with pytest.raises(HwnasError, match="damaged"):
        model_from_dict({k: v for k, v in d.items() if k != "trees"})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(HwnasError, match="model file .* is not valid JSON"):
        load_model(bad)
    with pytest.raises(HwnasError, match="does not exist"):
        load_model(tmp_path / "none.json")
