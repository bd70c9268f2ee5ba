"""PACT and uniform weight quantizers: grids, straight-through gradients, bit-width errors."""

import numpy as np
import pytest
import torch

from hwnas.errors import HwnasError
from hwnas.quant.quantizers import (
    ALLOWED_BITS,
    PACT,
    check_bits,
    pact,
    quantize_weight,
    weight_grid_levels,
    weight_scale,
)



@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("per_channel", [True, False])
def test_weights_lie_on_the_k_bit_grid(bits, per_channel):
    w = torch.randn(6, 5, 3, 3) * torch.linspace(0.1, 3.0, 6)[:, None, None, None]
    q = quantize_weight(w, bits, per_channel)
    scale = weight_scale(w, bits, per_channel)
    assert scale.shape == ((6, 1, 1, 1) if per_channel else (1, 1, 1, 1))
    ints = q / scale
    # values are integer multiples of the scale ...
    assert torch.allclose(ints, ints.round(), atol=1e-4)
    # ... within -n..n, and there are at most 2^k levels per channel (2^k - 1 for the symmetric grid)
    n = weight_grid_levels(bits)
    assert ints.round().abs().max() <= n
    rows = ints.round().reshape(6, -1) if per_channel else ints.round().reshape(1, -1)
    for row in rows:
        levels = torch.unique(row).numel()
        assert levels <= 2 ** bits
        assert levels <= (2 if bits == 1 else 2 ** bits - 1)
    if bits in (3, 4):  # the grid is actually used (45 values per channel fill a 3-4 bit grid)
        assert torch.unique(rows[-1]).numel() >= 2 ** bits - 3
    # the quantization error is at most half a step (k >= 2), so q approximates w
    if bits >= 2:
        assert ((q - w).abs() <= scale / 2 + 1e-6).all()


def test_one_bit_weights_are_sign_times_mean_abs():
    w = torch.tensor([[0.5, -1.5, 2.0, -0.0]])
    q = quantize_weight(w, 1)
    m = w.abs().mean()
    assert torch.allclose(q, torch.tensor([[m, -m, m, m]]))


def test_full_precision_is_the_identity():
    w = torch.randn(4, 3, 3, 3)
    assert quantize_weight(w, 32) is w
    x = torch.randn(100) * 5
    alpha = torch.tensor([2.0])
    assert torch.allclose(pact(x, alpha, 32), x.clamp(0, 2.0), atol=1e-6)


def test_weight_gradient_is_straight_through():
    w = torch.randn(8, 4, 3, 3, requires_grad=True)
    g = torch.randn(8, 4, 3, 3)
    (quantize_weight(w, 2) * g).sum().backward()
    assert torch.equal(w.grad, g)


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_pact_grid_and_clip(bits):
    alpha = torch.tensor([3.0])
    x = torch.linspace(-2, 6, 2001)
    y = pact(x, alpha, bits)
    levels = 2 ** bits - 1
    ints = y / (3.0 / levels)
    assert torch.allclose(ints, ints.round(), atol=1e-4)
    assert torch.unique(ints.round()).numel() == 2 ** bits  # the whole [0, alpha] grid is reached
    assert y.min() == 0 and abs(float(y.max()) - 3.0) < 1e-5


def test_signed_pact_grid():
    alpha = torch.tensor([2.0])
    x = torch.linspace(-5, 5, 1001)
    y = pact(x, alpha, 4, signed=True)
    ints = y / (2.0 / 7)
    assert torch.allclose(ints, ints.round(), atol=1e-4)
    assert torch.unique(ints.round()).tolist() == list(range(-7, 8))
    assert torch.unique(pact(x, alpha, 1, signed=True)).tolist() == [-2.0, 2.0]


def test_pact_alpha_gradient_follows_the_paper():
    """d y / d alpha = 1 where x >= alpha, 0 elsewhere (PACT Eq. 3); x gets STE inside the range."""
    x = torch.tensor([-1.0, 0.5, 1.2, 2.5, 4.0], requires_grad=True)
    act = PACT(init=2.0)
    y = act(x, 2)
    y.sum().backward()
    assert act.alpha.grad is not None
    assert float(act.alpha.grad) == pytest.approx(2.0)  # two elements >= alpha
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 0.0, 0.0]
    # correct sign: a loss that wants larger outputs of clipped elements pushes alpha up under SGD
    act.alpha.grad = None
    loss = -(act(torch.tensor([3.0, 5.0]), 4)).sum()
    loss.backward()
    assert float(act.alpha.grad) < 0  # gradient descent increases alpha
    # nothing is clipped: no gradient to alpha
    act.alpha.grad = None
    act(torch.tensor([0.1, 0.3]), 4).sum().backward()
    assert float(act.alpha.grad) == 0.0


def test_signed_pact_alpha_gradient():
    alpha = torch.tensor([1.0], requires_grad=True)
    x = torch.tensor([-3.0, -0.5, 0.5, 2.0])
    pact(x, alpha, 4, signed=True).sum().backward()
    assert float(alpha.grad) == pytest.approx(0.0)  # +1 (x >= alpha) and -1 (x <= -alpha)
    alpha.grad = None
    pact(torch.tensor([2.0, 3.0, -0.2]), alpha, 4, signed=True).sum().backward()
    assert float(alpha.grad) == pytest.approx(2.0)


@pytest.mark.parametrize("bad", [0, 9, 16, -1, 33])
def test_bits_outside_the_allowed_set_are_errors(bad):
    with pytest.raises(HwnasError, match=r"allowed: 1\.\.8 or 32"):
        quantize_weight(torch.randn(2, 2), bad)
    with pytest.raises(HwnasError, match=r"allowed: 1\.\.8 or 32"):
        pact(torch.randn(3), torch.tensor([1.0]), bad)


def test_bits_must_be_integers():
    with pytest.raises(HwnasError, match="must be an integer"):
        check_bits(4.0)
    with pytest.raises(HwnasError, match="must be an integer"):
        check_bits(True)
    assert check_bits(np.int64(4)) == 4
    assert ALLOWED_BITS == (1, 2, 3, 4, 5, 6, 7, 8, 32)


def test_bits_are_a_call_argument_not_state():
    act = PACT(init=4.0)
    x = torch.linspace(0, 4, 101)
    assert torch.unique(act(x, 2)).numel() == 4
    assert torch.unique(act(x, 3)).numel() == 8
    assert torch.unique(act(x, 2)).numel() == 4
