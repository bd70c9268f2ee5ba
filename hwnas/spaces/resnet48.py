"""``resnet48``: the elastic-depth, elastic-width ResNet of PGONAS (Sec. 4, "Search Space").

The supernet track of the CVPR 2022 lightweight NAS challenge, as PGONAS describes it: "4 stages
in the backbone. The basic channel configuration of 4 stages is 64, 128, 256 and 512. The
candidate block number of the 1st, 2nd and 4th block is ranging from 2 to 5 and ... of the 3rd
block is ranging from 2 to 8. The candidate expansion ratio is [1.0, 0.95, 0.9, 0.85, 0.8, 0.75,
0.7] and the channel number should be divided by 8." At the largest depths 5 + 5 + 8 + 5 = 23
basic blocks, 46 convs, plus the stem conv and the classifier: 48 layers.

Every block is a full-precision basic block (op ``resblock``, :class:`hwnas.nn.blocks.ResBlock`):
``conv3x3 (in -> mid) -> BN -> ReLU -> conv3x3 (mid -> out) -> BN, + shortcut -> act2``. The
expansion ratio ``r`` of a layer sets its hidden channels ``mid = make_divisible(planes * r, 8)``
(rounded to the nearest multiple of 8, never more than 10 % below), so the block's input and output
(and the residual sum) keep the stage's channels and every width is a channel prefix of one
weight: elastic width by slicing (Once-for-All Sec. 3.2). Elastic depth: a stage's depth gene
switches off its layers past the depth (the space contract's ``GeneGroup.gate``); the first two
layers of every stage always run.

Genes, stage by stage: ``[depth, width of layer 0, ..., width of layer n-1]`` (depths 2..5, 2..5,
2..8, 2..5; 4 + 23 = 27 genes). A width gene indexes the *distinct* hidden widths the seven ratios
give at that layer, narrowest first: at width 1.0 the ratios give 3 widths on 64 planes (48, 56,
64), 6 on 128 planes and all 7 on 256 and 512. The paper's 5.06e19 counts ratio codes (7 per
layer: ``prod_s sum_d 7^d``); hwnas counts distinct architectures, so ``size()`` is
``360 x 9324 x 6725593 x 19600`` = 4.42e17 and :meth:`ResNet48Space.paper_size` gives the paper's
count. Decoding names each width by the largest ratio that gives it; encoding takes any of the
seven ratios.

Stem, as in ``resnet18-mp``: conv7x7 s2 + BN + ReLU and a 3x3 s2 max-pool at ImageNet resolutions
(> 64 px); conv3x3 s1 without a max-pool at small inputs (<= 64 px). The first block of stages 2-4
has stride 2 and a 1x1 conv + BN shortcut. ``width`` scales the stem and the planes (divisible by
8) before the ratios apply. Sharing: every option of a layer is the same op differing only in
``mid``, so ``--sharing independent`` and ``elastic`` build the same supernet (one sliced weight per
layer).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from hwnas.errors import HwnasError
from hwnas.spaces.base import GeneGroup, OpSpec, SearchSpace, conv_out, make_divisible
from hwnas.spaces.registry import register_space
from hwnas.spaces.resnet_mp import SMALL_INPUT_MAX_RESOLUTION

#: PGONAS Sec. 4: base channels and (min, max) blocks of the 4 stages.
STAGE_PLANES = (64, 128, 256, 512)
STAGE_DEPTHS: tuple[tuple[int, int], ...] = ((2, 5), (2, 5), (2, 8), (2, 5))
#: PGONAS Sec. 4: candidate expansion ratios of every layer (hidden channels / planes).
RATIOS = (1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7)
STEM_CHANNELS = 64


@dataclass(frozen=True)
class ResNet48Config:
    """Decoded architecture: the depth of each stage and the expansion ratio of each running layer
    (the largest of the paper's ratios that gives the layer's hidden width)."""

    depths: tuple[int, ...]
    ratios: tuple[tuple[float, ...], ...]


@dataclass(frozen=True)
class ResNet48Space(SearchSpace):
    """PGONAS ResNet48: depths 2-5 / 2-5 / 2-8 / 2-5, per-layer expansion ratio 0.7..1.0."""

    name: ClassVar[str] = "resnet48"
    paper_note: ClassVar[str] = ("~5.06e19 (PGONAS Sec. 4: 7 ratio codes per layer); ratios giving "
                                 "the same width after rounding to 8 count once")
    #: ``--act``: the blocks' external activation after the shortcut sum (PGONAS Sec. 3.1, Fig. 2).
    block_acts: ClassVar[tuple[str, ...]] = ("relu", "prelu", "mish")

    # ---- structure ------------------------------------------------------------------------------
    def _ch(self, c: int) -> int:
        return make_divisible(c * self.width, 8)

    @property
    def small_input(self) -> bool:
        """True when the space uses the small-input stem (``resolution <= 64``)."""
        return self.resolution <= SMALL_INPUT_MAX_RESOLUTION

    def _widths(self, planes: int) -> tuple[tuple[int, tuple[float, ...]], ...]:
        """The distinct hidden widths of a layer with ``planes`` channels, narrowest first, each with
        the ratios that give it."""
        by_width: dict[int, list[float]] = {}
        for r in RATIOS:
            by_width.setdefault(make_divisible(planes * r, 8), []).append(r)
        return tuple((w, tuple(sorted(rs))) for w, rs in sorted(by_width.items()))

    def _plan(self) -> tuple[tuple[int, int, int, int], ...]:
        """Per stage: (planes, first gene, min depth, max depth)."""
        key = ("plan",)
        if key not in self._cache:
            plan, gene = [], 0
            for planes, (lo, hi) in zip(STAGE_PLANES, STAGE_DEPTHS):
                plan.append((self._ch(planes), gene, lo, hi))
                gene += 1 + hi
            self._cache[key] = tuple(plan)
        return self._cache[key]

    @property
    def depth_genes(self) -> tuple[int, ...]:
        """The gene of each stage's depth (value ``v``: ``min depth + v`` blocks)."""
        return tuple(first for _, first, _, _ in self._plan())

    @property
    def width_genes(self) -> tuple[int, ...]:
        """The 23 per-layer width genes (what K-shot NAS's channel branch would encode)."""
        return tuple(first + 1 + p for _, first, _, hi in self._plan() for p in range(hi))

    # ---- genes ----------------------------------------------------------------------------------
    @property
    def choices(self) -> tuple[int, ...]:
        key = ("choices",)
        if key not in self._cache:
            out: list[int] = []
            for planes, _, lo, hi in self._plan():
                out += [hi - lo + 1] + [len(self._widths(planes))] * hi
            self._cache[key] = tuple(out)
        return self._cache[key]

    @property
    def groups(self) -> tuple[GeneGroup, ...]:
        key = ("groups",)
        if key not in self._cache:
            out = []
            for s, (_, first, lo, hi) in enumerate(self._plan()):
                for p in range(hi):
                    gene = first + 1 + p
                    if p < lo:
                        out.append(GeneGroup(f"stage{s}.layer{p}", (gene,)))
                    else:  # runs while depth >= p + 1, i.e. depth gene >= p + 1 - lo
                        out.append(GeneGroup(f"stage{s}.layer{p}", (first, gene), gate=(first, p + 1 - lo)))
            self._cache[key] = tuple(out)
        return self._cache[key]

    def _stage_of(self, index: int) -> tuple[int, int]:
        """(stage, position) of gene ``index``: position -1 is the stage's depth gene."""
        for s, (_, first, _, hi) in enumerate(self._plan()):
            if first <= index <= first + hi:
                return s, index - first - 1
        raise IndexError(index)

    def gene_labels(self, index: int) -> tuple[str, ...]:
        s, p = self._stage_of(index)
        planes, _, lo, hi = self._plan()[s]
        if p < 0:
            return tuple(f"depth{d}" for d in range(lo, hi + 1))
        return tuple(f"{w}ch (r{rs[0]:g})" if len(rs) == 1 else f"{w}ch (r{rs[0]:g}-{rs[-1]:g})"
                     for w, rs in self._widths(planes))

    # ---- genes <-> config -----------------------------------------------------------------------
    def decode(self, genes: Sequence[int]) -> ResNet48Config:
        g = self.validate(genes)
        depths, ratios = [], []
        for planes, first, lo, _ in self._plan():
            d = lo + g[first]
            widths = self._widths(planes)
            depths.append(d)
            ratios.append(tuple(widths[g[first + 1 + p]][1][-1] for p in range(d)))
        return ResNet48Config(tuple(depths), tuple(ratios))

    def encode(self, cfg: ResNet48Config) -> tuple[int, ...]:
        plan = self._plan()
        if len(cfg.depths) != len(plan) or len(cfg.ratios) != len(plan):
            raise HwnasError(f"space {self.name!r} has {len(plan)} stages, config has "
                             f"{len(cfg.depths)} depths and {len(cfg.ratios)} ratio lists")
        genes: list[int] = []
        for s, ((planes, _, lo, hi), d, rs) in enumerate(zip(plan, cfg.depths, cfg.ratios)):
            if not lo <= d <= hi:
                raise HwnasError(f"stage {s} of space {self.name!r}: depth {d} not allowed; allowed: {lo}..{hi}")
            if len(rs) != d:
                raise HwnasError(f"stage {s} of space {self.name!r}: depth {d} needs {d} ratios, got {len(rs)}")
            widths = [w for w, _ in self._widths(planes)]
            stage = [d - lo]
            for p, r in enumerate(rs):
                match = [x for x in RATIOS if math.isclose(x, float(r), abs_tol=1e-9)]
                if not match:
                    raise HwnasError(f"stage {s} layer {p} of space {self.name!r}: expansion ratio {r} not "
                                     f"allowed; allowed: {', '.join(f'{x:g}' for x in RATIOS)}")
                stage.append(widths.index(make_divisible(planes * match[0], 8)))
            genes += stage + [0] * (hi - d)  # switched-off layers: gene 0 (canonical)
        return tuple(genes)

    # ---- ops ------------------------------------------------------------------------------------
    def _layers(self, genes: tuple[int, ...], resolution: int) -> list[OpSpec]:
        ops: list[OpSpec] = []
        stem = self._ch(STEM_CHANNELS)
        c, h = self.in_channels, resolution
        if self.small_input:
            ops.append(OpSpec("conv", (c, h, h), (stem, h, h), kernel=3, stride=1, act="relu"))
        else:
            h2 = conv_out(h, 7, 2)
            ops.append(OpSpec("conv", (c, h, h), (stem, h2, h2), kernel=7, stride=2, act="relu"))
            h = h2
            h2 = conv_out(h, 3, 2)
            ops.append(OpSpec("maxpool", (stem, h, h), (stem, h2, h2), kernel=3, stride=2, act="none"))
            h = h2
        c = stem
        act2 = self.second_act("relu")
        block = 0
        for s, (planes, first, lo, hi) in enumerate(self._plan()):
            widths = self._widths(planes)
            depth = lo + genes[first]
            for p in range(hi):
                if p < depth:
                    stride = 2 if (p == 0 and s > 0) else 1
                    ho = conv_out(h, 3, stride)
                    ops.append(OpSpec("resblock", (c, h, h), (planes, ho, ho), kernel=3, stride=stride,
                                      mid=widths[genes[first + 1 + p]][0], act="relu", act2=act2,
                                      block=block))
                    c, h = planes, ho
                block += 1
        ops.append(OpSpec("gap", (c, h, h), (c, 1, 1), act="none"))
        ops.append(OpSpec("linear", (c, 1, 1), (self.num_classes, 1, 1), act="none", bias=True))
        return ops

    def paper_size(self) -> int:
        """The size as PGONAS counts it: 7 ratio codes per running layer, ``prod_s sum_d 7^d``
        (50,640,594,614,848,000,000, "around 5.06e19")."""
        return math.prod(sum(len(RATIOS) ** d for d in range(lo, hi + 1)) for lo, hi in STAGE_DEPTHS)


register_space(ResNet48Space)
