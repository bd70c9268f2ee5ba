"""Weight-sharing supernets, static subnets, ``materialize`` and BN recalibration.

``Supernet(space, sharing=...)(x, genes)`` runs one path. Weight sharing is a registered provider
(:mod:`hwnas.nn.sharing`) that says which candidate module executes each op and how; built in,
chosen per supernet:

* ``independent`` (SPOS, GreedyNAS): ops that differ in anything but their hidden width (kernel,
  expand ratio, SE, block type) are independent candidate modules; ops that differ only in ``mid``
  share one preallocated weight, sliced to the first ``mid`` channels (SPOS channel search).
* ``elastic`` (Once-for-All, Cai et al. 2020, Sec. 3.2): one module per block and op type at the
  largest kernel, width and SE; a path uses the first ``mid`` channels (elastic width / expand
  ratio), the central ``k x k`` taps of each depthwise kernel (elastic kernel: OFA's plain
  centre crop, or on ``ofa-mbv3``'s blocks the centre through OFA's kernel transformation
  matrices) and skips the SE module when its spec has none. Candidates of one layer then share most of their weights, so far fewer steps train
  every path (measured figures: docs/training.md).

Which ops share a module follows from :func:`shared_key`, so a new space gets the right sharing
without code here.

``materialize(supernet, genes)`` builds the plain :class:`Subnet` from the same ``space.layers()``
and copies each tensor's slice (channel prefix, kernel centre), so in eval mode it computes exactly
what the supernet path computes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import dataclasses

import torch
from torch import nn

from hwnas.nn.blocks import build_op
from hwnas.nn.sharing import WeightSharing, create_sharing, sharing_names
from hwnas.spaces.base import OpSpec, SearchSpace

#: weight-sharing styles of a supernet (see the module docstring); the first is the default.
SHARING = tuple(sharing_names())


def check_sharing(sharing: str) -> str:
    create_sharing(sharing)
    return sharing


def shared_key(spec: OpSpec, sharing: str = "independent") -> OpSpec:
    """The spec with the shared dimensions of ``sharing`` removed: ops with equal keys share weights."""
    return create_sharing(sharing).key(spec)


def _merge(a: OpSpec, b: OpSpec) -> OpSpec:
    """The spec of a module that can run both ``a`` and ``b`` (largest kernel, width; SE if any)."""
    return dataclasses.replace(a, kernel=max(a.kernel, b.kernel), mid=max(a.mid, b.mid),
                               expand=max(a.expand, b.expand), groups=max(a.groups, b.groups),
                               se=a.se or b.se)


class Subnet(nn.Module):
    """A static network: the modules of ``space.layers(genes)`` run in order. Exportable as is."""

    def __init__(self, space: SearchSpace, genes: Sequence[int], resolution: int | None = None) -> None:
        super().__init__()
        self.space = space
        self.genes = space.validate(genes)
        self.resolution = space.resolution if resolution is None else resolution
        self.specs = space.layers(self.genes, self.resolution)
        self.ops = nn.ModuleList(build_op(s) for s in self.specs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.ops:
            x = op(x)
        return x

    def metadata(self) -> dict[str, Any]:
        from hwnas import __version__

        return {"space": self.space.config(), "genes": list(self.genes), "hwnas_version": __version__}


class Supernet(nn.Module):
    """One-shot supernet of ``space``: ``forward(x, genes)`` runs the path ``genes``.

    ``sharing`` is ``independent`` (SPOS / GreedyNAS candidate blocks) or ``elastic`` (OFA: one
    module per block, sliced by kernel, width and SE); see the module docstring.
    """

    def __init__(self, space: SearchSpace, sharing: str | dict[str, Any] | WeightSharing = "independent") -> None:
        super().__init__()
        self.space = space
        self.provider = create_sharing(sharing)
        self.sharing = self.provider.name
        self._fixed_specs = space.fixed_ops()
        self.fixed = nn.ModuleList(build_op(s) for s in self._fixed_specs)
        # per block: shared key -> candidate name (c0, c1, ...), built from the merged widest spec
        widest_of: list[dict[OpSpec, OpSpec]] = [{} for _ in space.groups]
        for opt in space.block_options():
            widest = widest_of[opt.block]
            for spec in opt.ops:
                key = self.provider.key(spec)
                widest[key] = _merge(widest[key], spec) if key in widest else spec
        self._names: list[dict[OpSpec, str]] = []
        blocks = []
        for widest in widest_of:
            names = {key: f"c{j}" for j, key in enumerate(widest)}
            self._names.append(names)
            blocks.append(nn.ModuleDict({names[k]: self.provider.build(s) for k, s in widest.items()}))
        self.blocks = nn.ModuleList(blocks)
        #: the provider's own modules (K-shot NAS's simplex-net); empty for single-copy providers
        self.shared = nn.ModuleDict(self.provider.modules(space))

    def module_for(self, spec: OpSpec) -> nn.Module:
        """The supernet module that executes ``spec`` (a fixed op or a block candidate)."""
        if spec.block < 0:
            return self.fixed[self._fixed_specs.index(spec)]
        return self.blocks[spec.block][self._names[spec.block][self.provider.key(spec)]]

    def path(self, genes: Sequence[int]) -> list[tuple[OpSpec, nn.Module]]:
        return [(s, self.module_for(s)) for s in self.space.layers(genes)]

    def forward(self, x: torch.Tensor, genes: Sequence[int], mix: Any = None) -> torch.Tensor:  # type: ignore[override]
        """Run the path ``genes``; ``mix`` (a strategy's per-path weight combination) goes to the
        weight-sharing provider, which runs every block (:meth:`WeightSharing.run`); without one the
        provider's :meth:`~WeightSharing.path_mix` is used (None for single-copy providers)."""
        if mix is None:
            mix = self.provider.path_mix(self, genes)
        fixed_i = 0
        run = self.provider.run
        for spec in self.space.layers(genes):
            if spec.block < 0:
                x = self.fixed[fixed_i](x)
                fixed_i += 1
            else:
                x = run(self.blocks[spec.block][self._names[spec.block][self.provider.key(spec)]], spec, x, mix)
        return x

    def path_parameters(self, genes: Sequence[int]) -> Iterable[nn.Parameter]:
        """Parameters the path ``genes`` touches (whole tensors; a narrow path uses a prefix)."""
        seen: set[int] = set()
        for _, m in self.path(genes):
            for p in m.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield p


class PathModule(nn.Module):
    """A supernet bound to one path: a plain ``module(x)`` call, e.g. for BN recalibration."""

    def __init__(self, supernet: Supernet, genes: Sequence[int]) -> None:
        super().__init__()
        self.supernet = supernet
        self.genes = tuple(genes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.supernet(x, self.genes)


def build_supernet(space: SearchSpace, sharing: str | dict[str, Any] | WeightSharing = "independent") -> Supernet:
    """The supernet of ``space`` with freshly initialised weights (``sharing``: see :data:`SHARING`)."""
    return Supernet(space, sharing)


def _transformed_kernels(dst: nn.Module, src: nn.Module) -> dict[str, torch.Tensor]:
    """Weights of the convs of ``src`` with kernel transformation matrices (Once-for-All Sec. 3.2)
    at the kernel size of the same conv in ``dst``, by state-dict name: what the path runs."""
    from hwnas.nn.blocks import DynamicConv2d

    out: dict[str, torch.Tensor] = {}
    dst_modules = dict(dst.named_modules())
    for name, m in src.named_modules():
        if isinstance(m, DynamicConv2d) and m.has_kernel_transform and name in dst_modules:
            k = dst_modules[name].kernel_size[-1]
            if k < m.kernel_size[-1]:
                out[f"{name}.weight" if name else "weight"] = m.transform_kernel(m.weight, k)
    return out


def _copy_slices(dst: nn.Module, src: nn.Module) -> None:
    """Copy into each tensor of ``dst`` its slice of ``src``: the prefix of every channel dimension
    and the centre of the kernel dimensions of conv weights (elastic kernel), or, for a conv with
    kernel transformation matrices, the transformed kernel (the matrices stay in the supernet)."""
    src_state = {**src.state_dict(), **_transformed_kernels(dst, src)}
    new_state = {}
    for name, t in dst.state_dict().items():
        s = src_state[name]
        if t.dim() == 0:
            new_state[name] = s.clone()
            continue
        idx = []
        for d, n in enumerate(t.shape):
            start = (s.shape[d] - n) // 2 if t.dim() == 4 and d >= 2 else 0
            idx.append(slice(start, start + n))
        new_state[name] = s[tuple(idx)].clone()
    dst.load_state_dict(new_state)


def materialize(supernet: Supernet, genes: Sequence[int]) -> Subnet:
    """A plain :class:`Subnet` for ``genes`` with the supernet's weights copied in.

    The subnet is in the supernet's train/eval mode. Recalibrate BN (:func:`recalibrate_bn`) on the
    subnet or the path before evaluation or export: shared BN statistics mix all paths (SPOS Sec. 3).
    """
    sub = Subnet(supernet.space, genes)
    provider = supernet.provider
    with torch.no_grad():
        mix = provider.path_mix(supernet, sub.genes)
        for spec, module in zip(sub.specs, sub.ops):
            src = supernet.module_for(spec)
            _copy_slices(module, provider.bake(src, spec, mix) if spec.block >= 0 else src)
    sub.train(supernet.training)
    return sub


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[Any], max_batches: int | None = None) -> int:
    """Recompute BatchNorm running statistics of ``model`` on ``batches`` (SPOS Sec. 3.3).

    ``batches`` yields input tensors or ``(inputs, targets)`` pairs; statistics become the exact
    average over the batches seen (cumulative moving average). The model is left in eval mode.
    Returns the number of batches used.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum,) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    n = 0
    try:
        for batch in batches:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            model(x.to(device))
            n += 1
            if max_batches is not None and n >= max_batches:
                break
    finally:
        for m, (mom,) in zip(bns, saved):
            m.momentum = mom
        model.eval()
    return n
