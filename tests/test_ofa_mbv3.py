"""``ofa-mbv3`` (Once-for-All MobileNetV3, SparseNAS Table 2): exact size next to OFA's figure, the
macro-structure at 224 px (w1.0 and w1.2), MACs against torch at 224, elastic depth through the
depth contract, OFA's kernel transformation matrices (materialized subnet = supernet path), export."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from conftest import run_cli
from hwnas.cost import CostModel, arch_costs
from hwnas.errors import HwnasError
from hwnas.nn.blocks import set_kernel_crop
from hwnas.spaces import create_space
from hwnas.spaces.ofa_mbv3 import OFAConfig
from hwnas.supernet import Subnet, build_supernet, materialize


def tiny(**kw):
    return create_space("ofa-mbv3", **{"width": 0.25, "resolution": 32, "num_classes": 10, **kw})


def test_exact_size_equals_ofas_count():
    s = create_space("ofa-mbv3")
    # OFA Sec. 3.3 / SparseNAS Table 2: ((3 x 3)^2 + (3 x 3)^3 + (3 x 3)^4)^5 ~ 2 x 10^19
    assert s.paper_size() == ((3 * 3) ** 2 + (3 * 3) ** 3 + (3 * 3) ** 4) ** 5 == 7371 ** 5
    assert s.size() == s.paper_size() == 21_758_655_492_572_485_851
    assert f"{s.size():.2e}" == "2.18e+19"
    assert s.num_genes == 45 and len(s.groups) == 20
    assert s.genotype_count() == 3 ** 5 * 9 ** 20 > s.size()
    assert s.shared_genes() == s.depth_genes == (0, 9, 18, 27, 36)
    assert len(s.kernel_genes) == len(s.expand_genes) == 20


def test_every_option_of_a_running_layer_is_a_distinct_subnet():
    # size() counts (kernel, expand) pairs as distinct: check it at the test width, where the
    # channel rounding is coarsest (8-channel stages)
    s = tiny()
    own_of: dict = {}
    for o in s.block_options():
        if o.ops:
            own = tuple(o.genes[i] for i in s.groups[o.block].own_genes)
            assert own_of.setdefault(o.ops, own) == own
    assert len(own_of) == 20 * 9
    assert s.size() == 7371 ** 5


def test_hwnas_spaces_lists_the_exact_size(capsys):
    code, out, _ = run_cli(["spaces", "--json"], capsys)
    row = next(r for r in json.loads(out) if r["name"] == "ofa-mbv3")
    assert code == 0 and row["size"] == row["paper_size"] == "21758655492572485851"
    assert row["blocks"] == 20 and row["genes"] == 45 and "2e19" in row["paper"]


def test_macro_structure_at_224_follows_ofa():
    s = create_space("ofa-mbv3")
    ops = s.layers(s.largest())
    assert (ops[0].op, ops[0].out_shape, ops[0].act) == ("conv", (16, 112, 112), "hswish")
    first = ops[1]
    assert (first.op, first.out_shape, first.kernel, first.expand, first.se, first.act, first.block) == (
        "mbconv3", (16, 112, 112), 3, 1, False, "relu", -1)
    blocks = [o for o in ops if o.block >= 0]
    assert len(blocks) == 20 and all(o.kernel == 7 and o.expand == 6 for o in blocks)
    heads = [blocks[4 * s_] for s_ in range(5)]
    assert [o.out_shape for o in heads] == [(24, 56, 56), (40, 28, 28), (80, 14, 14), (112, 14, 14),
                                            (160, 7, 7)]
    assert [o.stride for o in heads] == [2, 2, 2, 1, 2]
    assert [o.se for o in heads] == [False, True, False, True, True]  # MobileNetV3-Large
    assert [o.act for o in heads] == ["relu", "relu", "hswish", "hswish", "hswish"]
    assert [o.mid for o in blocks[:2]] == [96, 144]  # in x 6: 16 x 6, 24 x 6
    tail = [(o.op, o.out_shape, o.act, o.bias) for o in ops[-4:]]
    assert tail == [("conv", (960, 7, 7), "hswish", False), ("gap", (960, 1, 1), "none", False),
                    ("linear", (1280, 1, 1), "hswish", False), ("linear", (1000, 1, 1), "none", True)]
    assert s.decode(s.smallest()) == OFAConfig((2,) * 5, ((3, 3),) * 5, ((3, 3),) * 5)
    # OFA's released w1.2 supernet: stem 24, head 1152 / 1536
    w12 = create_space("ofa-mbv3", width=1.2)
    ops = w12.layers(w12.largest())
    assert ops[0].out_shape[0] == ops[1].out_shape[0] == 24
    assert [o.out_shape[0] for o in ops[-4:-1]] == [1152, 1152, 1536]
    assert [o.out_shape[0] for o in ops if o.block >= 0][::4] == [32, 48, 96, 136, 192]


def test_macs_at_224_against_torch_and_the_sparsenas_span():
    """MACs as Once-for-All's counter counts them (conv cin x k^2 x output elements / groups,
    linear in x out; BN, activations, SE scaling not counted), equal to torch's FlopCounterMode
    at 224 px. SparseNAS samples its sparse set between 150M and 500M MACs (Sec. 5.3): inside the
    span of the w1.0 space."""
    s = create_space("ofa-mbv3")
    got = {}
    for name, g in (("smallest", s.smallest()), ("largest", s.largest())):
        net = set_kernel_crop(Subnet(s, g).eval(), False)
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            net(torch.zeros(1, 3, 224, 224))
        c = arch_costs(s, g)
        assert fc.get_total_flops() == 2 * c.macs and sum(p.numel() for p in net.parameters()) == c.params
        got[name] = c.macs
    assert got == {"smallest": 121_278_672, "largest": 566_170_656}
    assert got["smallest"] < 150e6 < 500e6 < got["largest"]
    w12 = create_space("ofa-mbv3", width=1.2)
    macs = CostModel(w12)(np.array([w12.smallest(), w12.largest()]))["macs"]
    assert 1.4 < macs[1] / got["largest"] < 1.6


def test_params_span_holds_ofas_specialized_subnets():
    """OFA's model zoo lists its specialized subnets with params (resolution-independent): the
    FLOPs-targeted 'flops@595M' (9.1M params) exceeds every w1.0 subnet, so it is a w1.2 subnet,
    and fits the w1.2 span; the LG-G8 24 ms subnet (5.8M params, 230M MACs) fits the w1.0 span."""
    spans = {}
    for w in (1.0, 1.2):
        s = create_space("ofa-mbv3", width=w)
        p = CostModel(s)(np.array([s.smallest(), s.largest()]))["params"]
        spans[w] = (p[0] / 1e6, p[1] / 1e6)
    assert spans[1.0] == pytest.approx((3.410792, 7.66476)) and spans[1.2] == pytest.approx((4.602456, 10.701632))
    assert spans[1.0][1] < 9.1 < spans[1.2][1]
    assert spans[1.0][0] < 5.8 < spans[1.0][1]


def test_encode_decode_and_errors():
    s = create_space("ofa-mbv3")
    cfg = OFAConfig((2, 3, 4, 2, 3), ((3, 5), (7, 7, 3), (5, 5, 5, 5), (3, 3), (7, 5, 3)),
                    ((3, 4), (6, 6, 3), (4, 4, 4, 4), (6, 3), (3, 4, 6)))
    g = s.encode(cfg)
    assert g[:9] == (0, 0, 0, 1, 1, 0, 0, 0, 0) and s.decode(g) == cfg and s.canonical(g) == g
    with pytest.raises(HwnasError, match=r"stage 1 of space 'ofa-mbv3': depth 5 not allowed; allowed: 2, 3, 4"):
        s.encode(OFAConfig((2, 5, 2, 2, 2), ((3, 3),) * 5, ((3, 3),) * 5))
    with pytest.raises(HwnasError, match=r"stage 0 layer 1 .* kernel 9 not allowed; allowed: 3, 5, 7"):
        s.encode(OFAConfig((2,) * 5, ((3, 9),) + ((3, 3),) * 4, ((3, 3),) * 5))
    with pytest.raises(HwnasError, match=r"expand ratio 2 not allowed; allowed: 3, 4, 6"):
        s.encode(OFAConfig((2,) * 5, ((3, 3),) * 5, ((3, 2),) + ((3, 3),) * 4))
    with pytest.raises(HwnasError, match="depth 3 needs 3 kernels and 3 expand ratios, got 2 and 2"):
        s.encode(OFAConfig((3, 2, 2, 2, 2), ((3, 3),) * 5, ((3, 3),) * 5))
    assert s.gene_labels(0) == ("depth2", "depth3", "depth4")
    assert s.gene_labels(1) == ("k3", "k5", "k7") and s.gene_labels(2) == ("e3", "e4", "e6")


def test_depth_gates_switch_layers_off(rng):
    s = tiny()
    g = list(s.largest())
    g[9] = 0  # stage 1 at depth 2: its layers 2 and 3 are off
    assert len([o for o in s.layers(g) if o.block >= 0]) == 18
    assert [r["choice"] for r in s.describe(g)][4:8] == ["k7 / e6", "k7 / e6", "off (depth)", "off (depth)"]
    for m in s.sample_many(rng, 30):
        assert s.layers(m) == s.layers(s.canonical(m))


def _randomize(net, seed=0, weights=True):
    """Matrices away from the identity (the transform must matter); ``weights``: conv weights too."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("_matrix"):
                p.add_(0.3 * torch.randn(p.shape, generator=gen))
            elif weights and p.dim() > 1:
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
    return net


