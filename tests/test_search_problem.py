"""ArchProblem: F and G against direct cost-model calls, the evaluation memo / history, expensive
objectives only on feasible rows, exact metric minima, and the problem built from metric names."""

from types import SimpleNamespace

import numpy as np
import pytest

from conftest import tiny_space
from hwnas.cost import CostModel
from hwnas.errors import HwnasError
from hwnas.search.objectives import (
    Objective,
    bitops_objective,
    error_objective,
    latency_objective,
    macs_objective,
    metric_minimum,
    params_objective,
)
from hwnas.search.problem import ArchProblem, problem_from_names
from hwnas.search.quality import SubSpace, reduced_mbv2, synthetic_latency_predictor


@pytest.mark.parametrize("name", ["mbv2", "mbv2-se", "shufflenetv2"])
def test_F_and_G_match_the_cost_model(name):
    s = tiny_space(name)
    cm = CostModel(s)
    X = s.sample_many(np.random.default_rng(0), 64)
    c = CostModel(s)(X)
    macs_budget = float(np.median(c["macs"]))
    p = ArchProblem(s, [macs_objective(cm, macs_budget), params_objective(cm)],
                    [bitops_objective(cm, float(np.quantile(c["bitops"], 0.7)))], cost_model=cm)
    assert p.n_var == s.num_genes and p.n_obj == 2 and p.n_ieq_constr == 2
    assert (p.xl == 0).all() and np.array_equal(p.xu, np.asarray(s.choices) - 1) and p.vtype is int
    F, G = p.evaluate(X, return_values_of=["F", "G"])
    assert np.array_equal(F[:, 0], c["macs"]) and np.array_equal(F[:, 1], c["params"])
    assert np.allclose(G[:, 0], c["macs"] / macs_budget - 1)
    feasible = (c["macs"] <= macs_budget) & (c["bitops"] <= np.quantile(c["bitops"], 0.7))
    assert np.array_equal((G <= 0).all(axis=1), feasible)
    assert np.array_equal(p.history.feasible, feasible)
    assert set(p.history.columns) >= {"macs", "params", "bitops", "flops", "peak_act_bytes"}
    assert np.array_equal(p.history.column("flops"), c["flops"])


def test_history_memoises_each_architecture_once():
    s = tiny_space("mbv2")
    calls = []

    def counted(X):
        calls.append(len(X))
        return np.asarray(X).sum(axis=1).astype(float)

    p = ArchProblem(s, [Objective("score", "", counted)])
    X = s.sample_many(np.random.default_rng(1), 10)
    p.evaluate(np.vstack([X, X[:3]]))
    F = p.evaluate(X[::-1])
    assert calls == [10] and len(p.history) == 10
    assert np.array_equal(F[:, 0], X[::-1].sum(axis=1))


def test_expensive_objective_runs_only_on_feasible_uncached_rows():
    s = tiny_space("mbv2")
    cm = CostModel(s)
    seen = []

    class Evaluator:  # the SubnetEvaluator interface: many(genes_list) -> results with .top1
        def many(self, genes_list):
            seen.extend(genes_list)
            return [SimpleNamespace(top1=0.5 + g[0] / 100) for g in genes_list]

    X = s.sample_many(np.random.default_rng(2), 40)
    macs = cm(X)["macs"]
    budget = float(np.median(macs))
    err = error_objective(Evaluator())
    p = ArchProblem(s, [err, macs_objective(cm, budget)], cost_model=cm)
    F = p.evaluate(X, return_values_of=["F"])
    ok = macs <= budget
    assert len(seen) == ok.sum() and {tuple(r) for r in X[ok]} == set(seen)
    assert np.allclose(F[ok, 0], 50.0 - X[ok, 0]) and (F[~ok, 0] == 100.0).all()
    # a new problem sharing the objective re-uses its per-genes cache
    ArchProblem(s, [err, macs_objective(cm, budget)], cost_model=cm).evaluate(X)
    assert len(seen) == ok.sum() and err.fn.n_evaluated == ok.sum()


