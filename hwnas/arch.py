"""Reading architectures given by users: ``"3,0,6,..."`` or ``@file`` with one of hwnas's own outputs.

``@FILE`` reads a JSON file that holds genes in any of the forms hwnas writes:

* a list of ints, or an object with a ``genes`` list (an export's ``.export.json``, a
  ``model.tflite.json`` sidecar);
* ``hwnas arch sample --json``: ``{"space": ..., "archs": [{"genes": [...]}, ...]}``;
* a search's ``pareto.json``: ``{"space": ..., "pareto": [{"genes": [...]}, ...]}``;
* a list of gene lists.

``@FILE#K`` picks entry ``K`` of a file that holds several architectures; a file with one needs no
``#K``. When the file names its space and a space is given, the two must agree.

A space with a ``genes_from_ops`` method also takes its op names on the command line: ``fbnet``
reads HW-NAS-Bench's ``k3_e1,skip,...`` (22 names, or their indices mixed in).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hwnas.errors import HwnasError
from hwnas.io import read_json
from hwnas.spaces.base import SearchSpace

#: keys under which hwnas's outputs list several architectures.
ENTRY_LISTS = ("archs", "pareto")
#: one gene on the command line: ASCII digits, optionally negative (refused later as out of range)
_GENE = re.compile(r"-?[0-9]+", re.ASCII)


def _is_genes(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)


def _entries(data: Any, path: Path) -> list[Any]:
    """The architectures a genes file holds, each a genes list or an object with ``genes``."""
    if _is_genes(data):
        return [data]
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        for key in ENTRY_LISTS:
            if key in data:
                if not isinstance(data[key], list):
                    raise HwnasError(f"genes file {path}: {key!r} must be a list of architectures")
                return data[key]
        if "genes" in data:
            return [data]
        raise HwnasError(f"genes file {path} holds no genes: expected a list of integers or an object "
                         f"with 'genes', 'archs' (arch sample --json) or 'pareto' (pareto.json)")
    raise HwnasError(f"genes file {path} must hold a JSON list or object, not {type(data).__name__}")


def read_genes_file(spec: str) -> tuple[tuple[int, ...], dict[str, Any] | None]:
    """Genes from ``FILE`` or ``FILE#K`` and the space config the file names (``None`` if it names none)."""
    name, sep, index_text = spec.rpartition("#") if "#" in spec else (spec, "", "")
    path = Path(name)
    data = read_json(path, "genes file", expect=(dict, list))
    entries = _entries(data, path)
    if not entries:
        raise HwnasError(f"genes file {path} holds no architectures")
    if sep:
        try:
            k = int(index_text)
        except ValueError:
            raise HwnasError(f"#{index_text} after genes file {path} is not an entry number; "
                             f"use #0..#{len(entries) - 1}") from None
        if not 0 <= k < len(entries):
            raise HwnasError(f"genes file {path} holds {len(entries)} architectures; #{k} is out of range "
                             f"(use #0..#{len(entries) - 1})")
    elif len(entries) > 1:
        raise HwnasError(f"genes file {path} holds {len(entries)} architectures; pick one with "
                         f"@{path}#K (K = 0..{len(entries) - 1})")
    else:
        k = 0
    entry = entries[k]
    genes = entry.get("genes") if isinstance(entry, dict) else entry
    if not _is_genes(genes):
        raise HwnasError(f"entry {k} of genes file {path} must be a list of integers (or an object "
                         f"with a 'genes' list)")
    space = data.get("space") if isinstance(data, dict) else None
    return tuple(genes), space if isinstance(space, dict) else None


def parse_genes(text: str, space: SearchSpace | None = None) -> tuple[int, ...]:
    """Parse comma-separated ints or ``@FILE[#K]`` (see the module docstring).

    With ``space`` the genes are validated (count and ranges) too, and a file made for another
    space is refused.
    """
    text = text.strip()
    if text.startswith("@"):
        genes, file_space = read_genes_file(text[1:])
        if file_space is not None:
            from hwnas.spaces.registry import read_space_config

            file_space = read_space_config(file_space, f"genes file {text[1:]}",
                                           "its genes name other networks now; search again")
        if space is not None and file_space is not None and file_space.get("name") not in (None, space.name):
            raise HwnasError(f"genes file {text[1:]} is for space {file_space.get('name')!r}, "
                             f"not {space.name!r}")
    else:
        parts = [p.strip() for p in text.replace(" ", ",").split(",") if p.strip()]
        if not parts:
            raise HwnasError("no genes given: pass comma-separated integers like 3,0,6 or @file.json")
        bad = next((p for p in parts if not _GENE.fullmatch(p)), None)
        if bad is not None and space is not None and hasattr(space, "genes_from_ops"):
            return space.genes_from_ops(parts)  # op names (fbnet: HW-NAS-Bench's PRIMITIVES)
        if bad is not None:  # int() alone would take '٣', '1_0' or '+1'
            raise HwnasError(f"gene {bad!r} is not an integer (digits 0-9, optionally after '-'); "
                             f"pass comma-separated integers or @file.json")
        genes = tuple(int(p) for p in parts)
    return space.validate(genes) if space is not None else genes
