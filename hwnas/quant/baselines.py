"""Uniform kWkA baselines and the accuracy / BitOps report of SPOS Table 6.

SPOS compares its searched mixed-precision ResNets with "kWkA": every searched block at 1.0x
channels with k-bit weights *and* activations, k = 2, 3, 4, and searches under the BitOps of each
baseline. (2, 2) and (4, 4) are bit pairs of the ``resnet*-mp`` spaces, **(3, 3) is not**. Here
every baseline is the 1.0x architecture with its blocks' bits *replaced* by (k, k):

* BitOps are computed analytically from the same ``space.layers()`` with (k, k) on every searched
  block (:func:`kwka_layers`), so 3W3A gets its exact BitOps, not those of a neighbouring pair;
* its ``genes`` are the 1.0x architecture at the *nearest* available pair (``(3, 4)`` for k = 3;
  ``on_grid`` says whether the pair is exact), useful for anything that needs genes, and its
  model (:func:`kwka_model`) is materialized from those genes with the bits overridden to (k, k):
  the shared supernet weights run at 3 bits, since the quantizers take any width per call.

BitOps follow :mod:`hwnas.cost`: total BitOps count the full-precision stem and classifier at
32 x 32; ``quantized_bitops`` counts the searched (quantized) blocks only (all their 3x3 convs and
the 1x1 shortcut convs), the convention of SPOS Table 6. Table 6 states BitOps in units of 2^30:
at 224 px our ``quantized_bitops / 2**30`` reproduce every kWkA entry (ResNet-18: 6.32, 14.21,
25.27 G; ResNet-34: 13.21, 29.72, 52.83 G; see ``tests/test_quant_spaces.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from hwnas.cost import cost_of_layers
from hwnas.errors import HwnasError
from hwnas.spaces.base import OpSpec, SearchSpace

#: SPOS Table 6 baselines.
KWKA_BITS = (2, 3, 4)


@dataclass(frozen=True)
class KWKABaseline:
    """A uniform k-bit baseline: 1.0x channels, (k, k) bits on every searched block."""

    name: str  # "2W2A"
    k: int
    genes: tuple[int, ...]  # 1.0x at (k, k), or at the nearest available pair when off the grid
    on_grid: bool  # (k, k) is one of the space's bit pairs
    bitops: int  # total, stem and classifier at 32 x 32
    quantized_bitops: int  # searched blocks only (SPOS Table 6)


def quantized_bitops(layers: Sequence[OpSpec]) -> int:
    """BitOps of the searched blocks only (``op.block >= 0``): SPOS Table 6's convention."""
    return cost_of_layers(list(layers)).searched_bitops


def _bit_pairs(space: SearchSpace) -> tuple[tuple[int, int], ...]:
    pairs = getattr(space, "bit_pairs", None)
    if pairs is None or not hasattr(space, "genes_for"):
        raise HwnasError(f"space {space.name!r} has no uniform kWkA baselines (it needs bit pairs "
                         f"and a uniform architecture per channel scale): use resnet18-mp or resnet34-mp")
    return tuple(pairs)


def nearest_pair(space: SearchSpace, k: int) -> tuple[int, int]:
    """The space's bit pair closest to (k, k) (L1 distance; ties: fewer BitOps, i.e. smaller w * a)."""
    return min(_bit_pairs(space), key=lambda p: (abs(p[0] - k) + abs(p[1] - k), p[0] * p[1]))


def kwka_layers(space: SearchSpace, k: int, resolution: int | None = None) -> list[OpSpec]:
    """``space.layers()`` of the 1.0x architecture with (k, k) bits on every searched block."""
    from hwnas.quant.quantizers import check_bits

    check_bits(k, "kWkA bit width")
    genes = space.genes_for(1.0, nearest_pair(space, k))  # type: ignore[attr-defined]
    return [dataclasses.replace(op, w_bits=k, a_bits=k) if op.block >= 0 else op
            for op in space.layers(genes, resolution)]


