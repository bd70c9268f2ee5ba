"""Registry of search spaces by name: one factory, ``create_space(name, **kw)`` (timm-style).

Built-in spaces register themselves when their module is imported. A space from another package
registers the same way; to make it visible to the ``hwnas`` command without importing it first,
the package declares an entry point in the ``hwnas.spaces`` group (``name = "module"``), which is
imported when spaces are first listed or created.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from hwnas.errors import HwnasError

_SPACES: dict[str, type] = {}


def register_space(cls: type) -> type:
    """Class decorator / call: make ``cls`` available under ``cls.name``."""
    _SPACES[cls.name] = cls
    return cls


def space_names() -> list[str]:
    _load_builtin()
    return sorted(_SPACES)


def _check_settings(name: str, settings: dict[str, Any]) -> None:
    """width a finite number > 0, resolution an int >= 8, num_classes an int >= 1 (from the
    command line or from a checkpoint's config)."""
    from hwnas.checks import check_float, check_int

    if "width" in settings:
        check_float(f"width of space {name!r}", settings["width"], above=0)
    if "resolution" in settings:
        check_int(f"resolution of space {name!r}", settings["resolution"], min=8)
    if "num_classes" in settings:
        check_int(f"num_classes of space {name!r}", settings["num_classes"], min=1)


def create_space(name: str, **kwargs: Any):
    """Build the registered space ``name`` with ``width``, ``resolution``, ``num_classes``..."""
    _load_builtin()
    cls = _SPACES.get(name)
    if cls is None:
        raise HwnasError(f"unknown search space {name!r}; known spaces: {', '.join(space_names())}")
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    _check_settings(name, kwargs)  # before the space computes channels from them
    try:
        space = cls(**kwargs)
    except TypeError as exc:
        raise HwnasError(f"bad settings for space {name!r}: {exc}") from None
    _check_settings(name, {"width": space.width, "resolution": space.resolution,
                           "num_classes": space.num_classes})
    space.check_act()
    return space


#: what to do about a file whose space config this hwnas builds differently (``read_space_config``)
REMEDY_REBUILD = "make it again with this hwnas"


def read_space_config(config: Mapping[str, Any], where: str = "space config",
                      remedy: str = REMEDY_REBUILD) -> dict[str, Any]:
    """The space config stored in a file (checkpoint, latency table, predictor, ground truth,
    sparse set, pairs...) as this hwnas reads it: the one gate every loader passes stored configs
    through, before comparing or rebuilding them. A config this hwnas would build into another
    network than the one the file was made for (``mbv2`` of layout 1 at a width where layout 2
    differs) is refused in one line naming ``where`` and saying ``remedy``; one it builds into
    the same network comes back stamped as this hwnas writes it. Unknown names pass unchanged
    (``create_space`` names them where a space is built)."""
    if not isinstance(config, Mapping):
        raise HwnasError(f"{where}: the space config must be an object, got {type(config).__name__}")
    cfg = dict(config)
    if "name" not in cfg:
        raise HwnasError(f"{where}: space config has no 'name'")
    _load_builtin()
    cls = _SPACES.get(cfg["name"]) if isinstance(cfg["name"], str) else None
    return cfg if cls is None else cls.read_config(cfg, where, remedy)


def space_from_config(config: Mapping[str, Any], where: str = "space config",
                      remedy: str = REMEDY_REBUILD):
    """Rebuild a space from :meth:`SearchSpace.config` (as stored in checkpoints and tables),
    through :func:`read_space_config`; an error names ``where`` when given."""
    cfg = read_space_config(config, where, remedy)
    name = cfg.pop("name")
    try:
        return create_space(name, **cfg)
    except HwnasError as exc:
        if where == "space config":
            raise
        raise HwnasError(f"{where}: {exc}") from None


#: entry-point group through which installed packages add spaces.
ENTRY_POINT_GROUP = "hwnas.spaces"


@functools.cache
def _load_builtin() -> None:
    """Import the built-in space modules and the plug-ins (once): importing registers their spaces."""
    from hwnas.spaces import (  # noqa: F401
        fbnet, mbv2, mbv2_mp, mbv2_width, ofa_mbv3, resnet48, resnet_mp, shufflenetv2)

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            importlib.import_module(ep.value.partition(":")[0])
        except Exception as exc:  # a broken plug-in must name itself, not break every command
            raise HwnasError(f"search-space plug-in {ep.name!r} (entry point {ep.value!r} of group "
                             f"{ENTRY_POINT_GROUP!r}) cannot be imported: {exc}") from None
