"""Latency-table keys: what a runtime executes, one canonical string per ``OpSpec`` (DESIGN.md 5).

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

    Enumerates per block, not per architecture: blocks are independent, so this is exact.
    """
    out: dict[str, OpSpec] = {}
    ref = list(space.smallest_valid())
    for spec in space.layers(ref, resolution):
        if spec.block < 0:
            out.setdefault(op_key(spec), spec)
    for b, grp in enumerate(space.groups):
        for opt in space.group_options(b):
            genes = list(ref)
            for i, v in zip(grp.genes, opt):
                genes[i] = v
            for spec in space.layers(genes, resolution):
                if spec.block == b:
                    out.setdefault(op_key(spec), spec)
    return out


def arch_keys(space: SearchSpace, genes, resolution: int | None = None) -> list[str]:
    return [op_key(s) for s in space.layers(genes, resolution)]
