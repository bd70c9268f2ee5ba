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
  depthwise kernel and skips SE when its spec has none. Blocks that name
  ``kernel_transform_convs`` (the MobileNetV3 ``mbconv3`` of ``ofa-mbv3``) get OFA's kernel
  transformation matrices on those convs: a smaller kernel is the centre of the larger one
  through a learned ``k^2 x k^2`` map per step (25x25 for 7 -> 5, 9x9 for 5 -> 3). A block
  class lists in ``elastic_keeps`` the spec fields whose values cannot share one weight (FBNet's
  grouped vs dense 1x1 convs: ``groups``); those stay in the key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from hwnas.errors import HwnasError
from hwnas.spaces.base import OpSpec

_SHARING: dict[str, type[WeightSharing]] = {}
#: providers a strategy builds (K-shot NAS's K copies): loadable from checkpoints, not a --sharing choice
_STRATEGY_SHARING: dict[str, type[WeightSharing]] = {}


def register_sharing(cls: type[WeightSharing], *, selectable: bool = True) -> type[WeightSharing]:
    """Class decorator: make ``cls`` available under ``cls.name`` (``selectable=False``: only
    strategies build it, e.g. on top of a selectable one)."""
    (_SHARING if selectable else _STRATEGY_SHARING)[cls.name] = cls
    return cls


def sharing_names() -> list[str]:
    """Registered weight-sharing styles, the default (``independent``) first."""
    return list(_SHARING)


def create_sharing(spec: str | Mapping[str, Any] | WeightSharing) -> WeightSharing:
    """The provider named ``spec``, rebuilt from its :meth:`WeightSharing.config` (a dict with
    ``name``), or ``spec`` itself when it already is one."""
    if isinstance(spec, WeightSharing):
        return spec
    settings: dict[str, Any] = {}
    if isinstance(spec, Mapping):
        settings = {k: v for k, v in spec.items() if k != "name"}
        spec = str(spec.get("name"))
    cls = _SHARING.get(spec)
    if cls is None:
        _load_plugins()
        cls = _STRATEGY_SHARING.get(spec)
    if cls is None:
        raise HwnasError(f"unknown weight sharing {spec!r}; allowed: {', '.join(sharing_names())}")
    return cls.from_config(settings)


def _load_plugins() -> None:
    """Providers that strategies build (K-shot NAS's K copies) register on import."""
    from hwnas.nn import kshot  # noqa: F401


class WeightSharing:
    """Base provider: one module per :meth:`key`, run as ``module(x, spec)``."""

    name: ClassVar[str] = "sharing"

    def key(self, spec: OpSpec) -> OpSpec:
        """The spec with the dimensions this provider shares removed: equal keys, one module."""
        return spec.module_key()

    @classmethod
    def from_config(cls, settings: Mapping[str, Any]) -> WeightSharing:
        if settings:
            raise HwnasError(f"weight sharing {cls.name!r} takes no settings, got {sorted(settings)}")
        return cls()

    def config(self) -> dict[str, Any]:
        """What :func:`create_sharing` rebuilds this provider from (stored in checkpoints)."""
        return {"name": self.name}

    def build(self, spec: OpSpec) -> nn.Module:
        """The module that holds the weights of the candidate ``spec`` (the widest merged spec)."""
        from hwnas.nn.blocks import build_op

        return build_op(spec)

    def modules(self, space: Any) -> dict[str, nn.Module]:
        """Extra modules of the supernet the provider needs (e.g. a simplex-net); part of its
        state dict, so checkpoints carry them."""
        return {}

    def path_mix(self, supernet: nn.Module, genes: Sequence[int]) -> Any:
        """The mix of a path run without one (evaluation, search): None for single-copy providers."""
        return None

    def bake(self, module: nn.Module, spec: OpSpec, mix: Any = None) -> nn.Module:
        """A plain module holding the weights ``run(module, spec, x, mix)`` computes with
        (:func:`hwnas.supernet.materialize` copies its slices)."""
        return module

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
        from hwnas.nn.blocks import block_class

        key = dataclasses.replace(spec.module_key(), kernel=0, expand=0.0, groups=0, se=False)
        keep = getattr(block_class(spec.op), "elastic_keeps", ())  # e.g. FBNet's grouped 1x1 convs
        return dataclasses.replace(key, **{f: getattr(spec, f) for f in keep}) if keep else key

    def build(self, spec: OpSpec) -> nn.Module:
        module = super().build(spec)
        for name in getattr(module, "kernel_transform_convs", ()):  # OFA Sec. 3.2 elastic kernel
            module.get_submodule(name).enable_kernel_transform()
        return module
