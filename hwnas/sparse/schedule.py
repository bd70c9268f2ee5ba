"""The SparseNAS schedule scaled to the dataset at hand (a recipe for each stage).

SparseNAS Sec. 5.1.4 / Table 4 on ImageNet: the teacher (the largest subnet alone) trains 180
epochs, the proxy supernet 30 epochs (uniform sampling, two subnets per batch, lr 0.1), the sparse
supernet 150 epochs (lr 0.008 for 5 epochs, then 0.08). hwnas takes the dataset's recipe
(:mod:`hwnas.train.recipes`: batch, peak lr and epochs that fit it) as the 150-epoch stage and keeps
the paper's proportions: proxy 30/150 of its epochs, teacher 180/150, a warm-up over 5/150
(hwnas warms up linearly from 0 rather than at a tenth of the rate). At least one epoch each.
"""

from __future__ import annotations

import math

from hwnas.train.recipes import recipe_for

PAPER_PROXY_EPOCHS = 30
PAPER_SPARSE_EPOCHS = 150
PAPER_TEACHER_EPOCHS = 180
PAPER_WARMUP_EPOCHS = 5
#: SparseNAS Sec. 5.2.1: "randomly samples two sub-networks for optimization in one data batch"
PROXY_PATHS = 2


def _scaled(data: str, paper_epochs: int) -> int:
    return max(1, math.ceil(recipe_for(data).epochs * paper_epochs / PAPER_SPARSE_EPOCHS))


def proxy_epochs(data: str) -> int:
    """Epochs of the proxy supernet on ``data`` (30/150 of its recipe)."""
    return _scaled(data, PAPER_PROXY_EPOCHS)


def teacher_epochs(data: str) -> int:
    """Epochs of the stand-alone teacher on ``data`` (180/150 of its recipe)."""
    return _scaled(data, PAPER_TEACHER_EPOCHS)


def sparse_warmup_epochs(epochs: int) -> float:
    """Linear warm-up of sparse training: 5/150 of its epochs."""
    return epochs * PAPER_WARMUP_EPOCHS / PAPER_SPARSE_EPOCHS
