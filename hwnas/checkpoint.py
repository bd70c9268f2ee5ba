"""Versioned checkpoint files for supernets and subnets.

A checkpoint is a dict saved with ``torch.save`` and read back with ``torch.load(weights_only=True)``:
``format``, ``format_version``, ``kind`` (``supernet`` | ``subnet``), ``space`` (the space config that
rebuilds it), ``genes`` (subnets), ``model`` (state dict), version stamps and whatever extra state
the writer adds (optimizer, sampler, RNG...). Writes are atomic.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import torch

from hwnas import __version__
from hwnas.errors import HwnasError
from hwnas.io import atomic_write
from hwnas.spaces.base import SearchSpace
from hwnas.spaces.registry import space_from_config

FORMAT = "hwnas.checkpoint"
FORMAT_VERSION = 1
KINDS = ("supernet", "subnet")


def version_stamp() -> dict[str, str]:
    """Versions stamped into every checkpoint, table and result file."""
    return {"hwnas": __version__, "torch": str(torch.__version__), "python": platform.python_version()}


def save_checkpoint(path: str | Path, *, kind: str, space: SearchSpace, model_state: dict[str, Any],
                    genes: tuple[int, ...] | None = None, extra: dict[str, Any] | None = None) -> Path:
    """Atomically write a checkpoint (see module docstring for the layout)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    payload: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "space": space.config(),
        "genes": None if genes is None else [int(g) for g in genes],
        "model": model_state,
        "versions": version_stamp(),
    }
    if extra:
        clash = set(extra) & set(payload)
        if clash:
            raise ValueError(f"extra keys clash with checkpoint keys: {sorted(clash)}")
        payload.update(extra)
    return atomic_write(path, lambda p: torch.save(payload, p))


def load_checkpoint(path: str | Path, *, expect_space: SearchSpace | str | None = None,
                    map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and validate a checkpoint; every problem is a one-line :class:`HwnasError`."""
    path = Path(path)
    if not path.is_file():
        raise HwnasError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for truncated / foreign files
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()] or [type(exc).__name__]
        # torch's weights-only refusal puts the reason on a "WeightsUnpickler error" line
        reason = next((ln for ln in lines if "Unpickler error" in ln), lines[0])
        raise HwnasError(f"cannot read checkpoint {path} (truncated, corrupt or not a torch file): "
                         f"{reason[:200]}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise HwnasError(f"{path} is not an hwnas checkpoint (no format={FORMAT!r} entry)")
    if ckpt.get("format_version", 0) > FORMAT_VERSION:
        raise HwnasError(
            f"checkpoint {path} has format version {ckpt.get('format_version')}; "
            f"this hwnas ({__version__}) reads up to {FORMAT_VERSION}")
    for key in ("kind", "space", "model"):
        if key not in ckpt:
            raise HwnasError(f"checkpoint {path} has no {key!r} entry")
    if expect_space is not None:
        name = expect_space if isinstance(expect_space, str) else expect_space.name
        got = ckpt["space"].get("name")
        if got != name:
            raise HwnasError(f"checkpoint {path} is for space {got!r}, not {name!r}")
        if not isinstance(expect_space, str):
            want = expect_space.config()
            diff = {k: (ckpt["space"].get(k), v) for k, v in want.items() if ckpt["space"].get(k) != v}
            diff.pop("resolution", None)  # weights are resolution-independent
            if diff:
                k, (have, need) = next(iter(diff.items()))
                raise HwnasError(f"checkpoint {path} was saved with {k}={have}, requested {k}={need}")
    return ckpt


def space_of(ckpt: dict[str, Any]) -> SearchSpace:
    return space_from_config(ckpt["space"])
