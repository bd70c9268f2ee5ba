import numpy as np
import pytest
import torch

from conftest import SPACE_NAMES, tiny_space
from hwnas.nn.blocks import DynamicBatchNorm2d
from hwnas.errors import HwnasError
from hwnas.supernet import SHARING, PathModule, Subnet, build_supernet, materialize, recalibrate_bn


def _perturb_bn(net, space, rng, steps=4, res=32):
    """Run a few train-mode paths so BN statistics are not the trivial init values."""
    net.train()
    with torch.no_grad():
        for _ in range(steps):
            net(torch.randn(8, 3, res, res) * 2 + 0.5, space.sample(rng))
    net.eval()


@pytest.mark.parametrize("sharing", SHARING)
@pytest.mark.parametrize("name", SPACE_NAMES)
def test_materialized_subnet_equals_supernet_path(name, sharing, rng):
    """20 random archs plus smallest and largest: eval outputs agree within 1e-5, for both
    weight-sharing styles (elastic: centre-cropped kernels, prefix widths, optional SE)."""
    s = tiny_space(name)
    net = build_supernet(s, sharing)
    _perturb_bn(net, s, rng)
    archs = [s.sample(rng) for _ in range(20)] + [s.smallest(), s.largest()]
    x = torch.randn(4, 3, 32, 32)
    for g in archs:
        sub = materialize(net, g)
        assert not sub.training
        with torch.no_grad():
            a, b = net(x, g), sub(x)
        assert a.shape == (4, 10)
        assert (a - b).abs().max().item() <= 1e-5, g


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_static_subnet_has_exact_widths(name, rng):
    """A materialized subnet holds exactly the weights its OpSpecs describe: no hidden slicing."""
    from hwnas.cost import arch_costs

    s = tiny_space(name)
    net = build_supernet(s)
    g = s.sample(rng)
    sub = materialize(net, g)
    assert sum(p.numel() for p in sub.parameters()) == arch_costs(s, g).params
    # the supernet holds every candidate: at least the largest subnet (exactly it when all of a
    # block's options slice one weight, as the mixed-precision ResNets do)
    assert sum(p.numel() for p in net.parameters()) >= arch_costs(s, s.largest()).params


def test_shufflenet_channel_choices_share_sliced_weights(rng):
    s = tiny_space("shufflenetv2")
    net = build_supernet(s)
    g_small, g_big = list(s.smallest()), list(s.smallest())
    g_small[0], g_small[1] = 0, 0  # choice_3 @ 0.2x in block 0
    g_big[0], g_big[1] = 0, 7  # choice_3 @ 1.6x
    m_small = net.module_for(s.layers(g_small)[1])
    m_big = net.module_for(s.layers(g_big)[1])
    assert m_small is m_big  # one weight, sliced
    assert len(net.blocks[0]) == 4  # four block choices, not 32 modules
    mid = s.layers(g_small)[1].mid
    sub = materialize(net, g_small)
    assert torch.equal(sub.ops[1].pw1.weight, m_big.pw1.weight[:mid])


def test_mbv2_choices_are_independent_blocks():
    s = tiny_space("mbv2")
    net = build_supernet(s)
    assert [len(b) for b in net.blocks] == [c - (1 if c == 7 else 0) for c in s.choices]


def test_elastic_supernet_shares_one_module_per_block():
    """OFA-style sharing: every MBConv option of a layer (k3/5/7 x e3/6, SE or not) runs the same
    module, a k3 path reads the central 3x3 taps of the 7x7 kernel and e3 the first channels."""
    s = tiny_space("mbv2-se")
    net = build_supernet(s, "elastic")
    assert [len(b) for b in net.blocks] == [1] * len(s.choices)
    labels = s.gene_labels(0)
    g = list(s.smallest_valid())
    g[0] = labels.index("k3e3")
    spec = next(sp for sp in s.layers(g) if sp.block == 0)
    module = net.module_for(spec)
    assert module.dw_conv.kernel_size == (7, 7) and module.se is not None
    sub = materialize(net, g)
    op = next(o for o, sp in zip(sub.ops, sub.specs) if sp.block == 0)
    assert op.dw_conv.kernel_size == (3, 3) and op.se is None
    assert torch.equal(op.dw_conv.weight, module.dw_conv.weight[:spec.mid, :, 2:5, 2:5])
    assert torch.equal(op.expand_conv.weight, module.expand_conv.weight[:spec.mid])
    g[0] = labels.index("k7e6se")
    assert net.module_for(next(sp for sp in s.layers(g) if sp.block == 0)) is module


def test_elastic_supernet_is_smaller_than_independent():
    s = tiny_space("mbv2")
    n_ind = sum(p.numel() for p in build_supernet(s).parameters())
    n_el = sum(p.numel() for p in build_supernet(s, "elastic").parameters())
    assert n_el < n_ind / 2


def test_unknown_sharing_is_a_clear_error():
    with pytest.raises(HwnasError, match="unknown weight sharing 'ofa'; allowed: independent, elastic"):
        build_supernet(tiny_space("mbv2"), "ofa")


