"""GreedyNAS candidate pool (GreedyNAS Sec. 4.1.1): the best paths seen so far, ordered by loss."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from hwnas.errors import HwnasError

Genes = tuple[int, ...]


class CandidatePool:
    """GreedyNAS candidate pool (GreedyNAS Sec. 4.1.1): the ``capacity`` lowest-loss paths seen.

    A fixed-size queue ordered by loss, kept as a heap whose root is the *worst* kept path, so a
    better newcomer evicts it in O(log n). A path already in the pool takes its newest loss.
    Entries are kept in insertion order for uniform sampling ``U(P)``.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise HwnasError(f"pool size must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self._loss: dict[Genes, float] = {}
        self._heap: list[tuple[float, Genes]] = []  # (-loss, genes): max-heap on loss

    def __len__(self) -> int:
        return len(self._loss)

    def __contains__(self, genes: Iterable[int]) -> bool:
        return tuple(genes) in self._loss

    def push(self, genes: Sequence[int], loss: float) -> bool:
        """Offer a path; returns True when it is in the pool afterwards."""
        g, loss = tuple(int(v) for v in genes), float(loss)
        if g in self._loss:
            self._loss[g] = loss
            self._heap = [(-v, k) for k, v in self._loss.items()]
            heapq.heapify(self._heap)
            return True
        if len(self._loss) < self.capacity:
            self._loss[g] = loss
            heapq.heappush(self._heap, (-loss, g))
            return True
        worst_neg, worst = self._heap[0]
        if loss >= -worst_neg:
            return False
        heapq.heapreplace(self._heap, (-loss, g))
        del self._loss[worst]
        self._loss[g] = loss
        return True

    def sample(self, rng: np.random.Generator) -> Genes:
        """A path drawn uniformly from the pool (``U(P)`` in GreedyNAS Eq. 8)."""
        keys = list(self._loss)
        return keys[int(rng.integers(len(keys)))]

    def genes(self) -> set[Genes]:
        return set(self._loss)

    def worst_loss(self) -> float | None:
        return -self._heap[0][0] if self._heap else None

    def sorted(self) -> list[tuple[Genes, float]]:
        """Entries best (lowest loss) first."""
        return sorted(self._loss.items(), key=lambda kv: (kv[1], kv[0]))

    def to_json(self) -> list[dict[str, Any]]:
        return [{"genes": list(g), "loss": v} for g, v in self.sorted()]

    def state_dict(self) -> dict[str, Any]:
        return {"capacity": self.capacity, "entries": [[list(g), v] for g, v in self._loss.items()]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.capacity = int(state["capacity"])
        self._loss = {tuple(int(v) for v in g): float(v) for g, v in state["entries"]}
        self._heap = [(-v, k) for k, v in self._loss.items()]
        heapq.heapify(self._heap)
