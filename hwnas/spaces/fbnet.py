"""FBNet space as HW-NAS-Bench defines it (Li et al., ICLR 2021, Sec. 3.1; FBNet, Wu et al. 2019,
Table 1), so that published HW-NAS-Bench / HELP measurements load as genes directly.

22 searchable layers in 7 stages (1, 4, 4, 4, 4, 4, 1 layers on 16 / 24 / 32 / 64 / 112 / 184 /
352 channels), each choosing one of 9 candidate blocks. Gene value ``i`` is the ``i``-th entry of
HW-NAS-Bench's ``PRIMITIVES``: ``k3_e1, k3_e1_g2, k3_e3, k3_e6, k5_e1, k5_e1_g2, k5_e3, k5_e6,
skip``, so HW-NAS-Bench's ``op_idx_list`` of an architecture *is* its genes.

The candidate blocks, as HW-NAS-Bench's ``ConvBlock`` builds them (op ``fbblock``):
1x1 conv (``C_in -> C_in x e``, groups g) + BN + ReLU, a channel shuffle when g = 2, k x k
depthwise conv (the layer's stride) + BN + ReLU, 1x1 conv (``C_in x e -> C_out``, groups g) + BN,
plus the input when the stride is 1 and the channels do not change. The expansion multiplies
the *input* channels, and the first 1x1 conv exists at e = 1 too. ``skip`` is the identity where
stride and channels stay, else a 1x1 conv (the layer's stride) + BN + ReLU; so every one of the 9
options is possible in every layer and the space has exactly 9^22 architectures.

Fixed parts: stem conv3x3 (3 -> 16) + BN + ReLU; head conv1x1 (352 -> 1504 / 1984) + BN + ReLU,
global average pooling, a fully connected classifier with bias. Two layouts
(``layout``), HW-NAS-Bench's CIFAR-10/100 and ImageNet settings:

* ``cifar``: stem stride 1, stage strides 1, 1, 2, 2, 1, 2, 1, head 1504 (32 x 32 inputs);
* ``imagenet``: stem stride 2, stage strides 1, 2, 2, 2, 1, 2, 1, head 1984 (224 x 224 inputs);
* ``auto`` (default): ``cifar`` when the space's resolution is at most 64 px, else ``imagenet``
  (the rule of the ``resnet48`` stem), so ``--resolution 32 --num-classes 100`` is HW-NAS-Bench's
  CIFAR-100 FBNet and the defaults (224 px, 1000 classes) its ImageNet FBNet.

``width`` scales every channel count (``make_divisible(c x width, 8)``; exact at width 1.0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from hwnas.errors import HwnasError
from hwnas.spaces.base import GeneGroup, OpSpec, SearchSpace, conv_out, make_divisible
from hwnas.spaces.registry import register_space

#: HW-NAS-Bench's ``PRIMITIVES`` in its order: gene value i is entry i.
PRIMITIVES: tuple[str, ...] = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3",
                               "k5_e6", "skip")
#: layers per stage and their output channels (FBNet-v1 macro-structure).
STAGE_DEPTHS: tuple[int, ...] = (1, 4, 4, 4, 4, 4, 1)
STAGE_CHANNELS: tuple[int, ...] = (16, 24, 32, 64, 112, 184, 352)
STEM_CHANNELS = 16
NUM_LAYERS = sum(STAGE_DEPTHS)
#: inputs up to this size get the ``cifar`` layout under ``layout="auto"``.
SMALL_INPUT_MAX_RESOLUTION = 64


@dataclass(frozen=True)
class Layout:
    """One of HW-NAS-Bench's two FBNet settings."""

    stem_stride: int
    strides: tuple[int, ...]  # first layer of each stage
    head_channels: int


LAYOUTS: dict[str, Layout] = {
    "cifar": Layout(1, (1, 1, 2, 2, 1, 2, 1), 1504),
    "imagenet": Layout(2, (1, 2, 2, 2, 1, 2, 1), 1984),
}
LAYOUT_CHOICES = ("auto", *LAYOUTS)


