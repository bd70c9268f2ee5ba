"""``kshot``: K-shot NAS (Su et al., ICML 2021): K supernets combined per path by a simplex-net.

Every searchable op holds K weight copies (:class:`hwnas.nn.kshot.KShotSharing`, on top of
``--sharing independent`` or ``elastic``); a path runs with ``sum_k lambda_k theta_k`` where its code
``lambda = pi(a; sigma)`` comes from the simplex-net (K-shot NAS Sec. 2.2 and 3, Eq. 4 and 6).

Training follows K-shot NAS Alg. 1 and Sec. 3 ("Iterative training of supernets and simplex-net"):

* warm-up: for the first ``warmup_epochs`` (Sec. 5.1: 5 epochs) every sampled path uses
  ``lambda = 1/K``;
* afterwards each step updates both, each with the other fixed: the sampled path trains the K
  supernets on the whole batch with its code from the simplex-net held fixed (Eq. 9), and
  ``paths`` (b_s = 16, Sec. 5.1) further random paths train the simplex-net with the supernets
  fixed, the image batch divided into that many groups of b / b_s images (Sec. 3, Eq. 8). Both
  losses go into the step's one backward; the supernet weights are detached in the simplex-net's
  paths (their BN statistics too), the code is detached in the supernet's path, so each loss only
  moves its own parameters;
* on spaces with width genes the simplex-net has the channel branch (Sec. 4) and its loss adds
  ``alpha * r_c`` (Eq. 15-17, tau = 0.3, alpha = 1): for an anchor path (a, c_i) the code of the
  same architecture with a width vector ``c_k`` at l1 distance below ``rc_margin`` width steps is
  the positive, the codes of (a, c_j) for the other sampled width vectors (distance >= margin)
  the negatives.

The simplex-net lives in the supernet (``supernet.shared["simplex"]``), so it is in the
checkpoint's weights and trained by the run's SGD optimizer (its momentum is in the optimizer
state): resume is exact, and evaluation, search, ``materialize`` and export of a K-shot
checkpoint use each path's own code without any K-shot-specific code of theirs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from hwnas.errors import HwnasError
from hwnas.nn.kshot import PAPER_K, Code, KShotSharing, width_genes
from hwnas.train.strategies.base import Genes, PathRun, RunContext, StepBatch, StepLoss, Strategy, TrainModel
from hwnas.train.strategies.options import StrategyOptions
from hwnas.train.strategies.registry import register_strategy

#: K-shot NAS Sec. 5.1: warm-up epochs with lambda = 1/K, b_s, tau; Eq. 17: alpha = 1.
PAPER_WARMUP_EPOCHS = 5.0
PAPER_SIMPLEX_PATHS = 16
PAPER_TAU = 0.3
PAPER_ALPHA = 1.0
#: the options of the contrastive regulariser r_c (refused where it cannot run)
RC_OPTIONS = ("tau", "alpha", "rc_margin")


@dataclass(frozen=True)
class KShotOptions(StrategyOptions):
    """K-shot NAS defaults: ``k`` = 8 copies (Sec. 5.3), ``warmup_epochs`` = 5 with lambda = 1/K,
    ``paths`` = b_s = 16 simplex-net paths per step (Sec. 5.1), ``hidden`` units of the simplex-net's
    two-layer MLPs, ``channel`` (channel branch + r_c; auto: on when the space has width genes),
    r_c's ``tau`` = 0.3 and ``alpha`` = 1 (Eq. 15-17) and ``rc_margin`` (the threshold distance m
    of Sec. 4, in width-option steps; the paper gives no value)."""

    k: int = PAPER_K
    warmup_epochs: float = PAPER_WARMUP_EPOCHS
    paths: int = PAPER_SIMPLEX_PATHS
    hidden: int = 64
    channel: bool | None = None
    tau: float = PAPER_TAU
    alpha: float = PAPER_ALPHA
    rc_margin: int = 2

    def checks(self) -> list[tuple[bool, str]]:
        return [
            (self.k >= 1, f"k must be >= 1 (the number of weight copies), got {self.k}"),
            (self.warmup_epochs >= 0, f"warmup_epochs must be >= 0, got {self.warmup_epochs}"),
            (self.paths >= 1, f"paths must be >= 1, got {self.paths}"),
            (self.hidden >= 1, f"hidden must be >= 1, got {self.hidden}"),
            (self.tau > 0, f"tau must be > 0, got {self.tau}"),
            (self.alpha >= 0, f"alpha must be >= 0, got {self.alpha}"),
            (self.rc_margin >= 1, f"rc_margin must be >= 1, got {self.rc_margin}"),
        ]


@register_strategy
class KShotStrategy(Strategy):
    """K-shot NAS: K weight copies per op, per-path simplex codes, alternating updates."""

    name: ClassVar[str] = "kshot"
    summary: ClassVar[str] = ("K weight copies per op combined per path by a simplex-net; warm-up with "
                              "lambda = 1/K, then supernets and simplex-net trained in turn (K-shot NAS)")
    Options: ClassVar[type[StrategyOptions]] = KShotOptions

    @classmethod
    def weight_sharing(cls, options: StrategyOptions, sharing: str) -> Any:
        o = options
        assert isinstance(o, KShotOptions)
        return KShotSharing(base=sharing, k=o.k, hidden=o.hidden, channel=o.channel is not False)

    def __init__(self, options: KShotOptions, run: RunContext) -> None:
        super().__init__(options, run)
        o = options
        provider = run.supernet.provider
        if not isinstance(provider, KShotSharing) or provider.k != o.k:
            raise HwnasError("strategy 'kshot' needs the supernet built with its K weight copies "
                             "(KShotStrategy.weight_sharing)")
        self.k = o.k
        self.widths = width_genes(self.space)
        if o.channel is True and not self.widths:
            raise HwnasError(f"strategy 'kshot': option channel=true needs a space with width genes; "
                             f"space {self.space.name!r} has none (use a width space such as "
                             f"'mbv2-se-width', or leave channel at auto)")
        self.channel = bool(self.widths) and o.channel is not False
        if not self.channel:
            defaults = {f.name: f.default for f in dataclasses.fields(KShotOptions)}
            moved = [f"{k}={getattr(o, k)}" for k in RC_OPTIONS if getattr(o, k) != defaults[k]]
            if moved:
                names = ", ".join(RC_OPTIONS)
                why = (f"space {self.space.name!r} has no width genes (use a width space such as "
                       f"'mbv2-se-width', or leave {names} out)" if not self.widths
                       else f"option channel=false turns the channel branch off (leave {names} out)")
                raise HwnasError(f"strategy 'kshot': option {', '.join(moved)} sets the contrastive regulariser "
                                 f"r_c (K-shot NAS Sec. 4, Eq. 15-17), which runs only with the channel branch; "
                                 f"{why}")
        # the width genes the regulariser may move: with more than one option
        self._rc_widths = tuple(i for i in self.widths if self.space.choices[i] > 1)
        self._gate = {i: grp for grp in self.space.groups for i in grp.own_genes}
        self.warmup_steps = int(round(o.warmup_epochs * run.steps_per_epoch))
        self.total_steps = run.total_steps
        # b / b_s images per simplex-net path; at least 2 images so BatchNorm sees a batch
        self.m = max(1, min(o.paths, run.batch_size // 2))
        self.tau, self.alpha, self.margin = o.tau, o.alpha, o.rc_margin
        self._rc: torch.Tensor | None = None
        self._rc_paths: list[Genes] = []
        self.last_code_max = 1.0 / self.k

    # ---- per step ------------------------------------------------------------------------------
    def in_warmup(self, step: int) -> bool:
        return step < self.warmup_steps

    def _sample(self) -> Genes:
        # canonical: on elastic-depth spaces one gene tuple (and so one simplex code) per subnet
        return self.space.canonical(self.space.sample(self.rng))

    def paths(self, step: int) -> list[PathRun]:
        if self.in_warmup(step):
            return [PathRun(self._sample(), role="warmup")]
        runs = [PathRun(self._sample(), role="supernet")]
        runs += [PathRun(self._sample(), role="simplex") for _ in range(self.m)]
        self._rc_paths = self._rc_set(runs[1].genes, [r.genes for r in runs[2:]]) if self.channel else []
        return runs

    def _rc_set(self, anchor: Genes, others: list[Genes]) -> list[Genes]:
        """[anchor, positive, negatives...] of r_c (Eq. 15): one architecture, other width vectors."""
        g = list(anchor)
        pos = list(g)
        # a width gene of a layer that runs (elastic depth) and has more than one width
        live = [w for w in self._rc_widths if (grp := self._gate.get(w)) is None or grp.runs(g)]
        if not live:
            return []
        i = live[int(self.rng.integers(len(live)))]
        n = self.space.choices[i]
        pos[i] = g[i] + 1 if g[i] + 1 < n and (g[i] == 0 or self.rng.random() < 0.5) else g[i] - 1
        out = [tuple(g), tuple(pos)]
        sources = others or [self.space.sample(self.rng)]
        for src in sources:
            neg = list(g)
            for _ in range(16):  # a width vector at l1 distance >= margin from the anchor's
                for w in self.widths:
                    neg[w] = src[w]
                neg = list(self.space.canonical(neg))
                if sum(abs(neg[w] - g[w]) for w in self.widths) >= self.margin:
                    break
                src = self.space.sample(self.rng)
            else:
                continue
            out.append(tuple(neg))
        return out if len(out) > 2 else []

    def forward(self, model: TrainModel, x: torch.Tensor, runs: list[PathRun]) -> list[torch.Tensor]:
        net = model.supernet
        if len(runs) == 1:
            return [net(x, runs[0].genes, Code.uniform(self.k, x.device))]
        simplex = net.shared["simplex"]
        with torch.no_grad():
            code = simplex.code(runs[0].genes, x.device)
        self.last_code_max = float(code.max())
        outs = [net(x, runs[0].genes, Code(code))]
        # the simplex-net's paths: supernet weights and BN statistics fixed (Eq. 8)
        # (the blocks through Code.frozen, the stem / head / classifier here)
        frozen = {f"fixed.{n}": p.detach() for n, p in net.fixed.named_parameters()}
        frozen.update({f"fixed.{n}": b.clone() for n, b in net.fixed.named_buffers()})
        sruns = runs[1:]
        genes = torch.as_tensor(np.asarray([r.genes for r in sruns], dtype=np.int64), device=x.device)
        codes = simplex(genes)
        for r, xs, c in zip(sruns, x.tensor_split(len(sruns)), codes):
            outs.append(functional_call(net, frozen, (xs, r.genes, Code(c, frozen=True)), strict=False))
        self._rc = None
        if self._rc_paths:
            lam = simplex(torch.as_tensor(np.asarray(self._rc_paths, dtype=np.int64), device=x.device))
            sims = (lam[1:] @ lam[0]) / self.tau  # positive first, then the negatives
            self._rc = -F.log_softmax(sims, dim=0)[0]  # Eq. 15-16
        return outs

    def loss(self, batch: StepBatch) -> StepLoss:
        crit, y = batch.criterion, batch.y
        sup = crit(batch.outputs[0], y)
        if len(batch.runs) == 1:
            return StepLoss(sup, {"supernet_loss": float(sup.detach())})
        ys = y.tensor_split(len(batch.runs) - 1)
        simp = sum(crit(o, t) for o, t in zip(batch.outputs[1:], ys)) / (len(batch.runs) - 1)
        total = sup + simp
        terms = {"supernet_loss": float(sup.detach()), "simplex_loss": float(simp.detach())}
        if self._rc is not None:
            total = total + self.alpha * self._rc
            terms["r_c"] = float(self._rc.detach())
        return StepLoss(total, terms)

    # ---- logging -------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        return {"code_max": round(self.last_code_max, 4)}

    def describe(self) -> dict[str, Any]:
        return {**self.options.to_dict(), "warmup_steps": self.warmup_steps, "simplex_paths": self.m,
                "channel_branch": self.channel, "width_genes": len(self.widths)}

    def notes(self) -> list[str]:
        out = []
        if self.warmup_steps >= self.total_steps:
            out.append(f"kshot: the warm-up (lambda = 1/K, {self.warmup_steps} steps) covers the whole run "
                       f"({self.total_steps} steps): the simplex-net is not trained")
        if self.m < self.options.paths:
            out.append(f"kshot: {self.m} simplex-net paths per step instead of {self.options.paths} "
                       f"(at least 2 images per path at this batch size)")
        return out
