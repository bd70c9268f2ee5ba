"""Zen-score (Zen-NAS, Lin et al., ICCV 2021, Sec. 4 and Alg. 1): a zero-shot expressivity proxy.

For a network ``f`` whose every conv / linear weight is drawn from N(0, 1) (BN affine at 1 / 0),
with Gaussian inputs ``x`` and a Gaussian perturbation ``eps`` scaled by ``alpha`` = 0.01, and
``f`` the pre-GAP feature map (PGONAS Sec. 3.2: "to avoid information loss"):

    Delta = E_{x, eps} || f(x) - f(x + alpha * eps) ||_F
    Zen-score = log(Delta) + sum_i log(sigma_i),  sigma_i = sqrt(mean_j sigma_{i,j}^2)

where ``sigma_{i,j}^2`` is the mini-batch variance of channel ``j`` at the input of BN layer ``i``
(BN in training mode, on the unperturbed batch). The expectation is a mean over the batch; with
``repeats`` > 1 the scores of independent draws are averaged (Zen-NAS Alg. 1). Everything is drawn from a seeded generator and the global RNG is left alone,
so the score of an architecture is the same on every DDP rank and after a resume.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

#: Zen-NAS Alg. 1: perturbation scale.
ZEN_ALPHA = 0.01


def gaussian_init(model: nn.Module, generator: torch.Generator) -> None:
    """Zen-NAS Alg. 1: conv / linear weights ~ N(0, 1), biases 0, BN weight 1 and bias 0."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator))
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                if m.weight is not None:
                    m.weight.fill_(1.0)
                    m.bias.zero_()
            elif isinstance(m, nn.PReLU):
                m.weight.fill_(0.25)


def zen_score(features: nn.Module, input_shape: Sequence[int], *, batch: int = 16, repeats: int = 1,
              alpha: float = ZEN_ALPHA, seed: int = 0) -> float:
    """Zen-score of ``features`` (a module returning the pre-GAP feature map) on inputs of
    ``input_shape`` (C, H, W). ``features`` is re-initialised in place (Gaussian) and run in
    training mode; no gradient is taken."""
    gen = torch.Generator().manual_seed(int(seed))
    bns = [m for m in features.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    variances: list[torch.Tensor] = []

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0]
        variances.append(x.transpose(0, 1).reshape(x.shape[1], -1).var(dim=1, unbiased=False).mean())

    scores = []
    was_training = features.training
    features.train()
    try:
        with torch.no_grad():
            for _ in range(repeats):
                gaussian_init(features, gen)
                x = torch.randn((batch, *input_shape), generator=gen)
                eps = torch.randn((batch, *input_shape), generator=gen)
                handles = [m.register_forward_pre_hook(hook) for m in bns]
                variances.clear()
                try:
                    out = features(x)
                finally:
                    for h in handles:
                        h.remove()
                log_sigma = sum(0.5 * math.log(float(v)) for v in variances)
                mixed = features(x + alpha * eps)
                delta = float((out - mixed).flatten(1).norm(dim=1).mean())
                scores.append(math.log(delta) + log_sigma)
    finally:
        features.train(was_training)
    return sum(scores) / len(scores)
