"""Per-layer features of whole subnets, from ``space.layers()``: what the physical, feature-based
and hybrid latency predictors learn from.

Per executed op: dense MACs (everything but depthwise convolutions), depthwise MACs, activation
traffic (input + output + hidden activations, bytes at the op's activation bits), weight traffic
(parameters at the op's weight bits) and one op count. Each is summed per *stage* (the ops that
produce one spatial resolution) and over the whole subnet: memory-bound depthwise layers at high
resolution and compute-bound 1x1 layers at low resolution cost a phone very differently per MAC
(nn-Meter, Zhang et al. 2021, Sec. 3; HELP, Lee et al. 2021, Sec. 3).

Features are additive over blocks (a block's ops depend only on its own genes), so they are
gathered from per-block tables like the latency-table sum: building the tables walks every block
option once; a call is a few numpy gathers.
"""

from __future__ import annotations

import numpy as np

from hwnas.spaces.base import OpSpec, SearchSpace
from hwnas.spaces.costs import op_costs

#: the per-op quantities, in feature order
OP_FEATURES = ("dense_macs", "dw_macs", "act_bytes", "weight_bytes", "ops")


def depthwise_macs(op: OpSpec) -> int:
    """MACs of the depthwise convolutions inside ``op`` (0 for ops without any)."""
    ci, hi, wi = op.in_shape
    co, ho, wo = op.out_shape
    k2 = op.kernel * op.kernel
    if op.op in ("mbconv", "mbconv3", "qmbconv", "fbblock"):
        return ho * wo * op.mid * k2
    if op.op == "shuffle":
        inp = ci if op.stride == 2 else ci // 2
        return ho * wo * op.mid * k2 + (ho * wo * inp * k2 if op.stride == 2 else 0)
    if op.op == "shuffle_x":
        inp = ci if op.stride == 2 else ci // 2
        return ho * wo * inp * 9 + 2 * ho * wo * op.mid * 9 + (ho * wo * inp * k2 if op.stride == 2 else 0)
    if op.op == "conv" and op.groups > 1 and op.groups == ci:
        return ho * wo * co * k2
    return 0


def op_features(op: OpSpec) -> np.ndarray:
    """The :data:`OP_FEATURES` of one op."""
    c = op_costs(op)
    dw = min(depthwise_macs(op), c.macs)
    return np.array([c.macs - dw, dw, c.peak_act * op.a_bits / 8, c.params * op.w_bits / 8, 1.0],
                     dtype=np.float64)


class SubnetFeatures:
    """``features(genes_matrix) -> (n, k)``: :data:`OP_FEATURES` per stage, then their totals.

    Stages are the distinct output resolutions of the space's ops, largest first;
    :attr:`names` labels the columns (``s1.dw_macs``, ..., ``total.ops``).
    """

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        options = list(space.block_options())
        fixed = space.fixed_ops()
        sizes = sorted({op.out_shape[1] for op in fixed} | {op.out_shape[1] for o in options for op in o.ops},
                       reverse=True)
        self.stage_sizes = tuple(sizes)
        self._stage = {h: i for i, h in enumerate(sizes)}
        nf = len(OP_FEATURES)
        self.names = tuple([f"s{i + 1}.{f}" for i in range(len(sizes)) for f in OP_FEATURES]
                           + [f"total.{f}" for f in OP_FEATURES])
        self.fixed = self._sum(fixed)
        rows: list[list[np.ndarray]] = [[] for _ in space.groups]
        for o in options:
            rows[o.block].append(self._sum(o.ops))
        self.tables = [np.stack(r) if r else np.zeros((1, len(self.names))) for r in rows]

    def _sum(self, ops) -> np.ndarray:
        nf = len(OP_FEATURES)
        v = np.zeros(len(self.names), dtype=np.float64)
        for op in ops:
            f = op_features(op)
            s = self._stage[op.out_shape[1]]
            v[s * nf:(s + 1) * nf] += f
            v[-nf:] += f
        return v

    def __call__(self, genes_matrix) -> np.ndarray:
        idx = self.space.group_index(self.space.validate_matrix(genes_matrix))
        out = np.repeat(self.fixed[None, :], idx.shape[0], axis=0)
        for b, table in enumerate(self.tables):
            out += table[idx[:, b]]
        return out

    def totals(self, genes_matrix) -> np.ndarray:
        """Only the whole-subnet totals: ``(n, len(OP_FEATURES))``."""
        return self(genes_matrix)[:, -len(OP_FEATURES):]
