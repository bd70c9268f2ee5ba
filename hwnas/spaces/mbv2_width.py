"""``mbv2-se-width``: K-shot NAS's joint operation and channel space (K-shot NAS Sec. 5.1).

The MobileNetV2 SE space of GreedyNAS (21 searchable layers, k{3,5,7} x e{3,6} x SE or not, plus
identity) with a width coefficient in {0.2, 0.4, 0.6, 0.8, 1.0} for every one of its 24 layers
(K-shot NAS: "the width coefficient of each operation is selected within {0.2, 0.4, 0.6, 0.8,
1.0} for all 24 layers", 5^24 x 13^21 architectures).

What a width scales, so that blocks stay independent (a block's ops depend only on its own genes):

* the 21 searchable layers: the hidden (expanded) channels of the inverted bottleneck, sliced
  from the front of one weight (the ordinal sharing pattern of K-shot NAS Fig. 3, which the
  K-shot code then customises per width);
* the stem: its output channels, which are also the hidden channels of the fixed first MBConv
  (k3 e1) that follows it, so the stem and that MBConv form one block;
* the head: the 1x1 conv's output channels (1280 at width 1.0) and thus the classifier's input,
  one block with the GAP and the classifier.

The stem conv's output and the first MBConv's hidden channels are one tensor, so those two of the
paper's 24 layers share one width gene: 23 width genes. Genes: ``[stem width, op_0, width_0, ...,
op_20, width_20, head width]``; the identity option ignores its width (the paper's count includes
such duplicates). Exact size: 5^23 x 12^6 x 13^15 (identity is impossible in the 6 stage-first
layers, see ``mbv2``); K-shot NAS states 5^24 x 13^21.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from hwnas.errors import HwnasError
from hwnas.spaces.base import GeneGroup, OpSpec, conv_out, make_divisible
from hwnas.spaces.mbv2 import MBConfig, MBLayer, MobileNetV2SESpace
from hwnas.spaces.registry import register_space

#: K-shot NAS Sec. 5.1: width coefficients of every layer, in fifths.
WIDTH_FIFTHS = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class WidthConfig:
    """Decoded architecture: the MBConv choices and the 24 width coefficients (stem, 21 layers, head)."""

    layers: tuple[MBLayer, ...]
    widths: tuple[float, ...]


@dataclass(frozen=True)
class MobileNetV2SEWidthSpace(MobileNetV2SESpace):
    """K-shot NAS space: ``mbv2-se`` operations x a width coefficient per layer (24 layers)."""

    name: ClassVar[str] = "mbv2-se-width"
    paper_note: ClassVar[str] = ("5^24 x 13^21 (K-shot NAS); stem and first MBConv share one width, "
                                 "identity is impossible in 6 stage-first layers")

    # ---- genes ---------------------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return len(self._stage_plan())

    @property
    def choices(self) -> tuple[int, ...]:
        key = ("choices",)
        if key not in self._cache:
            ops = tuple(len(self._options(a)) for _, _, a in self._stage_plan())
            w = len(WIDTH_FIFTHS)
            self._cache[key] = (w, *(c for n in ops for c in (n, w)), w)
        return self._cache[key]

    @property
    def width_genes(self) -> tuple[int, ...]:
        """The 23 width genes (K-shot NAS's channel branch encodes these)."""
        n = self.num_layers
        return (0, *(2 + 2 * i for i in range(n)), 2 * n + 1)

    @property
    def groups(self) -> tuple[GeneGroup, ...]:
        key = ("groups",)
        if key not in self._cache:
            n = self.num_layers
            self._cache[key] = (GeneGroup("stem", (0,)),
                                *(GeneGroup(f"layer{i}", (1 + 2 * i, 2 + 2 * i)) for i in range(n)),
                                GeneGroup("head", (2 * n + 1,)))
        return self._cache[key]

    def gene_labels(self, index: int) -> tuple[str, ...]:
        if index in self.width_genes:
            return tuple(f"{f / 5:.1f}x" for f in WIDTH_FIFTHS)
        allow = self._stage_plan()[(index - 1) // 2][2]
        return tuple(o.label() for o in self._options(allow))

    # ---- genes <-> config ----------------------------------------------------------------------
    def decode(self, genes: Sequence[int]) -> WidthConfig:
        g = self.validate(genes)
        plan = self._stage_plan()
        layers = tuple(self._options(plan[i][2])[g[1 + 2 * i]] for i in range(len(plan)))
        return WidthConfig(layers, tuple(WIDTH_FIFTHS[g[i]] / 5 for i in self.width_genes))

    def encode(self, cfg: WidthConfig) -> tuple[int, ...]:
        ops = super().encode(MBConfig(cfg.layers))
        if len(cfg.widths) != len(self.width_genes):
            raise HwnasError(f"space {self.name!r} has {len(self.width_genes)} widths, config has {len(cfg.widths)}")
        fifths = []
        for w in cfg.widths:
            f = round(w * 5)
            if f not in WIDTH_FIFTHS or abs(f / 5 - w) > 1e-9:
                raise HwnasError(f"width {w} not allowed in space {self.name!r}; allowed: 0.2, 0.4, 0.6, 0.8, 1.0")
            fifths.append(WIDTH_FIFTHS.index(f))
        genes = [fifths[0]]
        for op, w in zip(ops, fifths[1:-1]):
            genes += [op, w]
        return tuple(genes + [fifths[-1]])

    # ---- ops -----------------------------------------------------------------------------------
    def _scaled(self, channels: float, gene: int) -> int:
        return make_divisible(channels * WIDTH_FIFTHS[gene] / 5, 8)

    def _layers(self, genes: tuple[int, ...], resolution: int) -> list[OpSpec]:
        ops: list[OpSpec] = []
        c, h = self.in_channels, resolution
        stem = self._scaled(self.stem_channels * self.width, genes[0])
        h2 = conv_out(h, 3, 2)
        ops.append(OpSpec("conv", (c, h, h), (stem, h2, h2), kernel=3, stride=2, act="relu6", block=0))
        c, h = stem, h2
        first = self._ch(self.first_channels)
        act2 = self.second_act("relu6")
        ops.append(OpSpec("mbconv", (c, h, h), (first, h, h), kernel=3, stride=1, mid=c,
                          expand=1, groups=c, act="relu6", act2=act2, block=0))
        c = first
        for i, (out_c, stride, allow) in enumerate(self._stage_plan()):
            layer = self._options(allow)[genes[1 + 2 * i]]
            if layer.is_identity:
                continue
            mid = self._scaled(round(c * layer.expand), genes[2 + 2 * i])
            ho = conv_out(h, layer.kernel, stride)
            ops.append(OpSpec("mbconv", (c, h, h), (out_c, ho, ho), kernel=layer.kernel,
                              stride=stride, mid=mid, expand=layer.expand, groups=mid,
                              se=layer.se, act="relu6", act2=act2, block=1 + i))
            c, h = out_c, ho
        head = len(self.groups) - 1
        last = self._scaled(self.last_channels * self.width, genes[-1])
        ops.append(OpSpec("conv", (c, h, h), (last, h, h), kernel=1, stride=1, act="relu6", block=head))
        ops.append(OpSpec("gap", (last, h, h), (last, 1, 1), act="none", block=head))
        ops.append(OpSpec("linear", (last, 1, 1), (self.num_classes, 1, 1), act="none", bias=True, block=head))
        return ops

    def paper_size(self) -> int:
        """The size as K-shot NAS counts it: 5^24 x 13^21."""
        return len(WIDTH_FIFTHS) ** (len(self.width_genes) + 1) * 13 ** self.num_layers


register_space(MobileNetV2SEWidthSpace)
