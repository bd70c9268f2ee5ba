"""The ``fbnet`` space as HW-NAS-Bench (Li et al., ICLR 2021) defines it: size, both layouts, the
candidate blocks, published architectures as genes, exact costs against torch, export."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from conftest import run_cli
from hwnas.cost import arch_costs
from hwnas.errors import HwnasError
from hwnas.nn.blocks import FBNetBlock, channel_shuffle, set_kernel_crop
from hwnas.spaces import create_space, space_from_config
from hwnas.spaces.fbnet import PRIMITIVES, fbnet_genes_from_ops
from hwnas.supernet import Subnet, build_supernet, materialize, recalibrate_bn

#: HW-NAS-Bench's README / example notebook queries these three FBNet architectures (its
#: ``op_idx_list`` encoding) on CIFAR-100 and ImageNet.
HWNB_EXAMPLES = ([0] * 22, [0] * 21 + [1], [0] * 20 + [1] * 2)
#: FBNet-A and FBNet-B (FBNet, Wu et al. 2019, Table 2) as op names, as maskrcnn-benchmark's FBNet
#: model definitions list them; FBNet-A's ``k5_e1_g2`` / ``k3_e1_g2`` are FBNet's grouped blocks
#: with channel shuffle (``ir_k5_s2`` there).
FBNET_A = ("skip k3_e3 k3_e1 skip skip k5_e6 k3_e3 k5_e1 k3_e3 k5_e6 k5_e3 k5_e1_g2 k5_e6 "
           "k3_e6 k5_e1_g2 k5_e3 k3_e1_g2 k5_e6 k5_e6 k5_e3 k5_e6 k5_e6").split()
FBNET_B = ("k3_e1 k3_e6 k5_e1 k3_e1 k3_e1 k5_e6 k5_e3 k3_e6 k5_e6 k5_e6 k5_e6 skip k5_e3 "
           "k5_e6 k3_e1 k5_e1 k5_e3 k5_e6 k5_e1 k5_e6 k5_e6 k3_e6").split()
#: (MACs, params) of HW-NAS-Bench's own ``FBNet_Infer`` on these architectures, CIFAR-100 (32 px,
#: 100 classes) and ImageNet (224 px, 1000 classes), counted with FlopCounterMode / numel()
#: (hwnas's subnets reproduce that model's outputs exactly with its weights loaded).
REFERENCE = {
    "cifar": {0: (31_322_240, 1_170_676), 1: (30_533_248, 1_121_364), 2: (29_991_552, 1_087_508)},
    "imagenet": {0: (118_371_152, 3_175_096), 1: (115_954_864, 3_125_784), 2: (114_295_920, 3_091_928)},
}


def cifar(**kw):
    return create_space("fbnet", **{"resolution": 32, "num_classes": 100, **kw})


def imagenet(**kw):
    return create_space("fbnet", **kw)


def torch_counts(space, genes):
    net = set_kernel_crop(Subnet(space, genes).eval(), False)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        net(torch.randn(1, 3, space.resolution, space.resolution))
    return fc.get_total_flops() // 2, sum(p.numel() for p in net.parameters())


def test_size_is_9_to_the_22_and_genes_are_primitives_indices():
    s = imagenet()
    assert s.size() == s.paper_size() == 9 ** 22 == 984_770_902_183_611_232_881
    assert s.choices == (9,) * 22 and len(s.groups) == 22
    assert PRIMITIVES == ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
    assert all(s.gene_labels(i) == PRIMITIVES for i in range(22))
    assert s.decode([8] + list(range(9)) * 2 + [0] * 3).ops[:3] == ("skip", "k3_e1", "k3_e1_g2")


def test_the_two_layouts():
    c, i = cifar(), imagenet()
    assert (c.resolved_layout, i.resolved_layout) == ("cifar", "imagenet")
    for s, stem_stride, sizes, head in ((c, 1, [32, 32, 16, 8, 8, 4, 4], 1504),
                                        (i, 2, [112, 56, 28, 14, 14, 7, 7], 1984)):
        ops = s.layers(s.largest())  # k5_e6 everywhere
        assert ops[0].op == "conv" and ops[0].stride == stem_stride and ops[0].out_shape[0] == 16
        blocks = [o for o in ops if o.block >= 0]
        assert len(blocks) == 22
        firsts = [blocks[b] for b in (0, 1, 5, 9, 13, 17, 21)]
        assert [o.out_shape[0] for o in firsts] == [16, 24, 32, 64, 112, 184, 352]
        assert [o.out_shape[1] for o in firsts] == sizes
        assert all(o.mid == 6 * o.in_shape[0] and o.groups == 1 and o.kernel == 5 for o in blocks)
        assert [o.op for o in ops[-3:]] == ["conv", "gap", "linear"] and ops[-3].out_shape[0] == head
        assert ops[-3].kernel == 1 and ops[-1].bias and ops[-1].out_shape[0] == s.num_classes
    # the layout is a setting: explicit beats the resolution rule, and configs rebuild it
    forced = create_space("fbnet", resolution=64, num_classes=10, layout="imagenet")
    assert forced.layers(forced.smallest())[0].stride == 2 and cifar().layers([0] * 22)[0].stride == 1
    assert create_space("fbnet", resolution=96).resolved_layout == "imagenet"
    assert create_space("fbnet", resolution=64).resolved_layout == "cifar"
    assert space_from_config(forced.config()) == forced and forced.config()["layout"] == "imagenet"
    with pytest.raises(HwnasError, match="layout 'mobile' not allowed on space 'fbnet'; allowed: auto, cifar, imagenet"):
        create_space("fbnet", layout="mobile")


def test_blocks_as_hwnas_bench_builds_them():
    s = cifar()
    g = [8] * 22  # skip everywhere
    ops = s.layers(g)
    skips = {o.block: o for o in ops if o.block >= 0}
    # identity where stride and channels stay (layer 0: stem 16 -> 16, stride 1), 1x1 conv + BN +
    # ReLU where they change: the first layer of every later stage
    assert sorted(skips) == [1, 5, 9, 13, 17, 21]
    assert all(o.op == "conv" and o.kernel == 1 and o.act == "relu" for o in skips.values())
    assert skips[5].stride == 2 and skips[1].stride == 1  # CIFAR: stage 2 keeps 32 px, 16 -> 24
    assert sorted(o.block for o in imagenet().layers(g) if o.block >= 0) == [1, 5, 9, 13, 17, 21]
    g2 = s.layers([1] * 22)[1]  # k3_e1_g2 on layer 0: 16 -> 16
    assert (g2.op, g2.kernel, g2.expand, g2.mid, g2.groups) == ("fbblock", 3, 1, 16, 2)
    block = FBNetBlock(g2)
    assert block.pw1.groups == 2 and block.pw1.weight.shape == (16, 8, 1, 1)
    assert block.pw2.weight.shape == (16, 8, 1, 1) and block.dw.groups == 16 and block.residual
    # e1 keeps HW-NAS-Bench's first 1x1 conv (no MobileNetV2-style shortcut of it)
    e1 = FBNetBlock(s.layers([0] * 22)[1])
    assert e1.pw1.weight.shape == (16, 16, 1, 1) and e1.pw1.groups == 1
    # the shuffle: (N, g, C/g) -> (N, C/g, g), HW-NAS-Bench's ChannelShuffle
    x = torch.arange(8.0).reshape(1, 8, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 4, 1, 5, 2, 6, 3, 7]


def test_shuffle_sits_between_the_first_1x1_and_the_depthwise_conv():
    spec = cifar().layers([1] * 22)[3]  # layer 2: k3_e1_g2, 24 -> 24 channels, stride 1
    block = FBNetBlock(spec).eval()
    x = torch.randn(1, spec.in_shape[0], 8, 8)
    with torch.no_grad():
        h = block.act1(block.bn1(block.pw1(x)))
        h = block.act2(block.bn2(block.dw(channel_shuffle(h, 2))))
        expected = block.bn3(block.pw2(h)) + x
        assert torch.allclose(block(x), expected)
        h = block.act2(block.bn2(block.dw(block.act1(block.bn1(block.pw1(x))))))  # without it
        assert not torch.allclose(block(x), block.bn3(block.pw2(h)) + x)


def test_published_architectures_are_genes():
    for arch in HWNB_EXAMPLES:
        assert fbnet_genes_from_ops(arch) == tuple(arch) == imagenet().encode(arch)
        names = [PRIMITIVES[v] for v in arch]  # HW-NAS-Bench's get_net_config "arch_str"
        assert fbnet_genes_from_ops(names) == tuple(arch)
    a = fbnet_genes_from_ops(FBNET_A)
    assert a == (8, 2, 0, 8, 8, 7, 2, 4, 2, 7, 6, 5, 7, 3, 5, 6, 1, 7, 7, 6, 7, 7)
    assert imagenet().decode(a).ops == tuple(FBNET_A)
    assert fbnet_genes_from_ops(" ".join(FBNET_B))[:4] == (0, 3, 4, 0)
    assert fbnet_genes_from_ops(np.array(HWNB_EXAMPLES[1])) == tuple(HWNB_EXAMPLES[1])
    # HW-NAS-Bench's get_net_config (and HELP's metainfo entries) as they print
    config = {"dataset": "cifar100", "num_classes": 100, "op_idx_list": HWNB_EXAMPLES[2],
              "arch_str": [PRIMITIVES[v] for v in HWNB_EXAMPLES[2]]}
    assert fbnet_genes_from_ops(config) == tuple(HWNB_EXAMPLES[2])
    assert fbnet_genes_from_ops({"arch_str": config["arch_str"]}) == tuple(HWNB_EXAMPLES[2])
    with pytest.raises(HwnasError, match="needs 'op_idx_list' or 'arch_str', got keys \\['dataset'\\]"):
        fbnet_genes_from_ops({"dataset": "cifar100"})
    with pytest.raises(HwnasError, match="has 22 layers, got 3 ops"):
        fbnet_genes_from_ops(["k3_e1"] * 3)
    with pytest.raises(HwnasError, match=r"FBNet layer 4: op 'k7_e6' is not one of HW-NAS-Bench's PRIMITIVES; "
                                         r"allowed: k3_e1, .*, skip or their indices 0..8"):
        fbnet_genes_from_ops(["k3_e1"] * 4 + ["k7_e6"] + ["skip"] * 17)
    with pytest.raises(HwnasError, match="FBNet layer 0: op 9"):
        fbnet_genes_from_ops([9] + [0] * 21)
    with pytest.raises(HwnasError, match="FBNet layer 1: op 1.5"):
        fbnet_genes_from_ops([0, 1.5] + [0] * 20)


@pytest.mark.parametrize("layout", ["cifar", "imagenet"])
def test_published_architectures_costs_exact_and_equal_to_hwnas_bench(layout):
    s = cifar() if layout == "cifar" else imagenet()
    for n, arch in enumerate(HWNB_EXAMPLES):
        c = arch_costs(s, fbnet_genes_from_ops(arch))
        assert (c.macs, c.params) == REFERENCE[layout][n], arch
        assert torch_counts(s, arch) == (c.macs, c.params)
    for arch in (FBNET_A, FBNET_B):
        g = fbnet_genes_from_ops(arch)
        c = arch_costs(s, g)
        assert torch_counts(s, g) == (c.macs, c.params)


def test_cost_range_at_both_layouts():
    for s, lo, hi in ((cifar(), (11_326_720, 766_892), (160_926_080, 3_749_652)),
                      (imagenet(), (48_554_776, 2_771_312), (572_634_080, 5_754_072))):
        small, large = arch_costs(s, s.smallest()), arch_costs(s, s.largest())
        assert (small.macs, small.params) == lo and (large.macs, large.params) == hi
        assert s.largest() == (7,) * 22  # k5_e6 everywhere
        assert torch_counts(s, s.smallest()) == lo


def test_elastic_supernet_keeps_grouped_and_dense_blocks_apart():
    s = cifar(width=0.25, num_classes=10)
    net = build_supernet(s, "elastic")
    # layer 3 (inside stage 2): one dense fbblock for every k / e, one grouped fbblock for k3 / k5
    # at e1, and skip is the identity (no module)
    assert len(net.blocks[3]) == 2
    for genes in ([1] * 22, [5] * 22, [7] * 22, [0] * 22):
        net.eval()
        sub = materialize(net, genes).eval()
        x = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            assert torch.allclose(sub(x), net(x, genes), atol=1e-5)


@pytest.mark.slow
def test_export_onnx_and_tflite_with_grouped_shuffle_and_skip_convs(tmp_path):
    from hwnas.export import PARITY_TOL, export_model

    s = cifar(width=0.25, num_classes=10)
    genes = fbnet_genes_from_ops(["k3_e1_g2", "skip", "k5_e1_g2", "k3_e6", "skip", "skip", "k5_e3", "k3_e1",
                                  "k5_e1", "k5_e6", "k3_e3", "skip", "k3_e1_g2", "skip", "k5_e1_g2", "k3_e1",
                                  "skip", "k5_e6", "k3_e1_g2", "k3_e3", "skip", "k5_e1_g2"])
    ops = s.layers(genes)
    assert {o.op for o in ops if o.block >= 0} == {"fbblock", "conv"} and any(o.groups == 2 for o in ops)
    sub = materialize(build_supernet(s), genes)
    recalibrate_bn(sub, [torch.randn(8, 3, 32, 32) * 2 for _ in range(2)])
    results = export_model(sub, tmp_path, resolution=32, metadata=sub.metadata())
    assert [r.format for r in results] == ["onnx", "tflite"]
    assert all(r.max_abs_diff is not None and r.max_abs_diff <= PARITY_TOL for r in results)
    assert json.loads((tmp_path / "model.tflite.json").read_text())["space"]["layout"] == "auto"


def test_arch_show_takes_op_names(capsys):
    names = ",".join(FBNET_A)
    code, out, _ = run_cli(["arch", "show", "--space", "fbnet", "--genes", names, "--json"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert doc["genes"] == list(fbnet_genes_from_ops(FBNET_A))
    assert doc["costs"]["macs"] == arch_costs(imagenet(), fbnet_genes_from_ops(FBNET_A)).macs
    code, out, err = run_cli(["arch", "show", "--space", "fbnet", "--genes", "k3_e1,k9_e1"], capsys)
    assert code == 2 and err.strip() == "error: an FBNet architecture has 22 layers, got 2 ops"
    # other spaces still refuse names
    code, _, err = run_cli(["arch", "show", "--space", "mbv2", "--genes", names], capsys)
    assert code == 2 and "is not an integer" in err


def test_predictor_features_count_the_depthwise_macs_of_fbnet_blocks():
    from hwnas.latency.predictors.features import OP_FEATURES, SubnetFeatures

    s = cifar(width=0.25, num_classes=10)
    genes = s.sample_many(np.random.default_rng(3), 4)
    got = SubnetFeatures(s)(genes)
    dw = OP_FEATURES.index("dw_macs") - len(OP_FEATURES)
    for row, g in zip(got, genes):
        blocks = [o for o in s.layers(g) if o.op == "fbblock"]
        assert blocks and row[dw] == sum(o.out_shape[1] * o.out_shape[2] * o.mid * o.kernel ** 2 for o in blocks)


def test_the_layout_is_part_of_the_space_tag():
    from hwnas.latency.table import space_tag

    assert space_tag(cifar()) == space_tag(cifar(layout="cifar")) == "fbnet@w1r32-cifar"
    assert space_tag(cifar(layout="imagenet")) == "fbnet@w1r32-imagenet" and space_tag(imagenet()) == "fbnet@w1r224-imagenet"
    assert space_tag(create_space("shufflenetv2", resolution=32)) == "shufflenetv2@w1r32"  # other spaces: as before
