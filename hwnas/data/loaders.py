"""Seeded loaders: the data order of an epoch is a function of (seed, epoch, rank, world).

:class:`EpochSampler` wraps torch's ``DistributedSampler`` (also with one process) and pairs every
index with a per-sample augmentation seed (:func:`sample_seed`), so a resumed run, a run with more
workers and every DDP rank see exactly the batches and augmentations a straight run would.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

_MASK = (1 << 64) - 1


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A well-mixed 63-bit seed for one (run seed, epoch, sample index) (splitmix64 finaliser)."""
    z = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return (z ^ (z >> 31)) >> 1


class EpochSampler(Sampler):
    """The indices one rank reads in one epoch, as ``(index, augmentation seed)`` pairs.

    Shuffling and sharding follow ``DistributedSampler(seed=seed).set_epoch(epoch)`` with
    ``drop_last=True`` (equal shards); ``skip`` drops the first samples (resuming mid-epoch).
    """

    def __init__(self, dataset: Dataset, *, seed: int, epoch: int, rank: int = 0, world: int = 1,
                 shuffle: bool = True, skip: int = 0) -> None:
        self.inner = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=shuffle,
                                        seed=seed, drop_last=True)
        self.inner.set_epoch(epoch)
        self.seed, self.epoch, self.skip = seed, epoch, skip

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for n, i in enumerate(self.inner):
            if n >= self.skip:
                yield int(i), sample_seed(self.seed, self.epoch, int(i))

    def __len__(self) -> int:
        return max(0, len(self.inner) - self.skip)


def steps_per_epoch(n_images: int, batch_size: int, world: int = 1) -> int:
    """Full batches per rank and epoch (partial batches are dropped)."""
    return (n_images // world) // batch_size


def train_loader(dataset: Dataset, *, batch_size: int, seed: int, epoch: int, rank: int = 0,
                 world: int = 1, workers: int = 0, skip_batches: int = 0,
                 pin_memory: bool = False) -> DataLoader:
    """Shuffled, augmented, sharded batches of one epoch (drop_last), reproducible from the seed."""
    sampler = EpochSampler(dataset, seed=seed, epoch=epoch, rank=rank, world=world,
                           skip=skip_batches * batch_size)
    # an explicit generator: worker seeds come from (seed, epoch), not from the global torch RNG
    gen = torch.Generator().manual_seed(sample_seed(seed, epoch, -1))
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      drop_last=True, pin_memory=pin_memory, persistent_workers=False, generator=gen)


def eval_loader(dataset: Dataset, *, batch_size: int, workers: int = 0) -> DataLoader:
    """All images in order, no augmentation randomness, last partial batch kept."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)


def take_batches(dataset: Dataset, batch_size: int, max_batches: int | None = None,
                 seed: int | None = None, workers: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Up to ``max_batches`` batches held in memory (reused for many subnets by the evaluator).

    With ``seed`` the images are a seeded random subset (e.g. BN-recalibration images drawn from
    the training split, SPOS Sec. 3.3); without, the first images in order.
    """
    n = len(dataset)
    if seed is not None:
        g = torch.Generator().manual_seed(seed)
        order = torch.randperm(n, generator=g).tolist()
    else:
        order = list(range(n))
    if max_batches is not None:
        order = order[: max_batches * batch_size]
    subset = torch.utils.data.Subset(dataset, order)
    return [(x, y) for x, y in DataLoader(subset, batch_size=batch_size, shuffle=False,
                                          num_workers=workers)]
