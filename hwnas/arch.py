"""Reading architectures given by users: ``"3,0,6,..."`` or ``@file.json``."""

from __future__ import annotations

import json
from pathlib import Path

from hwnas.errors import HwnasError
from hwnas.spaces.base import SearchSpace


def parse_genes(text: str, space: SearchSpace | None = None) -> tuple[int, ...]:
    """Parse comma-separated ints or ``@file.json`` (a list, or an object with a ``genes`` list).

    With ``space`` the genes are validated (count and ranges) too.
    """
    text = text.strip()
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise HwnasError(f"genes file {path} does not exist") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise HwnasError(f"cannot read genes file {path}: {exc}") from None
        if isinstance(data, dict):
            if "genes" not in data:
                raise HwnasError(f"genes file {path} is an object without a 'genes' key")
            data = data["genes"]
        if not isinstance(data, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in data):
            raise HwnasError(f"genes file {path} must hold a list of integers")
        genes = tuple(data)
    else:
        parts = [p.strip() for p in text.replace(" ", ",").split(",") if p.strip()]
        if not parts:
            raise HwnasError("no genes given: pass comma-separated integers like 3,0,6 or @file.json")
        try:
            genes = tuple(int(p) for p in parts)
        except ValueError:
            bad = next(p for p in parts if not p.lstrip("-").isdigit())
            raise HwnasError(f"gene {bad!r} is not an integer; pass comma-separated integers or @file.json") from None
    return space.validate(genes) if space is not None else genes
