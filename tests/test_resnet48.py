"""``resnet48`` (PGONAS Sec. 4): exact size next to the paper's, the macro-structure at 224 px,
elastic depth and width through the depth contract, sliced weights, ImageNet-stem costs, export."""

import math

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from conftest import run_cli
from hwnas.cost import CostModel, arch_costs
from hwnas.errors import HwnasError
from hwnas.nn.blocks import set_kernel_crop
from hwnas.spaces import create_space
from hwnas.spaces.base import make_divisible
from hwnas.spaces.resnet48 import RATIOS, ResNet48Config
from hwnas.supernet import Subnet, build_supernet, materialize


def tiny(**kw):
    return create_space("resnet48", **{"width": 0.25, "resolution": 16, "num_classes": 10, **kw})


def test_exact_size_and_the_papers_figure():
    s = create_space("resnet48")
    # distinct hidden widths per layer after rounding to 8: 3 on 64 planes, 6 on 128, 7 on 256 / 512
    widths = [len({make_divisible(p * r, 8) for r in RATIOS}) for p in (64, 128, 256, 512)]
    assert widths == [3, 6, 7, 7]
    per_stage = [sum(w ** d for d in range(2, hi + 1)) for w, hi in zip(widths, (5, 5, 8, 5))]
    assert per_stage == [360, 9324, 6725593, 19600]
    assert s.size() == math.prod(per_stage) == 442_477_731_955_392_000
    # PGONAS Sec. 4: "around 5.06 x 10^19", 7 ratio codes per running layer
    assert s.paper_size() == 19600 ** 3 * 6725593 == 50_640_594_614_848_000_000
    assert f"{s.paper_size():.2e}" == "5.06e+19"
    assert s.num_genes == 4 + 23 and len(s.groups) == 23 and s.genotype_count() > s.size()
    assert s.shared_genes() == s.depth_genes == (0, 6, 12, 21)


def test_hwnas_spaces_lists_the_exact_size(capsys):
    import json

    code, out, _ = run_cli(["spaces", "--json"], capsys)
    row = next(r for r in json.loads(out) if r["name"] == "resnet48")
    assert code == 0 and row["size"] == "442477731955392000" and row["paper_size"] == "50640594614848000000"
    assert row["blocks"] == 23 and "5.06e19" in row["paper"]


def test_macro_structure_at_224():
    s = create_space("resnet48")
    ops = s.layers(s.largest())
    assert [o.op for o in ops[:2]] == ["conv", "maxpool"] and ops[0].kernel == 7
    assert ops[1].out_shape == (64, 56, 56)
    blocks = [o for o in ops if o.op == "resblock"]
    assert len(blocks) == 23 and 2 * len(blocks) + 2 == 48  # 46 block convs, stem, classifier
    assert [o.out_shape for o in blocks if o.stride == 2] == [(128, 28, 28), (256, 14, 14), (512, 7, 7)]
    assert all(o.mid == o.out_shape[0] for o in blocks)  # ratio 1.0 everywhere
    assert ops[-1].out_shape == (1000, 1, 1)
    small = s.layers(s.smallest())
    assert [o.mid for o in small if o.op == "resblock"] == [48, 48, 88, 88, 176, 176, 360, 360]
    assert s.decode(s.smallest()) == ResNet48Config((2, 2, 2, 2), ((0.8, 0.8), (0.7,) * 2, (0.7,) * 2, (0.7,) * 2))
    assert s.gene_labels(1) == ("48ch (r0.7-0.8)", "56ch (r0.85-0.9)", "64ch (r0.95-1)")
    assert s.gene_labels(12) == tuple(f"depth{d}" for d in range(2, 9))
    macs = CostModel(s)(np.array([s.smallest(), s.largest()]))["macs"]
    assert macs[0] < macs[1]


def test_encode_takes_any_paper_ratio_and_refuses_others():
    s = create_space("resnet48")
    cfg = ResNet48Config((3, 2, 2, 2), ((0.95, 0.7, 1.0), (0.9, 0.85), (1.0, 1.0), (0.75, 0.7)))
    g = s.encode(cfg)
    # 0.95 and 1.0 give 64 channels on 64 planes: one width, named by the larger ratio
    assert g[:6] == (1, 2, 0, 2, 0, 0)
    assert s.decode(g).ratios[0] == (1.0, 0.8, 1.0)
    assert s.encode(s.decode(g)) == g
    with pytest.raises(HwnasError, match=r"stage 2 of space 'resnet48': depth 9 not allowed; allowed: 2..8"):
        s.encode(ResNet48Config((2, 2, 9, 2), ((1.0,) * 2, (1.0,) * 2, (1.0,) * 9, (1.0,) * 2)))
    with pytest.raises(HwnasError, match=r"stage 0 layer 1 .* expansion ratio 0.6 not allowed; allowed: 1, 0.95"):
        s.encode(ResNet48Config((2, 2, 2, 2), ((1.0, 0.6), (1.0,) * 2, (1.0,) * 2, (1.0,) * 2)))
    with pytest.raises(HwnasError, match="depth 3 needs 3 ratios, got 2"):
        s.encode(ResNet48Config((3, 2, 2, 2), ((1.0,) * 2,) * 4))


