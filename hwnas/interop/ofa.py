"""Once-for-All / ProxylessNAS ``net.config`` files <-> hwnas genes (format ``ofa``).

A ``net.config`` is the JSON that OFA's and ProxylessNAS's ``Network.config`` writes and
``Network.build_from_config`` reads (``ofa/utils/layers.py``, ``ofa/imagenet_classification/
networks/proxyless_nets.py`` and ``mobilenet_v3.py``): ``first_conv``, a list of ``blocks`` (each a
``MobileInvertedResidualBlock`` / ``ResidualBlock`` of an ``MBInvertedConvLayer`` / ``MBConvLayer``
or a ``ZeroLayer``, and a shortcut ``IdentityLayer`` or null), then the head. Two networks map to
hwnas spaces:

* ``ProxylessNASNets`` -> ``mbv2``: a fixed MBConv k3 e1, then one block per searchable layer
  (a ``ZeroLayer`` with an identity shortcut is the skip option); ``feature_mix_layer`` is the 1x1
  head conv, ``classifier`` the FC;
* ``MobileNetV3`` (OFA's MobileNetV3-Large layout) -> ``ofa-mbv3``: the first block, then five
  stages of 2-4 blocks (a stage begins at each block without a shortcut, as OFA's
  ``grouped_block_index``), ``final_expand_layer``, ``feature_mix_layer``, ``classifier``.

Import reads the choices (kernel, expand ratio, skip, depth) into genes, then checks everything
else against the space: the file must equal, field by field, what :func:`write` makes of those
genes (channels, strides, hidden widths, SE, activations, shortcuts, head). The width multiplier is
the first candidate whose layout fits (``--width`` fixes it); the resolution comes from
``--resolution``, else a ``run.config`` next to the file (OFA's ``{"image_size": ...}``), else the
space's default. ``bn`` and the classifier's ``dropout_rate`` are training settings, not
architecture: they are kept (``hyper``) so that an export of the imported genes gives the same file.

Export writes the schema of the published files: ProxylessNAS's ``proxyless_mobile.config`` for
``mbv2`` and OFA's specialized ``net.config`` files (``MobileInvertedResidualBlock`` /
``mobile_inverted_conv`` / ``MBInvertedConvLayer``, the names both code bases read) for ``ofa-mbv3``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwnas.errors import HwnasError
from hwnas.io import read_json
from hwnas.spaces.base import SearchSpace

#: network name in a net.config -> the hwnas space it imports into
NETWORK_SPACES = {"ProxylessNASNets": "mbv2", "MobileNetV3": "ofa-mbv3"}
SPACE_NETWORKS = {v: k for k, v in NETWORK_SPACES.items()}
MB_NAMES = ("MBInvertedConvLayer", "MBConvLayer")
BLOCK_NAMES = ("MobileInvertedResidualBlock", "ResidualBlock")
#: hwnas activation -> OFA ``act_func``
ACT_NAMES = {"relu6": "relu6", "relu": "relu", "hswish": "h_swish", "none": None}
#: the training settings each network's published files carry (bn, classifier dropout)
DEFAULT_HYPER = {
    "ProxylessNASNets": {"bn": {"momentum": 0.1, "eps": 0.001}, "dropout_rate": 0},
    "MobileNetV3": {"bn": {"momentum": 0.1, "eps": 1e-05}, "dropout_rate": 0.1},
}
#: widths tried when none is given, in this order (OFA's and ProxylessNAS's released widths
#: first), then every 0.05 and every 0.01 up to 4: the first whose layout fits is taken
WIDTH_CANDIDATES = tuple(dict.fromkeys(
    [1.0, 1.2, 1.3, 1.4, 0.75, 0.5, 0.35, 0.25]
    + [round(k * 0.05, 2) for k in range(1, 81)] + [round(k * 0.01, 2) for k in range(1, 401)]))


@dataclass(frozen=True)
class ImportedArch:
    """What an imported file is in hwnas terms."""

    space: SearchSpace
    genes: tuple[int, ...]
    network: str
    hyper: dict[str, Any] = field(default_factory=dict)
    #: where the resolution came from: "--resolution", "run.config" or "default"
    resolution_from: str = "default"


# ---- export -------------------------------------------------------------------------------------
def _conv_layer(cin: int, cout: int, kernel: int, stride: int, act: str | None, use_bn: bool = True) -> dict:
    return {"name": "ConvLayer", "kernel_size": kernel, "stride": stride, "dilation": 1, "groups": 1,
            "bias": False, "has_shuffle": False, "in_channels": cin, "out_channels": cout,
            "use_bn": use_bn, "act_func": act, "dropout_rate": 0, "ops_order": "weight_bn_act"}


def _identity(c: int, listed: bool) -> dict:
    ch: Any = [c] if listed else c
    return {"name": "IdentityLayer", "in_channels": ch, "out_channels": ch, "use_bn": False,
            "act_func": None, "dropout_rate": 0, "ops_order": "weight_bn_act"}


def _linear(cin: int, cout: int, dropout: float) -> dict:
    return {"name": "LinearLayer", "in_features": cin, "out_features": cout, "bias": True, "use_bn": False,
            "act_func": None, "dropout_rate": dropout, "ops_order": "weight_bn_act"}


def _expand(e: float) -> int | float:
    return int(e) if float(e).is_integer() else e


def write(space: SearchSpace, genes, hyper: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``net.config`` of ``genes`` of ``space`` (``mbv2`` or ``ofa-mbv3``), as a JSON object."""
    network = SPACE_NETWORKS.get(space.name)
    if network is None:
        raise HwnasError(f"format ofa writes spaces {', '.join(SPACE_NETWORKS)}, not {space.name!r}")
    g = space.validate(genes)
    h = {**DEFAULT_HYPER[network], **(hyper or {})}
    ops = space.layers(g)
    if network == "ProxylessNASNets":
        return _write_proxyless(space, g, ops, h)
    return _write_mbv3(space, g, ops, h)


