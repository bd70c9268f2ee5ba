"""Mixed-precision spaces (resnet18-mp, resnet34-mp, mbv2-mp): genes, OpSpecs, supernet parity,
cost-model parity with torch, BitOps, kWkA baselines and a few SPOS training steps."""

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from hwnas.cost import CostModel, arch_costs, cost_of_layers, costs, op_costs
from hwnas.errors import HwnasError
from hwnas.quant.baselines import kwka_baselines, kwka_model, quant_report, quantized_bitops, with_block_bits
from hwnas.quant.blocks import BasicBlock, QuantMBConv
from hwnas.spaces import create_space
from hwnas.spaces.base import OpSpec
from hwnas.spaces.resnet_mp import BIT_PAIRS, ResBlockChoice, ResNetMPConfig
from hwnas.supernet import Subnet, build_supernet, materialize

#: (space, resolution) beyond the generic tests over every registered space (tests/test_cost.py,
#: tests/test_supernet.py run each at 32 px, the small-input stem): 72 px, the ImageNet stem
#: (7x7 s2 + max-pool).
MP_CASES = [("resnet18-mp", 72)]



def mp_space(name, resolution=32, width=0.25):
    return create_space(name, width=width, resolution=resolution, num_classes=10)


def _perturb(net, space, rng, res, steps=3):
    net.train()
    with torch.no_grad():
        for _ in range(steps):
            net(torch.randn(8, 3, res, res) * 2 + 0.5, space.sample(rng))
    net.eval()


# ---- genes -------------------------------------------------------------------------------------
def test_resnet_mp_sizes_are_18_to_the_n():
    r18, r34 = create_space("resnet18-mp"), create_space("resnet34-mp")
    assert r18.size() == 18 ** 8 and r34.size() == 18 ** 16
    assert r18.num_genes == 16 and r34.num_genes == 32
    assert [len(r18.group_options(b)) for b in range(8)] == [18] * 8
    assert r18.gene_labels(0) == ("0.5x", "1.0x", "1.5x")
    assert r18.gene_labels(1) == ("w1a2", "w2a2", "w1a4", "w2a4", "w3a4", "w4a4")


def test_mbv2_mp_appends_bit_genes_to_mbv2():
    mp, base = mp_space("mbv2-mp"), mp_space("mbv2")
    assert mp.num_genes == 42 and mp.choices[:21] == base.choices and mp.choices[21:] == (3,) * 21
    assert mp.size() == base.size() * 3 ** 21
    assert mp.groups[4].genes == (4, 25)
    rng = np.random.default_rng(0)
    g = mp.sample(rng)
    ops_mp, ops_base = mp.layers(g), base.layers(g[:21])
    assert [(o.in_shape, o.out_shape, o.kernel, o.mid) for o in ops_mp] == \
           [(o.in_shape, o.out_shape, o.kernel, o.mid) for o in ops_base]
    pairs = ((4, 4), (4, 8), (8, 8))
    for op in ops_mp:
        if op.block >= 0:
            assert op.op == "qmbconv" and (op.w_bits, op.a_bits) == pairs[g[21 + op.block]]
        else:
            assert op.op != "qmbconv" and (op.w_bits, op.a_bits) == (32, 32)
    # an identity layer ignores its bits gene
    skip = next(i for i, c in enumerate(mp.choices[:21]) if c == 7)
    g1, g2 = list(g), list(g)
    g1[skip] = g2[skip] = 6
    g1[21 + skip], g2[21 + skip] = 0, 2
    assert mp.layers(g1) == mp.layers(g2)
    assert mp.encode(mp.decode(g)) == tuple(g)
    big = mp.largest()
    assert all(v == 2 for v in big[21:])  # (8, 8) everywhere: most BitOps among equal MACs


def test_resnet_mp_decode_encode_and_errors():
    s = mp_space("resnet18-mp")
    rng = np.random.default_rng(1)
    for _ in range(10):
        g = s.sample(rng)
        assert s.encode(s.decode(g)) == g
    cfg = s.decode(s.genes_for(1.0, (2, 4)))
    assert set(cfg.blocks) == {ResBlockChoice(1.0, 2, 4)}
    with pytest.raises(HwnasError, match="bit pair w3a3 not allowed"):
        s.encode(ResNetMPConfig((ResBlockChoice(1.0, 3, 3),) * 8))
    with pytest.raises(HwnasError, match="channel scale 0.7"):
        s.encode(ResNetMPConfig((ResBlockChoice(0.7, 2, 2),) * 8))
    with pytest.raises(HwnasError, match=r"gene 1 \(block0.1\).*0\.\.5"):
        s.validate([0, 6] + [0] * 14)


