import dataclasses

import numpy as np
import pytest

from conftest import SPACE_NAMES, tiny_space
from hwnas.errors import HwnasError
from hwnas.spaces import create_space, space_from_config, space_names
from hwnas.spaces.mbv2 import MBLayer


def test_registry_lists_builtin_spaces():
    assert set(SPACE_NAMES) <= set(space_names())


def test_unknown_space_lists_known_ones():
    with pytest.raises(HwnasError, match=r"unknown search space 'nope'.*mbv2.*shufflenetv2"):
        create_space("nope")


@pytest.mark.parametrize("kw,match", [({"width": 0}, "width"), ({"resolution": 4}, "resolution"),
                                      ({"num_classes": 0}, "num_classes"), ({"depth": 3}, "bad settings")])
def test_bad_space_settings(kw, match):
    with pytest.raises(HwnasError, match=match):
        create_space("mbv2", **kw)


def test_mbv2_exact_size_and_identity_placement():
    s = create_space("mbv2")
    assert len(s.choices) == 21
    # identity is impossible in the first layer of each of the 6 stages (shape changes)
    assert [i for i, c in enumerate(s.choices) if c == 6] == [0, 4, 8, 12, 16, 20]
    assert s.size() == 6**6 * 7**15
    assert s.paper_size() == 7**21  # the figure GreedyNAS quotes
    assert s.gene_labels(1)[-1] == "skip" and "skip" not in s.gene_labels(0)


def test_mbv2_se_exact_size():
    s = create_space("mbv2-se")
    assert sorted(set(s.choices)) == [12, 13]
    assert s.size() == 12**6 * 13**15
    assert s.paper_size() == 13**21


def test_shufflenetv2_exact_size():
    s = create_space("shufflenetv2")
    assert len(s.groups) == 20 and s.num_genes == 40
    assert s.size() == 4**20 * 8**20
    assert s.gene_labels(0) == ("choice_3", "choice_5", "choice_7", "choice_x")
    assert s.gene_labels(1)[0] == "0.2x" and s.gene_labels(1)[-1] == "1.6x"


def test_shufflenetv2_mid_channels_follow_spos():
    s = create_space("shufflenetv2")
    # SPOS: base mid = out // 2, scaled 0.2x .. 1.6x; stage 1 has 64 channels -> base 32
    assert [s.mid_channels(0, j) for j in range(8)] == [6, 12, 19, 25, 32, 38, 44, 51]


def test_macro_structure_at_224():
    s = create_space("mbv2")
    ops = s.layers(s.largest())
    assert ops[0].out_shape == (32, 112, 112)
    assert ops[1].out_shape == (16, 112, 112)
    assert ops[-3].out_shape == (1280, 7, 7)
    assert ops[-1].out_shape == (1000, 1, 1)
    sh = create_space("shufflenetv2")
    ops = sh.layers(sh.largest())
    assert ops[0].out_shape == (16, 112, 112)
    assert [o.out_shape for o in ops if o.op.startswith("shuffle") and o.stride == 2] == [
        (64, 56, 56), (160, 28, 28), (320, 14, 14), (640, 7, 7)]


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_decode_encode_roundtrip_and_shapes_chain(name, rng):
    s = tiny_space(name)
    for _ in range(50):
        g = s.sample(rng)
        assert s.encode(s.decode(g)) == g
        ops = s.layers(g)
        for a, b in zip(ops, ops[1:]):
            assert a.out_shape == b.in_shape or (a.op == "gap" and a.out_shape[0] == b.in_shape[0])


def test_identity_layers_are_dropped_from_ops():
    s = create_space("mbv2")
    g = list(s.largest())
    g[1] = 6  # skip
    cfg = s.decode(g)
    assert cfg.layers[1] == MBLayer(0, 0)
    assert len(s.layers(g)) == len(s.layers(s.largest())) - 1


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_gene_validation_messages(name):
    s = tiny_space(name)
    with pytest.raises(HwnasError, match=rf"takes {s.num_genes} genes, got 3"):
        s.validate([0, 0, 0])
    bad = list(s.smallest())
    bad[2] = s.choices[2]
    with pytest.raises(HwnasError, match=rf"gene 2 .* is {s.choices[2]}; allowed range is 0..{s.choices[2] - 1}"):
        s.validate(bad)
    bad[2] = -1
    with pytest.raises(HwnasError, match="gene 2"):
        s.layers(bad)


def test_encode_rejects_identity_where_shape_changes():
    s = create_space("mbv2")
    cfg = s.decode(s.largest())
    layers = list(cfg.layers)
    layers[0] = MBLayer(0, 0)
    with pytest.raises(HwnasError, match="layer 0 .* cannot be skip"):
        s.encode(dataclasses.replace(cfg, layers=tuple(layers)))


def test_sampling_is_seeded_and_uniform(rng):
    s = create_space("mbv2")
    a = s.sample_many(np.random.default_rng(7), 5)
    b = s.sample_many(np.random.default_rng(7), 5)
    assert (a == b).all()
    many = s.sample_many(rng, 14000)
    counts = np.bincount(many[:, 1], minlength=7)
    assert counts.min() > 1800 and counts.max() < 2200  # ~2000 each


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_smallest_and_largest_bound_random_archs(name, rng):
    from hwnas.cost import CostModel

    s = tiny_space(name)
    cm = CostModel(s)
    samples = s.sample_many(rng, 500)
    macs = cm(samples)["macs"]
    lo = cm(np.array([s.smallest()]))["macs"][0]
    hi = cm(np.array([s.largest()]))["macs"][0]
    assert lo <= macs.min() and hi >= macs.max() and lo < hi


def test_width_resolution_classes_scale_the_space():
    small = create_space("mbv2", width=0.5, resolution=64, num_classes=10)
    big = create_space("mbv2")
    g = big.largest()
    assert small.layers(g)[0].in_shape == (3, 64, 64)
    assert small.layers(g)[-1].out_shape == (10, 1, 1)
    assert small.layers(g)[0].out_shape[0] == 16
    assert space_from_config(small.config()) == small
    assert small.layers(g, resolution=96)[0].in_shape == (3, 96, 96)
