"""``ofa-mbv3``: the Once-for-All MobileNetV3 space (Cai et al., ICLR 2020, Sec. 3.3; SparseNAS
Table 2).

Five dynamic stages of MobileNetV3 inverted bottlenecks (op ``mbconv3``). Each stage runs the
first ``d`` of its 4 layers, ``d in {2, 3, 4}`` (elastic depth); each layer chooses its depthwise
kernel ``k in {3, 5, 7}`` and expand ratio ``e in {3, 4, 6}`` (hidden channels
``make_divisible(round(in * e), 8)``, as OFA's ``DynamicMBConvLayer``). OFA counts
``((3 x 3)^2 + (3 x 3)^3 + (3 x 3)^4)^5 ~ 2 x 10^19`` subnets; every (kernel, expand) pair gives a
distinct layer at any width, so that is also the exact number of distinct architectures
(``size()`` = ``paper_size()`` = 7371^5).

Macro-structure (OFA ``OFAMobileNetV3``, MobileNetV3-Large layout), widths at ``width`` 1.0:

======================  ========  ======  ==========  =====
layer                   channels  stride  activation  SE
======================  ========  ======  ==========  =====
stem conv 3x3           16        2       h-swish     -
first block k3 e1       16        1       ReLU        no
stage 1 (2-4 layers)    24        2       ReLU        no
stage 2                 40        2       ReLU        yes
stage 3                 80        2       h-swish     no
stage 4                 112       1       h-swish     yes
stage 5                 160       2       h-swish     yes
final expand conv 1x1   960       1       h-swish     -
(global average pool)
feature mix 1x1, no BN  1280      -       h-swish     -
classifier              classes
======================  ========  ======  ==========  =====

``width`` scales every width (``make_divisible(w * width, 8)``) as OFA's ``width_mult``: at 1.2
(OFA's released ``w1.2`` supernet) the stem and first block have 24 channels and the head 1152
and 1536. The stride of each stage's first layer is the stage's; a layer with stride 1 and equal
input / output channels adds its input (residual). The SE module squeezes to
``make_divisible(mid / 4, 8)`` channels and gates with the hard sigmoid. The feature-mix layer is a
1x1 conv without BN or bias on the pooled 1x1 map, i.e. a fully connected layer with h-swish
(op ``linear`` with ``act="hswish"``, ``bias=False``). Elastic resolution: ``--resolution``
(OFA trains 128..224 px; every resolution is its own space, its own latency keys).

Genes, stage by stage: ``[depth, kernel of layer 0, expand of layer 0, ..., kernel of layer 3,
expand of layer 3]`` (5 x 9 = 45 genes). Layers 0 and 1 always run; layers 2 and 3 are gated by
the depth gene (the space contract's ``GeneGroup.gate``).

Weight sharing: with ``--sharing elastic`` each layer is one module at kernel 7 and expand 6; a
path runs the first ``d`` layers of each stage, the first ``mid`` channels of every tensor and the
centre ``k x k`` taps of the depthwise kernel through OFA's kernel transformation matrices (a
learned 25x25 map for 7 -> 5 and 9x9 for 5 -> 3 per layer; :class:`hwnas.nn.blocks.MBConvV3`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from hwnas.errors import HwnasError
from hwnas.spaces.base import GeneGroup, OpSpec, SearchSpace, conv_out, make_divisible
from hwnas.spaces.registry import register_space

#: OFA ``OFAMobileNetV3``: (width, stride of the first layer, activation, SE) of the 5 dynamic stages.
STAGES: tuple[tuple[int, int, str, bool], ...] = (
    (24, 2, "relu", False), (40, 2, "relu", True), (80, 2, "hswish", False),
    (112, 1, "hswish", True), (160, 2, "hswish", True),
)
DEPTHS = (2, 3, 4)
KERNELS = (3, 5, 7)
EXPANDS = (3, 4, 6)
#: stem, first block, final expand and feature-mix widths at width 1.0 (OFA ``base_stage_width``).
STEM_CHANNELS, FIRST_CHANNELS, FINAL_EXPAND, FEATURE_MIX = 16, 16, 960, 1280
MAX_DEPTH = max(DEPTHS)
GENES_PER_STAGE = 1 + 2 * MAX_DEPTH


@dataclass(frozen=True)
class OFAConfig:
    """Decoded architecture: per stage its depth and the kernel / expand ratio of each running
    layer (OFA's ``d``, ``ks`` and ``e`` lists, without the entries of skipped layers)."""

    depths: tuple[int, ...]
    kernels: tuple[tuple[int, ...], ...]
    expands: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class OFAMobileNetV3Space(SearchSpace):
    """Once-for-All MobileNetV3: depth {2, 3, 4} x (kernel {3, 5, 7} x expand {3, 4, 6}) per layer."""

    name: ClassVar[str] = "ofa-mbv3"
    paper_note: ClassVar[str] = ("((3x3)^2 + (3x3)^3 + (3x3)^4)^5 ~ 2e19 (OFA Sec. 3.3, SparseNAS "
                                 "Table 2), each at 25 resolutions")

    def _ch(self, c: int) -> int:
        return make_divisible(c * self.width, 8)

    # ---- gene layout ----------------------------------------------------------------------------
    @property
    def depth_genes(self) -> tuple[int, ...]:
        """The gene of each stage's depth (value ``v``: ``2 + v`` layers run)."""
        return tuple(s * GENES_PER_STAGE for s in range(len(STAGES)))

    @property
    def kernel_genes(self) -> tuple[int, ...]:
        """The 20 per-layer kernel genes (values index :data:`KERNELS`)."""
        return tuple(s * GENES_PER_STAGE + 1 + 2 * p for s in range(len(STAGES)) for p in range(MAX_DEPTH))

    @property
    def expand_genes(self) -> tuple[int, ...]:
        """The 20 per-layer expand-ratio genes (values index :data:`EXPANDS`, narrowest first)."""
        return tuple(g + 1 for g in self.kernel_genes)

    @property
    def choices(self) -> tuple[int, ...]:
        return (len(DEPTHS), *(len(KERNELS), len(EXPANDS)) * MAX_DEPTH) * len(STAGES)

    @property
    def groups(self) -> tuple[GeneGroup, ...]:
        key = ("groups",)
        if key not in self._cache:
            out = []
            for s in range(len(STAGES)):
                d = s * GENES_PER_STAGE
                for p in range(MAX_DEPTH):
                    k, e = d + 1 + 2 * p, d + 2 + 2 * p
                    if p < DEPTHS[0]:
                        out.append(GeneGroup(f"stage{s}.layer{p}", (k, e)))
                    else:  # runs while the depth 2 + v >= p + 1
                        out.append(GeneGroup(f"stage{s}.layer{p}", (d, k, e), gate=(d, p + 1 - DEPTHS[0])))
            self._cache[key] = tuple(out)
        return self._cache[key]

    def gene_labels(self, index: int) -> tuple[str, ...]:
        pos = index % GENES_PER_STAGE
        if pos == 0:
            return tuple(f"depth{d}" for d in DEPTHS)
        if pos % 2 == 1:
            return tuple(f"k{k}" for k in KERNELS)
        return tuple(f"e{e}" for e in EXPANDS)

    # ---- genes <-> config -----------------------------------------------------------------------
    def decode(self, genes: Sequence[int]) -> OFAConfig:
        g = self.validate(genes)
        depths, kernels, expands = [], [], []
        for s in range(len(STAGES)):
            d0 = s * GENES_PER_STAGE
            depth = DEPTHS[g[d0]]
            depths.append(depth)
            kernels.append(tuple(KERNELS[g[d0 + 1 + 2 * p]] for p in range(depth)))
            expands.append(tuple(EXPANDS[g[d0 + 2 + 2 * p]] for p in range(depth)))
        return OFAConfig(tuple(depths), tuple(kernels), tuple(expands))

    def encode(self, cfg: OFAConfig) -> tuple[int, ...]:
        n = len(STAGES)
        if not len(cfg.depths) == len(cfg.kernels) == len(cfg.expands) == n:
            raise HwnasError(f"space {self.name!r} has {n} stages, config has {len(cfg.depths)} depths, "
                             f"{len(cfg.kernels)} kernel lists and {len(cfg.expands)} expand lists")
        genes: list[int] = []
        for s, (d, ks, es) in enumerate(zip(cfg.depths, cfg.kernels, cfg.expands)):
            if d not in DEPTHS:
                raise HwnasError(f"stage {s} of space {self.name!r}: depth {d} not allowed; "
                                 f"allowed: {', '.join(map(str, DEPTHS))}")
            if len(ks) != d or len(es) != d:
                raise HwnasError(f"stage {s} of space {self.name!r}: depth {d} needs {d} kernels and {d} "
                                 f"expand ratios, got {len(ks)} and {len(es)}")
            stage = [DEPTHS.index(d)]
            for p, (k, e) in enumerate(zip(ks, es)):
                if k not in KERNELS:
                    raise HwnasError(f"stage {s} layer {p} of space {self.name!r}: kernel {k} not allowed; "
                                     f"allowed: {', '.join(map(str, KERNELS))}")
                if e not in EXPANDS:
                    raise HwnasError(f"stage {s} layer {p} of space {self.name!r}: expand ratio {e} not "
                                     f"allowed; allowed: {', '.join(map(str, EXPANDS))}")
                stage += [KERNELS.index(k), EXPANDS.index(e)]
            genes += stage + [0, 0] * (MAX_DEPTH - d)  # skipped layers: genes 0 (canonical)
        return tuple(genes)

    # ---- ops ------------------------------------------------------------------------------------
    def _layers(self, genes: tuple[int, ...], resolution: int) -> list[OpSpec]:
        ops: list[OpSpec] = []
        c, h = self.in_channels, resolution
        stem = self._ch(STEM_CHANNELS)
        h2 = conv_out(h, 3, 2)
        ops.append(OpSpec("conv", (c, h, h), (stem, h2, h2), kernel=3, stride=2, act="hswish"))
        c, h = stem, h2
        first = self._ch(FIRST_CHANNELS)
        ops.append(OpSpec("mbconv3", (c, h, h), (first, h, h), kernel=3, stride=1, mid=c, expand=1,
                          groups=c, act="relu"))
        c = first
        block = 0
        for s, (width, stage_stride, act, se) in enumerate(STAGES):
            out_c = self._ch(width)
            d0 = s * GENES_PER_STAGE
            depth = DEPTHS[genes[d0]]
            for p in range(MAX_DEPTH):
                if p < depth:
                    k, e = KERNELS[genes[d0 + 1 + 2 * p]], EXPANDS[genes[d0 + 2 + 2 * p]]
                    stride = stage_stride if p == 0 else 1
                    mid = make_divisible(round(c * e), 8)
                    ho = conv_out(h, k, stride)
                    ops.append(OpSpec("mbconv3", (c, h, h), (out_c, ho, ho), kernel=k, stride=stride, mid=mid,
                                      expand=e, groups=mid, se=se, act=act, block=block))
                    c, h = out_c, ho
                block += 1
        final = self._ch(FINAL_EXPAND)
        ops.append(OpSpec("conv", (c, h, h), (final, h, h), kernel=1, stride=1, act="hswish"))
        ops.append(OpSpec("gap", (final, h, h), (final, 1, 1), act="none"))
        mix = self._ch(FEATURE_MIX)
        ops.append(OpSpec("linear", (final, 1, 1), (mix, 1, 1), act="hswish", bias=False))
        ops.append(OpSpec("linear", (mix, 1, 1), (self.num_classes, 1, 1), act="none", bias=True))
        return ops

    def paper_size(self) -> int:
        """OFA's count, ``((3 x 3)^2 + (3 x 3)^3 + (3 x 3)^4)^5`` = 7371^5 (~2.18e19)."""
        per_layer = len(KERNELS) * len(EXPANDS)
        return sum(per_layer ** d for d in DEPTHS) ** len(STAGES)


register_space(OFAMobileNetV3Space)
