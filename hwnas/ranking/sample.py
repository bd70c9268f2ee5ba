"""Subnets spread evenly over a space's MACs range (ranking checks and ground truths)."""

from __future__ import annotations

import numpy as np

from hwnas.cost import CostModel, op_costs
from hwnas.errors import HwnasError
from hwnas.spaces.base import SearchSpace


def spread_sample(space: SearchSpace, n: int, rng: np.random.Generator, per_tilt: int = 64) -> list[tuple[int, ...]]:
    """``n`` distinct subnets whose MACs are spread evenly from the smallest to the largest.

    Candidates come from per-block distributions tilted towards cheap or expensive options
    (``p(option) ~ exp(beta * z(MACs))`` for 25 tilts ``beta`` in [-4, 4]); for each of ``n``
    evenly spaced MACs targets the nearest unused candidate is taken.
    """
    _, tables = space.block_table(lambda op: op_costs(op).macs)
    options = [space.group_options(b) for b in range(len(space.groups))]
    cands: list[tuple[int, ...]] = []
    for beta in np.linspace(-4.0, 4.0, 25):
        probs = []
        for t in tables:
            z = (t - t.mean()) / (t.std() or 1.0)
            p = np.exp(beta * z)
            probs.append(p / p.sum())
        for _ in range(per_tilt):
            genes = [0] * len(space.choices)
            for b, p in enumerate(probs):
                for i, v in zip(space.groups[b].genes, options[b][int(rng.choice(len(p), p=p))]):
                    genes[i] = v
            cands.append(tuple(genes))
    cands = list(dict.fromkeys(cands))
    if len(cands) < n:
        raise HwnasError(f"space {space.name!r} has too few distinct subnets for --n {n} spread samples")
    macs = CostModel(space)(np.array(cands))["macs"]
    free = list(range(len(cands)))
    picked = []
    for target in np.linspace(macs.min(), macs.max(), n):
        j = min(range(len(free)), key=lambda k: abs(macs[free[k]] - target))
        picked.append(cands[free.pop(j)])
    return picked
