"""K-shot weight sharing: K weight copies per candidate op and the simplex-net (K-shot NAS).

K-shot NAS Sec. 2.2 keeps a dictionary of K weights ``Theta = {theta_1..theta_K}`` for every
searchable op (the weights of K supernets) and runs a path with the convex combination
``w = sum_k lambda_k theta_k`` (Eq. 4), where the code ``lambda`` lies on the simplex
``Delta^{K-1}``. The code is customised per path by the simplex-net ``pi(a; sigma)`` (Sec. 3,
Eq. 6): an MLP on the one-hot architecture encoding with a softmax output. On spaces with width
genes a second "channel branch" encodes the widths and is merged with the architecture branch
into the one code (Sec. 4, Fig. 2); both branches are two-layer MLPs (Sec. 5.1).

:class:`KShotSharing` is a weight-sharing provider on top of a selectable one (``independent`` or
``elastic``): it keeps that provider's keys (which ops share a module) and turns every block
candidate into a :class:`KShotOp` holding the K copies. The copies are merged *before* the op runs
(``torch.func.functional_call`` on copy 0), so no feature map is added (Sec. 3, "Analysis on
Training Cost"). Stem, head and classifier are not searchable and keep one copy. A path's mix is a
:class:`Code`; a path run without one (evaluation, search, :func:`hwnas.supernet.materialize`)
takes its code from the simplex-net, so every consumer of a supernet checkpoint sees each path
with its own weights.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from hwnas.errors import HwnasError
from hwnas.nn.sharing import WeightSharing, create_sharing, register_sharing
from hwnas.spaces.base import OpSpec

#: K-shot NAS Sec. 5.3 / Fig. 7: "we simply use K=8".
PAPER_K = 8


@dataclass(frozen=True)
class Code:
    """A path's simplex code ``lambda`` (shape ``(K,)``, non-negative, sums to 1). ``frozen`` runs
    the path with the K copies held fixed: merged from detached weights, BN statistics of a
    throw-away copy (K-shot NAS Eq. 8, the simplex-net's update)."""

    weights: torch.Tensor
    frozen: bool = False

    @staticmethod
    def uniform(k: int, device: torch.device | str = "cpu") -> Code:
        """``lambda = 1/K`` (K-shot NAS Alg. 1: the warm-up code)."""
        return Code(torch.full((k,), 1.0 / k, device=device))


def width_genes(space: Any) -> tuple[int, ...]:
    """Indices of a space's width genes (a space declares them as ``width_genes``); empty if none."""
    return tuple(int(i) for i in getattr(space, "width_genes", ()))


def _get(module: nn.Module, name: str) -> torch.Tensor:
    obj: Any = module
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


class KShotOp(nn.Module):
    """K copies of one candidate op: ``op`` is copy 0 (its structure, BN buffers and first weight
    copy); ``copies[i]`` stacks parameter ``names[i]`` of copies 2..K (shape ``(K-1, ...)``), each
    copy initialised independently."""

    def __init__(self, build: Any, k: int) -> None:
        super().__init__()
        self.k = k
        self.op = build()
        self.names = [n for n, _ in self.op.named_parameters()]
        fresh = [dict(build().named_parameters()) for _ in range(k - 1)]
        self.copies = nn.ParameterList(
            [nn.Parameter(torch.stack([f[n].detach() for f in fresh])) for n in self.names] if k > 1 else [])

    def merged(self, code: torch.Tensor, frozen: bool = False) -> dict[str, torch.Tensor]:
        """``{name: sum_k lambda_k theta_k}`` for every parameter of the op (Eq. 4); ``frozen``
        merges detached copies (gradients reach the code only)."""
        code = code.to(dtype=torch.float32)
        out = {}
        for i, name in enumerate(self.names):
            first, rest = _get(self.op, name), self.copies[i]
            if frozen:
                first, rest = first.detach(), rest.detach()
            out[name] = first * code[0] + torch.tensordot(code[1:], rest, dims=1)
        return out

    def forward(self, x: torch.Tensor, spec: OpSpec, code: torch.Tensor,  # type: ignore[override]
                frozen: bool = False) -> torch.Tensor:
        if self.k == 1 and not frozen:
            return self.op(x, spec)
        tensors = self.merged(code, frozen) if self.k > 1 else {n: _get(self.op, n).detach() for n in self.names}
        if frozen:
            tensors.update({n: b.clone() for n, b in self.op.named_buffers()})
        return functional_call(self.op, tensors, (x, spec), strict=False)


class SimplexNet(nn.Module):
    """The simplex-net ``pi: A -> Delta^{K-1}`` (K-shot NAS Eq. 6, Sec. 4 channel branch).

    Input: the one-hot encoding of each gene. The architecture branch (all genes but the width
    genes) and, when the space has width genes, the channel branch (the width genes) are two-layer
    MLPs (Sec. 5.1) whose logits are summed and soft-maxed onto the simplex. The output layers
    start at zero, so training begins at the warm-up code ``1/K``.
    """

    def __init__(self, choices: Sequence[int], k: int, hidden: int = 64,
                 channel_genes: Sequence[int] = ()) -> None:
        super().__init__()
        self.choices = tuple(int(c) for c in choices)
        self.k = k
        self.channel_genes = tuple(int(i) for i in channel_genes)
        arch = [i for i in range(len(self.choices)) if i not in set(self.channel_genes)]
        self.arch_genes = tuple(arch)
        self.arch = self._mlp(sum(self.choices[i] for i in arch), hidden, k) if arch else None
        self.channel = (self._mlp(sum(self.choices[i] for i in self.channel_genes), hidden, k)
                        if self.channel_genes else None)

    @staticmethod
    def _mlp(n_in: int, hidden: int, k: int) -> nn.Sequential:
        mlp = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, k))
        nn.init.zeros_(mlp[2].weight)
        nn.init.zeros_(mlp[2].bias)
        return mlp

    def one_hot(self, genes: torch.Tensor, which: Sequence[int]) -> torch.Tensor:
        parts = [nn.functional.one_hot(genes[:, i], self.choices[i]) for i in which]
        return torch.cat(parts, dim=1).to(torch.float32)

    def forward(self, genes: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Codes of an ``(n, num_genes)`` long tensor of paths: ``(n, K)`` rows on the simplex."""
        genes = genes.long()
        logits = torch.zeros(genes.shape[0], self.k, device=genes.device)
        if self.arch is not None:
            logits = logits + self.arch(self.one_hot(genes, self.arch_genes))
        if self.channel is not None:
            logits = logits + self.channel(self.one_hot(genes, self.channel_genes))
        return torch.softmax(logits, dim=1)

    def code(self, genes: Sequence[int] | np.ndarray, device: torch.device | None = None) -> torch.Tensor:
        """The code of one path (shape ``(K,)``)."""
        dev = device if device is not None else next(self.parameters()).device
        return self(torch.as_tensor(np.asarray(genes, dtype=np.int64)[None, :], device=dev))[0]


class KShotSharing(WeightSharing):
    """K weight copies per candidate on top of the provider ``base`` (K-shot NAS Sec. 2.2)."""

    name: ClassVar[str] = "kshot"

    def __init__(self, base: WeightSharing | str | Mapping[str, Any] = "independent", k: int = PAPER_K,
                 hidden: int = 64, channel: bool = True) -> None:
        self.base = create_sharing(base)
        if isinstance(self.base, KShotSharing):
            raise HwnasError("K-shot weight copies cannot be stacked on K-shot weight copies")
        if int(k) < 1:
            raise HwnasError(f"K-shot needs k >= 1 weight copies, got {k}")
        self.k, self.hidden, self.channel = int(k), int(hidden), bool(channel)

    @classmethod
    def from_config(cls, settings: Mapping[str, Any]) -> WeightSharing:
        known = {"base", "k", "hidden", "channel"}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise HwnasError(f"weight sharing 'kshot' has no setting {unknown[0]!r}; allowed: {sorted(known)}")
        return cls(**dict(settings))

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "base": self.base.config(), "k": self.k, "hidden": self.hidden,
                "channel": self.channel}

    def key(self, spec: OpSpec) -> OpSpec:
        return self.base.key(spec)

    def build(self, spec: OpSpec) -> nn.Module:
        return KShotOp(lambda: self.base.build(spec), self.k)

    def modules(self, space: Any) -> dict[str, nn.Module]:
        channel = width_genes(space) if self.channel else ()
        return {"simplex": SimplexNet(space.choices, self.k, self.hidden, channel)}

    def path_mix(self, supernet: nn.Module, genes: Sequence[int]) -> Code:
        simplex = supernet.shared["simplex"]
        # one code per subnet: the genes of layers switched off by a depth gene do not count
        return Code(simplex.code(supernet.space.canonical(genes)))

    def run(self, module: nn.Module, spec: OpSpec, x: torch.Tensor, mix: Any = None) -> torch.Tensor:
        if mix is None:
            raise HwnasError("a K-shot supernet path needs its simplex code (the supernet supplies it)")
        code = mix.weights if isinstance(mix, Code) else torch.as_tensor(mix)
        if code.shape != (self.k,):
            raise HwnasError(f"a K-shot code has {self.k} entries, got shape {tuple(code.shape)}")
        return module(x, spec, code, isinstance(mix, Code) and mix.frozen)

    def bake(self, module: nn.Module, spec: OpSpec, mix: Any = None) -> nn.Module:
        code = mix.weights if isinstance(mix, Code) else torch.as_tensor(mix)
        plain = copy.deepcopy(module.op)
        with torch.no_grad():
            for name, w in module.merged(code).items():
                _get(plain, name).copy_(w)
        return plain


register_sharing(KShotSharing, selectable=False)
