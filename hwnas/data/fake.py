"""``fake``: torchvision ``FakeData`` random images, for throughput measurements (nothing to learn).

Sizes: 4096 train, 512 search-val, 512 test images, 10 classes; each split uses its own
``random_offset``, so images are deterministic per index and differ between splits.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.datasets import FakeData
from torchvision.transforms import v2

from hwnas.data.base import DataSplits, ImageSplit
from hwnas.data.registry import register_dataset

SIZES = {"train": 4096, "search_val": 512, "test": 512}
NUM_CLASSES = 10


@register_dataset("fake")
def build_fake(*, resolution: int, in_channels: int, root: Path | None, download: bool,
               split_seed: int, arg: str | None) -> DataSplits:
    norm = v2.Normalize([0.5] * in_channels, [0.5] * in_channels)
    base = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), norm]
    train_tf = v2.Compose([v2.ToImage(), v2.RandomHorizontalFlip(), *base[1:]])
    eval_tf = v2.Compose(base)
    parts = {}
    for k, (name, size) in enumerate(SIZES.items()):
        src = FakeData(size=size, image_size=(in_channels, resolution, resolution),
                       num_classes=NUM_CLASSES, random_offset=(3 * split_seed + k) * 1_000_003)
        parts[name] = (src, range(size), [0] * size)  # labels are drawn per image; not listed
    return DataSplits(
        name="fake", num_classes=NUM_CLASSES, resolution=resolution, in_channels=in_channels,
        train=ImageSplit(*parts["train"][:2], train_tf, parts["train"][2]),
        train_clean=ImageSplit(*parts["train"][:2], eval_tf, parts["train"][2]),
        search_val=ImageSplit(*parts["search_val"][:2], eval_tf, parts["search_val"][2]),
        test=ImageSplit(*parts["test"][:2], eval_tf, parts["test"][2]),
        mean=(0.5,) * in_channels, std=(0.5,) * in_channels)