def test_resnet_mp_layers_carry_bits_and_channels():
    s = create_space("resnet18-mp")  # ImageNet size
    g = list(s.smallest())
    g[2], g[3] = 2, 5  # block 1: 1.5x, (4, 4)
    ops = s.layers(g)
    assert [o.op for o in ops] == ["conv", "maxpool"] + ["basic"] * 8 + ["gap", "linear"]
    assert ops[0].kernel == 7 and ops[0].out_shape == (64, 112, 112) and ops[1].out_shape == (64, 56, 56)
    assert (ops[0].w_bits, ops[0].a_bits, ops[-1].w_bits, ops[-1].a_bits) == (32, 32, 32, 32)
    b0, b1 = ops[2], ops[3]
    assert (b0.mid, b0.w_bits, b0.a_bits) == (32, 1, 2)  # 0.5x of 64 planes
    assert (b1.mid, b1.w_bits, b1.a_bits) == (96, 4, 4)  # 1.5x
    assert [o.out_shape for o in ops if o.op == "basic"][::2] == \
           [(64, 56, 56), (128, 28, 28), (256, 14, 14), (512, 7, 7)]
    small = mp_space("resnet18-mp", resolution=32)
    sops = small.layers(small.smallest())
    assert small.small_input and sops[0].kernel == 3 and sops[0].stride == 1
    assert "maxpool" not in [o.op for o in sops] and sops[1].in_shape == (16, 32, 32)
    assert create_space("resnet34-mp").num_blocks == 16


# ---- supernet / static subnet parity ----------------------------------------------------------
@pytest.mark.parametrize("name,res", MP_CASES)
def test_materialized_mp_subnet_equals_supernet_path(name, res):
    """20 random archs plus smallest and largest: eval outputs agree within 1e-5."""
    rng = np.random.default_rng(1234)
    s = mp_space(name, res)
    net = build_supernet(s)
    _perturb(net, s, rng, res)
    x = torch.randn(4, 3, res, res)
    for g in [s.sample(rng) for _ in range(20)] + [s.smallest(), s.largest()]:
        sub = materialize(net, g)
        with torch.no_grad():
            a, b = net(x, g), sub(x)
        assert a.shape == (4, 10)
        assert (a - b).abs().max().item() <= 1e-5, g


@pytest.mark.parametrize("name,res", MP_CASES)
def test_mp_macs_and_params_match_torch(name, res):
    """MACs x 2 equal FlopCounterMode's total exactly; params (PACT alphas included) equal numel()."""
    rng = np.random.default_rng(7)
    s = mp_space(name, res)
    for g in [s.sample(rng) for _ in range(20)] + [s.smallest(), s.largest()]:
        net = Subnet(s, g).eval()
        c = arch_costs(s, g)
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            net(torch.randn(1, 3, res, res))
        assert fc.get_total_flops() == c.flops == 2 * c.macs, g
        assert sum(p.numel() for p in net.parameters()) == c.params, g


def test_channel_and_bit_options_share_one_block():
    s = mp_space("resnet18-mp")
    net = build_supernet(s).eval()
    assert [len(b) for b in net.blocks] == [1] * 8  # 18 options, one module per block
    block = net.blocks[0]["c0"]
    assert isinstance(block, BasicBlock) and block.conv1.weight.shape[0] == 24  # 1.5x of 16 planes
    g_narrow = list(s.smallest())
    g_wide = list(s.smallest())
    g_wide[0], g_wide[1] = 2, 5
    sub = materialize(net, g_narrow)
    assert torch.equal(sub.ops[1].conv1.weight, block.conv1.weight[:8])
    assert torch.equal(sub.ops[1].conv2.weight, block.conv2.weight[:, :8])
    # bits act per call: the same weights give different outputs at different bits
    x = torch.randn(2, 16, 32, 32).relu() * 3
    outs = []
    for pair in range(6):
        g = list(g_narrow)
        g[1] = pair
        spec = s.layers(g)[1]
        assert (spec.w_bits, spec.a_bits) == BIT_PAIRS[pair]
        with torch.no_grad():
            outs.append(block(x, spec))
    assert all((outs[i] - outs[j]).abs().max() > 1e-3 for i in range(6) for j in range(i))
    mp = mp_space("mbv2-mp")
    mnet = build_supernet(mp)
    assert [len(b) for b in mnet.blocks] == [c - (1 if c == 7 else 0) for c in mp.choices[:21]]
    assert isinstance(mnet.blocks[1]["c0"], QuantMBConv)


