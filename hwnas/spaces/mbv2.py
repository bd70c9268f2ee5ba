"""MobileNetV2 / ProxylessNAS macro-structure, the space of GreedyNAS (Sec. 4.1).

21 searchable inverted-bottleneck layers, each with kernel {3, 5, 7} x expand {3, 6} plus an
identity (skip) block; ``mbv2-se`` adds a squeeze-and-excitation option to every MBConv (13
choices). GreedyNAS quotes the size as 7^21 (13^21 with SE). That count treats identity as
available everywhere, but identity cannot replace the first layer of a stage, whose stride or
channel count changes the shape: those 6 layers have 6 (12) choices, so the exact size is
6^6 x 7^15 (12^6 x 13^15). ``size()`` returns the exact number; tests check both figures.

Macro-structure (ProxylessNAS mobile, width 1.0, 224 input): stem conv3x3 s2 -> 32; MBConv k3
e1 -> 16 (fixed); stages of (channels, layers, stride): (32,4,2) (40,4,2) (80,4,2) (96,4,1)
(192,4,2) (320,1,1); conv1x1 -> 1280; GAP; FC. That is the released ProxylessNAS-mobile network
(its ``net.config``: 320.4M MACs as ProxylessNAS counts them, the 320M of GreedyNAS Table 1),
whose macro-structure GreedyNAS adopts (Sec. 4.1). Channels scale with ``width`` through
``make_divisible(c * width, 8)``, the head included (ProxylessNAS keeps 1280 below width 1.0).

Layouts. ``layout`` 2 is that structure. hwnas before it built layout 1, whose first searchable
stage has 24 channels (the ``--width_stages`` default of ProxylessNAS's search script, not the
released network). Every file that records a space config records ``layout``; a config without it
was made with layout 1. :meth:`MobileNetV2Space.read_config` (through
``hwnas.spaces.registry.read_space_config``, which every loader calls) accepts such a file where
both layouts build the same network at its width (width 0.25: 8 channels either way; the plans,
channels, strides and identity slots, are compared), and refuses it where they differ (width 0.35:
8 vs 16 channels) with a one-line error naming the file and what to redo. ``tag_suffix`` keeps the
tag of an unchanged network and adds ``-l2`` where the network changed, so cached subnets,
end-to-end measurements and calibrations of layout 1 are never read for layout 2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from hwnas.errors import HwnasError
from hwnas.spaces.base import GeneGroup, OpSpec, SearchSpace, conv_out, make_divisible
from hwnas.spaces.registry import register_space

#: (out channels, number of searchable layers, stride of the first layer) per stage, per layout:
#: 2 is ProxylessNAS-mobile's (the one built), 1 the 24-channel first stage of older hwnas files.
LAYOUTS: dict[int, tuple[tuple[int, int, int], ...]] = {
    1: ((24, 4, 2), (40, 4, 2), (80, 4, 2), (96, 4, 1), (192, 4, 2), (320, 1, 1)),
    2: ((32, 4, 2), (40, 4, 2), (80, 4, 2), (96, 4, 1), (192, 4, 2), (320, 1, 1)),
}
#: the layout this hwnas builds (stamped as ``layout`` in every space config).
LAYOUT = 2
STAGES = LAYOUTS[LAYOUT]
KERNELS = (3, 5, 7)
EXPANDS = (3, 6)


@dataclass(frozen=True)
class MBLayer:
    """Decoded choice of one searchable layer; ``kernel == 0`` means identity (skip)."""

    kernel: int
    expand: int
    se: bool = False

    @property
    def is_identity(self) -> bool:
        return self.kernel == 0

    def label(self) -> str:
        if self.is_identity:
            return "skip"
        return f"k{self.kernel}e{self.expand}" + ("se" if self.se else "")


@dataclass(frozen=True)
class MBConfig:
    """Decoded architecture: one ``MBLayer`` per searchable layer."""

    layers: tuple[MBLayer, ...]


@dataclass(frozen=True)
class MobileNetV2Space(SearchSpace):
    """GreedyNAS / ProxylessNAS space (GreedyNAS Sec. 4.1: 21 blocks, k{3,5,7} x e{3,6} + identity)."""

    name: ClassVar[str] = "mbv2"
    paper_note: ClassVar[str] = "7^21 (GreedyNAS); identity is impossible in 6 stage-first layers"
    with_se: ClassVar[bool] = False
    #: ``--act``: the MBConvs' second activation (after the depthwise conv; PGONAS Sec. 3.1).
    block_acts: ClassVar[tuple[str, ...]] = ("relu6", "relu", "prelu", "mish")
    #: stem, first block and head widths at width 1.0 (ProxylessNAS mobile).
    stem_channels: ClassVar[int] = 32
    first_channels: ClassVar[int] = 16
    last_channels: ClassVar[int] = 1280
    #: the macro-structure version (module docstring); only :data:`LAYOUT` is built.
    layout: int = LAYOUT

    def __post_init__(self) -> None:
        if self.layout != LAYOUT:
            raise HwnasError(f"layout {self.layout!r} not allowed on space {self.name!r}; allowed: {LAYOUT} "
                             f"(layout 1, the 24-channel first stage, is no longer built)")

    # ---- structure ------------------------------------------------------------------------------
    @classmethod
    def _plan(cls, stages: tuple[tuple[int, int, int], ...], width: float) -> list[tuple[int, int, bool]]:
        plan = []
        in_c = make_divisible(cls.first_channels * width, 8)
        for c, n, s in stages:
            out_c = make_divisible(c * width, 8)
            for i in range(n):
                stride = s if i == 0 else 1
                plan.append((out_c, stride, stride == 1 and in_c == out_c))
                in_c = out_c
        return plan

    def _stage_plan(self) -> list[tuple[int, int, bool]]:
        """Per searchable layer: (out channels, stride, identity allowed)."""
        key = ("plan",)
        if key not in self._cache:
            self._cache[key] = self._plan(LAYOUTS[self.layout], self.width)
        return list(self._cache[key])

    def _ch(self, c: int) -> int:
        return make_divisible(c * self.width, 8)

    @property
    def tag_suffix(self) -> str:
        """Part of the space's tag (``hwnas.latency.table.space_tag``): empty where layout 1 built this
        same network at this width (its cached subnets and measurements still hold), ``-l2`` where
        the network changed."""
        return "" if self._plan(LAYOUTS[1], self.width) == self._stage_plan() else f"-l{self.layout}"

    @classmethod
    def read_config(cls, config: Mapping[str, Any], where: str, remedy: str) -> dict[str, Any]:
        """``config`` as stored in a file, as this hwnas reads it: stamped ``layout`` 2 when it has
        none (layout 1) but both layouts build the same network at its width; otherwise refused with
        one line naming ``where`` and ``remedy`` (module docstring, "Layouts")."""
        cfg = dict(config)
        layout = cfg.get("layout", 1)
        if layout == LAYOUT and type(layout) is int:
            return cfg
        if isinstance(layout, bool) or layout not in LAYOUTS:
            raise HwnasError(f"{where}: layout {layout!r} of space {cls.name!r} is not one this hwnas "
                             f"knows ({', '.join(map(str, LAYOUTS))}; it builds {LAYOUT})")
        width = cfg.get("width", 1.0)
        if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
            return cfg  # create_space names the bad width
        old, new = cls._plan(LAYOUTS[layout], width), cls._plan(STAGES, width)
        if old == new:
            return {**cfg, "layout": LAYOUT}
        i = next(j for j, (a, b) in enumerate(zip(old, new)) if a != b)
        raise HwnasError(
            f"{where} was made with layout {layout} of space {cls.name!r} (first searchable stage "
            f"{LAYOUTS[layout][0][0]} channels), whose network at width {width:g} differs from this "
            f"hwnas's layout {LAYOUT} (ProxylessNAS-mobile's {STAGES[0][0]}; layer {i} has {old[i][0]} "
            f"channels, now {new[i][0]}): {remedy}")

    def _options(self, allow_identity: bool) -> tuple[MBLayer, ...]:
        ses = (False, True) if self.with_se else (False,)
        opts = [MBLayer(k, e, se) for k in KERNELS for e in EXPANDS for se in ses]
        if allow_identity:
            opts.append(MBLayer(0, 0, False))
        return tuple(opts)

    @property
    def choices(self) -> tuple[int, ...]:
        key = ("choices",)
        if key not in self._cache:
            self._cache[key] = tuple(len(self._options(a)) for _, _, a in self._stage_plan())
        return self._cache[key]

    @property
    def groups(self) -> tuple[GeneGroup, ...]:
        key = ("groups",)
        if key not in self._cache:
            self._cache[key] = tuple(GeneGroup(f"layer{i}", (i,)) for i in range(len(self.choices)))
        return self._cache[key]

    def gene_labels(self, index: int) -> tuple[str, ...]:
        allow = self._stage_plan()[index][2]
        return tuple(o.label() for o in self._options(allow))

    # ---- genes <-> config -----------------------------------------------------------------------
    def decode(self, genes: Sequence[int]) -> MBConfig:
        g = self.validate(genes)
        plan = self._stage_plan()
        return MBConfig(tuple(self._options(plan[i][2])[v] for i, v in enumerate(g)))

    def encode(self, cfg: MBConfig) -> tuple[int, ...]:
        plan = self._stage_plan()
        if len(cfg.layers) != len(plan):
            raise HwnasError(f"space {self.name!r} has {len(plan)} layers, config has {len(cfg.layers)}")
        genes = []
        for i, layer in enumerate(cfg.layers):
            opts = self._options(plan[i][2])
            if layer not in opts:
                raise HwnasError(
                    f"layer {i} of space {self.name!r} cannot be {layer.label()}; "
                    f"allowed: {', '.join(o.label() for o in opts)}")
            genes.append(opts.index(layer))
        return tuple(genes)

    # ---- ops -------------------------------------------------------------------------------------
    def _layers(self, genes: tuple[int, ...], resolution: int) -> list[OpSpec]:
        ops: list[OpSpec] = []
        c, h = self.in_channels, resolution
        stem = self._ch(self.stem_channels)
        h2 = conv_out(h, 3, 2)
        ops.append(OpSpec("conv", (c, h, h), (stem, h2, h2), kernel=3, stride=2, act="relu6"))
        c, h = stem, h2
        first = self._ch(self.first_channels)
        act2 = self.second_act("relu6")
        ops.append(OpSpec("mbconv", (c, h, h), (first, h, h), kernel=3, stride=1, mid=c,
                          expand=1, groups=c, act="relu6", act2=act2))
        c = first
        plan = self._stage_plan()
        for i, (gene, (out_c, stride, allow)) in enumerate(zip(genes, plan)):
            layer = self._options(allow)[gene]
            if layer.is_identity:
                continue
            mid = make_divisible(round(c * layer.expand), 8)
            ho = conv_out(h, layer.kernel, stride)
            ops.append(OpSpec("mbconv", (c, h, h), (out_c, ho, ho), kernel=layer.kernel,
                              stride=stride, mid=mid, expand=layer.expand, groups=mid,
                              se=layer.se, act="relu6", act2=act2, block=i))
            c, h = out_c, ho
        last = make_divisible(self.last_channels * self.width, 8)
        ops.append(OpSpec("conv", (c, h, h), (last, h, h), kernel=1, stride=1, act="relu6"))
        ops.append(OpSpec("gap", (last, h, h), (last, 1, 1), act="none"))
        ops.append(OpSpec("linear", (last, 1, 1), (self.num_classes, 1, 1), act="none", bias=True))
        return ops

    def paper_size(self) -> int:
        """The size as the paper counts it: (options + identity) ** layers."""
        return max(self.choices) ** len(self.choices)


@dataclass(frozen=True)
class MobileNetV2SESpace(MobileNetV2Space):
    """GreedyNAS augmented space: every MBConv option with or without SE (13^21 as quoted)."""

    name: ClassVar[str] = "mbv2-se"
    paper_note: ClassVar[str] = "13^21 (GreedyNAS); identity is impossible in 6 stage-first layers"
    with_se: ClassVar[bool] = True


register_space(MobileNetV2Space)
register_space(MobileNetV2SESpace)