def _write_proxyless(space, genes, ops, h) -> dict[str, Any]:
    stem, first = ops[0], ops[1]
    head, _gap, fc = ops[-3], ops[-2], ops[-1]
    blocks = [_proxyless_block(first, identity=False)]
    by_block = {op.block: op for op in ops if op.block >= 0}
    c = first.out_shape[0]
    for b in range(len(space.groups)):
        op = by_block.get(b)
        if op is None:  # the skip option: a ZeroLayer beside an identity shortcut
            blocks.append({"name": "MobileInvertedResidualBlock",
                           "mobile_inverted_conv": {"name": "ZeroLayer", "stride": 1},
                           "shortcut": _identity(c, listed=False)})
            continue
        blocks.append(_proxyless_block(op, identity=op.stride == 1 and op.in_shape[0] == op.out_shape[0]))
        c = op.out_shape[0]
    return {
        "name": "ProxylessNASNets", "bn": h["bn"],
        "first_conv": _conv_layer(stem.in_shape[0], stem.out_shape[0], stem.kernel, stem.stride, ACT_NAMES[stem.act]),
        "feature_mix_layer": _conv_layer(head.in_shape[0], head.out_shape[0], 1, 1, ACT_NAMES[head.act]),
        "classifier": _linear(fc.in_shape[0], fc.out_shape[0], h["dropout_rate"]),
        "blocks": blocks,
    }


def _proxyless_block(op, identity: bool) -> dict:
    conv = {"name": "MBInvertedConvLayer", "in_channels": op.in_shape[0], "out_channels": op.out_shape[0],
            "kernel_size": op.kernel, "stride": op.stride, "expand_ratio": _expand(op.expand)}
    return {"name": "MobileInvertedResidualBlock", "mobile_inverted_conv": conv,
            "shortcut": _identity(op.in_shape[0], listed=False) if identity else None}


def _write_mbv3(space, genes, ops, h) -> dict[str, Any]:
    stem = ops[0]
    head, _gap, mix, fc = ops[-4], ops[-3], ops[-2], ops[-1]
    blocks = [_mbv3_block(op) for op in ops[1:-4]]
    return {
        "name": "MobileNetV3", "bn": h["bn"],
        "first_conv": _conv_layer(stem.in_shape[0], stem.out_shape[0], stem.kernel, stem.stride, ACT_NAMES[stem.act]),
        "blocks": blocks,
        "final_expand_layer": _conv_layer(head.in_shape[0], head.out_shape[0], 1, 1, ACT_NAMES[head.act]),
        "feature_mix_layer": _conv_layer(mix.in_shape[0], mix.out_shape[0], 1, 1, ACT_NAMES[mix.act], use_bn=False),
        "classifier": _linear(fc.in_shape[0], fc.out_shape[0], h["dropout_rate"]),
    }


