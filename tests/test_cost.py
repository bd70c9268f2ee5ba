import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from conftest import SPACE_NAMES, tiny_space
from hwnas.cost import CostModel, arch_costs, cost_of_layers, costs, op_costs
from hwnas.errors import HwnasError
from hwnas.spaces.base import OpSpec
from hwnas.nn.blocks import set_kernel_crop
from hwnas.supernet import Subnet


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_macs_and_params_match_torch_on_20_archs(name, rng):
    """MACs x 2 equal FlopCounterMode's total exactly; params equal numel() exactly."""
    s = tiny_space(name, resolution=40)
    archs = [s.sample(rng) for _ in range(20)] + [s.smallest(), s.largest()]
    for g in archs:
        # the architecture's kernels, not the exact small-map crop used to run faster
        net = set_kernel_crop(Subnet(s, g).eval(), False)
        c = arch_costs(s, g)
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            net(torch.randn(1, 3, 40, 40))
        assert fc.get_total_flops() == c.flops == 2 * c.macs, g
        assert sum(p.numel() for p in net.parameters()) == c.params, g


def test_hand_count_of_a_conv():
    op = OpSpec("conv", (3, 32, 32), (16, 16, 16), kernel=3, stride=2)
    c = op_costs(op)
    assert c.macs == 16 * 16 * 16 * 3 * 9
    assert c.params == 16 * 3 * 9 + 2 * 16
    lin = OpSpec("linear", (64, 1, 1), (10, 1, 1), bias=True, act="none")
    assert op_costs(lin).macs == 640 and op_costs(lin).params == 650


def test_bitops_use_per_layer_bits():
    ops = [OpSpec("conv", (3, 8, 8), (4, 8, 8), kernel=3),
           OpSpec("conv", (4, 8, 8), (4, 8, 8), kernel=1, w_bits=2, a_bits=4)]
    c = cost_of_layers(ops)
    m0, m1 = op_costs(ops[0]).macs, op_costs(ops[1]).macs
    assert c.bitops == m0 * 32 * 32 + m1 * 2 * 4
    # peak activation bytes: the 4-bit layer stores 1/8 of the fp32 bytes per element
    assert c.peak_act_bytes == max(op_costs(ops[0]).peak_act * 4, op_costs(ops[1]).peak_act // 2)


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_vectorised_costs_equal_per_arch(name, rng):
    s = tiny_space(name)
    m = s.sample_many(rng, 64)
    vec = costs(s, m)
    for i, g in enumerate(m):
        c = arch_costs(s, g)
        for k in ("macs", "flops", "params", "bitops", "peak_act_bytes"):
            assert vec[k][i] == getattr(c, k), (k, g)


def test_vectorised_costs_validate_input():
    s = tiny_space("mbv2")
    cm = CostModel(s)
    with pytest.raises(HwnasError, match="21 genes per architecture"):
        cm(np.zeros((3, 5), dtype=int))
    bad = np.zeros((2, 21), dtype=int)
    bad[1, 4] = 9
    with pytest.raises(HwnasError, match="gene 4"):
        cm(bad)


def test_bitops_default_full_precision(rng):
    s = tiny_space("shufflenetv2")
    c = costs(s, s.sample_many(rng, 10))
    assert np.array_equal(c["bitops"], c["macs"] * 1024)
