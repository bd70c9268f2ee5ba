"""The analytic cost model of architectures: MACs, FLOPs, params, BitOps, peak activation memory.

The public name of :mod:`hwnas.spaces.costs`. The model is defined next to ``OpSpec`` because the
spaces themselves order architectures by it (``SearchSpace.smallest()`` / ``largest()``); it
needs neither torch nor any other stage.
"""

from hwnas.spaces.costs import (
    COST_FIELDS,
    CostModel,
    Costs,
    OpCost,
    arch_costs,
    cost_of_layers,
    costs,
    op_costs,
)

__all__ = ["COST_FIELDS", "CostModel", "Costs", "OpCost", "arch_costs", "cost_of_layers", "costs",
           "op_costs"]
