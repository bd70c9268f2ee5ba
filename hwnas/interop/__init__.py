"""Files of other NAS tools, read and written as hwnas genes and latency tables.

Two small registries, one per kind of file, keyed by the ``--format`` name:

* architecture formats (``hwnas arch import | export --format NAME``): an object with
  ``read(path, settings) -> ImportedArch`` and ``write(space, genes, hyper) -> dict``;
* latency-table formats (``hwnas lut import --format NAME``): an object with
  ``read(paths, settings) -> ImportedTable``.

Built in: ``ofa``, the ``net.config`` files and latency lookup tables of Once-for-All (Cai et al.,
ICLR 2020) and ProxylessNAS (Cai et al., ICLR 2019), see :mod:`hwnas.interop.ofa` and
:mod:`hwnas.interop.ofa_lut`. Another format registers with :func:`register_arch_format` /
:func:`register_lut_format`.
"""

from __future__ import annotations

from typing import Any

from hwnas.errors import HwnasError

_ARCH: dict[str, Any] = {}
_LUT: dict[str, Any] = {}


def register_arch_format(name: str, fmt: Any) -> Any:
    _ARCH[name] = fmt
    return fmt


def register_lut_format(name: str, fmt: Any) -> Any:
    _LUT[name] = fmt
    return fmt


def _builtin() -> None:
    from hwnas.interop import ofa, ofa_lut  # noqa: F401  (importing registers them)


def arch_format_names() -> list[str]:
    _builtin()
    return sorted(_ARCH)


def lut_format_names() -> list[str]:
    _builtin()
    return sorted(_LUT)


def arch_format(name: str) -> Any:
    """The architecture format ``name``; unknown: an HwnasError listing the known ones."""
    _builtin()
    if name not in _ARCH:
        raise HwnasError(f"unknown architecture format {name!r}; known: {', '.join(sorted(_ARCH))}")
    return _ARCH[name]


def lut_format(name: str) -> Any:
    """The latency-table format ``name``; unknown: an HwnasError listing the known ones."""
    _builtin()
    if name not in _LUT:
        raise HwnasError(f"unknown latency-table format {name!r}; known: {', '.join(sorted(_LUT))}")
    return _LUT[name]