def _mbv3_block(op) -> dict:
    cin, cout = op.in_shape[0], op.out_shape[0]
    conv = {"name": "MBInvertedConvLayer", "in_channels": cin, "out_channels": cout, "kernel_size": op.kernel,
            "stride": op.stride, "expand_ratio": _expand(op.expand),
            "mid_channels": None if op.expand == 1 else op.mid, "act_func": ACT_NAMES[op.act], "use_se": op.se}
    identity = op.stride == 1 and cin == cout
    return {"name": "MobileInvertedResidualBlock", "mobile_inverted_conv": conv,
            "shortcut": _identity(cin, listed=True) if identity else None}


# ---- import -------------------------------------------------------------------------------------
def _where(path: Path) -> str:
    return f"net.config {path}"


def _blocks(doc: dict, path: Path) -> list[tuple[dict | None, dict | None]]:
    """(conv, shortcut) of every block, the container checked."""
    blocks = doc.get("blocks")
    if not isinstance(blocks, list) or not blocks:
        raise HwnasError(f"{_where(path)}: 'blocks' must be a non-empty list of blocks")
    out = []
    for i, blk in enumerate(blocks):
        if not isinstance(blk, dict):
            raise HwnasError(f"{_where(path)}: block {i} is not an object")
        name = blk.get("name", BLOCK_NAMES[0])
        if name not in BLOCK_NAMES:
            raise HwnasError(f"{_where(path)}: block {i} is a {name!r}; known blocks: {', '.join(BLOCK_NAMES)}")
        conv = blk.get("mobile_inverted_conv", blk.get("conv"))
        if conv is not None and not isinstance(conv, dict):
            raise HwnasError(f"{_where(path)}: block {i}: its conv is not an object")
        cname = None if conv is None else conv.get("name")
        if conv is not None and cname not in (*MB_NAMES, "ZeroLayer"):
            raise HwnasError(f"{_where(path)}: block {i}: unknown layer type {cname!r}; known: "
                             f"{', '.join(MB_NAMES)}, ZeroLayer")
        short = blk.get("shortcut")
        if short is not None and not (isinstance(short, dict) and short.get("name") in ("IdentityLayer", "ZeroLayer")):
            shown = short.get("name") if isinstance(short, dict) else short
            raise HwnasError(f"{_where(path)}: block {i}: shortcut {shown!r} is not an IdentityLayer or null")
        if isinstance(short, dict) and short.get("name") == "ZeroLayer":
            short = None
        out.append((conv, short))
    return out


def _int_field(layer: dict, key: str, where: str) -> int:
    v = layer.get(key)
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise HwnasError(f"{where}: {key} is {v!r}, expected an integer")
    return v


def _genes_mbv2(space: SearchSpace, blocks, path: Path) -> tuple[int, ...]:
    n = space.num_genes
    if len(blocks) != n + 1:
        raise HwnasError(f"{_where(path)} has {len(blocks)} blocks; space {space.name!r} has {n + 1} "
                         f"(the fixed MBConv k3 e1, then {n} searchable layers)")
    genes = []
    for i, (conv, short) in enumerate(blocks[1:], 1):
        where = f"{_where(path)}: block {i} (layer {i - 1})"
        if conv is None or conv.get("name") == "ZeroLayer":
            if short is None:
                raise HwnasError(f"{where}: a ZeroLayer without an identity shortcut outputs nothing; "
                                 f"space {space.name!r} skips a layer as ZeroLayer + IdentityLayer")
            label = "skip"
        else:
            k, e = _int_field(conv, "kernel_size", where), conv.get("expand_ratio")
            if isinstance(e, float) and e.is_integer():
                e = int(e)
            label = f"k{k}e{e}" + ("se" if conv.get("use_se") else "")
        labels = space.gene_labels(i - 1)
        if label not in labels:
            raise HwnasError(f"{where} is {label}, not an option of that layer of space {space.name!r}; "
                             f"allowed: {', '.join(labels)}")
        genes.append(labels.index(label))
    return tuple(genes)


