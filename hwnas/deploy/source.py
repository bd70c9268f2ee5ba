"""The model a deployment starts from: a subnet of a supernet checkpoint or a fine-tuned subnet.

A subnet taken from a supernet has inherited weights whose BatchNorm statistics belong to the
supernet's mixture of paths; its BN statistics are recalibrated on training images before it is
exported, evaluated or fine-tuned (SPOS Sec. 3.3). A subnet checkpoint (``hwnas finetune``)
already holds the subnet's own statistics and is used as is.

The run's training settings (dataset, recipe) and the dataset's class names and normalization
come with the source: the checkpoint's ``train_config`` and ``class_names`` where stored, the
dataset itself otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwnas.errors import HwnasError

#: BN recalibration batches of 256 training images (as ``hwnas eval``).
RECALIBRATION_BATCHES = 20


@dataclass
class Source:
    """A static subnet ready for deployment and what is known about it."""

    model: Any  # hwnas.supernet.Subnet, eval mode
    checkpoint: Path
    kind: str  # supernet | subnet
    train_config: Any  # hwnas.train.config.TrainConfig | None
    data: Any  # hwnas.data.DataSplits | None
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    recalibrated_batches: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def space(self):
        return self.model.space

    @property
    def genes(self) -> tuple[int, ...]:
        return tuple(self.model.genes)


def _train_config(ckpt: dict[str, Any]):
    from hwnas.train.config import TrainConfig

    cfg = ckpt.get("train_config")
    return TrainConfig.from_dict(cfg) if cfg else None


def class_names_of(ckpt: dict[str, Any], data, num_classes: int, path: Path) -> tuple[tuple[str, ...], str | None]:
    """The class names of a checkpoint and a note when they are not the stored ones.

    Training stores the dataset's class names in the checkpoint; an older checkpoint without them
    takes them from its dataset, and one without a known dataset falls back to ``class_0``,
    ``class_1``, ... (the note says so, and the app shows those names).
    """
    stored = ckpt.get("class_names")
    if stored:
        if len(stored) != num_classes:
            raise HwnasError(f"checkpoint {path}: {len(stored)} class names stored, the model has "
                             f"{num_classes} classes")
        return tuple(map(str, stored)), None
    if data is not None:
        return tuple(data.labels()), f"checkpoint {path} stores no class names: taken from its dataset {data.name}"
    return (tuple(f"class_{i}" for i in range(num_classes)),
            f"checkpoint {path} stores no class names and names no dataset: labels default to "
            f"class_0 .. class_{num_classes - 1}")


def run_data(config, space, data_root: str | None = None):
    """The splits of the run ``config`` at the subnet's resolution."""
    from hwnas.train.loop import data_for

    if data_root is not None:
        config = config.replace(data_root=str(data_root))
    return data_for(config, space.resolution, space.in_channels)


def load_source(checkpoint: str | Path, genes_text: str | None = None, *, space_name: str | None = None,
                resolution: int | None = None, data_root: str | None = None, recalibrate: bool = True,
                calib_batches: int = RECALIBRATION_BATCHES, need_data: bool = True) -> Source:
    """The subnet ``genes_text`` of ``checkpoint`` with its BN recalibrated (supernets), its run
    settings and its dataset's class names and normalization."""
    from hwnas.checkpoint import load_checkpoint
    from hwnas.data import take_batches
    from hwnas.models import subnet_from_checkpoint
    from hwnas.supernet import recalibrate_bn

    path = Path(checkpoint)
    ckpt = load_checkpoint(path, expect_space=space_name)
    if genes_text is not None:  # bad genes (another space's file...) before the supernet is built
        from hwnas.arch import parse_genes
        from hwnas.checkpoint import space_of

        parse_genes(genes_text, space_of(ckpt))
    model = subnet_from_checkpoint(path, genes_text=genes_text, space_name=space_name, resolution=resolution)
    config = _train_config(ckpt)
    data = None
    if config is not None and (need_data or (recalibrate and ckpt["kind"] == "supernet")):
        data = run_data(config, model.space, data_root)
        if data.num_classes != model.space.num_classes:
            raise HwnasError(f"checkpoint {path}: dataset {config.data} has {data.num_classes} classes, "
                             f"the model {model.space.num_classes}")
    n = 0
    note = None
    if recalibrate and ckpt["kind"] == "supernet":
        if data is None:
            note = (f"checkpoint {path} has no training settings (train_config): BN statistics are the "
                    f"supernet's, not recalibrated for this subnet")
        else:
            n = recalibrate_bn(model, take_batches(data.train_clean, 256, max_batches=calib_batches, seed=0))
    names, names_note = class_names_of(ckpt, data, model.space.num_classes, path)
    mean = tuple(ckpt.get("mean") or (data.mean if data is not None else ()))
    std = tuple(ckpt.get("std") or (data.std if data is not None else ()))
    extra = {k: ckpt[k] for k in ("finetune", "source_checkpoint") if k in ckpt}
    if note:
        extra["recalibration_note"] = note
    if names_note:
        extra["class_names_note"] = names_note
    return Source(model.eval(), path, ckpt["kind"], config, data, names, mean, std, n, extra=extra)


__all__ = ["RECALIBRATION_BATCHES", "Source", "class_names_of", "load_source", "run_data"]
