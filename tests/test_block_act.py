"""``--act`` (PGONAS Sec. 3.1): PReLU or Mish as the blocks' second activation. The op carries it
(``OpSpec.act2``), so cost model, latency keys, supernet, materialize and export follow; one-line
errors for a space without the setting or an activation it does not allow."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from conftest import run_cli
from hwnas.cost import arch_costs
from hwnas.errors import HwnasError
from hwnas.nn.blocks import set_kernel_crop
from hwnas.spaces import create_space, space_from_config
from hwnas.supernet import Subnet, build_supernet, materialize


@pytest.mark.parametrize("act,module", [("prelu", nn.PReLU), ("mish", nn.Mish)])
def test_second_activation_reaches_ops_cost_keys_and_modules(act, module):
    rng = np.random.default_rng(3)
    s = create_space("mbv2-se-width", width=0.25, resolution=32, num_classes=10, act=act)
    plain = create_space("mbv2-se-width", width=0.25, resolution=32, num_classes=10)
    assert s.config()["act"] == act and "act" not in plain.config()  # stored configs stay as they were
    assert space_from_config(s.config()) == s
    g = s.sample(rng)
    mb = [op for op in s.layers(g) if op.op == "mbconv"]
    assert mb and all(op.act2 == act and op.latency_key().endswith(f"-a2{act}") for op in mb)
    assert all("-a2" not in op.latency_key() for op in plain.layers(g))
    net = set_kernel_crop(Subnet(s, g).eval(), False)
    assert sum(isinstance(m, module) for m in net.modules()) == len(mb)  # one per MBConv (after the dw conv)
    c = arch_costs(s, g)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        net(torch.randn(1, 3, 32, 32))
    assert fc.get_total_flops() == c.flops
    assert sum(p.numel() for p in net.parameters()) == c.params
    extra = len(mb) if act == "prelu" else 0  # PReLU learns one slope per block
    assert c.params == arch_costs(plain, g).params + extra


def test_materialized_prelu_subnet_equals_the_supernet_path():
    rng = np.random.default_rng(5)
    s = create_space("mbv2", width=0.25, resolution=16, num_classes=10, act="prelu")
    net = build_supernet(s)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.PReLU):
                m.weight.uniform_(-0.5, 0.5)
    net.eval()
    x = torch.randn(2, 3, 16, 16)
    for g in (s.sample(rng),):
        with torch.no_grad():
            assert (net(x, g) - materialize(net, g)(x)).abs().max().item() <= 1e-5


def test_act_errors_are_one_line_exit_2(capsys, tmp_path):
    with pytest.raises(HwnasError, match="has no block activation setting"):
        create_space("shufflenetv2", act="mish")
    with pytest.raises(HwnasError, match="allowed: relu6, relu, prelu, mish"):
        create_space("mbv2", act="selu")
    base = ["train", "--width", "0.25", "--resolution", "16", "--batch-size", "8", "--workers", "0",
            "--steps-per-epoch", "1", "--epochs", "1", "-q"]
    for space, act, words in (("shufflenetv2", "mish", "no block activation setting"),
                              ("mbv2", "swishy", "not allowed on space 'mbv2'")):
        code, _, err = run_cli([*base, "--out", str(tmp_path / space), "--space", space, "--act", act], capsys)
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1