def _genes_mbv3(space: SearchSpace, blocks, path: Path) -> tuple[int, ...]:
    from hwnas.spaces.ofa_mbv3 import DEPTHS, EXPANDS, KERNELS, STAGES, OFAConfig

    stages: list[list[tuple[int, dict]]] = []
    for i, (conv, short) in enumerate(blocks[1:], 1):
        if conv is None or conv.get("name") == "ZeroLayer":
            raise HwnasError(f"{_where(path)}: block {i} is a ZeroLayer (skip); space {space.name!r} has "
                             f"no skip option (its depth is the number of blocks of a stage)")
        if short is None or not stages:
            stages.append([])
        stages[-1].append((i, conv))
    if len(stages) != len(STAGES):
        starts = ", ".join(str(s[0][0]) for s in stages)
        raise HwnasError(f"{_where(path)} has {len(stages)} stages after the first block (a stage begins at "
                         f"each block without a shortcut: blocks {starts}); space {space.name!r} has "
                         f"{len(STAGES)}")
    depths, kernels, expands = [], [], []
    for s, stage in enumerate(stages):
        if len(stage) not in DEPTHS:
            raise HwnasError(f"{_where(path)}: stage {s} (blocks {stage[0][0]}..{stage[-1][0]}) has "
                             f"{len(stage)} layers; space {space.name!r} allows depths "
                             f"{', '.join(map(str, DEPTHS))}")
        ks, es = [], []
        for p, (i, conv) in enumerate(stage):
            where = f"{_where(path)}: block {i} (stage {s} layer {p})"
            k = _int_field(conv, "kernel_size", where)
            e = conv.get("expand_ratio")
            if isinstance(e, float) and e.is_integer():
                e = int(e)
            if k not in KERNELS:
                raise HwnasError(f"{where}: kernel_size {k} is not an option of space {space.name!r}; "
                                 f"allowed: {', '.join(map(str, KERNELS))}")
            if e not in EXPANDS:
                raise HwnasError(f"{where}: expand_ratio {e!r} is not an option of space {space.name!r}; "
                                 f"allowed: {', '.join(map(str, EXPANDS))}")
            ks.append(k)
            es.append(e)
        depths.append(len(stage))
        kernels.append(tuple(ks))
        expands.append(tuple(es))
    return space.encode(OFAConfig(tuple(depths), tuple(kernels), tuple(expands)))


def _norm_layer(layer: Any) -> Any:
    """A layer config with OFA's defaults filled in and names unified, for comparison."""
    if not isinstance(layer, dict):
        return layer
    d = {k: (v[0] if isinstance(v, list) and len(v) == 1 else v) for k, v in layer.items()}
    name = d.get("name")
    if name in MB_NAMES:
        d["name"] = MB_NAMES[0]
        d.setdefault("act_func", "relu6")
        d.setdefault("use_se", False)
        d.setdefault("groups", None)
        e = d.get("expand_ratio")
        if d.get("mid_channels") is None and isinstance(d.get("in_channels"), int) and isinstance(e, (int, float)):
            d["mid_channels"] = round(d["in_channels"] * e)  # OFA's MBConvLayer: feature_dim
    elif name == "ConvLayer":
        for k, v in (("kernel_size", 3), ("stride", 1), ("dilation", 1), ("groups", 1), ("bias", False),
                     ("has_shuffle", False), ("use_se", False), ("use_bn", True), ("act_func", "relu"),
                     ("ops_order", "weight_bn_act")):
            d.setdefault(k, v)
    elif name == "LinearLayer":
        for k, v in (("bias", True), ("use_bn", False), ("act_func", None), ("ops_order", "weight_bn_act")):
            d.setdefault(k, v)
    elif name == "IdentityLayer":
        d.setdefault("use_bn", False)
        d.setdefault("act_func", None)
    d.pop("dropout_rate", None)  # a training setting
    return d


def _layer_pairs(doc: dict, expected: dict) -> list[tuple[str, Any, Any]]:
    """(where, file layer, expected layer) in network order."""
    pairs = [("first_conv", doc.get("first_conv"), expected["first_conv"])]
    fb, eb = doc.get("blocks") or [], expected["blocks"]
    for i, e in enumerate(eb):
        f = fb[i] if i < len(fb) and isinstance(fb[i], dict) else {}
        pairs.append((f"block {i}", f.get("mobile_inverted_conv", f.get("conv")), e["mobile_inverted_conv"]))
        short = f.get("shortcut")
        if isinstance(short, dict) and short.get("name") == "ZeroLayer":
            short = None
        pairs.append((f"block {i} shortcut", short, e["shortcut"]))
    for key in ("final_expand_layer", "feature_mix_layer", "classifier"):
        if key in expected:
            pairs.append((key, doc.get(key), expected[key]))
    return pairs


