"""Fake quantizers for mixed-precision search: PACT activations and uniform symmetric weights.

Both take the bit width as an *argument of each call*, not as module state, so one supernet layer
runs at whatever (w, a) pair the sampled path asks for (SPOS Fig. 3c). Allowed widths are
:data:`ALLOWED_BITS`: 1..8 quantize, 32 means full precision.

* **PACT** (Choi et al. 2018, "PACT: Parameterized Clipping Activation"): ``y = clip(x, 0, alpha)``
  with a learned clipping level ``alpha`` per layer, then ``k``-bit uniform quantization of
  ``[0, alpha]`` into ``2^k`` levels, ``y_q = round(y * (2^k - 1) / alpha) * alpha / (2^k - 1)``.
  The rounding uses the straight-through estimator (STE); the gradient to ``alpha`` is the paper's
  Eq. 3: ``d y_q / d alpha = 1`` where ``x >= alpha`` and 0 elsewhere. :func:`pact` also has a
  ``signed`` form, ``clip(x, -alpha, alpha)`` on the symmetric grid of :func:`weight_grid_levels`
  (levels ``-n..n``, ``n = 2^(k-1) - 1``; binary ``sign(y) * alpha`` at 1 bit), for inputs that can be negative (an MBConv's input is
  the previous block's linear projection). Its alpha gradient is +1 where ``x >= alpha`` and -1
  where ``x <= -alpha``. At 32 bits PACT is the clip alone (no rounding).
* **Weights**: symmetric uniform, per output channel (default) or per tensor. For ``k >= 2`` the
  grid is ``scale * {-n, ..., n}`` with ``n = 2^(k-1) - 1`` and ``scale = max|w| / n``: the
  "restricted range" symmetric grid that int8 runtimes use for weights (TFLite, ONNX: -127..127),
  so an 8-bit layer is exactly the runtime's int8 grid and a k-bit layer maps into int8 containers
  without changing its levels (see :mod:`hwnas.quant.export`). ``k = 1`` is binary,
  ``sign(w) * mean|w|`` (XNOR-Net / DoReFa scaling; ``sign(0) = +1``). A k-bit layer therefore
  has at most ``2^k - 1`` (k >= 2) or 2 (k = 1) distinct values per channel, all integer
  multiples of the channel's scale. STE: the gradient passes to the latent float weights unchanged.
"""

from __future__ import annotations

import numbers

import torch
from torch import nn

from hwnas.errors import HwnasError

#: bit widths a quantizer accepts: 1..8 quantize, 32 is full precision.
ALLOWED_BITS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 32)
FULL_PRECISION = 32
#: initial PACT clipping level (the ReLU6 range): a compromise between the paper's 10 and the
#: small ranges that 2-bit activations prefer; alpha is learned from there.
PACT_ALPHA_INIT = 6.0
_EPS = 1e-8


def check_bits(bits: int, what: str = "bit width") -> int:
    """Return ``bits`` as an int, or raise HwnasError naming the allowed widths."""
    if isinstance(bits, bool) or not isinstance(bits, numbers.Integral):
        raise HwnasError(f"{what} must be an integer in {_allowed()}, got {bits!r}")
    b = int(bits)
    if b not in ALLOWED_BITS:
        raise HwnasError(f"{what} {b} is not supported; allowed: {_allowed()}")
    return b


def _allowed() -> str:
    return "1..8 or 32 (full precision)"


def weight_grid_levels(bits: int) -> int:
    """``n``: the largest integer level of the symmetric k-bit grid (levels ``-n..n``; 1 for k = 1)."""
    b = check_bits(bits)
    if b == FULL_PRECISION:
        raise HwnasError("full precision (32 bits) has no integer grid")
    return 1 if b == 1 else 2 ** (b - 1) - 1


def _reduce_dims(w: torch.Tensor, per_channel: bool) -> tuple[int, ...]:
    if not per_channel or w.dim() < 2:
        return tuple(range(w.dim()))
    return tuple(range(1, w.dim()))


def weight_scale(w: torch.Tensor, bits: int, per_channel: bool = True) -> torch.Tensor:
    """The grid step of :func:`quantize_weight` (shape broadcastable to ``w``), without gradient."""
    b = check_bits(bits, "weight bit width")
    if b == FULL_PRECISION:
        raise HwnasError("full precision (32 bits) has no quantization scale")
    dims = _reduce_dims(w, per_channel)
    a = w.detach().abs()
    if b == 1:
        return a.mean(dim=dims, keepdim=True).clamp_min(_EPS)
    return a.amax(dim=dims, keepdim=True).clamp_min(_EPS) / weight_grid_levels(b)


def quantize_weight(w: torch.Tensor, bits: int, per_channel: bool = True) -> torch.Tensor:
    """Uniform symmetric fake quantization of ``w`` at ``bits`` (32: ``w`` itself), with STE."""
    b = check_bits(bits, "weight bit width")
    if b == FULL_PRECISION:
        return w
    scale = weight_scale(w, b, per_channel)
    if b == 1:
        q = torch.where(w.detach() >= 0, scale, -scale)
    else:
        n = weight_grid_levels(b)
        q = torch.round(w.detach() / scale).clamp_(-n, n) * scale
    return w + (q - w).detach()


def pact(x: torch.Tensor, alpha: torch.Tensor, bits: int, signed: bool = False) -> torch.Tensor:
    """PACT activation: clip to ``[0, alpha]`` (``[-alpha, alpha]`` when ``signed``), quantize to ``bits``.

    ``bits = 32`` clips without rounding. Gradients: STE through the rounding; to ``x`` inside the
    clipping range; to ``alpha`` from the clipped elements (PACT Eq. 3).
    """
    b = check_bits(bits, "activation bit width")
    alpha = alpha.abs() + _EPS  # keeps the range valid if SGD pushes alpha through zero
    # PACT Eq. 1 written with min/max so that autograd gives Eq. 3 exactly:
    # d/dalpha = 1 where x >= alpha (and -1 where x <= -alpha for the signed form), else 0.
    y = torch.minimum(x, alpha)
    y = torch.maximum(y, -alpha) if signed else torch.relu(y)
    if b == FULL_PRECISION:
        return y
    a = alpha.detach()
    if signed and b == 1:  # binary: sign(y) * alpha
        q = torch.where(y.detach() >= 0, a, -a)
    else:
        step = a / (weight_grid_levels(b) if signed else 2 ** b - 1)
        q = torch.round(y.detach() / step) * step
    return y + (q - y).detach()


class PACT(nn.Module):
    """A learned PACT clipping level; ``forward(x, bits)`` quantizes at the bits of this call."""

    def __init__(self, init: float = PACT_ALPHA_INIT, signed: bool = False) -> None:
        super().__init__()
        self.signed = signed
        self.alpha = nn.Parameter(torch.tensor([float(init)]))

    def forward(self, x: torch.Tensor, bits: int) -> torch.Tensor:
        return pact(x, self.alpha, bits, self.signed)

    def clip_value(self) -> float:
        """The clipping level as a Python float (what an exported graph's Clip uses)."""
        return float(self.alpha.detach().abs()) + _EPS

    def extra_repr(self) -> str:
        return f"signed={self.signed}"