def test_gradients_reach_weights_and_pact_alphas_of_the_path():
    s = mp_space("resnet18-mp")
    net = build_supernet(s).train()
    with torch.no_grad():  # low clips, so that some activations are clipped and alpha gets a gradient
        for p in net.parameters():
            if p.shape == (1,):
                p.fill_(0.5)
    g = s.sample(np.random.default_rng(5))
    loss = torch.nn.functional.cross_entropy(net(torch.randn(8, 3, 32, 32) * 3, g), torch.arange(8))
    loss.backward()
    for b in range(8):
        block = net.blocks[b]["c0"]
        assert block.conv1.weight.grad is not None and block.conv1.weight.grad.abs().sum() > 0
        assert block.act1.alpha.grad is not None
    assert all(float(net.blocks[b]["c0"].act1.alpha.grad) != 0 for b in range(8))
    assert all(float(net.blocks[b]["c0"].in_act.alpha.grad) != 0 for b in range(8))


# ---- BitOps ------------------------------------------------------------------------------------
def test_bitops_hand_count():
    """A manual 2-block net: stem and FC at 32 x 32, each block at its own (w, a), shortcut included."""
    ops = [OpSpec("conv", (3, 8, 8), (8, 8, 8), kernel=3, act="relu"),
           OpSpec("basic", (8, 8, 8), (8, 8, 8), kernel=3, mid=4, w_bits=1, a_bits=2, block=0),
           OpSpec("basic", (8, 8, 8), (16, 4, 4), kernel=3, stride=2, mid=24, w_bits=3, a_bits=4, block=1),
           OpSpec("gap", (16, 4, 4), (16, 1, 1), act="none"),
           OpSpec("linear", (16, 1, 1), (10, 1, 1), act="none", bias=True)]
    stem = 8 * 8 * 8 * 3 * 9
    b0 = 8 * 8 * 4 * 8 * 9 + 8 * 8 * 8 * 4 * 9  # two 3x3 convs, no shortcut
    b1 = 4 * 4 * 24 * 8 * 9 + 4 * 4 * 16 * 24 * 9 + 4 * 4 * 16 * 8  # + 1x1 stride-2 shortcut
    fc = 16 * 10
    c = cost_of_layers(ops)
    assert c.macs == stem + b0 + b1 + fc
    assert c.bitops == stem * 32 * 32 + b0 * 1 * 2 + b1 * 3 * 4 + fc * 32 * 32
    assert quantized_bitops(ops) == b0 * 2 + b1 * 12
    assert op_costs(ops[2]).params == 8 * 24 * 9 + 48 + 24 * 16 * 9 + 32 + 8 * 16 + 32 + 2


def test_first_conv_and_fc_count_32x32_in_the_space():
    s = mp_space("resnet18-mp")
    g = s.sample(np.random.default_rng(0))
    ops = s.layers(g)
    c = arch_costs(s, g)
    fixed = sum(op_costs(o).macs for o in ops if o.block < 0)
    blocks = sum(op_costs(o).macs * o.w_bits * o.a_bits for o in ops if o.block >= 0)
    assert fixed == op_costs(ops[0]).macs + op_costs(ops[-1]).macs
    assert c.bitops == fixed * 1024 + blocks
    assert CostModel(s)(np.asarray([g]))["bitops"][0] == c.bitops


