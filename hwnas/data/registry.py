"""Registry of datasets by name: one factory, :func:`load_data` (timm-style).

A name is ``digits``, ``fake``, ``cifar10``, ``cifar100``, ``imagefolder:PATH``, ``gratings`` or
``gratings-fine`` (these two take an optional ``:test=N``, a larger generated test split); the part
after ``:`` is passed to the builder as ``arg``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hwnas.data.base import DataSplits
from hwnas.errors import HwnasError

Builder = Callable[..., DataSplits]
_DATASETS: dict[str, tuple[Builder, bool]] = {}
#: datasets whose optional ``:ARG`` only changes the test split (name -> how users write it)
_TEST_ONLY_ARG: dict[str, str] = {}


def register_dataset(name: str, *, takes_arg: bool = False,
                     test_arg: str | None = None) -> Callable[[Builder], Builder]:
    """Decorator: make ``builder(resolution=, in_channels=, root=, download=, split_seed=, arg=)``
    available as ``name`` (``name:ARG`` when ``takes_arg``). ``test_arg`` (e.g. ``"test=N"``)
    registers an *optional* ``:ARG`` that changes only the test split, so the training and
    search-val images of ``name:ARG`` are those of ``name`` (see :func:`training_identity`)."""

    def deco(fn: Builder) -> Builder:
        _DATASETS[name] = (fn, takes_arg)
        if test_arg:
            _TEST_ONLY_ARG[name] = test_arg
        else:
            _TEST_ONLY_ARG.pop(name, None)
        return fn

    return deco


def dataset_names() -> list[str]:
    """Names as users type them (``imagefolder:PATH``, ``gratings[:test=N]``), sorted."""
    _load_builtin()
    out = []
    for n, (_, arg) in sorted(_DATASETS.items()):
        out.append(f"{n}:PATH" if arg else f"{n}[:{_TEST_ONLY_ARG[n]}]" if n in _TEST_ONLY_ARG else n)
    return out


def training_identity(spec: str) -> str:
    """The dataset a model trained on ``spec`` has seen: ``spec`` without an argument that only
    changes the test split (``gratings-fine:test=20000`` -> ``gratings-fine``)."""
    _load_builtin()
    name, _, arg = spec.partition(":")
    return name if arg and name in _TEST_ONLY_ARG else spec


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
    if not takes_arg and arg and name not in _TEST_ONLY_ARG:
        raise HwnasError(f"dataset {name!r} takes no ':' argument (got {spec!r}); "
                         f"allowed: {', '.join(dataset_names())}")
    if resolution < 8:
        raise HwnasError(f"resolution must be >= 8, got {resolution}")
    return builder(resolution=int(resolution), in_channels=int(in_channels),
                   root=None if root is None else Path(root), download=download,
                   split_seed=int(split_seed), arg=arg or None)


def _load_builtin() -> None:
    from hwnas.data import cifar, digits, fake, gratings, imagefolder  # noqa: F401  (registers)