def test_kernel_transform_matrices_as_in_ofa():
    s = tiny()
    net = build_supernet(s, "elastic")
    mats = {n: tuple(p.shape) for n, p in net.named_parameters() if n.endswith("_matrix")}
    assert len(mats) == 2 * 20
    assert {v for k, v in mats.items() if k.endswith("7to5_matrix")} == {(25, 25)}
    assert {v for k, v in mats.items() if k.endswith("5to3_matrix")} == {(9, 9)}
    # a new supernet starts at the plain centre crop (identity matrices)
    assert all(torch.equal(p, torch.eye(p.shape[0])) for n, p in net.named_parameters() if n.endswith("_matrix"))
    assert not any(n.endswith("_matrix") for n, _ in build_supernet(s).named_parameters())
    # the k3 / k5 filters are OFA's get_active_filter: 7 -> 5 -> 3 through the matrices
    _randomize(net)
    dw = net.blocks[0]["c0"].dw_conv
    w7 = dw.weight[:8]
    w5 = F.linear(w7[..., 1:6, 1:6].reshape(-1, 25), dw.get_parameter("7to5_matrix")).reshape(8, 1, 5, 5)
    w3 = F.linear(w5[..., 1:4, 1:4].reshape(-1, 9), dw.get_parameter("5to3_matrix")).reshape(8, 1, 3, 3)
    assert torch.allclose(dw.active(8, kernel=5)[0], w5) and torch.allclose(dw.active(8, kernel=3)[0], w3)
    assert not torch.allclose(w3, w7[..., 2:5, 2:5])


