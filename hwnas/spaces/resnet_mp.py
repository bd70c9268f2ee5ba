"""ResNet-18 / ResNet-34 mixed-precision spaces of SPOS (Sec. 4, Table 6).

"We only search and quantize the res-blocks, excluding the first convolutional layer and the last
fully-connected layer." Each residual basic block (op ``basic``, :class:`hwnas.quant.blocks.BasicBlock`)
chooses

* a bottleneck-channel scale in {0.5x, 1.0x, 1.5x} of the block's planes: the output channels of
  its first conv (``OpSpec.mid``), realised by slicing one 1.5x weight (SPOS Fig. 3b);
* a (weight, activation) bit pair in {(1,2), (2,2), (1,4), (2,4), (3,4), (4,4)}, the same for both
  convs of the block (SPOS: "for each building block we use the same bit widths for the two
  convolutions") and for its 1x1 shortcut conv, which reads the same quantized input.

Genes are interleaved per block: ``genes[2b]`` is the channel scale (3 options) and ``genes[2b+1]``
the bit pair (6 options), so a block has 18 options and the space (3 x 6)^N = 18^N architectures,
N = 8 (ResNet-18, blocks 2-2-2-2) or 16 (ResNet-34, 3-4-6-3), as SPOS counts it.

Fixed, full precision (32 x 32 in BitOps): the stem and the classifier (GAP + FC). The stem is
chosen by the space's ``resolution``:

* ``resolution > 64`` (ImageNet): conv7x7 s2 + BN + ReLU, maxpool 3x3 s2 (He et al. 2016);
* ``resolution <= 64`` (CIFAR-sized and smaller inputs): conv3x3 s1 + BN + ReLU and no max-pool,
  the usual small-input ResNet-18 stem, so a 32x32 input still reaches the last stage at 4x4.

Stages have (64, 128, 256, 512) planes scaled by ``width`` (divisible by 8); the first block of
stages 2-4 has stride 2 and a 1x1 conv + BN shortcut.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from hwnas.errors import HwnasError
from hwnas.spaces.base import GeneGroup, OpSpec, SearchSpace, conv_out, make_divisible
from hwnas.spaces.registry import register_space

STAGE_PLANES = (64, 128, 256, 512)
#: bottleneck-channel scales in halves of the planes: 0.5x, 1.0x, 1.5x (SPOS Sec. 4).
CHANNEL_HALVES = (1, 2, 3)
#: (weight bits, activation bits) per block (SPOS Sec. 4).
BIT_PAIRS: tuple[tuple[int, int], ...] = ((1, 2), (2, 2), (1, 4), (2, 4), (3, 4), (4, 4))
#: largest resolution that gets the small-input stem (conv3x3 s1, no max-pool).
SMALL_INPUT_MAX_RESOLUTION = 64


def bits_label(w: int, a: int) -> str:
    return f"w{w}a{a}"


class BitsAwareExtremes:
    """``smallest()`` / ``largest()`` ordered by MACs, then params, then BitOps.

    Mixin for mixed-precision spaces: bits do not change MACs or params, so without the BitOps
    tie-break "largest" could pick the lowest bits.
    """

    def _extreme(self, pick: Callable[[np.ndarray], int]) -> tuple[int, ...]:
        from hwnas.spaces.costs import op_costs  # local import: costs build on this module

        space: SearchSpace = self  # type: ignore[assignment]
        fns = (lambda op: op_costs(op).macs, lambda op: op_costs(op).params,
               lambda op: op_costs(op).macs * op.w_bits * op.a_bits)
        tables = [space.block_table(fn).tables for fn in fns]
        options = []
        for macs, params, bitops in zip(*tables):
            order = np.lexsort((bitops, params, macs))  # last key is primary
            rank = np.empty(len(order), dtype=np.float64)
            rank[order] = np.arange(len(order))
            options.append(pick(rank))
        return space.genes_from_options(options)


@dataclass(frozen=True)
class ResBlockChoice:
    """Decoded choice of one residual block."""

    scale: float  # bottleneck channels / planes: 0.5, 1.0 or 1.5
    w_bits: int
    a_bits: int

    def label(self) -> str:
        return f"{self.scale:.1f}x/{bits_label(self.w_bits, self.a_bits)}"


@dataclass(frozen=True)
class ResNetMPConfig:
    blocks: tuple[ResBlockChoice, ...]


@dataclass(frozen=True)
class ResNet18MPSpace(BitsAwareExtremes, SearchSpace):
    """SPOS mixed-precision ResNet-18: 8 basic blocks x (3 channel scales x 6 bit pairs)."""

    name: ClassVar[str] = "resnet18-mp"
    paper_note: ClassVar[str] = "18^8 (SPOS Sec. 4: (3 x 6)^N, N = 8)"
    depths: ClassVar[tuple[int, ...]] = (2, 2, 2, 2)
    stem_channels: ClassVar[int] = 64
    bit_pairs: ClassVar[tuple[tuple[int, int], ...]] = BIT_PAIRS

    def _ch(self, c: int) -> int:
        return make_divisible(c * self.width, 8)

    @property
    def small_input(self) -> bool:
        """True when the space uses the small-input stem (``resolution <= 64``)."""
        return self.resolution <= SMALL_INPUT_MAX_RESOLUTION

    def _plan(self) -> list[tuple[int, int, int]]:
        """Per block: (in channels, planes, stride)."""
        plan = []
        in_c = self._ch(self.stem_channels)
        for s, (planes, reps) in enumerate(zip(STAGE_PLANES, self.depths)):
            out_c = self._ch(planes)
            for i in range(reps):
                plan.append((in_c, out_c, 2 if (i == 0 and s > 0) else 1))
                in_c = out_c
        return plan

    def mid_channels(self, block: int, scale_gene: int) -> int:
        """Bottleneck channels of ``block`` at channel option ``scale_gene``."""
        return self._plan()[block][1] * CHANNEL_HALVES[scale_gene] // 2

    @property
    def num_blocks(self) -> int:
        return sum(self.depths)

    @property
    def choices(self) -> tuple[int, ...]:
        return (len(CHANNEL_HALVES), len(BIT_PAIRS)) * self.num_blocks

    @property
    def groups(self) -> tuple[GeneGroup, ...]:
        return tuple(GeneGroup(f"block{b}", (2 * b, 2 * b + 1)) for b in range(self.num_blocks))

    def gene_labels(self, index: int) -> tuple[str, ...]:
        if index % 2 == 0:
            return tuple(f"{h / 2:.1f}x" for h in CHANNEL_HALVES)
        return tuple(bits_label(w, a) for w, a in BIT_PAIRS)

    def decode(self, genes: Sequence[int]) -> ResNetMPConfig:
        g = self.validate(genes)
        return ResNetMPConfig(tuple(
            ResBlockChoice(CHANNEL_HALVES[g[2 * b]] / 2, *BIT_PAIRS[g[2 * b + 1]])
            for b in range(self.num_blocks)))

    def encode(self, cfg: ResNetMPConfig) -> tuple[int, ...]:
        if len(cfg.blocks) != self.num_blocks:
            raise HwnasError(f"space {self.name!r} has {self.num_blocks} blocks, config has {len(cfg.blocks)}")
        genes: list[int] = []
        for i, ch in enumerate(cfg.blocks):
            halves = round(ch.scale * 2)
            if halves not in CHANNEL_HALVES or abs(halves / 2 - ch.scale) > 1e-6:
                raise HwnasError(f"block {i}: channel scale {ch.scale} not allowed; allowed: 0.5, 1.0, 1.5")
            pair = (ch.w_bits, ch.a_bits)
            if pair not in BIT_PAIRS:
                raise HwnasError(f"block {i}: bit pair {bits_label(*pair)} not allowed; allowed: "
                                 f"{', '.join(bits_label(w, a) for w, a in BIT_PAIRS)}")
            genes += [CHANNEL_HALVES.index(halves), BIT_PAIRS.index(pair)]
        return tuple(genes)

    def genes_for(self, scale: float, bits: tuple[int, int]) -> tuple[int, ...]:
        """The uniform architecture: every block at ``scale`` and ``bits`` (e.g. 1.0x, (2, 2))."""
        return self.encode(ResNetMPConfig((ResBlockChoice(scale, *bits),) * self.num_blocks))

    def _layers(self, genes: tuple[int, ...], resolution: int) -> list[OpSpec]:
        ops: list[OpSpec] = []
        stem = self._ch(self.stem_channels)
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
        for b, (in_c, out_c, stride) in enumerate(self._plan()):
            w_bits, a_bits = BIT_PAIRS[genes[2 * b + 1]]
            ho = conv_out(h, 3, stride)
            ops.append(OpSpec("basic", (in_c, h, h), (out_c, ho, ho), kernel=3, stride=stride,
                              mid=self.mid_channels(b, genes[2 * b]), act="relu",
                              w_bits=w_bits, a_bits=a_bits, block=b))
            h = ho
        last = self._ch(STAGE_PLANES[-1])
        ops.append(OpSpec("gap", (last, h, h), (last, 1, 1), act="none"))
        ops.append(OpSpec("linear", (last, 1, 1), (self.num_classes, 1, 1), act="none", bias=True))
        return ops


@dataclass(frozen=True)
class ResNet34MPSpace(ResNet18MPSpace):
    """SPOS mixed-precision ResNet-34: 16 basic blocks (3-4-6-3) x 18 options."""

    name: ClassVar[str] = "resnet34-mp"
    paper_note: ClassVar[str] = "18^16 (SPOS Sec. 4: (3 x 6)^N, N = 16)"
    depths: ClassVar[tuple[int, ...]] = (3, 4, 6, 3)


register_space(ResNet18MPSpace)
register_space(ResNet34MPSpace)
