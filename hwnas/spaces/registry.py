"""Registry of search spaces by name: one factory, ``create_space(name, **kw)`` (timm-style)."""

from __future__ import annotations

from collections.abc import Mapping
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


def create_space(name: str, **kwargs: Any):
    """Build the registered space ``name`` with ``width``, ``resolution``, ``num_classes``..."""
    _load_builtin()
    cls = _SPACES.get(name)
    if cls is None:
        raise HwnasError(f"unknown search space {name!r}; known spaces: {', '.join(space_names())}")
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    try:
        space = cls(**kwargs)
    except TypeError as exc:
        raise HwnasError(f"bad settings for space {name!r}: {exc}") from None
    if space.width <= 0:
        raise HwnasError(f"width of space {name!r} must be > 0, got {space.width}")
    if space.resolution < 8:
        raise HwnasError(f"resolution of space {name!r} must be >= 8, got {space.resolution}")
    if space.num_classes < 1:
        raise HwnasError(f"num_classes of space {name!r} must be >= 1, got {space.num_classes}")
    return space


def space_from_config(config: Mapping[str, Any]):
    """Rebuild a space from :meth:`SearchSpace.config` (as stored in checkpoints and tables)."""
    cfg = dict(config)
    name = cfg.pop("name", None)
    if name is None:
        raise HwnasError("space config has no 'name'")
    return create_space(name, **cfg)


def _load_builtin() -> None:
    # importing the modules registers their spaces
    from hwnas.spaces import mbv2, mbv2_mp, resnet_mp, shufflenetv2  # noqa: F401
