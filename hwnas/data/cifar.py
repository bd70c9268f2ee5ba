"""``cifar10`` / ``cifar100`` from a user-given root, in the CIFAR "python" pickle format.

``--data-root DIR`` must hold ``cifar-10-batches-py/`` (``data_batch_1..5``, ``test_batch``) or
``cifar-100-python/`` (``train``, ``test``), as torchvision lays them out; ``DIR`` may also be that
folder itself. ``download=True`` (CLI ``--download``, opt-in) fetches them with torchvision first.
Batches are read with a restricted unpickler that only accepts numpy arrays, so a foreign pickle
cannot run code. 10 % of the training images (stratified, seeded) are held out as search-val; the
official test batch is the test split. Augmentation: random crop 32 with 4-pixel padding +
horizontal flip (the standard CIFAR recipe), then resize to the space's resolution if it is not 32.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from torchvision.transforms import v2

from hwnas.data.base import DataSplits, ImageSplit, stratified_split
from hwnas.data.registry import register_dataset
from hwnas.errors import HwnasError

SEARCH_VAL_FRACTION = 0.1
MEAN = {"cifar10": (0.4914, 0.4822, 0.4465), "cifar100": (0.5071, 0.4865, 0.4409)}
#: CIFAR-10's class names in label order (CIFAR-100's are in its meta file; not read here).
CLASS_NAMES = {"cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                           "ship", "truck")}
STD = {"cifar10": (0.2470, 0.2435, 0.2616), "cifar100": (0.2673, 0.2564, 0.2762)}
LAYOUT = {
    # name: (folder, train files, test files, label key, classes)
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"],
                "labels", 10),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "fine_labels", 100),
}
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"), ("codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only."""

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")


class _ArraySource:
    def __init__(self, images: np.ndarray, targets: list[int]) -> None:
        self.images = images  # (N, 32, 32, 3) uint8
        self.targets = targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        return self.images[i], self.targets[i]


def _read_batch(path: Path, label_key: str, dataset: str) -> tuple[np.ndarray, list[int]]:
    expected = (f"a CIFAR python batch: a pickled dict with 'data' (N x 3072 uint8) and "
                f"'{label_key}' (N ints)")
    if not path.is_file():
        raise HwnasError(f"{dataset}: missing file {path} (expected {expected})")
    try:
        with open(path, "rb") as fh:
            entry = _ArrayUnpickler(fh, encoding="latin1").load()
    except Exception as exc:  # truncated, foreign or hostile pickles
        raise HwnasError(f"{dataset}: cannot read {path} ({type(exc).__name__}: {exc}); "
                         f"expected {expected}") from None
    if isinstance(entry, dict):
        entry = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}
    data = entry.get("data") if isinstance(entry, dict) else None
    labels = entry.get(label_key) if isinstance(entry, dict) else None
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3072 or labels is None \
            or len(labels) != data.shape[0]:
        raise HwnasError(f"{dataset}: {path} is not {expected}")
    images = np.ascontiguousarray(data.astype(np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return images, [int(v) for v in labels]


def _folder(name: str, root: Path | None, download: bool) -> Path:
    folder, *_ = LAYOUT[name]
    what = f"{folder}/ in the CIFAR python format"
    if root is None:
        raise HwnasError(f"{name} needs --data-root DIR holding {what} "
                         f"(add --download to fetch it into DIR)")
    if download:
        from torchvision import datasets

        cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
        try:
            for train in (True, False):
                cls(str(root), train=train, download=True)
        except Exception as exc:
            raise HwnasError(f"{name}: download into {root} failed: {exc}") from None
    if root.name == folder and root.is_dir():
        return root
    if not root.exists():
        raise HwnasError(f"{name}: data root {root} does not exist (expected a folder holding {what}; "
                         f"add --download to fetch it)")
    if not (root / folder).is_dir():
        raise HwnasError(f"{name}: data root {root} has no {folder}/ folder (expected {what}; "
                         f"add --download to fetch it)")
    return root / folder


def _build(name: str, resolution: int, in_channels: int, root: Path | None, download: bool,
           split_seed: int) -> DataSplits:
    if in_channels != 3:
        raise HwnasError(f"{name} images have 3 channels; the space asks for in_channels={in_channels}")
    folder, train_files, test_files, label_key, classes = LAYOUT[name]
    base = _folder(name, root, download)
    parts = [_read_batch(base / f, label_key, name) for f in train_files]
    train_x = np.concatenate([p[0] for p in parts])
    train_y = [t for p in parts for t in p[1]]
    tparts = [_read_batch(base / f, label_key, name) for f in test_files]
    test_x = np.concatenate([p[0] for p in tparts])
    test_y = [t for p in tparts for t in p[1]]
    for ys, f in ((train_y, train_files[0]), (test_y, test_files[0])):
        if ys and not 0 <= min(ys) <= max(ys) < classes:
            raise HwnasError(f"{name}: labels in {base / f} must lie in 0..{classes - 1}")
    train_idx, val_idx = stratified_split(train_y, (SEARCH_VAL_FRACTION,), split_seed)
    resize = [v2.Resize(resolution, antialias=True)] if resolution != 32 else []
    tail = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN[name], STD[name])]
    train_tf = v2.Compose([v2.ToImage(), v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(),
                           *resize, *tail])
    eval_tf = v2.Compose([v2.ToImage(), *resize, *tail])
    train_src, test_src = _ArraySource(train_x, train_y), _ArraySource(test_x, test_y)
    return DataSplits(
        name=name, num_classes=classes, resolution=resolution, in_channels=in_channels,
        train=ImageSplit(train_src, train_idx, train_tf, train_y),
        train_clean=ImageSplit(train_src, train_idx, eval_tf, train_y),
        search_val=ImageSplit(train_src, val_idx, eval_tf, train_y),
        test=ImageSplit(test_src, range(len(test_y)), eval_tf, test_y),
        class_names=CLASS_NAMES.get(name, ()), mean=MEAN[name], std=STD[name])


@register_dataset("cifar10")
def build_cifar10(*, resolution: int, in_channels: int, root: Path | None, download: bool,
                  split_seed: int, arg: str | None) -> DataSplits:
    return _build("cifar10", resolution, in_channels, root, download, split_seed)


@register_dataset("cifar100")
def build_cifar100(*, resolution: int, in_channels: int, root: Path | None, download: bool,
                   split_seed: int, arg: str | None) -> DataSplits:
    return _build("cifar100", resolution, in_channels, root, download, split_seed)
