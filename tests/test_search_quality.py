"""The search against exhaustive enumeration of mbv2's first six layers (86,436 architectures)."""

import numpy as np
import pytest

from hwnas.search.quality import constrained_quality, hypervolume_ratio, search_quality


def test_hypervolume_ratio_is_one_for_the_front_itself_and_less_for_a_subset():
    front = np.array([[0.0, 1.0], [0.5, 0.4], [1.0, 0.0]])
    hv, ref = hypervolume_ratio(front, front)
    assert hv == pytest.approx(ref) and ref > 0
    hv_sub, _ = hypervolume_ratio(front[[0, 2]], front)
    assert hv_sub < ref


@pytest.mark.parametrize("seed", [0, 1])
def test_nsga2_front_reaches_95_percent_of_the_exhaustive_hypervolume(seed):
    r = search_quality(seed)  # NSGA-II, pop 50 x 20 generations = 1000 evaluations
    assert r.space_size == 6 * 7**3 * 6 * 7 and r.n_evaluated == 1000
    assert len(r.exhaustive_front) >= 20  # a real trade-off, not a single best point
    assert r.hv_ratio >= 0.95, r.hv_ratio


def test_nsga2_beats_random_search_with_the_same_budget():
    assert search_quality(0).hv_ratio > search_quality(0, algorithm="random").hv_ratio


def test_evolution_finds_a_near_optimal_architecture_under_a_macs_budget():
    r = constrained_quality(0, algorithm="evolution")
    assert r.found <= r.optimum + 0.5 and r.top_fraction <= 1e-3, (r.found, r.optimum, r.n_better)
