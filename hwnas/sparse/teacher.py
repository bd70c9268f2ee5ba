"""The distillation teacher: the largest subnet of a space trained alone (SparseNAS Sec. 5.5).

"SparseNAS also adopt knowledge distillation to assist supernet optimization by training the
biggest sub-network for 180 epochs as a teacher network. The teacher network provides network
parameters for the supernet initialization and soft labels in each training iteration." The
teacher trains with the dataset's recipe (the same stand-alone trainer as the ranking ground
truth) and is saved as a subnet checkpoint carrying its training configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hwnas.train.config import TrainConfig


def train_teacher(config: TrainConfig, out: str | Path, device: str | None = None) -> tuple[Path, Any]:
    """Train ``space.largest()`` of ``config``'s space on its data; returns the checkpoint path and
    its search-val result."""
    from hwnas.checkpoint import save_checkpoint, version_stamp
    from hwnas.data import take_batches
    from hwnas.ranking.rank_check import train_standalone
    from hwnas.spaces import create_space
    from hwnas.train.distributed import resolve_device
    from hwnas.train.evaluate import evaluate_model
    from hwnas.train.loop import data_for, space_for

    from hwnas.io import check_writable_file

    check_writable_file(out)  # before the data is loaded and the teacher trained
    config, _ = config.resolve()
    res_space = create_space(config.space, width=config.width, resolution=config.resolution)
    data = data_for(config, res_space.resolution, res_space.in_channels)
    space = space_for(config, data.num_classes)
    dev = resolve_device(device)
    genes = space.largest()
    sub = train_standalone(space, genes, data, config, config.epochs, dev, seed=config.seed)
    res = evaluate_model(sub, take_batches(data.split("search-val"), 256), dev)
    path = save_checkpoint(out, kind="subnet", space=space, model_state=sub.cpu().state_dict(), genes=genes,
                           extra={"train_config": config.to_dict(), "teacher": {
                               "epochs": config.epochs, "search_val_top1": res.top1, "versions": version_stamp()}})
    return path, res
