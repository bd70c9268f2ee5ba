"""Building blocks shared by supernets and static subnets.

Every block is built from one :class:`~hwnas.spaces.base.OpSpec` and called as ``block(x)`` (static
subnet: its own widths) or ``block(x, spec)`` (supernet: run as ``spec`` says, e.g. a narrower
``mid`` or, for quantized blocks, other bit widths). Elastic width follows SPOS
(Fig. 3b) and Once-for-All (``get_active_filter``): weights are preallocated at the largest width
and a narrower path uses the *first* ``mid`` channels. Because every slice is a prefix along
every dimension, a static subnet is obtained by copying ``tensor[:n0, :n1, ...]`` of each
parameter (see :func:`hwnas.supernet.materialize`); there is one class per block, not a static and
a dynamic copy that could drift apart.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from hwnas.spaces.base import OpSpec, se_channels


def activation(name: str) -> nn.Module:
    """Activation module by name (the ``act`` field of an OpSpec)."""
    if name == "relu":
        return nn.ReLU(inplace=False)
    if name == "relu6":
        return nn.ReLU6(inplace=False)
    if name == "hswish":
        return nn.Hardswish()
    if name == "mish":
        return nn.Mish()
    if name == "prelu":  # one learned slope per module, 0.25 at start (He et al. 2015, PyTorch default)
        return nn.PReLU()
    if name == "none":
        return nn.Identity()
    raise ValueError(f"unknown activation {name!r}")


def _exporting() -> bool:
    """True while torch.export / the ONNX exporter / TorchScript tracing records the graph."""
    return bool(torch.compiler.is_exporting() or torch.onnx.is_in_onnx_export() or torch.jit.is_tracing())


def _kernel_reach(x: torch.Tensor, padding: tuple[int, ...] | str) -> tuple[int, int] | None:
    """Half-sizes of the kernel taps that can touch the input, when smaller than the padding.

    With 'same' padding ``p = k // 2`` an output reads inputs ``o*s + u - p``; on an ``H``-high map
    only taps ``|u - p| <= H - 1`` ever land inside it, for any stride. Returns None when nothing
    can be cropped.
    """
    if isinstance(padding, str):
        return None
    ph, pw = padding
    ch, cw = min(ph, x.shape[2] - 1), min(pw, x.shape[3] - 1)
    if ch == ph and cw == pw:
        return None
    return ch, cw


class DynamicConv2d(nn.Conv2d):
    """A Conv2d that can run on a prefix of its channels.

    Input channels come from the input tensor; output channels from ``out_channels`` (a depthwise
    conv follows its input). At full width it is a plain ``nn.Conv2d`` call.
    """

    #: run a cropped kernel on maps smaller than its reach (exact; see forward). Turn it off with
    #: :func:`set_kernel_crop` to execute, e.g. for a FLOP counter, the architecture's full kernel.
    crop_small_maps: bool = True

    def forward(self, x: torch.Tensor, out_channels: int | None = None,  # type: ignore[override]
                kernel: int | None = None) -> torch.Tensor:
        weight, bias, groups = self.active(x.shape[1], out_channels, kernel)
        padding = self.active_padding(weight)
        reach = _kernel_reach(x, padding)
        if reach is not None and self.crop_small_maps and not _exporting():
            # Only the central 2*(H-1)+1 taps ever meet a real pixel: crop them (exact), because
            # oneDNN runs 7x7 depthwise convs on 1x1 / 2x2 maps ~50x slower than 3x3 ones.
            (ch, cw), (ph, pw) = reach, padding
            weight = weight[..., ph - ch: ph + ch + 1, pw - cw: pw + cw + 1]
            padding = (ch, cw)
        elif weight is self.weight:
            return super().forward(x)
        return F.conv2d(x, weight, bias, self.stride, padding, self.dilation, groups)

    def enable_kernel_transform(self) -> None:
        """Register Once-for-All's kernel transformation matrices (Sec. 3.2, elastic kernel size):
        one learned ``k'^2 x k'^2`` linear map per step ``k -> k' = k - 2`` down to 3 (a 7x7 kernel
        gets ``7to5_matrix``, 25x25, and ``5to3_matrix``, 9x9, named as OFA names them), each
        initialised to the identity, so a new supernet starts at the plain centre crop."""
        k = self.kernel_size[0]
        while k > 3:
            small = k - 2
            if not hasattr(self, f"{k}to{small}_matrix"):
                self.register_parameter(f"{k}to{small}_matrix", nn.Parameter(torch.eye(small * small)))
            k = small

    @property
    def has_kernel_transform(self) -> bool:
        """True once :meth:`enable_kernel_transform` registered the matrices."""
        k = self.kernel_size[0]
        return k > 3 and f"{k}to{k - 2}_matrix" in self._parameters

    def transform_kernel(self, weight: torch.Tensor, kernel: int) -> torch.Tensor:
        """The ``kernel x kernel`` filter of ``weight`` (the module's full kernel, any channel
        prefix) through the transformation matrices (OFA ``get_active_filter``): from the full
        size down in steps of 2, each step the centre ``k' x k'`` taps of the previous filter,
        flattened per channel, times the step's matrix (``x @ M^T``)."""
        k = weight.shape[-1]
        while k > kernel:
            small = k - 2
            matrix = getattr(self, f"{k}to{small}_matrix")
            centre = weight[..., 1: k - 1, 1: k - 1].reshape(-1, small * small)
            weight = F.linear(centre, matrix).reshape(*weight.shape[:2], small, small)
            k = small
        return weight

    def active(self, in_c: int, out_channels: int | None = None, kernel: int | None = None
               ) -> tuple[torch.Tensor, torch.Tensor | None, int]:
        """The (weight, bias, groups) that runs on ``in_c`` input channels: a channel prefix and,
        for a smaller ``kernel`` (elastic kernel, Once-for-All Sec. 3.2), the central
        ``kernel x kernel`` taps, or with kernel transformation matrices
        (:meth:`enable_kernel_transform`) the transformed kernel."""
        depthwise = self.groups > 1 and self.groups == self.in_channels
        out_c = in_c if depthwise else (self.out_channels if out_channels is None else out_channels)
        weight, bias, groups = self.weight, self.bias, self.groups
        if in_c != self.in_channels or out_c != self.out_channels:
            weight = self.weight[:out_c] if depthwise else self.weight[:out_c, :in_c]
            bias = None if self.bias is None else self.bias[:out_c]
            groups = in_c if depthwise else self.groups
        full = self.kernel_size[0]
        if kernel is not None and kernel != full:
            if not 1 <= kernel < full or (full - kernel) % 2:
                raise ValueError(f"cannot run a {full}x{full} conv as {kernel}x{kernel}")
            if self.has_kernel_transform:
                weight = self.transform_kernel(weight, kernel)
            else:
                o = (full - kernel) // 2
                weight = weight[..., o: o + kernel, o: o + kernel]
        return weight, bias, groups

    def active_padding(self, weight: torch.Tensor) -> tuple[int, ...] | str:
        """'Same' padding for ``weight`` (the module's own padding at its full kernel)."""
        if weight.shape[-1] == self.kernel_size[-1]:
            return self.padding
        return (weight.shape[-2] // 2, weight.shape[-1] // 2)


def set_kernel_crop(model: nn.Module, enabled: bool) -> nn.Module:
    """Enable or disable the exact small-map kernel crop on every DynamicConv2d of ``model``."""
    for m in model.modules():
        if isinstance(m, DynamicConv2d):
            m.crop_small_maps = enabled
    return model


class DynamicBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm over a prefix of its channels; running statistics of the prefix are updated in place."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        c = x.shape[1]
        if c == self.num_features:
            return super().forward(x)
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                momentum = 1.0 / float(self.num_batches_tracked)
        use_batch = self.training or not self.track_running_stats
        return F.batch_norm(
            x,
            self.running_mean[:c] if self.track_running_stats else None,
            self.running_var[:c] if self.track_running_stats else None,
            self.weight[:c], self.bias[:c], use_batch, momentum, self.eps)


def conv(in_c: int, out_c: int, k: int, stride: int = 1, groups: int = 1, bias: bool = False) -> DynamicConv2d:
    return DynamicConv2d(in_c, out_c, k, stride, k // 2, groups=groups, bias=bias)


class ConvBNAct(nn.Module):
    """conv k x k -> BN -> activation (stem and head convs)."""

    def __init__(self, spec: OpSpec) -> None:
        super().__init__()
        self.conv = conv(spec.in_shape[0], spec.out_shape[0], spec.kernel, spec.stride)
        self.bn = DynamicBatchNorm2d(spec.out_shape[0])
        self.act = activation(spec.act)

    def forward(self, x: torch.Tensor, spec: OpSpec | None = None) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: GAP -> 1x1 -> ReLU -> 1x1 -> gate -> scale. The gate is a sigmoid
    (GreedyNAS SE option) or, with ``hard=True``, the hard sigmoid ``relu6(x + 3) / 6`` of
    MobileNetV3 (Sec. 5.2) and Once-for-All's ``SEModule``."""

    def __init__(self, channels: int, hard: bool = False) -> None:
        super().__init__()
        red = se_channels(channels)
        self.reduce = conv(channels, red, 1, bias=True)
        self.expand = conv(red, channels, 1, bias=True)
        self.hard = hard

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        s = x.mean((2, 3), keepdim=True)
        s = F.relu(self.reduce(s, se_channels(c)))
        s = self.expand(s, c)
        s = F.hardsigmoid(s) if self.hard else torch.sigmoid(s)
        return x * s


class MBConv(nn.Module):
    """MobileNetV2 inverted bottleneck: [1x1 expand] -> k x k depthwise -> [SE] -> 1x1 project (+ skip).

    The expand conv uses ``spec.act``, the depthwise conv the block's second activation
    (``spec.act2``, e.g. PReLU or Mish; PGONAS Sec. 3.1)."""

    #: whether the SE module gates with the hard sigmoid (MobileNetV3) instead of the sigmoid
    hard_se: ClassVar[bool] = False

    def __init__(self, spec: OpSpec) -> None:
        super().__init__()
        in_c, out_c, mid = spec.in_shape[0], spec.out_shape[0], spec.mid
        self.has_expand = spec.expand != 1
        if self.has_expand:
            self.expand_conv = conv(in_c, mid, 1)
            self.expand_bn = DynamicBatchNorm2d(mid)
            self.expand_act = activation(spec.act)
        self.dw_conv = conv(mid, mid, spec.kernel, spec.stride, groups=mid)
        self.dw_bn = DynamicBatchNorm2d(mid)
        self.dw_act = activation(spec.second_act)  # the block's second activation (PGONAS Sec. 3.1)
        self.se = SqueezeExcite(mid, hard=self.hard_se) if spec.se else None
        self.project_conv = conv(mid, out_c, 1)
        self.project_bn = DynamicBatchNorm2d(out_c)
        self.residual = spec.stride == 1 and in_c == out_c

    def forward(self, x: torch.Tensor, spec: OpSpec | None = None) -> torch.Tensor:
        mid, kernel, se = (None, None, True) if spec is None else (spec.mid, spec.kernel, spec.se)
        h = x
        if self.has_expand:
            h = self.expand_act(self.expand_bn(self.expand_conv(h, mid)))
        h = self.dw_act(self.dw_bn(self.dw_conv(h, kernel=kernel)))
        if self.se is not None and se:
            h = self.se(h)
        h = self.project_bn(self.project_conv(h))
        return x + h if self.residual else h


class MBConvV3(MBConv):
    """MobileNetV3 inverted bottleneck as Once-for-All builds it (op ``mbconv3``, OFA
    ``DynamicMBConvLayer``): an :class:`MBConv` whose SE gates with the hard sigmoid (MobileNetV3
    Sec. 5.2); ``act`` (ReLU or h-swish) after the expand and the depthwise conv. An elastic
    supernet gives its depthwise conv Once-for-All's kernel transformation matrices
    (:data:`kernel_transform_convs`, see :class:`hwnas.nn.sharing.ElasticSharing`)."""

    hard_se: ClassVar[bool] = True
    #: convs that elastic weight sharing equips with kernel transformation matrices (OFA Sec. 3.2)
    kernel_transform_convs: ClassVar[tuple[str, ...]] = ("dw_conv",)


class ResBlock(nn.Module):
    """Full-precision ResNet basic block with elastic width (op ``resblock``, PGONAS's ResNet48).

    ``h = act(BN(conv3x3(x; in -> mid, stride)))``, ``out = act2(BN(conv3x3(h; mid -> out)) + s)``
    with ``s = x`` or ``BN(conv1x1(x; stride))`` when the shape changes. ``act`` is the internal
    activation, ``act2`` the external one after the shortcut sum (PGONAS Sec. 3.1, Fig. 2: the
    paper replaces the external ReLU by PReLU or Mish). ``mid`` (the expansion ratio's channels)
    is a prefix of one weight (elastic width).
    """

    def __init__(self, spec: OpSpec) -> None:
        super().__init__()
        in_c, out_c, mid = spec.in_shape[0], spec.out_shape[0], spec.mid
        self.conv1 = conv(in_c, mid, 3, spec.stride)
        self.bn1 = DynamicBatchNorm2d(mid)
        self.act1 = activation(spec.act)
        self.conv2 = conv(mid, out_c, 3)
        self.bn2 = DynamicBatchNorm2d(out_c)
        if spec.stride != 1 or in_c != out_c:
            self.shortcut: nn.Sequential | None = nn.Sequential(conv(in_c, out_c, 1, spec.stride),
                                                                DynamicBatchNorm2d(out_c))
        else:
            self.shortcut = None
        self.act2 = activation(spec.second_act)

    def forward(self, x: torch.Tensor, spec: OpSpec | None = None) -> torch.Tensor:
        mid = None if spec is None else spec.mid
        h = self.act1(self.bn1(self.conv1(x, mid)))
        h = self.bn2(self.conv2(h))
        return self.act2(h + (x if self.shortcut is None else self.shortcut(x)))


def channel_split(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ShuffleNetV2 channel shuffle + split as in the SPOS reference: even channels, odd channels."""
    return x[:, 0::2], x[:, 1::2]


class _ShuffleBase(nn.Module, ABC):
    """Common wiring of the SPOS ShuffleNetV2 choice blocks (stride 1: split; stride 2: projection)."""

    def __init__(self, spec: OpSpec) -> None:
        super().__init__()
        self.stride = spec.stride
        in_c, out_c = spec.in_shape[0], spec.out_shape[0]
        self.inp = in_c if spec.stride == 2 else in_c // 2
        self.outputs = out_c - self.inp
        if spec.stride == 2:
            k = spec.kernel
            self.proj = nn.Sequential(
                conv(self.inp, self.inp, k, 2, groups=self.inp), DynamicBatchNorm2d(self.inp),
                conv(self.inp, self.inp, 1), DynamicBatchNorm2d(self.inp), activation(spec.act))
        else:
            self.proj = None

    @abstractmethod
    def main(self, x: torch.Tensor, mid: int | None, kernel: int | None) -> torch.Tensor:
        """The block's main branch on ``x`` (``mid`` hidden channels, depthwise ``kernel``)."""

    def project(self, x: torch.Tensor, kernel: int | None) -> torch.Tensor:
        """The stride-2 projection branch (its depthwise conv runs at ``kernel``)."""
        dw, *rest = self.proj
        x = dw(x, kernel=kernel)
        for m in rest:
            x = m(x)
        return x

    def forward(self, x: torch.Tensor, spec: OpSpec | None = None) -> torch.Tensor:
        mid, kernel = (None, None) if spec is None else (spec.mid, spec.kernel)
        if self.proj is None:
            x_proj, x_main = channel_split(x)
            return torch.cat((x_proj, self.main(x_main, mid, kernel)), 1)
        return torch.cat((self.project(x, kernel), self.main(x, mid, kernel)), 1)


class ShuffleBlock(_ShuffleBase):
    """SPOS ``choice_k``: 1x1 (inp->mid) -> k x k depthwise (stride) -> 1x1 (mid->out - inp)."""

    def __init__(self, spec: OpSpec) -> None:
        super().__init__(spec)
        mid = spec.mid
        self.pw1 = conv(self.inp, mid, 1)
        self.bn1 = DynamicBatchNorm2d(mid)
        self.act1 = activation(spec.act)
        self.dw = conv(mid, mid, spec.kernel, spec.stride, groups=mid)
        self.bn2 = DynamicBatchNorm2d(mid)
        self.pw2 = conv(mid, self.outputs, 1)
        self.bn3 = DynamicBatchNorm2d(self.outputs)
        self.act3 = activation(spec.act)

    def main(self, x: torch.Tensor, mid: int | None, kernel: int | None) -> torch.Tensor:
        h = self.act1(self.bn1(self.pw1(x, mid)))
        h = self.bn2(self.dw(h, kernel=kernel))
        return self.act3(self.bn3(self.pw2(h)))


class ShuffleXceptionBlock(_ShuffleBase):
    """SPOS ``choice_x``: three (3x3 depthwise -> 1x1) stages, the first at the block's stride."""

    def __init__(self, spec: OpSpec) -> None:
        super().__init__(spec)
        mid, inp = spec.mid, self.inp
        self.dw1 = conv(inp, inp, 3, spec.stride, groups=inp)
        self.bn1 = DynamicBatchNorm2d(inp)
        self.pw1 = conv(inp, mid, 1)
        self.bn2 = DynamicBatchNorm2d(mid)
        self.act2 = activation(spec.act)
        self.dw2 = conv(mid, mid, 3, 1, groups=mid)
        self.bn3 = DynamicBatchNorm2d(mid)
        self.pw2 = conv(mid, mid, 1)
        self.bn4 = DynamicBatchNorm2d(mid)
        self.act4 = activation(spec.act)
        self.dw3 = conv(mid, mid, 3, 1, groups=mid)
        self.bn5 = DynamicBatchNorm2d(mid)
        self.pw3 = conv(mid, self.outputs, 1)
        self.bn6 = DynamicBatchNorm2d(self.outputs)
        self.act6 = activation(spec.act)

    def main(self, x: torch.Tensor, mid: int | None, kernel: int | None) -> torch.Tensor:
        h = self.bn1(self.dw1(x))
        h = self.act2(self.bn2(self.pw1(h, mid)))
        h = self.bn3(self.dw2(h))
        h = self.act4(self.bn4(self.pw2(h, mid)))
        h = self.bn5(self.dw3(h))
        return self.act6(self.bn6(self.pw3(h)))


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet channel shuffle (Zhang et al. 2018, Sec. 3.1): ``(N, g, C/g, H, W)`` transposed
    to ``(N, C/g, g, H, W)``, as HW-NAS-Bench's ``ChannelShuffle``."""
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class FBNetBlock(nn.Module):
    """FBNet candidate block as HW-NAS-Bench's ``ConvBlock`` builds it (op ``fbblock``):
    1x1 (``in -> mid``, ``spec.groups``) + BN + act, channel shuffle when grouped, k x k depthwise
    (stride) + BN + act, 1x1 (``mid -> out``, ``spec.groups``) + BN, plus the input when the
    shape is kept. ``mid`` (``in x expand``) is a prefix of one weight (elastic expand ratio) and
    the depthwise kernel a centre crop (elastic kernel); grouped and dense 1x1 convs never share
    weights (:attr:`elastic_keeps`)."""

    #: spec fields elastic weight sharing keeps in its key: a grouped 1x1 weight is no slice of a
    #: dense one, so grouped and dense candidates are separate modules
    elastic_keeps: ClassVar[tuple[str, ...]] = ("groups",)

    def __init__(self, spec: OpSpec) -> None:
        super().__init__()
        in_c, out_c, mid, g = spec.in_shape[0], spec.out_shape[0], spec.mid, spec.groups
        self.groups = g
        self.pw1 = conv(in_c, mid, 1, groups=g)
        self.bn1 = DynamicBatchNorm2d(mid)
        self.act1 = activation(spec.act)
        self.dw = conv(mid, mid, spec.kernel, spec.stride, groups=mid)
        self.bn2 = DynamicBatchNorm2d(mid)
        self.act2 = activation(spec.second_act)
        self.pw2 = conv(mid, out_c, 1, groups=g)
        self.bn3 = DynamicBatchNorm2d(out_c)
        self.residual = spec.stride == 1 and in_c == out_c

    def forward(self, x: torch.Tensor, spec: OpSpec | None = None) -> torch.Tensor:
        mid, kernel = (None, None) if spec is None else (spec.mid, spec.kernel)
        h = self.act1(self.bn1(self.pw1(x, mid)))
        if self.groups > 1:
            h = channel_shuffle(h, self.groups)
        h = self.act2(self.bn2(self.dw(h, kernel=kernel)))
        h = self.bn3(self.pw2(h))
        return x + h if self.residual else h


class GlobalAvgPool(nn.Module):
    """Global average pooling to a (N, C) tensor."""

    def __init__(self, spec: OpSpec) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor, spec: OpSpec | None = None) -> torch.Tensor:
        return x.mean((2, 3))


class MaxPool(nn.Module):
    """k x k max pooling with padding k // 2 (the ResNet stem's 3x3 stride-2 pool)."""

    def __init__(self, spec: OpSpec) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(spec.kernel, spec.stride, spec.kernel // 2)

    def forward(self, x: torch.Tensor, spec: OpSpec | None = None) -> torch.Tensor:
        return self.pool(x)


class Classifier(nn.Module):
    """Fully connected layer, then ``spec.act`` (``none`` for a classifier; h-swish for the
    feature-mix layer of MobileNetV3 / OFA, a 1x1 conv without BN on the pooled features)."""

    def __init__(self, spec: OpSpec) -> None:
        super().__init__()
        self.fc = nn.Linear(spec.in_shape[0], spec.out_shape[0], bias=spec.bias)
        self.act = activation(spec.act)

    def forward(self, x: torch.Tensor, spec: OpSpec | None = None) -> torch.Tensor:
        return self.act(self.fc(x))


#: the module class of each op type: a class, or a ``"module:Class"`` reference resolved on first use
#: (the quantized blocks build on the classes above, so ``hwnas.quant`` imports this module).
BLOCKS: dict[str, type[nn.Module] | str] = {
    "conv": ConvBNAct,
    "mbconv": MBConv,
    "mbconv3": MBConvV3,
    "shuffle": ShuffleBlock,
    "shuffle_x": ShuffleXceptionBlock,
    "gap": GlobalAvgPool,
    "linear": Classifier,
    "maxpool": MaxPool,
    "resblock": ResBlock,
    "fbblock": FBNetBlock,
    "basic": "hwnas.quant.blocks:BasicBlock",
    "qmbconv": "hwnas.quant.blocks:QuantMBConv",
}


def block_class(op: str) -> type[nn.Module]:
    """The module class registered for op type ``op``."""
    try:
        cls = BLOCKS[op]
    except KeyError:
        raise ValueError(f"no builder for op type {op!r}") from None
    if isinstance(cls, str):
        module, _, name = cls.partition(":")
        cls = getattr(importlib.import_module(module), name)
    return cls


def build_op(spec: OpSpec) -> nn.Module:
    """The module that executes ``spec`` (exact widths)."""
    return block_class(spec.op)(spec)
