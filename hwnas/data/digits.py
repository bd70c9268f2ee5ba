"""``digits``: scikit-learn's 1797 8x8 handwritten digits, built in (no download).

Images are scaled to [0, 1], upsampled (bilinear) to the space's resolution, replicated to
``in_channels`` and normalised with the training split's mean / std. Augmentation is a small random
affine (rotation +-10 deg, shift +-10 %, scale 0.9-1.1): digits must not be flipped.
Split (stratified, seeded): 70 % train, 15 % search-val (held out), 15 % test.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from hwnas.data.base import DataSplits, ImageSplit, RepeatChannels, stratified_split
from hwnas.data.registry import register_dataset

SEARCH_VAL_FRACTION = 0.15
TEST_FRACTION = 0.15


class _TensorSource:
    def __init__(self, images: torch.Tensor, targets: list[int]) -> None:
        self.images = images
        self.targets = targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], self.targets[i]


@register_dataset("digits")
def build_digits(*, resolution: int, in_channels: int, root: Path | None, download: bool,
                 split_seed: int, arg: str | None) -> DataSplits:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.as_tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
    x = x.clamp_(0.0, 1.0).contiguous()
    targets = [int(t) for t in d.target]
    train_idx, val_idx, test_idx = stratified_split(targets, (SEARCH_VAL_FRACTION, TEST_FRACTION),
                                                    split_seed)
    mean = float(x[train_idx].mean())
    std = float(x[train_idx].std())
    norm = [v2.Normalize([mean], [std]), RepeatChannels(in_channels)]
    train_tf = v2.Compose([v2.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1)), *norm])
    eval_tf = v2.Compose(norm)
    src = _TensorSource(x, targets)
    return DataSplits(
        name="digits", num_classes=10, resolution=resolution, in_channels=in_channels,
        train=ImageSplit(src, train_idx, train_tf, targets),
        train_clean=ImageSplit(src, train_idx, eval_tf, targets),
        search_val=ImageSplit(src, val_idx, eval_tf, targets),
        test=ImageSplit(src, test_idx, eval_tf, targets),
        class_names=tuple(str(i) for i in range(10)), mean=(mean,) * in_channels, std=(std,) * in_channels)