def test_materialized_subnet_equals_the_kernel_transformed_path(rng):
    s = tiny()
    net = _randomize(build_supernet(s, "elastic"))
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(8, 3, 32, 32), s.sample(rng))
    net.eval()
    x = torch.randn(3, 3, 32, 32)
    small = list(s.largest())
    for i in s.kernel_genes:
        small[i] = 0  # every layer k3: two transformation steps everywhere
    archs = [tuple(small), s.largest()] + [s.sample(rng) for _ in range(6)]
    for g in archs:
        sub = materialize(net, g)
        assert not any("_matrix" in n for n, _ in sub.named_parameters())
        assert sum(p.numel() for p in sub.parameters()) == arch_costs(s, g).params
        with torch.no_grad():
            a, b = net(x, g), sub(x)
        assert (a - b).abs().max().item() <= 1e-4 * max(1.0, a.abs().max().item()), g
    # gradients of a k3 path reach both matrices of its layers, a k7 path none
    net.zero_grad()
    net.train()
    net(torch.randn(2, 3, 32, 32), tuple(small)).sum().backward()
    dw = net.blocks[0]["c0"].dw_conv
    assert dw.get_parameter("7to5_matrix").grad.abs().sum() > 0 and dw.get_parameter("5to3_matrix").grad.abs().sum() > 0
    net.zero_grad()
    net(torch.randn(2, 3, 32, 32), s.largest()).sum().backward()
    assert dw.get_parameter("7to5_matrix").grad is None


