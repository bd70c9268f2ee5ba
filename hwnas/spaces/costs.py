"""Analytic cost model from ``space.layers()``: MACs, FLOPs, params, BitOps, peak activation memory.

Conventions (checked against ``torch.utils.flop_counter.FlopCounterMode`` and ``numel()`` in tests):

* ``macs`` counts the multiply-accumulates of convolutions and fully connected layers, the quantity
  the papers call "FLOPs" (e.g. GreedyNAS "330M FLOPs", SPOS Table 3). BatchNorm, activations,
  residual adds, pooling and the SE channel scaling are not counted, as in those papers (h-swish
  and the SE's hard sigmoid of ``mbconv3`` neither: Once-for-All's counter skips them too). An SE
  module counts its two 1x1 convs on the pooled vector (``2 x mid x squeeze`` MACs).
* ``flops = 2 * macs``: one multiply and one add per MAC. This equals FlopCounterMode's total.
* ``params`` counts trainable parameters (conv / linear weights and biases, BN affine, the PACT
  clipping levels of quantized blocks): exactly
  ``sum(p.numel() for p in model.parameters())`` of the materialized subnet.
* ``bitops = sum(macs_layer * w_bits * a_bits)`` over every layer (SPOS Sec. 4, mixed precision);
  full-precision layers count 32 x 32.
* ``searched_bitops``: the same sum over the searched blocks only (``op.block >= 0``), the
  full-precision stem and classifier excluded: how SPOS counts BitOps ("we only search and
  quantize the res-blocks, excluding the first convolutional layer and the last fully-connected
  layer", Sec. 4, Table 6). BitOps budgets bound this one.
* ``peak_act`` is an upper bound on live activation elements for a sequential executor: for each
  op, its input + output + its largest internal tensor; the network value is the max over ops.
  ``peak_act_bytes`` multiplies by the activation width (``a_bits / 8``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from hwnas.spaces.base import OpSpec, SearchSpace, pact_count, se_channels

COST_FIELDS = ("macs", "flops", "params", "bitops", "searched_bitops", "peak_act_bytes")


@dataclass(frozen=True)
class OpCost:
    macs: int
    params: int
    peak_act: int  # elements

    @property
    def flops(self) -> int:
        return 2 * self.macs


def _numel(shape: tuple[int, int, int]) -> int:
    c, h, w = shape
    return c * h * w


def _bn(c: int) -> int:
    return 2 * c


def _act_params(name: str) -> int:
    """Trainable parameters of an activation module: PReLU learns one slope."""
    return 1 if name == "prelu" else 0


def op_costs(op: OpSpec) -> OpCost:
    """MACs, params and peak activation elements of one op."""
    ci, hi, wi = op.in_shape
    co, ho, wo = op.out_shape
    k2 = op.kernel * op.kernel
    io = _numel(op.in_shape) + _numel(op.out_shape)
    if op.op == "conv":
        return OpCost(ho * wo * co * ci * k2, ci * co * k2 + _bn(co) + _act_params(op.act), io)
    if op.op == "resblock":  # conv3x3 (in -> mid, stride), conv3x3 (mid -> out), [1x1 shortcut]
        mid = op.mid
        macs = ho * wo * mid * ci * 9 + ho * wo * co * mid * 9
        params = ci * mid * 9 + _bn(mid) + mid * co * 9 + _bn(co) + _act_params(op.act) + _act_params(op.second_act)
        inner = mid * ho * wo
        if op.stride != 1 or ci != co:
            macs += ho * wo * co * ci
            params += ci * co + _bn(co)
            inner = max(inner, co * ho * wo)
        return OpCost(macs, params, io + inner)
    if op.op == "basic":  # conv3x3 (in -> mid, stride), conv3x3 (mid -> out), [1x1 shortcut]
        mid = op.mid
        macs = ho * wo * mid * ci * 9 + ho * wo * co * mid * 9
        params = ci * mid * 9 + _bn(mid) + mid * co * 9 + _bn(co) + pact_count(op)
        inner = mid * ho * wo
        if op.stride != 1 or ci != co:
            macs += ho * wo * co * ci
            params += ci * co + _bn(co)
            inner = max(inner, co * ho * wo)
        return OpCost(macs, params, io + inner)
    if op.op == "maxpool":
        return OpCost(0, 0, io)
    if op.op in ("mbconv", "mbconv3", "qmbconv"):  # mbconv3: SE gate h-sigmoid, same counts
        mid = op.mid
        macs = params = 0
        inner = mid * ho * wo
        if op.expand != 1:
            macs += hi * wi * ci * mid
            params += ci * mid + _bn(mid) + (_act_params(op.act) if op.op != "qmbconv" else 0)
            inner = max(inner, mid * hi * wi)
        macs += ho * wo * mid * k2
        params += mid * k2 + _bn(mid) + (_act_params(op.second_act) if op.op != "qmbconv" else 0)
        if op.se:
            r = se_channels(mid)
            macs += 2 * mid * r
            params += mid * r + r + r * mid + mid
        macs += ho * wo * mid * co
        params += mid * co + _bn(co) + pact_count(op)
        return OpCost(macs, params, io + inner)
    if op.op == "fbblock":  # 1x1 (in -> mid, groups g), k x k depthwise (stride), 1x1 (mid -> out, groups g)
        mid, g = op.mid, op.groups
        macs = hi * wi * ci * mid // g + ho * wo * mid * k2 + ho * wo * mid * co // g
        params = (ci * mid // g + _bn(mid) + mid * k2 + _bn(mid) + mid * co // g + _bn(co)
                  + _act_params(op.act) + _act_params(op.second_act))
        return OpCost(macs, params, io + max(mid * hi * wi, mid * ho * wo))
    if op.op in ("shuffle", "shuffle_x"):
        inp = ci if op.stride == 2 else ci // 2
        outputs = co - inp
        mid = op.mid
        macs = params = 0
        if op.stride == 2:  # projection branch: k x k depthwise (stride 2) + 1x1
            macs += ho * wo * inp * k2 + ho * wo * inp * inp
            params += inp * k2 + _bn(inp) + inp * inp + _bn(inp)
        if op.op == "shuffle":
            macs += hi * wi * inp * mid + ho * wo * mid * k2 + ho * wo * mid * outputs
            params += inp * mid + _bn(mid) + mid * k2 + _bn(mid) + mid * outputs + _bn(outputs)
            inner = max(mid * hi * wi, mid * ho * wo)
        else:
            macs += (ho * wo * inp * 9 + ho * wo * inp * mid + 2 * ho * wo * mid * 9
                     + ho * wo * mid * mid + ho * wo * mid * outputs)
            params += (inp * 9 + _bn(inp) + inp * mid + _bn(mid) + 2 * (mid * 9 + _bn(mid))
                       + mid * mid + _bn(mid) + mid * outputs + _bn(outputs))
            inner = max(inp * ho * wo, mid * ho * wo)
        return OpCost(macs, params, io + inner)
    if op.op == "gap":
        return OpCost(0, 0, io)
    if op.op == "linear":  # act: h-swish on OFA's feature-mix layer (no params), PReLU one slope
        return OpCost(ci * co, ci * co + (co if op.bias else 0) + _act_params(op.act), io)
    raise ValueError(f"no cost model for op type {op.op!r}")


@dataclass(frozen=True)
class Costs:
    """Costs of one architecture."""

    macs: int
    flops: int
    params: int
    bitops: int
    searched_bitops: int
    peak_act_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cost_of_layers(ops: list[OpSpec]) -> Costs:
    macs = params = bitops = searched = 0
    peak = 0
    for op in ops:
        c = op_costs(op)
        macs += c.macs
        params += c.params
        bitops += _bitops(op)
        searched += _bitops(op) if op.block >= 0 else 0
        peak = max(peak, c.peak_act * op.a_bits // 8)
    return Costs(macs, 2 * macs, params, bitops, searched, peak)


def _bitops(op: OpSpec) -> int:
    return op_costs(op).macs * op.w_bits * op.a_bits


def arch_costs(space: SearchSpace, genes, resolution: int | None = None) -> Costs:
    """Costs of one architecture (exact Python integers)."""
    return cost_of_layers(space.layers(genes, resolution))


class CostModel:
    """Vectorised costs for many architectures of one space.

    Built once per (space, resolution): per-block lookup tables (see ``SearchSpace.block_table``),
    then every query is a few numpy gathers, so a population of thousands costs microseconds.
    """

    def __init__(self, space: SearchSpace, resolution: int | None = None) -> None:
        self.space = space
        self.resolution = space.resolution if resolution is None else resolution

        def table(fn):
            return space.block_table(fn, self.resolution)

        self._sum_tables = {
            "macs": table(lambda op: op_costs(op).macs),
            "params": table(lambda op: op_costs(op).params),
            "bitops": table(_bitops),
        }
        # blocks only: the same tables without the stem / head
        self._sum_tables["searched_bitops"] = self._sum_tables["bitops"]._replace(fixed=0.0)
        self._peak = space.block_table(lambda op: op_costs(op).peak_act * op.a_bits // 8,
                                       self.resolution, reduce=max)

    def __call__(self, genes_matrix) -> dict[str, np.ndarray]:
        """``{"macs", "flops", "params", "bitops", "searched_bitops", "peak_act_bytes"}`` arrays, one
        value per row."""
        m = self.space.validate_matrix(genes_matrix)
        idx = self.space.group_index(m)
        out = {k: t.gather(idx) for k, t in self._sum_tables.items()}
        out["flops"] = 2 * out["macs"]
        out["peak_act_bytes"] = self._peak.gather(idx, np.maximum)
        return {k: out[k] for k in COST_FIELDS}


def costs(space: SearchSpace, genes_matrix, resolution: int | None = None) -> dict[str, np.ndarray]:
    """Vectorised costs of N architectures (``(N, num_genes)`` ints). Builds a :class:`CostModel`."""
    return CostModel(space, resolution)(genes_matrix)