def test_missing_evaluator_module_is_a_clear_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "hwnas.train.evaluate", None)  # as if not installed
    obj = error_objective(supernet=object(), eval_batches=[], calib_batches=[])
    with pytest.raises(HwnasError, match="hwnas.train.evaluate"):
        obj(np.zeros((1, 21), dtype=np.int64))


@pytest.mark.parametrize("metric", ["macs", "params", "latency"])
def test_metric_minimum_is_exact(metric):
    space = reduced_mbv2(4, width=0.25, resolution=32, num_classes=10)
    cm = CostModel(space)
    obj = {"macs": macs_objective(cm), "params": params_objective(cm),
           "latency": latency_objective(synthetic_latency_predictor(space, seed=3))}[metric]
    low, genes = metric_minimum(obj, space)
    values = obj(space.all_genes())
    assert low == pytest.approx(values.min()) and obj(np.array([genes]))[0] == pytest.approx(low)


def test_subspace_keeps_the_space_contract():
    parent = tiny_space("mbv2")
    sub = SubSpace.of(parent, [0, 2], parent.largest())
    assert sub.choices == (parent.choices[0], parent.choices[2]) and sub.size() == 42
    X = sub.all_genes()
    assert np.array_equal(CostModel(sub)(X)["macs"], CostModel(parent)(np.array([sub.expand(g) for g in X]))["macs"])
    assert [r["block"] for r in sub.describe((1, 2))] == ["layer0", "layer2"]
    assert sub.decode((1, 2)) == parent.decode(sub.expand((1, 2)))


def test_problem_from_names_maps_budgets_to_objectives_and_constraints():
    s = tiny_space("mbv2")
    pred = synthetic_latency_predictor(s)
    p = problem_from_names(s, ["latency", "macs"], {"latency": 3.0, "params": 2e5, "bitops": None},
                           latency=pred)
    assert [o.name for o in p.objectives] == ["latency", "macs"]
    assert [o.name for o in p.constraints] == ["params"]
    assert [(o.name, o.budget) for o in p.budgeted] == [("latency", 3.0), ("params", 2e5)]
    X = s.sample_many(np.random.default_rng(4), 8)
    assert np.allclose(p.evaluate(X, return_values_of=["F"])[:, 0], pred(X))
    with pytest.raises(HwnasError, match="--device"):
        problem_from_names(s, ["latency"])
    with pytest.raises(HwnasError, match="--checkpoint"):
        problem_from_names(s, ["error", "macs"])
    with pytest.raises(HwnasError, match="unknown metric"):
        problem_from_names(s, ["speed"])
    with pytest.raises(HwnasError, match="twice"):
        ArchProblem(s, [macs_objective(CostModel(s)), macs_objective(CostModel(s))])


def test_error_objective_with_the_real_subnet_evaluator():
    import torch

    from hwnas.supernet import build_supernet
    from hwnas.train.evaluate import SubnetEvaluator, evaluate_subnet

    s = tiny_space("mbv2")
    cm = CostModel(s)
    net = build_supernet(s).eval()
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(8, 3, 32, 32, generator=g), torch.randint(0, 10, (8,), generator=g))
               for _ in range(2)]
    evaluator = SubnetEvaluator(net, batches[:1], batches[1:], "cpu")
    X = s.sample_many(np.random.default_rng(5), 4)
    budget = float(np.median(cm(X)["macs"]))
    p = ArchProblem(s, [error_objective(evaluator), macs_objective(cm, budget)], cost_model=cm)
    F = p.evaluate(X, return_values_of=["F"])
    ok = p.history.feasible
    assert evaluator.evaluations == ok.sum() == 2 and (F[~ok, 0] == 100.0).all()
    for row, f in zip(X[ok], F[ok, 0]):
        expected = 100.0 * (1.0 - evaluate_subnet(net, tuple(row), batches[:1], batches[1:]).top1)
        assert f == pytest.approx(expected)


def test_latency_hook_without_the_latency_package_is_a_clear_error(monkeypatch):
    import sys

    from hwnas.search.objectives import load_latency_predictor

    monkeypatch.setitem(sys.modules, "hwnas.latency.predict", None)  # as if not installed
    with pytest.raises(HwnasError, match="no latency table support installed"):
        load_latency_predictor("s22", tiny_space("mbv2"), "tflite")
