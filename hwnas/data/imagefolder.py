"""``imagefolder:PATH``: images in class sub-folders (torchvision ``ImageFolder``).

``PATH/train/<class>/*`` (+ ``PATH/val/`` or ``PATH/test/`` as the test split) or a single
``PATH/<class>/*`` tree that is split 80 / 10 / 10. Search-val is carved from the training images
(10 %, stratified, seeded). Augmentation is the ImageNet recipe: random-resized crop + horizontal
flip; evaluation resizes to ``resolution / 0.875`` and centre-crops.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.transforms import v2

from hwnas.data.base import DataSplits, ImageSplit, stratified_split
from hwnas.data.registry import register_dataset
from hwnas.errors import HwnasError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SEARCH_VAL_FRACTION = 0.1
TEST_FRACTION = 0.1


def _folder(path: Path, dataset: str):
    from torchvision.datasets import ImageFolder

    try:
        return ImageFolder(str(path))
    except (FileNotFoundError, OSError, RuntimeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise HwnasError(f"{dataset}: {path} is not an image folder ({first}); expected "
                         f"PATH/<class>/<image> files, or PATH/train/<class>/... (+ PATH/val/)") from None


@register_dataset("imagefolder", takes_arg=True)
def build_imagefolder(*, resolution: int, in_channels: int, root: Path | None, download: bool,
                      split_seed: int, arg: str | None) -> DataSplits:
    path = Path(arg or "")
    dataset = f"imagefolder:{path}"
    if in_channels != 3:
        raise HwnasError(f"{dataset}: images are read as RGB; the space asks for in_channels={in_channels}")
    if not path.is_dir():
        raise HwnasError(f"{dataset}: folder {path} does not exist (expected PATH/<class>/<image> "
                         f"files, or PATH/train/<class>/... (+ PATH/val/))")
    test_dir = next((path / d for d in ("val", "test") if (path / d).is_dir()), None)
    if (path / "train").is_dir():
        train_ds = _folder(path / "train", dataset)
        targets = list(train_ds.targets)
        if test_dir is not None:
            test_ds = _folder(test_dir, dataset)
            if test_ds.classes != train_ds.classes:
                raise HwnasError(f"{dataset}: classes of {test_dir} differ from those of {path / 'train'}")
            train_idx, val_idx = stratified_split(targets, (SEARCH_VAL_FRACTION,), split_seed)
            test_src, test_idx, test_t = test_ds, range(len(test_ds)), list(test_ds.targets)
        else:
            train_idx, val_idx, test_idx = stratified_split(
                targets, (SEARCH_VAL_FRACTION, TEST_FRACTION), split_seed)
            test_src, test_t = train_ds, targets
    else:
        train_ds = _folder(path, dataset)
        targets = list(train_ds.targets)
        train_idx, val_idx, test_idx = stratified_split(
            targets, (SEARCH_VAL_FRACTION, TEST_FRACTION), split_seed)
        test_src, test_t = train_ds, targets
    tail = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    train_tf = v2.Compose([v2.ToImage(), v2.RandomResizedCrop(resolution, antialias=True),
                           v2.RandomHorizontalFlip(), *tail])
    eval_tf = v2.Compose([v2.ToImage(), v2.Resize(round(resolution / 0.875), antialias=True),
                          v2.CenterCrop(resolution), *tail])
    n_cls = len(train_ds.classes)
    return DataSplits(
        name=dataset, num_classes=n_cls, resolution=resolution, in_channels=in_channels,
        train=ImageSplit(train_ds, train_idx, train_tf, targets),
        train_clean=ImageSplit(train_ds, train_idx, eval_tf, targets),
        search_val=ImageSplit(train_ds, val_idx, eval_tf, targets),
        test=ImageSplit(test_src, test_idx, eval_tf, test_t),
        class_names=tuple(train_ds.classes), mean=IMAGENET_MEAN, std=IMAGENET_STD)
