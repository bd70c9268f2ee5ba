"""Split containers shared by every dataset: :class:`DataSplits` and the seeded :class:`ImageSplit`.

Augmentation is made reproducible per sample: a training loader asks for ``(index, seed)`` and the
transform runs under ``torch.manual_seed(seed)`` in a forked RNG. The same (run seed, epoch, index)
therefore gives the same augmented image whatever the number of workers, the DDP world size or the
point where a run was interrupted and resumed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset

from hwnas.errors import HwnasError

#: split names accepted everywhere (CLI ``--split``, :meth:`DataSplits.split`).
SPLITS = ("train", "train-clean", "search-val", "test")


class ImageSplit(Dataset):
    """A subset of a source dataset with its transform.

    ``source[i]`` returns ``(image, label)`` (a tensor or a PIL image). Items are addressed by an
    int, or by ``(int, seed)`` to run a random transform under a fixed seed.
    """

    def __init__(self, source: Any, indices: Sequence[int], transform: Callable | None,
                 targets: Sequence[int]) -> None:
        self.source = source
        self.indices = [int(i) for i in indices]
        self.transform = transform
        self.targets = [int(targets[i]) for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        if isinstance(key, tuple):
            i, seed = key
        else:
            i, seed = key, None
        img, label = self.source[self.indices[i]]
        if self.transform is not None:
            if seed is None:
                img = self.transform(img)
            else:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)
                    img = self.transform(img)
        return img, int(label)


@dataclass(frozen=True)
class DataSplits:
    """The splits of one dataset at one resolution.

    ``train`` carries the training augmentation; ``train_clean`` holds the same images with the
    evaluation transform (BN recalibration, SPOS Sec. 3.3); ``search_val`` is held out of training
    (path scoring and search); ``test`` is the dataset's own test set where it has one.
    ``class_names`` name the classes in label order; ``mean`` / ``std`` are the per-channel input
    normalization of images scaled to [0, 1] (``(x - mean) / std``), what an app must apply.
    """

    name: str
    num_classes: int
    resolution: int
    in_channels: int
    train: ImageSplit
    train_clean: ImageSplit
    search_val: ImageSplit
    test: ImageSplit
    class_names: tuple[str, ...] = ()
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def labels(self) -> tuple[str, ...]:
        """The class names, or ``class_<i>`` where the dataset has none."""
        return self.class_names or tuple(f"class_{i}" for i in range(self.num_classes))

    def split(self, name: str) -> ImageSplit:
        if name not in SPLITS:
            raise HwnasError(f"unknown split {name!r}; allowed: {', '.join(SPLITS)}")
        return getattr(self, name.replace("-", "_"))

    def sizes(self) -> dict[str, int]:
        return {s: len(self.split(s)) for s in SPLITS}

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "num_classes": self.num_classes, "resolution": self.resolution,
                "in_channels": self.in_channels, "sizes": self.sizes()}


class RepeatChannels(torch.nn.Module):
    """Replicate a 1-channel image to ``n`` channels (grayscale datasets in RGB spaces)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if x.shape[-3] == self.n else x.expand(self.n, *x.shape[-2:]).clone()


def stratified_split(targets: Sequence[int], fractions: Sequence[float], seed: int) -> list[list[int]]:
    """Split indices ``0..len(targets)-1`` into parts of the given fractions (the rest is the first
    part), stratified by class and seeded (scikit-learn ``train_test_split``)."""
    from sklearn.model_selection import train_test_split

    idx = list(range(len(targets)))
    rest, parts = idx, []
    remaining = 1.0
    for frac in fractions:
        rest_t = [targets[i] for i in rest]
        size = frac / remaining
        try:
            rest, part = train_test_split(rest, test_size=size, stratify=rest_t, random_state=seed)
        except ValueError:  # too few images per class to stratify (tiny folders)
            rest, part = train_test_split(rest, test_size=size, random_state=seed)
        parts.append(sorted(part))
        remaining -= frac
    return [sorted(rest), *parts]
