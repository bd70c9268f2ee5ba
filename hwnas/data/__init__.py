"""Datasets for supernet training, path scoring, search and evaluation.

Every dataset comes as :class:`DataSplits`: a fixed, seeded ``train`` / ``search-val`` / ``test``
split. ``search-val`` is held out of training, as the papers hold out validation images for path
scoring (GreedyNAS Sec. 3.2) and search (SPOS Sec. 3.3). Built in: ``digits`` (scikit-learn, no
download), ``fake`` (torchvision FakeData, for throughput), ``cifar10`` / ``cifar100`` (a user-given
root, ``download`` opt-in) and ``imagefolder:PATH``.
"""

from hwnas.data.base import SPLITS, DataSplits, ImageSplit
from hwnas.data.loaders import EpochSampler, eval_loader, sample_seed, take_batches, train_loader
from hwnas.data.registry import dataset_names, load_data, register_dataset

__all__ = ["SPLITS", "DataSplits", "EpochSampler", "ImageSplit", "dataset_names", "eval_loader",
           "load_data", "register_dataset", "sample_seed", "take_batches", "train_loader"]
