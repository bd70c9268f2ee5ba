"""Latency-table keys: what a runtime executes, one canonical string per ``OpSpec``.

A key encodes op type, input and output HxWxC, kernel, stride, hidden width, expand ratio, groups,
SE, activation and dtype/bits, so the same key means the same measurement whatever space it came
from. Blocks (an MBConv with its BN and activations, a ShuffleNetV2 unit) are keyed whole: the
runtime fuses conv+BN+activation, and nn-Meter shows fused kernels are the real unit on a device.
"""

from __future__ import annotations

from hwnas.spaces.base import OpSpec, SearchSpace


def op_key(spec: OpSpec) -> str:
    return spec.latency_key()


def space_ops(space: SearchSpace, resolution: int | None = None) -> dict[str, OpSpec]:
    """Every unique op of the whole space at ``resolution``, keyed (stem/head once, each block option).

    Enumerates :meth:`~hwnas.spaces.base.SearchSpace.block_options`, not architectures: blocks are
    independent, so this is exact.
    """
    out: dict[str, OpSpec] = {}
    for spec in space.fixed_ops(resolution):
        out.setdefault(op_key(spec), spec)
    for opt in space.block_options(resolution):
        for spec in opt.ops:
            out.setdefault(op_key(spec), spec)
    return out


def arch_keys(space: SearchSpace, genes, resolution: int | None = None) -> list[str]:
    return [op_key(s) for s in space.layers(genes, resolution)]
