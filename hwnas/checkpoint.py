"""Versioned checkpoint files for supernets and subnets.

A checkpoint is a dict saved with ``torch.save`` and read back with ``torch.load(weights_only=True)``:
``format``, ``format_version``, ``kind`` (``supernet`` | ``subnet``), ``space`` (the space config that
rebuilds it), ``genes`` (subnets), ``model`` (state dict), version stamps and whatever extra state
the writer adds (optimizer, sampler, RNG...). Writes are atomic.
"""

from __future__ import annotations

import platform
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from hwnas import __version__
from hwnas.errors import HwnasError, os_error
from hwnas.io import atomic_write
from hwnas.spaces.base import SearchSpace
from hwnas.spaces.registry import read_space_config, space_from_config

FORMAT = "hwnas.checkpoint"
FORMAT_VERSION = 1
KINDS = ("supernet", "subnet")
#: what to do with a checkpoint of a space this hwnas builds differently (an old ``mbv2`` layout)
REMEDY = "its weights do not fit; retrain it with this hwnas (hwnas train)"


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
    if path.is_dir():
        raise HwnasError(f"checkpoint {path} is a folder, not a file (give its last.pt or a .pt file)")
    if not path.is_file():
        raise HwnasError(f"checkpoint {path} does not exist")
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol warning: the error says it all
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except OSError as exc:
        raise os_error(exc, "read checkpoint", path) from None
    except Exception as exc:  # torch raises many types for truncated / foreign files
        raise HwnasError(_load_failure(path, exc)) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise HwnasError(f"{path} is not an hwnas checkpoint (no format={FORMAT!r} entry)")
    _check_fields(ckpt, path)
    ckpt["space"] = read_space_config(ckpt["space"], f"checkpoint {path}", REMEDY)
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


def _load_failure(path: Path, exc: Exception) -> str:
    """One line for a checkpoint torch cannot read: a pickle that asks for code (a GLOBAL such as
    ``posix.system``, refused by the weights-only unpickler and never executed) names the refused
    global and says the file is not trusted; anything else is truncated, corrupt or foreign."""
    text = str(exc)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()] or [type(exc).__name__]
    refused = _GLOBAL.search(text)
    if refused is not None:
        return (f"refusing checkpoint {path}: its pickle asks for {refused.group(1)}, code that no "
                f"weights file needs; the file is not trusted and nothing in it was run (an hwnas "
                f"checkpoint holds tensors and plain values only)")
    reason = lines[0]
    if text.startswith("Weights only load failed"):
        # the reason is after "WeightsUnpickler error:" (the banner around it is torch's advice)
        reason = next((ln.split("WeightsUnpickler error:", 1)[1].strip() or nxt
                       for ln, nxt in zip(lines, lines[1:] + [""]) if "WeightsUnpickler error:" in ln),
                      "unsupported content")
    return f"cannot read checkpoint {path} (truncated, corrupt or not a torch file): {reason}"


_GLOBAL = re.compile(r"GLOBAL ([A-Za-z_][\w.]*)")


def _check_fields(ckpt: dict[str, Any], path: Path) -> None:
    """The types of the entries every reader relies on (a crafted or foreign file is refused here,
    not with a traceback later)."""
    version = ckpt.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise HwnasError(f"checkpoint {path}: format_version must be an integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise HwnasError(
            f"checkpoint {path} has format version {version}; "
            f"this hwnas ({__version__}) reads up to {FORMAT_VERSION}")
    for key in ("kind", "space", "model"):
        if key not in ckpt:
            raise HwnasError(f"checkpoint {path} has no {key!r} entry")
    if ckpt["kind"] not in KINDS:
        raise HwnasError(f"checkpoint {path}: kind must be one of {', '.join(KINDS)}, got {ckpt['kind']!r}")
    if not isinstance(ckpt["space"], dict) or not isinstance(ckpt["space"].get("name"), str):
        raise HwnasError(f"checkpoint {path}: space must be a space config (an object with a 'name'), "
                         f"got {type(ckpt['space']).__name__}")
    model = ckpt["model"]
    if not isinstance(model, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in model.items()):
        raise HwnasError(f"checkpoint {path}: model must be a state dict (names -> tensors), "
                         f"got {type(model).__name__}")
    genes = ckpt.get("genes")
    if genes is not None and not (isinstance(genes, (list, tuple)) and all(
            isinstance(g, int) and not isinstance(g, bool) for g in genes)):
        raise HwnasError(f"checkpoint {path}: genes must be a list of integers, got {genes!r:.80}")
    if ckpt["kind"] == "subnet" and genes is None:
        raise HwnasError(f"checkpoint {path}: a subnet checkpoint needs its genes")


def space_of(ckpt: dict[str, Any]) -> SearchSpace:
    return space_from_config(ckpt["space"])