def test_kshot_copies_of_the_matrices_materialize_exactly(rng):
    """K-shot NAS on elastic sharing holds K copies of every tensor, the matrices included; the
    baked (merged) copy goes through the same kernel transform when materialized."""
    from hwnas.nn.kshot import KShotSharing

    s = tiny()
    net = _randomize(build_supernet(s, KShotSharing("elastic", k=2)), weights=False).eval()
    assert sum(n.endswith("_matrix") for n, _ in net.named_parameters()) == 2 * 20
    assert len(net.blocks[0]["c0"].copies) == len(net.blocks[0]["c0"].names)  # one stack per tensor
    with torch.no_grad():
        for c in net.blocks[0]["c0"].copies:
            c.add_(0.1)  # copy 2 differs from copy 1
    x = torch.randn(2, 3, 32, 32)
    g = list(s.sample(rng))
    g[s.kernel_genes[0]] = 0
    sub = materialize(net, g)
    with torch.no_grad():
        assert (net(x, g) - sub(x)).abs().max().item() <= 1e-5


def test_latency_keys_name_the_mobilenetv3_block():
    from hwnas.latency.keys import space_ops

    s = tiny()
    keys = space_ops(s)
    se_keys = [k for k, o in keys.items() if o.op == "mbconv3" and o.se]
    assert se_keys and all(k.startswith("mbconv3-") and "-se-" in k for k in se_keys)
    assert any(k.startswith("linear-") and "-hswish-" in k for k in keys)
    assert any(k.startswith("conv-") and "-hswish-" in k for k in keys)
    # keys are canonical: layers 1-3 of a stage execute the same ops, so per stage 9 options of
    # layer 0 and 9 of the others; plus stem, first block, final conv, pool, feature mix, classifier
    assert len(keys) == 5 * (9 + 9) + 6


@pytest.mark.slow
def test_materialized_subnet_exports_with_parity(rng, tmp_path):
    from hwnas.export import PARITY_TOL, export_model
    from hwnas.supernet import recalibrate_bn

    s = tiny(resolution=16)
    g = list(s.sample(rng))
    for d in s.depth_genes:  # the shallowest depths keep the conversions short
        g[d] = 0
    g[s.kernel_genes[0]] = 0  # a transformed k3 kernel
    sub = materialize(_randomize(build_supernet(s, "elastic"), weights=False), g)
    recalibrate_bn(sub, [torch.randn(8, 3, 16, 16) for _ in range(2)])
    results = export_model(sub, tmp_path, resolution=16, metadata=sub.metadata())
    assert [r.format for r in results] == ["onnx", "tflite"]
    assert all(r.max_abs_diff is not None and r.max_abs_diff <= PARITY_TOL for r in results)


def test_sparsenas_on_ofa_mbv3_keeps_one_member_per_subnet():
    """SparseNAS on its own space: uniform pairs, the early predictor's encoding and the sparse set
    are canonical, so two gene tuples differing only in switched-off layers are one subnet."""
    from hwnas.sparse.encoding import encode
    from hwnas.sparse.evolve import build_sparse_set
    from hwnas.sparse.pairs import Pairs, distinct_uniform
    from hwnas.sparse.predictor import fit_predictor

    s = tiny()
    genes = distinct_uniform(s, 120, seed=0)
    assert (s.canonical_matrix(genes) == genes).all() and len(np.unique(genes, axis=0)) == 120
    raw = s.sample_many(np.random.default_rng(1), 50)
    assert (encode(s, raw) == encode(s, s.canonical_matrix(raw))).all()
    macs = CostModel(s)(genes)["macs"]
    top1 = (np.log(macs) - np.log(macs).min()) / 10 + np.random.default_rng(2).normal(0, 0.01, len(macs))
    pred = fit_predictor(Pairs(s.config(), genes, np.clip(top1, 0, 1), macs), "gbdt", test_fraction=0.25)
    sparse, report = build_sparse_set(pred, buckets=10, per_bucket=5, pop=10, iterations=4, space=s)
    assert report.members == len(sparse.genes) > 10
    assert (s.canonical_matrix(sparse.genes) == sparse.genes).all()
    assert len(np.unique(sparse.genes, axis=0)) == len(sparse.genes)