def test_depth_gates_switch_layers_off_and_every_option_is_a_distinct_subnet(rng):
    s = tiny(width=0.5)
    g = list(s.largest())
    g[12] = 0  # stage 2 at depth 2: its layers 2..7 are off
    ops = [o for o in s.layers(g) if o.op == "resblock"]
    assert len(ops) == 5 + 5 + 2 + 5
    assert [r["choice"] for r in s.describe(g)][10:18] == [r["choice"] for r in s.describe(g)][10:12] + ["off (depth)"] * 6
    for m in s.sample_many(rng, 50):
        assert s.layers(m) == s.layers(s.canonical(m))
    # size() counts distinct architectures: no two options of a running layer give the same ops
    own_of: dict = {}
    for o in s.block_options():
        if o.ops:  # the layer runs: its own (width) gene alone decides its ops
            own = tuple(o.genes[i] for i in s.groups[o.block].own_genes)
            assert own_of.setdefault(o.ops, own) == own
    assert len(own_of) == sum(math.prod(s.choices[i] for i in grp.own_genes) for grp in s.groups)


def test_smallest_and_largest_are_the_exact_extremes(rng):
    s = tiny(width=0.5)
    cm = CostModel(s)
    macs = cm(s.sample_many(rng, 3000))["macs"]
    lo, hi = cm(np.array([s.smallest(), s.largest()]))["macs"]
    assert lo <= macs.min() and hi >= macs.max()
    assert s.decode(s.largest()).depths == (5, 5, 8, 5) and s.decode(s.smallest()).depths == (2, 2, 2, 2)


def test_one_sliced_weight_per_layer_in_both_sharing_modes():
    s = tiny(width=0.5)
    for sharing in ("independent", "elastic"):
        net = build_supernet(s, sharing)
        assert [len(b) for b in net.blocks] == [1] * 23
        # the supernet is the largest path: every narrower path is a prefix of its weights
        assert sum(p.numel() for p in net.parameters()) == arch_costs(s, s.largest()).params
    g = list(s.largest())
    g[22] = 0  # stage 3 layer 0 at its narrowest width
    net = build_supernet(s, "elastic")
    sub = materialize(net.eval(), g)
    spec = next(o for o in s.layers(g) if o.block == 18)
    mod = next(m for sp, m in zip(sub.specs, sub.ops) if sp == spec)
    assert mod.conv1.weight.shape[0] == spec.mid < net.blocks[18]["c0"].conv1.weight.shape[0]
    assert torch.equal(mod.conv1.weight, net.blocks[18]["c0"].conv1.weight[:spec.mid])


def test_imagenet_stem_costs_match_torch(rng):
    s = tiny(resolution=72, act="prelu")
    for g in [s.smallest(), s.sample(rng)]:  # (the largest: the generic tests, small-input stem)
        net = set_kernel_crop(Subnet(s, g).eval(), False)
        c = arch_costs(s, g)
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            net(torch.randn(1, 3, 72, 72))
        assert fc.get_total_flops() == 2 * c.macs and sum(p.numel() for p in net.parameters()) == c.params


def test_act_sets_the_external_activation_and_is_checked():
    s = tiny(act="mish")
    block = next(o for o in s.layers(s.largest()) if o.op == "resblock")
    assert block.act == "relu" and block.act2 == "mish" and block.latency_key().endswith("-a2mish")
    assert next(o for o in tiny().layers(tiny().largest()) if o.op == "resblock").act2 == ""
    with pytest.raises(HwnasError, match="activation 'relu6' not allowed on space 'resnet48'; allowed: relu, prelu, mish"):
        tiny(act="relu6")


@pytest.mark.slow
def test_materialized_subnet_exports_with_parity(rng, tmp_path):
    from hwnas.export import PARITY_TOL, export_model
    from hwnas.supernet import recalibrate_bn

    s = tiny(act="prelu")
    g = list(s.sample(rng))
    for d in s.depth_genes:  # the shallowest depths keep the (slow) conversions short
        g[d] = 0
    sub = materialize(build_supernet(s, "elastic"), g)
    recalibrate_bn(sub, [torch.randn(8, 3, 16, 16) * 2 for _ in range(2)])
    results = export_model(sub, tmp_path, resolution=16, metadata=sub.metadata())
    assert [r.format for r in results] == ["onnx", "tflite"]
    assert all(r.max_abs_diff is not None and r.max_abs_diff <= PARITY_TOL for r in results)