@pytest.mark.parametrize("sharing", SHARING)
@pytest.mark.parametrize("name", SPACE_NAMES)
def test_gradients_reach_only_the_path(name, sharing, rng):
    s = tiny_space(name)
    net = build_supernet(s, sharing).train()
    g = s.sample(rng)
    loss = net(torch.randn(4, 3, 32, 32), g).logsumexp(1).mean()
    loss.backward()
    on_path = {id(p) for p in net.path_parameters(g)}
    for p in net.parameters():
        if id(p) not in on_path:
            assert p.grad is None
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_sliced_bn_updates_only_the_prefix():
    bn = DynamicBatchNorm2d(8)
    bn.train()
    bn(torch.randn(16, 5, 4, 4) + 3)
    assert (bn.running_mean[:5] > 0.1).all()
    assert torch.equal(bn.running_mean[5:], torch.zeros(3))
    assert int(bn.num_batches_tracked) == 1


def test_recalibrate_bn_gives_exact_batch_statistics(rng):
    s = tiny_space("mbv2")
    net = build_supernet(s)
    g = s.sample(rng)
    sub = materialize(net, g)
    batches = [torch.randn(16, 3, 32, 32) * 3 + 1 for _ in range(3)]
    n = recalibrate_bn(sub, ((b, None) for b in batches))
    assert n == 3 and not sub.training
    stem_bn = sub.ops[0].bn
    with torch.no_grad():
        feats = torch.cat([sub.ops[0].conv(b) for b in batches])
    # running mean is the average of per-batch means == the mean over all batches (equal sizes)
    assert torch.allclose(stem_bn.running_mean, feats.mean((0, 2, 3)), atol=1e-5)
    assert stem_bn.momentum == 0.1  # restored


def test_recalibrate_path_module_then_materialize_agrees(rng):
    s = tiny_space("shufflenetv2")
    net = build_supernet(s)
    g = s.sample(rng)
    batches = [torch.randn(8, 3, 32, 32) for _ in range(2)]
    recalibrate_bn(PathModule(net, g), batches)
    sub = materialize(net, g)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(net(x, g), sub(x), atol=1e-5)


def test_subnet_metadata_names_space_and_genes(rng):
    s = tiny_space("mbv2")
    g = s.sample(rng)
    meta = Subnet(s, g).metadata()
    assert meta["space"]["name"] == "mbv2" and meta["genes"] == list(g)
    assert meta["space"]["width"] == 0.25 and "hwnas_version" in meta


@pytest.mark.parametrize("size,kernel,stride", [(1, 7, 1), (2, 7, 1), (2, 5, 2), (3, 7, 2), (4, 7, 2), (1, 3, 1),
                                                (5, 7, 1)])
def test_kernel_crop_on_small_maps_is_exact(size, kernel, stride):
    """A depthwise conv on a map smaller than its reach runs a cropped kernel: same output."""
    import torch.nn.functional as F

    from hwnas.nn.blocks import DynamicConv2d

    conv = DynamicConv2d(6, 6, kernel, stride, kernel // 2, groups=6, bias=False)
    x = torch.randn(3, 6, size, size)
    ref = F.conv2d(x, conv.weight, None, stride, kernel // 2, 1, 6)
    with torch.no_grad():
        got = conv(x)
    assert got.shape == ref.shape
    assert torch.allclose(got, ref, atol=1e-6)


@pytest.mark.parametrize("size,kernel,stride", [(8, 3, 1), (8, 5, 2), (2, 5, 1), (1, 3, 2), (3, 5, 2)])
def test_elastic_kernel_runs_the_central_taps(size, kernel, stride):
    """A 7x7 conv run as ``kernel`` x ``kernel`` is the conv with the central taps and 'same'
    padding, also when the small-map crop applies on top."""
    import torch.nn.functional as F

    from hwnas.nn.blocks import DynamicConv2d

    conv = DynamicConv2d(6, 6, 7, stride, 3, groups=6, bias=False)
    x = torch.randn(2, 6, size, size)
    o = (7 - kernel) // 2
    ref = F.conv2d(x, conv.weight[..., o:o + kernel, o:o + kernel], None, stride, kernel // 2, 1, 6)
    with torch.no_grad():
        got = conv(x, kernel=kernel)
    assert got.shape == ref.shape
    assert torch.allclose(got, ref, atol=1e-6)
    with pytest.raises(ValueError, match="cannot run a 7x7 conv as 4x4"):
        conv(x, kernel=4)


def test_export_keeps_the_full_kernel(tmp_path):
    """While exporting, the crop is off: the exported graph holds the architecture's kernel."""
    import onnx

    from hwnas.nn.blocks import DynamicConv2d

    conv = DynamicConv2d(4, 4, 7, 1, 3, groups=4, bias=False).eval()
    torch.onnx.export(conv, (torch.randn(1, 4, 1, 1),), str(tmp_path / "c.onnx"), dynamo=False)
    shapes = [list(i.dims) for i in onnx.load(str(tmp_path / "c.onnx")).graph.initializer]
    assert [4, 1, 7, 7] in shapes
