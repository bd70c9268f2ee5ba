"""ShuffleNetV2 space of SPOS (Table 2) with the SPOS channel search.

20 choice blocks in 4 stages (4, 4, 8, 4 blocks; 64, 160, 320, 640 channels; the first block of each
stage has stride 2). Each block picks one of ``choice_3``, ``choice_5``, ``choice_7`` (ShuffleNetV2
block with a k x k depthwise conv) or ``choice_x`` (Xception-like: three 3x3 depthwise convs), and a
mid-channel scale from 0.2x to 1.6x in steps of 0.2 (SPOS Sec. 4, "Search Space: Channels"),
realised by slicing one preallocated weight (SPOS Fig. 3b).

Genes are interleaved per block: ``genes[2b]`` is the block choice (4 options) and ``genes[2b+1]``
the channel scale (8 options), so the space has (4 x 8)^20 = 32^20 architectures; with the channel
genes fixed it is the 4^20 building-block space of SPOS Table 3.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from hwnas.errors import HwnasError
from hwnas.spaces.base import GeneGroup, OpSpec, SearchSpace, conv_out, make_divisible
from hwnas.spaces.registry import register_space

STAGE_REPEATS = (4, 4, 8, 4)
STAGE_CHANNELS = (64, 160, 320, 640)
BLOCK_CHOICES = ("choice_3", "choice_5", "choice_7", "choice_x")
#: channel scales in fifths: 0.2x .. 1.6x (integers avoid float truncation surprises).
SCALE_FIFTHS = (1, 2, 3, 4, 5, 6, 7, 8)


@dataclass(frozen=True)
class ShuffleChoice:
    block: str  # one of BLOCK_CHOICES
    scale: float  # mid-channel multiplier, 0.2 .. 1.6

    def label(self) -> str:
        return f"{self.block}@{self.scale:.1f}x"


@dataclass(frozen=True)
class ShuffleConfig:
    blocks: tuple[ShuffleChoice, ...]


@dataclass(frozen=True)
class ShuffleNetV2Space(SearchSpace):
    """SPOS supernet: ShuffleNetV2 blocks + channel search (SPOS Table 2 and Table 4)."""

    name: ClassVar[str] = "shufflenetv2"
    paper_note: ClassVar[str] = "4^20 blocks (SPOS Table 3) x 8^20 channel scales (Table 4)"
    stem_channels: ClassVar[int] = 16
    last_channels: ClassVar[int] = 1024

    def _ch(self, c: int) -> int:
        return make_divisible(c * self.width, 8)

    def _plan(self) -> list[tuple[int, int, int]]:
        """Per block: (in channels, out channels, stride)."""
        plan = []
        in_c = self._ch(self.stem_channels)
        for reps, c in zip(STAGE_REPEATS, STAGE_CHANNELS):
            out_c = self._ch(c)
            for i in range(reps):
                plan.append((in_c, out_c, 2 if i == 0 else 1))
                in_c = out_c
        return plan

    @staticmethod
    def base_mid(in_c: int, out_c: int, stride: int) -> int:
        """SPOS reference: ``base_mid_channels = outp // 2`` for every block."""
        return out_c // 2

    def mid_channels(self, block: int, scale_gene: int) -> int:
        in_c, out_c, stride = self._plan()[block]
        return max(1, self.base_mid(in_c, out_c, stride) * SCALE_FIFTHS[scale_gene] // 5)

    @property
    def choices(self) -> tuple[int, ...]:
        return (len(BLOCK_CHOICES), len(SCALE_FIFTHS)) * sum(STAGE_REPEATS)

    @property
    def groups(self) -> tuple[GeneGroup, ...]:
        key = ("groups",)
        if key not in self._cache:
            self._cache[key] = tuple(GeneGroup(f"block{b}", (2 * b, 2 * b + 1))
                                     for b in range(sum(STAGE_REPEATS)))
        return self._cache[key]

    def gene_labels(self, index: int) -> tuple[str, ...]:
        if index % 2 == 0:
            return BLOCK_CHOICES
        return tuple(f"{f / 5:.1f}x" for f in SCALE_FIFTHS)

    def decode(self, genes: Sequence[int]) -> ShuffleConfig:
        g = self.validate(genes)
        return ShuffleConfig(tuple(
            ShuffleChoice(BLOCK_CHOICES[g[2 * b]], SCALE_FIFTHS[g[2 * b + 1]] / 5)
            for b in range(len(g) // 2)))

    def encode(self, cfg: ShuffleConfig) -> tuple[int, ...]:
        n = sum(STAGE_REPEATS)
        if len(cfg.blocks) != n:
            raise HwnasError(f"space {self.name!r} has {n} blocks, config has {len(cfg.blocks)}")
        genes: list[int] = []
        for i, ch in enumerate(cfg.blocks):
            if ch.block not in BLOCK_CHOICES:
                raise HwnasError(f"block {i}: unknown choice {ch.block!r}; allowed: {', '.join(BLOCK_CHOICES)}")
            fifths = round(ch.scale * 5)
            if fifths not in SCALE_FIFTHS or abs(fifths / 5 - ch.scale) > 1e-6:
                raise HwnasError(f"block {i}: channel scale {ch.scale} not in 0.2..1.6 (step 0.2)")
            genes += [BLOCK_CHOICES.index(ch.block), SCALE_FIFTHS.index(fifths)]
        return tuple(genes)

    def _layers(self, genes: tuple[int, ...], resolution: int) -> list[OpSpec]:
        ops: list[OpSpec] = []
        stem = self._ch(self.stem_channels)
        h = conv_out(resolution, 3, 2)
        ops.append(OpSpec("conv", (self.in_channels, resolution, resolution), (stem, h, h),
                          kernel=3, stride=2, act="relu"))
        for b, (in_c, out_c, stride) in enumerate(self._plan()):
            choice = BLOCK_CHOICES[genes[2 * b]]
            mid = self.mid_channels(b, genes[2 * b + 1])
            ho = conv_out(h, 3, stride)
            if choice == "choice_x":
                op, k = "shuffle_x", 3
            else:
                op, k = "shuffle", int(choice.split("_")[1])
            ops.append(OpSpec(op, (in_c, h, h), (out_c, ho, ho), kernel=k, stride=stride, mid=mid,
                              act="relu", block=b))
            h = ho
        last = self._ch(self.last_channels)
        c = self._ch(STAGE_CHANNELS[-1])
        ops.append(OpSpec("conv", (c, h, h), (last, h, h), kernel=1, act="relu"))
        ops.append(OpSpec("gap", (last, h, h), (last, 1, 1), act="none"))
        ops.append(OpSpec("linear", (last, 1, 1), (self.num_classes, 1, 1), act="none", bias=False))
        return ops


register_space(ShuffleNetV2Space)
