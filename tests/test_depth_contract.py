"""The elastic-depth extension of the space contract, on a toy space small enough to enumerate."""

import itertools
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

from hwnas.cost import CostModel, op_costs
from hwnas.errors import HwnasError
from hwnas.spaces.base import GeneGroup, OpSpec, SearchSpace, conv_out


@dataclass(frozen=True)
class ToyDepthSpace(SearchSpace):
    """Stem, two stages of up to 3 MBConv layers (depth {1, 2, 3}, kernel {3, 5} per layer), head."""

    name: ClassVar[str] = "toy-depth"
    resolution: int = 16
    num_classes: int = 3

    # genes: [depth0, k00, k01, k02, depth1, k10, k11, k12]
    @property
    def choices(self):
        return (3, 2, 2, 2, 3, 2, 2, 2)

    @property
    def groups(self):
        out = []
        for s in range(2):
            d = 4 * s
            for p in range(3):
                gate = None if p == 0 else (d, p)
                genes = (d + 1 + p,) if gate is None else (d, d + 1 + p)
                out.append(GeneGroup(f"s{s}.l{p}", genes, gate))
        return tuple(out)

    def gene_labels(self, index):
        return ("d1", "d2", "d3") if index % 4 == 0 else ("k3", "k5")

    def decode(self, genes):
        return self.validate(genes)

    def encode(self, cfg):
        return tuple(cfg)

    def _layers(self, genes, resolution):
        h = conv_out(resolution, 3, 2)
        ops = [OpSpec("conv", (3, resolution, resolution), (8, h, h), kernel=3, stride=2)]
        c = 8
        for s, out_c in enumerate((8, 16)):
            depth = genes[4 * s] + 1
            for p in range(depth):
                k = (3, 5)[genes[4 * s + 1 + p]]
                stride = 2 if p == 0 and s == 1 else 1
                ho = conv_out(h, k, stride)
                ops.append(OpSpec("mbconv", (c, h, h), (out_c, ho, ho), kernel=k, stride=stride,
                                  mid=3 * c, expand=3, groups=3 * c, block=3 * s + p))
                c, h = out_c, ho
        ops.append(OpSpec("gap", (c, h, h), (c, 1, 1), act="none"))
        ops.append(OpSpec("linear", (c, 1, 1), (self.num_classes, 1, 1), act="none", bias=True))
        return ops


@pytest.fixture(scope="module")
def toy():
    s = ToyDepthSpace()
    every = np.array(list(itertools.product(*(range(c) for c in s.choices))))
    return s, every


def test_size_counts_distinct_subnets(toy):
    s, every = toy
    distinct = {tuple(s.layers(g)) for g in every}
    assert s.size() == len(distinct) == (2 + 4 + 8) ** 2
    assert s.genotype_count() == len(every) == 3 * 8 * 3 * 8
    canon = {s.canonical(g) for g in every}
    assert len(canon) == len(distinct)
    assert (s.canonical_matrix(every) == np.array([s.canonical(g) for g in every])).all()
    assert all(s.layers(g) == s.layers(s.canonical(g)) for g in every[::7])


def test_block_tables_and_costs_are_exact_with_shared_depth_genes(toy):
    s, every = toy
    assert s.shared_genes() == (0, 4)
    fn = lambda op: float(op.out_shape[0] * op.kernel + op.in_shape[1])  # noqa: E731
    table = s.block_table(fn).gather(s.group_index(every))
    assert table == pytest.approx([sum(fn(op) for op in s.layers(g)) for g in every])
    macs = CostModel(s)(every)["macs"]
    assert list(macs) == [sum(op_costs(op).macs for op in s.layers(g)) for g in every]
    # layers past the depth are off: no ops, and described as such
    g = (0, 1, 1, 1, 2, 0, 1, 0)
    assert [op.block for op in s.layers(g) if op.block >= 0] == [0, 3, 4, 5]
    assert [r["choice"] for r in s.describe(g)][:3] == ["k5", "off (depth)", "off (depth)"]
    assert s.gene_name(0) == "depth0" and s.gene_name(2) == "s0.l1.1"


def test_smallest_largest_and_joint_minimum_are_exact(toy):
    s, every = toy
    macs = CostModel(s)(every)["macs"]
    cm = CostModel(s)
    assert cm(np.array([s.smallest()]))["macs"][0] == macs.min()
    assert cm(np.array([s.largest()]))["macs"][0] == macs.max()
    assert s.largest()[0] == 2 and s.largest()[4] == 2  # deepest stages
    # a block-additive score whose best depth is not the per-block choice: layer 0 cheap, deep
    # layers rewarded only when both run
    rng = np.random.default_rng(0)
    w = {op: rng.normal() for g in every for op in s.layers(g)}
    tab = s.block_table(lambda op: w[op])
    f = lambda m: tab.gather(s.group_index(m))  # noqa: E731
    best = s.minimize_additive(f)
    assert f(np.array([best]))[0] == pytest.approx(f(every).min())


def test_genes_from_options_refuses_options_that_disagree_on_the_depth(toy):
    s, every = toy
    idx = s.group_index(every[::5])
    rebuilt = np.array([s.genes_from_options(r) for r in idx])
    assert (s.group_index(rebuilt) == idx).all()
    opts = [0] * len(s.groups)
    opts[1] = 2  # layer 1 of stage 0 with depth value 1 (runs) ...
    opts[2] = 0  # ... layer 2 with depth value 0
    with pytest.raises(HwnasError, match=r"options disagree on shared gene 0 \(depth0\).*s0.l1.*s0.l2"):
        s.genes_from_options(opts)


def test_gate_gene_must_belong_to_the_group():
    with pytest.raises(ValueError, match="gate gene 3 is not one of its genes"):
        GeneGroup("x", (1, 2), gate=(3, 1))


def test_metric_minimum_of_a_budgeted_metric_is_the_exact_minimum(toy):
    from hwnas.search.objectives import macs_objective, metric_minimum

    s, every = toy
    value, genes = metric_minimum(macs_objective(CostModel(s)), s)
    assert value == CostModel(s)(every)["macs"].min()
    assert CostModel(s)(np.array([genes]))["macs"][0] == value