@dataclass(frozen=True)
class FBNetOp:
    """A decoded candidate block: depthwise ``kernel``, ``expand`` ratio, 1x1 ``groups``;
    ``kernel == 0`` is ``skip``."""

    kernel: int
    expand: int
    groups: int = 1

    @property
    def is_skip(self) -> bool:
        return self.kernel == 0

    def label(self) -> str:
        if self.is_skip:
            return "skip"
        return f"k{self.kernel}_e{self.expand}" + (f"_g{self.groups}" if self.groups > 1 else "")

    @classmethod
    def parse(cls, name: str) -> FBNetOp:
        if name == "skip":
            return cls(0, 0, 1)
        parts = name.split("_")
        k, e = int(parts[0][1:]), int(parts[1][1:])
        return cls(k, e, int(parts[2][1:]) if len(parts) > 2 else 1)


#: the decoded options, in gene order
OPTIONS: tuple[FBNetOp, ...] = tuple(FBNetOp.parse(p) for p in PRIMITIVES)
assert tuple(o.label() for o in OPTIONS) == PRIMITIVES


@dataclass(frozen=True)
class FBNetConfig:
    """Decoded architecture: the ``PRIMITIVES`` name of each of the 22 layers."""

    ops: tuple[str, ...]


def fbnet_genes_from_ops(ops: Sequence[int | str] | Mapping[str, Any]) -> tuple[int, ...]:
    """Genes of an HW-NAS-Bench FBNet architecture given as its 22 ``PRIMITIVES`` names
    (``["k3_e1", "skip", ...]``) or indices (HW-NAS-Bench's ``op_idx_list``; also accepted mixed),
    or as a config dict holding either (HW-NAS-Bench's ``get_net_config``: ``op_idx_list`` /
    ``arch_str``; HELP's ``metainfo`` entries: ``op_idx_list``).

    Raises HwnasError naming the first bad position and the allowed values.
    """
    if isinstance(ops, Mapping):
        key = next((k for k in ("op_idx_list", "arch_str") if k in ops), None)
        if key is None:
            raise HwnasError(f"an FBNet architecture config needs 'op_idx_list' or 'arch_str', got keys "
                             f"{sorted(map(str, ops))}")
        ops = ops[key]
    if isinstance(ops, str):
        ops = [p.strip() for p in ops.replace(",", " ").split()]
    ops = list(ops)
    if len(ops) != NUM_LAYERS:
        raise HwnasError(f"an FBNet architecture has {NUM_LAYERS} layers, got {len(ops)} ops")
    genes = []
    for i, op in enumerate(ops):
        if isinstance(op, str) and op.strip() in PRIMITIVES:
            genes.append(PRIMITIVES.index(op.strip()))
            continue
        try:
            v = int(op)
        except (TypeError, ValueError):
            v = -1
        if isinstance(op, bool) or not 0 <= v < len(PRIMITIVES) or (not isinstance(op, str) and v != op):
            raise HwnasError(f"FBNet layer {i}: op {op!r} is not one of HW-NAS-Bench's PRIMITIVES; allowed: "
                             f"{', '.join(PRIMITIVES)} or their indices 0..{len(PRIMITIVES) - 1}")
        genes.append(v)
    return tuple(genes)


