"""Quantized building blocks: the ResNet basic block (``basic``) and the MBConv (``qmbconv``).

Like every block (:mod:`hwnas.nn.blocks`), each is built from one OpSpec and called as ``block(x)``
(static subnet: the spec it was built with) or ``block(x, spec)`` (supernet: the sampled path's
``mid``, ``w_bits`` and ``a_bits``). Bits are read from the spec on every call, so the paths of a
choice block that differ only in bits or channel scale share one set of weights (SPOS Fig. 3b, 3c):
channels by prefix slicing, bits by quantizing the active slice at the call's width.

Quantization follows SPOS Sec. 4 / PACT: every conv of a block quantizes its weights at ``w_bits``
(per output channel) and its *input* activations at ``a_bits`` (PACT, learned clip per
activation; the one exception is the signed input of an MBConv, see :class:`QuantMBConv`); batch
norm, the residual sum and the block's final ReLU stay in full precision (the next block's input
quantizer clips and quantizes them). A block at ``a_bits = w_bits = 32`` is the
plain full-precision block (ReLU / ReLU6, no clip).

``switch_to_deploy()`` turns a *static* block into its export form: weights replaced by their
quantized values (so the int8 runtime's containers hold the k-bit levels), activations clipped at
the learned alphas (constants in the graph) and left for the runtime's int8 quantizer; see
:mod:`hwnas.quant.export`. The clip is written ``clamp(x, 0, alpha)`` (MINIMUM / RELU ops in a
TFLite graph) or, with :func:`with_clip_form` ``relu6``, as the equal
``alpha/6 * relu6(x * 6/alpha)``: multiplications by constants and a ReLU6 that a converter fuses
into the neighbouring conv or MUL, ops a static int8 quantizer without a MINIMUM kernel (such as
ai-edge-quantizer's) quantizes, so the graph stays full-integer.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from hwnas.nn.blocks import DynamicBatchNorm2d, DynamicConv2d, activation
from hwnas.quant.quantizers import FULL_PRECISION, PACT, quantize_weight
from hwnas.spaces.base import OpSpec

#: how a deploy-form block writes PACT's clip (see the module docstring).
CLIP_FORMS = ("clamp", "relu6")


def deploy_clip(x: torch.Tensor, clip: float, signed: bool = False, form: str = "clamp") -> torch.Tensor:
    """PACT's frozen clip ``clamp(x, 0, clip)`` (``[-clip, clip]`` when ``signed``) in ``form``.

    ``relu6``: ``clip/6 * relu6(x * 6/clip)``; signed, ``clip/3 * relu6(x * 3/clip + 3) - clip``.
    Equal to the clamp in exact arithmetic (float32: within a few ulps of ``clip``).
    """
    if form == "clamp":
        return torch.clamp(x, -clip if signed else 0.0, clip)
    if form != "relu6":
        raise ValueError(f"unknown clip form {form!r}; known: {', '.join(CLIP_FORMS)}")
    if signed:
        return F.relu6(x * (3.0 / clip) + 3.0) * (clip / 3.0) - clip
    return F.relu6(x * (6.0 / clip)) * (clip / 6.0)

class QuantConv2d(DynamicConv2d):
    """A :class:`DynamicConv2d` whose active weight slice is fake-quantized at ``w_bits`` per call."""

    def forward(self, x: torch.Tensor, out_channels: int | None = None,  # type: ignore[override]
                w_bits: int = FULL_PRECISION, kernel: int | None = None) -> torch.Tensor:
        weight, bias, groups = self.active(x.shape[1], out_channels, kernel)
        padding = self.active_padding(weight)
        weight = quantize_weight(weight, w_bits)
        return F.conv2d(x, weight, bias, self.stride, padding, self.dilation, groups)


def qconv(in_c: int, out_c: int, k: int, stride: int = 1, groups: int = 1) -> QuantConv2d:
    return QuantConv2d(in_c, out_c, k, stride, k // 2, groups=groups, bias=False)


class _QuantBlock(nn.Module):
    """Shared bits handling: the spec of the call, PACT or the plain activation, deploy form."""

    def __init__(self, spec: OpSpec) -> None:
        super().__init__()
        self.spec = spec
        self.deploy = False
        self.clip_form = "clamp"
        self._clips: dict[str, float] = {}

    def _bits(self, spec: OpSpec | None) -> tuple[OpSpec, int, int]:
        s = self.spec if spec is None else spec
        if self.deploy:  # weights already hold their quantized values
            return s, FULL_PRECISION, s.a_bits
        return s, s.w_bits, s.a_bits

    def _act(self, name: str, x: torch.Tensor, a_bits: int,
             fp: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        if a_bits == FULL_PRECISION:
            return fp(x)
        quant: PACT = getattr(self, name)
        if self.deploy:
            return deploy_clip(x, self._clips[name], quant.signed, self.clip_form)
        return quant(x, a_bits)

    def quant_convs(self) -> list[QuantConv2d]:
        return [m for m in self.modules() if isinstance(m, QuantConv2d)]

    @torch.no_grad()
    def switch_to_deploy(self) -> None:
        """Bake the weights at ``spec.w_bits`` and freeze the clips (static blocks only)."""
        if self.deploy:
            return
        for conv in self.quant_convs():
            conv.weight.copy_(quantize_weight(conv.weight, self.spec.w_bits))
        self._clips = {n: m.clip_value() for n, m in self.named_children() if isinstance(m, PACT)}
        self.deploy = True


class BasicBlock(_QuantBlock):
    """ResNet basic block (SPOS Sec. 4, ResNet-18/34): the op type ``basic``.

    ``q = PACT_in(x)``; ``h = PACT_1(BN(conv3x3(q; in -> mid, stride)))``;
    ``out = ReLU(BN(conv3x3(h; mid -> out)) + shortcut)``, where the shortcut is ``x`` or, when the
    shape changes, ``BN(conv1x1(q; stride))``. All three convs use the block's (w, a) bits (the
    shortcut conv too: it reads the same quantized input ``q``; BitOps count it at (w, a)). ``mid``
    (the bottleneck channels, SPOS "output channels of the first convolutional layer") is sliced.
    """

    def __init__(self, spec: OpSpec) -> None:
        super().__init__(spec)
        in_c, out_c, mid = spec.in_shape[0], spec.out_shape[0], spec.mid
        self.in_act = PACT()
        self.conv1 = qconv(in_c, mid, 3, spec.stride)
        self.bn1 = DynamicBatchNorm2d(mid)
        self.act1 = PACT()
        self.conv2 = qconv(mid, out_c, 3)
        self.bn2 = DynamicBatchNorm2d(out_c)
        if spec.stride != 1 or in_c != out_c:
            self.shortcut_conv: QuantConv2d | None = qconv(in_c, out_c, 1, spec.stride)
            self.shortcut_bn: DynamicBatchNorm2d | None = DynamicBatchNorm2d(out_c)
        else:
            self.shortcut_conv = self.shortcut_bn = None

    def forward(self, x: torch.Tensor, spec: OpSpec | None = None) -> torch.Tensor:
        s, w, a = self._bits(spec)
        q = self._act("in_act", x, a, lambda t: t)
        h = self._act("act1", self.bn1(self.conv1(q, s.mid, w)), a, F.relu)
        h = self.bn2(self.conv2(h, None, w))
        if self.shortcut_conv is not None:
            x = self.shortcut_bn(self.shortcut_conv(q, None, w))
        return F.relu(h + x)


class QuantMBConv(_QuantBlock):
    """MobileNetV2 inverted bottleneck with quantized convs: the op type ``qmbconv``.

    ``[1x1 expand -> BN -> PACT] -> kxk depthwise -> BN -> PACT -> 1x1 project -> BN (+ x)``: all
    convs use ``w_bits``; the PACTs (alpha starts at 6) replace the ReLU6s and quantize the inputs
    of the depthwise and projection convs at ``a_bits``. The block input (the signed residual
    stream, input of the expand conv) is left to the runtime's int8 quantizer and is not clipped
    in training: a learned signed clip there (PACT on ``[-alpha, alpha]``) cost accuracy in
    training and more in the int8 exports (figures in docs/quantization.md). BitOps still count
    the expand conv at (w, a). No SE option (``mbv2-mp`` has none).
    """

    def __init__(self, spec: OpSpec) -> None:
        super().__init__(spec)
        if spec.se:
            raise ValueError("qmbconv has no squeeze-and-excitation option")
        in_c, out_c, mid = spec.in_shape[0], spec.out_shape[0], spec.mid
        self.fp_act = activation(spec.act)
        self.has_expand = spec.expand != 1
        if self.has_expand:
            self.expand_conv = qconv(in_c, mid, 1)
            self.expand_bn = DynamicBatchNorm2d(mid)
            self.expand_act = PACT()
        self.dw_conv = qconv(mid, mid, spec.kernel, spec.stride, groups=mid)
        self.dw_bn = DynamicBatchNorm2d(mid)
        self.dw_act = PACT()
        self.project_conv = qconv(mid, out_c, 1)
        self.project_bn = DynamicBatchNorm2d(out_c)
        self.residual = spec.stride == 1 and in_c == out_c

    def forward(self, x: torch.Tensor, spec: OpSpec | None = None) -> torch.Tensor:
        s, w, a = self._bits(spec)
        h = x
        if self.has_expand:
            h = self._act("expand_act", self.expand_bn(self.expand_conv(h, s.mid, w)), a, self.fp_act)
        h = self._act("dw_act", self.dw_bn(self.dw_conv(h, None, w, s.kernel)), a, self.fp_act)
        h = self.project_bn(self.project_conv(h, None, w))
        return x + h if self.residual else h


def switch_to_deploy(model: nn.Module) -> nn.Module:
    """Call ``switch_to_deploy()`` on every quantized block of a static ``model`` (in place)."""
    for m in model.modules():
        if isinstance(m, _QuantBlock):
            m.switch_to_deploy()
    return model


def with_clip_form(model: nn.Module, form: str) -> nn.Module:
    """A copy of ``model`` whose deploy-form blocks write their clips in ``form`` (see
    :func:`deploy_clip`); ``model`` itself is unchanged. A model without quantized blocks is
    returned as it is."""
    if form not in CLIP_FORMS:
        raise ValueError(f"unknown clip form {form!r}; known: {', '.join(CLIP_FORMS)}")
    if not any(isinstance(m, _QuantBlock) for m in model.modules()):
        return model
    out = copy.deepcopy(model)
    for m in out.modules():
        if isinstance(m, _QuantBlock):
            m.clip_form = form
    return out