def _mismatch(doc: dict, expected: dict) -> tuple[int, str, str] | None:
    """The first field where ``doc`` differs from ``expected``: (layer index, where, what), else None."""
    for n, (where, got, want) in enumerate(_layer_pairs(doc, expected)):
        g, w = _norm_layer(got), _norm_layer(want)
        if (g is None) != (w is None):
            return n, where, (f"is {'null' if g is None else repr(g.get('name', 'a layer'))}, expected "
                              f"{'null' if w is None else repr(w.get('name'))}")
        if w is None:
            continue
        if not isinstance(g, dict):
            return n, where, f"is {g!r}, expected an object"
        for key, value in w.items():
            if key == "name" and g.get(key) != value:
                return n, where, f"is a {g.get(key)!r}, expected {value!r}"
            if g.get(key) != value and not _same_number(g.get(key), value):
                return n, where, f"{key} is {g.get(key)!r}, expected {value!r}"
    return None


def _same_number(a: Any, b: Any) -> bool:
    return (isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool)
            and not isinstance(b, bool) and math.isclose(float(a), float(b)))


def _run_config_resolution(path: Path) -> int | None:
    run = path.parent / "run.config"
    if not run.is_file():
        return None
    doc = read_json(run, "run.config")
    size = doc.get("image_size")
    if isinstance(size, list) and size:
        size = max(size)  # OFA's elastic list: the largest resolution
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise HwnasError(f"run.config {run}: image_size is {doc.get('image_size')!r}, expected an integer >= 8")
    return size


def read(path: str | Path, *, space: str | None = None, width: float | None = None,
         resolution: int | None = None, num_classes: int | None = None) -> ImportedArch:
    """Import ``path`` (a net.config) as genes of the matching space (see the module docstring)."""
    from hwnas.spaces import create_space

    path = Path(path)
    doc = read_json(path, "net.config")
    network = doc.get("name")
    if network not in NETWORK_SPACES:
        raise HwnasError(f"{_where(path)}: network {network!r} is not one format ofa imports; known: "
                         f"{', '.join(f'{k} (space {v})' for k, v in NETWORK_SPACES.items())}")
    name = NETWORK_SPACES[network]
    if space is not None and space != name:
        raise HwnasError(f"{_where(path)} is a {network}, which imports into space {name!r}, not {space!r}")
    for key in ("first_conv", "feature_mix_layer", "classifier") + (("final_expand_layer",)
                                                                    if network == "MobileNetV3" else ()):
        if not isinstance(doc.get(key), dict):
            raise HwnasError(f"{_where(path)}: {key!r} must be a layer object")
    blocks = _blocks(doc, path)
    res_from = "--resolution"
    if resolution is None:
        resolution = _run_config_resolution(path)
        res_from = "default" if resolution is None else "run.config"
    if num_classes is None:
        nc = doc["classifier"].get("out_features")
        num_classes = nc if isinstance(nc, int) and not isinstance(nc, bool) and nc >= 1 else None
    hyper = {"bn": doc.get("bn", DEFAULT_HYPER[network]["bn"]),
             "dropout_rate": doc["classifier"].get("dropout_rate", DEFAULT_HYPER[network]["dropout_rate"])}
    extract = _genes_mbv2 if network == "ProxylessNASNets" else _genes_mbv3
    best = None  # the width that fits furthest into the network names the useful difference
    first_error = None
    for w in ([width] if width is not None else WIDTH_CANDIDATES):
        sp = create_space(name, width=w, resolution=resolution, num_classes=num_classes)
        try:  # which layers may be skipped can depend on the width (equal channels at a small one)
            genes = extract(sp, blocks, path)
        except HwnasError as exc:
            first_error = first_error or exc
            continue
        miss = _mismatch(doc, write(sp, genes, hyper))
        if miss is None:
            return ImportedArch(sp, sp.validate(genes), network, hyper, res_from)
        if best is None or miss[0] > best[1]:
            best = (w, *miss)
    if best is None:
        raise first_error
    w, _, where, what = best
    widths = f"width {w:g}" if width is not None else f"every width (closest: {w:g})"
    raise HwnasError(f"{_where(path)}: {where} {what} by space {name!r} at {widths}")


class OFAArchFormat:
    """Registered as architecture format ``ofa``."""

    name = "ofa"
    read = staticmethod(read)
    write = staticmethod(write)


def _register() -> None:
    from hwnas.interop import register_arch_format

    register_arch_format("ofa", OFAArchFormat())


_register()
