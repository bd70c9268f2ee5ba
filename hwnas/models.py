"""Rebuilding models from checkpoints: the supernet, or a materialized subnet of it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hwnas.arch import parse_genes
from hwnas.checkpoint import load_checkpoint, space_of
from hwnas.errors import HwnasError
from hwnas.supernet import Subnet, Supernet, build_supernet, materialize


def supernet_from_checkpoint(path: str | Path, space_name: str | None = None) -> tuple[Supernet, dict]:
    """Load a supernet checkpoint; returns the supernet (eval mode) and the raw checkpoint dict."""
    ckpt = load_checkpoint(path, expect_space=space_name)
    if ckpt["kind"] != "supernet":
        raise HwnasError(f"checkpoint {path} holds a {ckpt['kind']}, not a supernet")
    net = _supernet_for(ckpt, space_of(ckpt), path)
    return net.eval(), ckpt


def sharing_of(ckpt: dict) -> str | dict:
    """The weight sharing a supernet checkpoint was trained with: its provider config (e.g. K-shot
    NAS's K copies) when stored, else its name (``independent`` before it was stored)."""
    if isinstance(ckpt.get("sharing_config"), dict):
        return ckpt["sharing_config"]
    return str(ckpt.get("sharing", "independent"))


def _supernet_for(ckpt: dict, space, path) -> Supernet:
    try:
        net = build_supernet(space, sharing_of(ckpt))
    except HwnasError as exc:
        raise HwnasError(f"checkpoint {path}: {exc}") from None
    _load_state(net, ckpt["model"], path)
    return net


def _load_state(model, state, path) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise HwnasError(f"checkpoint {path} does not match its space: {first}") from None


def subnet_from_checkpoint(path: str | Path, *, genes_text: str | None, space_name: str | None = None,
                           resolution: int | None = None) -> Subnet:
    """The subnet ``genes_text`` of a supernet checkpoint, or the subnet stored in a subnet checkpoint."""
    ckpt = load_checkpoint(path, expect_space=space_name)
    space = space_of(ckpt)
    if resolution is not None:
        space = dataclasses.replace(space, resolution=resolution)
    genes = parse_genes(genes_text, space) if genes_text else None
    if ckpt["kind"] == "supernet":
        if genes is None:
            raise HwnasError(f"checkpoint {path} is a supernet: pass --genes to pick a subnet")
        net = _supernet_for(ckpt, space, path)
        return materialize(net.eval(), genes).eval()
    stored = tuple(ckpt["genes"])
    if genes is not None and genes != stored:
        raise HwnasError(f"checkpoint {path} holds subnet {','.join(map(str, stored))}, not the genes given")
    sub = Subnet(space, stored)
    _load_state(sub, ckpt["model"], path)
    return sub.eval()
