"""Weight sharing as a provider of each block's weights, registered by name.

A supernet asks its provider two things: which candidate module of a block executes a given
:class:`~hwnas.spaces.base.OpSpec` (:meth:`WeightSharing.key`: ops with equal keys share one
module, built at the widest merged spec), and how to run it (:meth:`WeightSharing.run`). A
training strategy can hand a per-path ``mix`` to the supernet's forward; the provider decides what
it means, so weights can be combined without editing any block. The built-in providers take no
mix. A provider that holds K weight copies per candidate (K-shot NAS Sec. 3: a convex combination
of K supernets chosen per path by a simplex-net) builds its own modules in :meth:`build` and
combines the copies' tensors in :meth:`run`, e.g. with ``torch.func.functional_call`` on one
copy, so the blocks stay as they are.

Built in:

* ``independent`` (SPOS Sec. 3.2, GreedyNAS Sec. 5.1): ops that differ in anything but their hidden
  width (kernel, expand ratio, SE, block type) are independent candidate modules; ops that differ
  only in ``mid`` share one preallocated weight sliced to its first ``mid`` channels (SPOS channel
  search, Sec. 3.3).
* ``elastic`` (Once-for-All Sec. 3.2): one module per block and op type at the largest kernel,
  width and SE; a path uses the first ``mid`` channels, the central ``k x k`` taps of each
  depthwise kernel and skips SE when its spec has none.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import nn

from hwnas.errors import HwnasError
from hwnas.spaces.base import OpSpec

_SHARING: dict[str, type[WeightSharing]] = {}


def register_sharing(cls: type[WeightSharing]) -> type[WeightSharing]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    _SHARING[cls.name] = cls
    return cls


def sharing_names() -> list[str]:
    """Registered weight-sharing styles, the default (``independent``) first."""
    return list(_SHARING)


def create_sharing(name: str) -> WeightSharing:
    cls = _SHARING.get(name)
    if cls is None:
        raise HwnasError(f"unknown weight sharing {name!r}; allowed: {', '.join(sharing_names())}")
    return cls()


class WeightSharing:
    """Base provider: one module per :meth:`key`, run as ``module(x, spec)``."""

    name: ClassVar[str] = "sharing"

    def key(self, spec: OpSpec) -> OpSpec:
        """The spec with the dimensions this provider shares removed: equal keys, one module."""
        return spec.module_key()

    def run(self, module: nn.Module, spec: OpSpec, x: torch.Tensor, mix: Any = None) -> torch.Tensor:
        """Execute ``spec`` on ``x`` with ``module``'s weights; ``mix`` is the strategy's per-path
        weight combination (providers with one weight copy accept none)."""
        if mix is not None:
            raise HwnasError(f"weight sharing {self.name!r} holds one weight copy per candidate; "
                             f"it cannot combine weights (the strategy passed a mix)")
        return module(x, spec)


@register_sharing
class IndependentSharing(WeightSharing):
    """SPOS / GreedyNAS candidate blocks: only the hidden width is shared (channel prefix)."""

    name: ClassVar[str] = "independent"


@register_sharing
class ElasticSharing(WeightSharing):
    """Once-for-All elastic kernel, width and SE: one module per block and op type."""

    name: ClassVar[str] = "elastic"

    def key(self, spec: OpSpec) -> OpSpec:
        return dataclasses.replace(spec.module_key(), kernel=0, expand=0.0, groups=0, se=False)