@dataclass(frozen=True)
class FBNetSpace(SearchSpace):
    """HW-NAS-Bench's FBNet space: 22 layers x 9 ``PRIMITIVES`` (Li et al. 2021, Sec. 3.1)."""

    name: ClassVar[str] = "fbnet"
    paper_note: ClassVar[str] = "9^22 (HW-NAS-Bench Sec. 3.1; every op is possible in every layer)"
    #: ``cifar``, ``imagenet`` or ``auto`` (cifar at <= 64 px); see the module docstring.
    layout: str = "auto"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUT_CHOICES:
            raise HwnasError(f"layout {self.layout!r} not allowed on space {self.name!r}; allowed: "
                             f"{', '.join(LAYOUT_CHOICES)}")

    # ---- structure ------------------------------------------------------------------------------
    @property
    def resolved_layout(self) -> str:
        """``cifar`` or ``imagenet``: the layout this space builds."""
        if self.layout != "auto":
            return self.layout
        return "cifar" if self.resolution <= SMALL_INPUT_MAX_RESOLUTION else "imagenet"

    @property
    def tag_suffix(self) -> str:
        """Part of the space's tag (``hwnas.latency.table.space_tag``): the cached subnets,
        calibrations, measurements and predictors of the two layouts at one resolution differ."""
        return f"-{self.resolved_layout}"

    def _ch(self, c: int) -> int:
        return make_divisible(c * self.width, 8)

    def _plan(self) -> tuple[tuple[int, int, int], ...]:
        """Per searchable layer: (in channels, out channels, stride)."""
        key = ("plan",)
        if key not in self._cache:
            lay = LAYOUTS[self.resolved_layout]
            plan, in_c = [], self._ch(STEM_CHANNELS)
            for n, c, s in zip(STAGE_DEPTHS, STAGE_CHANNELS, lay.strides):
                out_c = self._ch(c)
                for i in range(n):
                    plan.append((in_c, out_c, s if i == 0 else 1))
                    in_c = out_c
            self._cache[key] = tuple(plan)
        return self._cache[key]

    @property
    def choices(self) -> tuple[int, ...]:
        return (len(PRIMITIVES),) * NUM_LAYERS

    @property
    def groups(self) -> tuple[GeneGroup, ...]:
        key = ("groups",)
        if key not in self._cache:
            self._cache[key] = tuple(GeneGroup(f"layer{i}", (i,)) for i in range(NUM_LAYERS))
        return self._cache[key]

    def gene_labels(self, index: int) -> tuple[str, ...]:
        return PRIMITIVES

    # ---- genes <-> config -----------------------------------------------------------------------
    def decode(self, genes: Sequence[int]) -> FBNetConfig:
        return FBNetConfig(tuple(PRIMITIVES[v] for v in self.validate(genes)))

    def encode(self, cfg: FBNetConfig | Sequence[int | str]) -> tuple[int, ...]:
        """Genes of a config, or of HW-NAS-Bench's op list (names or indices)."""
        ops = cfg.ops if isinstance(cfg, FBNetConfig) else cfg
        return self.validate(fbnet_genes_from_ops(ops))

    def genes_from_ops(self, ops: Sequence[int | str]) -> tuple[int, ...]:
        """:func:`fbnet_genes_from_ops`, validated against this space."""
        return self.encode(ops)

    # ---- ops -------------------------------------------------------------------------------------
    def _layers(self, genes: tuple[int, ...], resolution: int) -> list[OpSpec]:
        lay = LAYOUTS[self.resolved_layout]
        ops: list[OpSpec] = []
        c, h = self.in_channels, resolution
        stem = self._ch(STEM_CHANNELS)
        h2 = conv_out(h, 3, lay.stem_stride)
        ops.append(OpSpec("conv", (c, h, h), (stem, h2, h2), kernel=3, stride=lay.stem_stride, act="relu"))
        h = h2
        for i, (gene, (in_c, out_c, stride)) in enumerate(zip(genes, self._plan())):
            o = OPTIONS[gene]
            if o.is_skip:
                if stride == 1 and in_c == out_c:
                    continue  # identity
                ho = conv_out(h, 1, stride)
                ops.append(OpSpec("conv", (in_c, h, h), (out_c, ho, ho), kernel=1, stride=stride,
                                  act="relu", block=i))
            else:
                ho = conv_out(h, o.kernel, stride)
                ops.append(OpSpec("fbblock", (in_c, h, h), (out_c, ho, ho), kernel=o.kernel, stride=stride,
                                  mid=in_c * o.expand, expand=o.expand, groups=o.groups, act="relu",
                                  block=i))
            h = ho
        last_c = self._ch(STAGE_CHANNELS[-1])
        head = self._ch(lay.head_channels)
        ops.append(OpSpec("conv", (last_c, h, h), (head, h, h), kernel=1, stride=1, act="relu"))
        ops.append(OpSpec("gap", (head, h, h), (head, 1, 1), act="none"))
        ops.append(OpSpec("linear", (head, 1, 1), (self.num_classes, 1, 1), act="none", bias=True))
        return ops

    def paper_size(self) -> int:
        """9^22, as HW-NAS-Bench counts it (equal to :meth:`size`: no option is impossible)."""
        return len(PRIMITIVES) ** NUM_LAYERS


register_space(FBNetSpace)
