"""``mbv2-mp``: the ``mbv2`` space with a (weight, activation) bit pair per searchable layer.

The 21 searchable layers keep their ``mbv2`` options (k{3,5,7} x e{3,6}, plus identity where the
shape allows it) and each gets a bit-pair gene in {(4,4), (4,8), (8,8)}, pairs that int8 runtimes
can hold (4-bit weights in int8 containers; see :mod:`hwnas.quant.export`).

Genes are *appended*: ``genes[:21]`` are exactly the ``mbv2`` genes of the architecture and
``genes[21 + i]`` is layer ``i``'s bit pair, so an ``mbv2`` architecture plus 21 bit genes is an
``mbv2-mp`` one. Gene group ``i`` is ``(i, 21 + i)``. An identity layer executes nothing and ignores
its bits gene; ``size()`` still counts those encodings (3 x 6^6 x 7^15 x 3^15 with the identity
duplicates), as ``mbv2`` counts its own.

Searchable MBConvs become ``qmbconv`` ops (:class:`hwnas.quant.blocks.QuantMBConv`: all convs
at ``w_bits``, the depthwise and projection inputs PACT-quantized at ``a_bits``) carrying the
bits; the stem, the fixed first MBConv, the last 1x1 conv and the classifier stay full precision
(as in SPOS, only the searched blocks are quantized).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from hwnas.errors import HwnasError
from hwnas.spaces.base import GeneGroup, OpSpec
from hwnas.spaces.mbv2 import MBConfig, MobileNetV2Space
from hwnas.spaces.registry import register_space
from hwnas.spaces.resnet_mp import BitsAwareExtremes, bits_label

#: (weight bits, activation bits) options of every searchable layer.
MBV2_BIT_PAIRS: tuple[tuple[int, int], ...] = ((4, 4), (4, 8), (8, 8))


@dataclass(frozen=True)
class MBMixedConfig:
    """Decoded architecture: the ``mbv2`` layers and one (w, a) bit pair per layer."""

    layers: MBConfig
    bits: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class MobileNetV2MPSpace(BitsAwareExtremes, MobileNetV2Space):
    """``mbv2`` x per-layer bit pairs {(4,4), (4,8), (8,8)}; bit genes appended after the 21 op genes."""

    name: ClassVar[str] = "mbv2-mp"
    block_acts: ClassVar[tuple[str, ...]] = ()  # PACT replaces the activations
    paper_note: ClassVar[str] = "mbv2 (GreedyNAS 7^21) x 3^21 bit pairs"
    bit_pairs: ClassVar[tuple[tuple[int, int], ...]] = MBV2_BIT_PAIRS

    @property
    def num_layers(self) -> int:
        return len(self._stage_plan())

    @property
    def choices(self) -> tuple[int, ...]:
        return super().choices + (len(MBV2_BIT_PAIRS),) * self.num_layers

    @property
    def groups(self) -> tuple[GeneGroup, ...]:
        n = self.num_layers
        return tuple(GeneGroup(f"layer{i}", (i, n + i)) for i in range(n))

    def gene_labels(self, index: int) -> tuple[str, ...]:
        n = self.num_layers
        if index >= n:
            return tuple(bits_label(w, a) for w, a in MBV2_BIT_PAIRS)
        return super().gene_labels(index)

    def decode(self, genes: Sequence[int]) -> MBMixedConfig:
        g = self.validate(genes)
        n = self.num_layers
        plan = self._stage_plan()
        layers = MBConfig(tuple(self._options(plan[i][2])[v] for i, v in enumerate(g[:n])))
        return MBMixedConfig(layers, tuple(MBV2_BIT_PAIRS[v] for v in g[n:]))

    def encode(self, cfg: MBMixedConfig) -> tuple[int, ...]:
        ops = super().encode(cfg.layers)
        if len(cfg.bits) != len(ops):
            raise HwnasError(f"space {self.name!r} needs {len(ops)} bit pairs, config has {len(cfg.bits)}")
        bits = []
        for i, pair in enumerate(cfg.bits):
            if tuple(pair) not in MBV2_BIT_PAIRS:
                raise HwnasError(f"layer {i}: bit pair {bits_label(*pair)} not allowed; allowed: "
                                 f"{', '.join(bits_label(w, a) for w, a in MBV2_BIT_PAIRS)}")
            bits.append(MBV2_BIT_PAIRS.index(tuple(pair)))
        return ops + tuple(bits)

    def paper_size(self) -> int:
        """``mbv2``'s paper count (7^21) times the bit pairs (3^21)."""
        n = self.num_layers
        return max(self.choices[:n]) ** n * len(MBV2_BIT_PAIRS) ** n

    def _layers(self, genes: tuple[int, ...], resolution: int) -> list[OpSpec]:
        n = self.num_layers
        ops = super()._layers(genes[:n], resolution)
        out = []
        for op in ops:
            if op.block >= 0:
                w, a = MBV2_BIT_PAIRS[genes[n + op.block]]
                op = dataclasses.replace(op, op="qmbconv", w_bits=w, a_bits=a)
            out.append(op)
        return out


register_space(MobileNetV2MPSpace)
