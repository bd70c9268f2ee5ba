"""Training recipes: batch size, learning rate, epochs and GreedyNAS pool size that fit a dataset.

The papers' settings (SPOS Sec. 4: 120 epochs; GreedyNAS Sec. 5.1: batch 1024, lr 0.12, pool 1000)
are for ImageNet's 1.28M images: on ``digits`` (1,257 training images) a batch of 1024 is one step
per epoch. Each built-in dataset therefore registers a recipe here; ``imagefolder`` (and any
dataset without a recipe) keeps the papers' settings. An option given explicitly always wins over
the recipe (:meth:`hwnas.train.config.TrainConfig.resolve`); the run logs and stores which recipe
it used and which settings came from it.

A new dataset registers its recipe next to its builder::

    from hwnas.train.recipes import Recipe, register_recipe
    register_recipe("mydata", Recipe(batch_size=128, lr=0.1, epochs=40, pool_size=50))
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

#: GreedyNAS Sec. 5.1: "decayed with cosine annealing strategy from initial value 0.12. The batch
#: size is 1024."
PAPER_LR = 0.12
PAPER_BATCH = 1024
#: SPOS Sec. 4: "Supernet is trained for 120 epochs".
PAPER_EPOCHS = 120
#: GreedyNAS Sec. 5.1: pool size 1000, "which approximates the amount of paths involved in one epoch".
PAPER_POOL_SIZE = 1000
#: ImageNet steps per epoch at the paper's batch (1,281,167 / 1024): the pool holds ~0.8 of them.
PAPER_STEPS_PER_EPOCH = 1251


@dataclass(frozen=True)
class Recipe:
    """Settings that fit one dataset. ``lr`` is the peak rate at ``batch_size`` (scaled linearly when
    the global batch differs); ``pool_size`` is GreedyNAS's candidate pool (``None``: the paper's
    proportion of the steps per epoch)."""

    name: str
    batch_size: int
    lr: float
    epochs: int
    pool_size: int | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PAPER = Recipe("paper", PAPER_BATCH, PAPER_LR, PAPER_EPOCHS, PAPER_POOL_SIZE,
               note="SPOS Sec. 4 / GreedyNAS Sec. 5.1 ImageNet settings")

_RECIPES: dict[str, Recipe] = {}


def register_recipe(dataset: str, recipe: Recipe) -> Recipe:
    """Make ``recipe`` the default settings of dataset ``dataset`` (its registry name)."""
    _RECIPES[dataset] = recipe
    return recipe


def recipe_for(data: str) -> Recipe:
    """The recipe of dataset spec ``data`` (``imagefolder:PATH`` -> ``imagefolder``), else the paper's."""
    return _RECIPES.get(data.partition(":")[0], PAPER)


def recipe_names() -> list[str]:
    return list(_RECIPES)


# digits: 1,257 training images, 10 classes. Batch 64 gives 19 steps per epoch; lr 0.1 at that batch
# trains elastic supernets well above chance within a few epochs; a pool of 16 is the paper's 0.8 of
# the paths trained per epoch.
register_recipe("digits", Recipe("digits", batch_size=64, lr=0.1, epochs=30, pool_size=16,
                                 note="1,257 training images: 19 steps per epoch"))
# fake: 4,096 random images (smoke tests and throughput); 32 steps per epoch.
register_recipe("fake", Recipe("fake", batch_size=128, lr=0.1, epochs=10, pool_size=25,
                               note="4,096 training images: 32 steps per epoch"))
# gratings: 12,000 training images (the ranking benchmark); 93 steps per epoch at batch 128, the
# setting of its ranking table (tools/bench/ranking_table.py); pool 75 = 0.8 of the steps per epoch.
register_recipe("gratings", Recipe("gratings", batch_size=128, lr=0.2, epochs=4, pool_size=75,
                                   note="12,000 training images: 93 steps per epoch"))
register_recipe("gratings-fine", Recipe("gratings-fine", batch_size=128, lr=0.2, epochs=4, pool_size=75,
                                        note="12,000 training images: 93 steps per epoch"))
# CIFAR: 45K training images after the search-val split; the common CIFAR SGD recipe.
register_recipe("cifar10", Recipe("cifar10", batch_size=256, lr=0.1, epochs=120, pool_size=140,
                                  note="~45K training images: 175 steps per epoch"))
register_recipe("cifar100", Recipe("cifar100", batch_size=256, lr=0.1, epochs=120, pool_size=140,
                                   note="~45K training images: 175 steps per epoch"))