def test_kwka_bitops_reproduce_spos_table6():
    """SPOS Table 6 kWkA BitOps (in units of 2^30) from our layer list at 224 px."""
    paper = {"resnet18-mp": (6.32, 14.21, 25.27), "resnet34-mp": (13.21, 29.72, 52.83)}
    for name, want in paper.items():
        got = [round(b.quantized_bitops / 2 ** 30, 2) for b in kwka_baselines(create_space(name))]
        assert tuple(got) == want, name


def test_kwka_baselines_and_report():
    s = mp_space("resnet18-mp")
    b2, b3, b4 = kwka_baselines(s)
    assert (b2.name, b2.on_grid, b3.on_grid, b4.on_grid) == ("2W2A", True, False, True)
    assert b2.genes == s.genes_for(1.0, (2, 2)) and b3.genes == s.genes_for(1.0, (3, 4))
    assert b2.bitops == arch_costs(s, b2.genes).bitops
    # 3W3A is analytic: between 2W2A and 4W4A, below the (3, 4) pair it borrows its genes from
    assert b2.bitops < b3.bitops < arch_costs(s, b3.genes).bitops < b4.bitops
    assert b3.quantized_bitops * 4 == quantized_bitops(s.layers(b3.genes)) * 3
    net = build_supernet(s).eval()
    m3 = kwka_model(net, b3)
    assert {(o.w_bits, o.a_bits) for o in m3.specs if o.block >= 0} == {(3, 3)}
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        y3, y4 = m3(x), materialize(net, b3.genes)(x)
    assert (y3 - y4).abs().max() > 1e-4  # really runs at 3 bits
    searched = s.genes_for(0.5, (2, 4))
    rows = quant_report(s, [b2, b3, b4], [("ours@4W4A", searched, "4W4A")],
                        evaluate=lambda m: 0.5, supernet=net)
    assert [r["arch"] for r in rows] == ["2W2A", "3W3A", "4W4A", "ours@4W4A"]
    assert rows[1]["bits"] == "w3a3 (off-grid)" and rows[-1]["bits"] == "w2a4"
    assert all(r["accuracy"] == 0.5 for r in rows)
    with pytest.raises(HwnasError, match="over the 2W2A budget"):
        quant_report(s, [b2], [("too big", s.genes_for(1.5, (4, 4)), "2W2A")])
    with pytest.raises(HwnasError, match="no uniform kWkA baselines"):
        kwka_baselines(mp_space("mbv2-mp"))
    with pytest.raises(HwnasError, match="static subnet"):
        with_block_bits(net, 3, 3)


# ---- SPOS training ------------------------------------------------------------------------------
def test_spos_training_steps_reduce_loss_and_train_alphas():
    """Uniform sampling of channels and bits per step (SPOS) on digits: the loss of a fixed set of
    paths on a fixed batch drops, and the PACT alphas move."""
    from hwnas.data import load_data, take_batches
    from hwnas.train.strategies import RunContext, create_strategy

    torch.manual_seed(0)
    s = mp_space("resnet18-mp", resolution=16)
    data = load_data("digits", resolution=16, in_channels=3)
    batches = take_batches(data.train_clean, 64, max_batches=8, seed=0)
    net = build_supernet(s)
    sampler = create_strategy("uniform", {}, RunContext.for_sampling(s, steps_per_epoch=40))
    probe_paths = [s.sample(np.random.default_rng(i)) for i in range(4)]
    x0, y0 = batches[0]

    def probe_loss():
        net.train()  # batch statistics: no BN recalibration needed for the comparison
        with torch.no_grad():
            return float(np.mean([torch.nn.functional.cross_entropy(net(x0, g), y0) for g in probe_paths]))

    alphas0 = torch.stack([net.blocks[b]["c0"].act1.alpha.detach().clone() for b in range(8)])
    before = probe_loss()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    paths = set()
    for step in range(40):
        x, y = batches[step % len(batches)]
        (run,) = sampler.paths(step)
        g = run.genes
        paths.add(g)
        net.train()
        loss = torch.nn.functional.cross_entropy(net(x, g), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = probe_loss()
    assert len(paths) == 40  # a fresh uniform path every step
    assert {g[1] for g in paths} >= {0, 5}  # bit pairs are sampled like any other gene
    assert after < before - 0.3, (before, after)
    alphas1 = torch.stack([net.blocks[b]["c0"].act1.alpha.detach() for b in range(8)])
    assert (alphas1 != alphas0).any()
