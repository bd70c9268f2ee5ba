"""Categorical operators: genes stay in range, mutation hits p of the genes and is uniform over the
*other* options, crossover keeps gene groups together, sampling is unique, seeded and budget-aware."""

import numpy as np
import pytest
from pymoo.core.population import Population
from scipy import stats

from conftest import tiny_space
from hwnas.cost import CostModel
from hwnas.search.objectives import macs_objective
from hwnas.search.operators import (
    CategoricalMutation,
    CategoricalSampling,
    GenesDuplicateElimination,
    UniformGroupCrossover,
    sample_unique,
)
from hwnas.search.problem import ArchProblem


def problem_for(name="mbv2", budget=None):
    s = tiny_space(name)
    cm = CostModel(s)
    return ArchProblem(s, [macs_objective(cm, budget)], cost_model=cm)


def test_mutation_rate_range_and_uniform_over_other_choices():
    p = problem_for("mbv2")
    choices = np.asarray(p.space.choices)
    rng = np.random.default_rng(0)
    X = p.space.sample_many(rng, 20000)
    Y = CategoricalMutation(prob_var=0.1)._do(p, X, random_state=rng)
    assert Y.dtype.kind == "i" and (Y >= 0).all() and (Y < choices).all()
    changed = Y != X
    assert abs(changed.mean() - 0.1) < 0.005  # every mutated gene really changes
    # a 7-option gene from option 0 goes to each of the 6 others with probability 1/6
    col = int(np.flatnonzero(choices == 7)[0])
    X0 = np.zeros((60000, p.n_var), dtype=np.int64)
    Y0 = CategoricalMutation(prob_var=0.5)._do(p, X0, random_state=rng)[:, col]
    moved = Y0[Y0 != 0]
    counts = np.bincount(moved, minlength=7)[1:]
    assert counts.min() > 0 and stats.chisquare(counts).pvalue > 1e-3


def test_mutation_never_touches_single_option_genes():
    from hwnas.search.operators import mutate_genes

    rng = np.random.default_rng(1)
    choices = np.array([1, 2, 5])
    Y = mutate_genes(rng, np.zeros((5000, 3), dtype=np.int64), choices, 1.0)
    assert (Y[:, 0] == 0).all() and (Y[:, 1] == 1).all() and (Y[:, 2] > 0).all()


def test_crossover_takes_each_group_from_a_parent_and_children_are_complementary():
    p = problem_for("shufflenetv2")  # genes come in (block, scale) pairs per group
    rng = np.random.default_rng(2)
    a, b = p.space.sample_many(rng, 500), p.space.sample_many(rng, 500)
    c1, c2 = UniformGroupCrossover()._do(p, np.stack([a, b]), random_state=rng)
    assert ((c1 == a) | (c1 == b)).all() and ((c2 == a) | (c2 == b)).all()
    assert ((c1 == a) == (c2 == b)).all()
    from_a = (c1 == a) & (a != b)
    for grp in p.space.groups:  # both genes of a block come from the same parent
        i, j = grp.genes
        both_differ = (a[:, i] != b[:, i]) & (a[:, j] != b[:, j])
        assert (from_a[both_differ, i] == from_a[both_differ, j]).all()
    share = from_a[a != b].mean()
    assert 0.45 < share < 0.55


def test_sampling_is_seeded_unique_in_range_and_starts_from_initial():
    p = problem_for("mbv2")
    init = p.space.sample_many(np.random.default_rng(3), 5)
    init = np.vstack([init, init[:2]])  # duplicates are dropped
    X1 = CategoricalSampling(init)._do(p, 50, random_state=np.random.default_rng(4))
    X2 = CategoricalSampling(init)._do(p, 50, random_state=np.random.default_rng(4))
    assert np.array_equal(X1, X2) and X1.shape == (50, p.n_var)
    assert len(np.unique(X1, axis=0)) == 50
    assert np.array_equal(X1[:5], init[:5])
    assert (X1 < np.asarray(p.space.choices)).all() and (X1 >= 0).all()


def test_sampling_ditches_budget_violators_when_it_can():
    loose = problem_for("mbv2")
    macs = loose.cost_model(loose.space.sample_many(np.random.default_rng(5), 2000))["macs"]
    budget = float(np.quantile(macs, 0.2))
    p = problem_for("mbv2", budget)
    bad = loose.space.largest()
    X = sample_unique(p, np.random.default_rng(6), 40, initial=np.array([bad]))
    assert len(X) == 40 and p.cheap_feasible(X).all()
    assert not any(np.array_equal(r, bad) for r in X)


def test_duplicate_elimination_against_population_and_history():
    p = problem_for("mbv2")
    X = p.space.sample_many(np.random.default_rng(7), 6)
    p.evaluate(X[:2])  # architectures 0 and 1 are in the history now
    off = Population.new("X", np.vstack([X, X[3:4]]))
    pop = Population.new("X", X[2:3])
    kept = GenesDuplicateElimination(p.history).do(off, pop).get("X")
    assert np.array_equal(kept, X[3:])


@pytest.mark.parametrize("name", ["mbv2", "shufflenetv2"])
def test_operators_in_nsga2_keep_genes_valid(name):
    from hwnas.search.run import run_search

    p = problem_for(name)
    run_search(p, "nsga2", pop=10, gens=3, seed=0, progress=False)
    p.space.validate_matrix(p.history.genes)  # raises on any out-of-range gene
    assert len(np.unique(p.history.genes, axis=0)) == len(p.history) == 30
