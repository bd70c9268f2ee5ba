"""Registry of datasets by name: one factory, :func:`load_data` (timm-style).

A name is ``digits``, ``fake``, ``cifar10``, ``cifar100`` or ``imagefolder:PATH``; the part after
``:`` is passed to the builder as ``arg``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hwnas.data.base import DataSplits
from hwnas.errors import HwnasError

Builder = Callable[..., DataSplits]
_DATASETS: dict[str, tuple[Builder, bool]] = {}


def register_dataset(name: str, *, takes_arg: bool = False) -> Callable[[Builder], Builder]:
    """Decorator: make ``builder(resolution=, in_channels=, root=, download=, split_seed=, arg=)``
    available as ``name`` (``name:ARG`` when ``takes_arg``)."""

    def deco(fn: Builder) -> Builder:
        _DATASETS[name] = (fn, takes_arg)
        return fn

    return deco


def dataset_names() -> list[str]:
    """Names as users type them (``imagefolder:PATH``), sorted (not in import order)."""
    _load_builtin()
    return [f"{n}:PATH" if arg else n for n, (_, arg) in sorted(_DATASETS.items())]


def load_data(spec: str, *, resolution: int, in_channels: int = 3, root: str | Path | None = None,
              download: bool = False, split_seed: int = 0) -> DataSplits:
    """Build the splits of dataset ``spec`` at ``resolution`` (see :mod:`hwnas.data`).

    ``root`` is where file-based datasets live; ``download`` is opt-in and only used by datasets
    that can fetch themselves (CIFAR). ``split_seed`` fixes the train / search-val / test split.
    """
    _load_builtin()
    name, _, arg = spec.partition(":")
    entry = _DATASETS.get(name)
    if entry is None:
        raise HwnasError(f"unknown dataset {spec!r}; allowed: {', '.join(dataset_names())}")
    builder, takes_arg = entry
    if takes_arg and not arg:
        raise HwnasError(f"dataset {name!r} needs a path: use {name}:PATH")
    if not takes_arg and arg:
        raise HwnasError(f"dataset {name!r} takes no ':' argument (got {spec!r}); "
                         f"allowed: {', '.join(dataset_names())}")
    if resolution < 8:
        raise HwnasError(f"resolution must be >= 8, got {resolution}")
    return builder(resolution=int(resolution), in_channels=int(in_channels),
                   root=None if root is None else Path(root), download=download,
                   split_seed=int(split_seed), arg=arg or None)


def _load_builtin() -> None:
    from hwnas.data import cifar, digits, fake, gratings, imagefolder  # noqa: F401  (registers)