def kwka_baselines(space: SearchSpace, ks: Sequence[int] = KWKA_BITS,
                   resolution: int | None = None) -> list[KWKABaseline]:
    """The kWkA baselines of ``space`` (a ``resnet*-mp`` space) with their exact BitOps."""
    out = []
    for k in ks:
        pair = nearest_pair(space, k)
        layers = kwka_layers(space, k, resolution)
        out.append(KWKABaseline(
            name=f"{k}W{k}A", k=k, genes=space.genes_for(1.0, pair),  # type: ignore[attr-defined]
            on_grid=pair == (k, k), bitops=cost_of_layers(layers).bitops,
            quantized_bitops=quantized_bitops(layers)))
    return out


def with_block_bits(model: nn.Module, w_bits: int, a_bits: int) -> nn.Module:
    """Set every searched block of a static subnet to (w_bits, a_bits), in place (kWkA models)."""
    from hwnas.quant.blocks import _QuantBlock

    specs = getattr(model, "specs", None)
    if specs is None:
        raise HwnasError("with_block_bits needs a static subnet (hwnas.supernet.Subnet)")
    new_specs = []
    for spec, op in zip(specs, model.ops):  # type: ignore[attr-defined]
        if spec.block >= 0:
            spec = dataclasses.replace(spec, w_bits=w_bits, a_bits=a_bits)
            if isinstance(op, _QuantBlock):
                op.spec = spec
        new_specs.append(spec)
    model.specs = new_specs  # type: ignore[assignment]
    return model


def kwka_model(supernet: Any, baseline: KWKABaseline) -> nn.Module:
    """The baseline's static subnet with the supernet's weights, running at (k, k)."""
    from hwnas.supernet import materialize

    return with_block_bits(materialize(supernet, baseline.genes), baseline.k, baseline.k)


def quant_report(space: SearchSpace, baselines: Sequence[KWKABaseline],
                 searched: Sequence[tuple[str, Sequence[int], str | None]] = (),
                 evaluate: Callable[[nn.Module], float] | None = None,
                 supernet: Any = None, resolution: int | None = None) -> list[dict[str, Any]]:
    """Rows of the accuracy / BitOps table: baselines, then searched nets.

    ``searched`` holds ``(name, genes, budget)`` where ``budget`` names the baseline whose BitOps
    bounded the search (checked: a searched net over its budget raises HwnasError). With
    ``evaluate(model) -> accuracy`` (and the ``supernet`` whose weights the models inherit) every
    row gets an accuracy; otherwise ``accuracy`` is None.
    """
    from hwnas.cost import arch_costs
    from hwnas.supernet import materialize

    if evaluate is not None and supernet is None:
        raise HwnasError("quant_report: evaluating accuracies needs the supernet the models inherit from")
    by_name = {b.name: b for b in baselines}
    rows: list[dict[str, Any]] = []
    for b in baselines:
        rows.append({"arch": b.name, "kind": "baseline", "budget": None, "genes": list(b.genes),
                     "bits": f"w{b.k}a{b.k}" + ("" if b.on_grid else " (off-grid)"),
                     "bitops": b.bitops, "quantized_bitops": b.quantized_bitops,
                     "accuracy": None if evaluate is None else float(evaluate(kwka_model(supernet, b)))})
    for name, genes, budget in searched:
        g = space.validate(genes)
        layers = space.layers(g, resolution)
        bitops = arch_costs(space, g, resolution).bitops
        if budget is not None:
            if budget not in by_name:
                raise HwnasError(f"searched net {name!r}: unknown budget {budget!r}; "
                                 f"baselines: {', '.join(by_name)}")
            if bitops > by_name[budget].bitops:
                raise HwnasError(f"searched net {name!r} has {bitops} BitOps, over the {budget} "
                                 f"budget of {by_name[budget].bitops}")
        bits = sorted({f"w{op.w_bits}a{op.a_bits}" for op in layers if op.block >= 0})
        rows.append({"arch": name, "kind": "searched", "budget": budget, "genes": list(g),
                     "bits": "/".join(bits), "bitops": bitops,
                     "quantized_bitops": quantized_bitops(layers),
                     "accuracy": None if evaluate is None else float(evaluate(materialize(supernet, g)))})
    return rows
