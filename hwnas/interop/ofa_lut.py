"""Once-for-All / ProxylessNAS latency lookup tables (YAML) -> an hwnas latency table (format ``ofa``).

The files are what OFA's ``ofa/nas/efficiency_predictor/latency_lookup_table.py`` (and
ProxylessNAS's ``search/utils/latency_estimator.py``) read: a YAML mapping of layer key ->
``{count, mean, var | std}`` in ms. Their keys and summation rules:

* ProxylessNAS (``ProxylessNASLatencyTable``; space ``mbv2``):
  ``Conv-input:224x224x3-output:112x112x32`` (stem) + ``expanded_conv-input:HxWxC-output:HxWxC-
  expand:E-kernel:K-stride:S-idskip:I`` per block that runs (``E`` the expand ratio, ``I`` 1 when
  the block has its identity shortcut; a skipped layer adds nothing) + ``Conv_1-...`` (the 1x1
  feature-mix conv) + ``Logits-input:HxWxC-output:N`` ("all operations after Conv_1": pooling and FC);
* OFA MobileNetV3 (``MBv3LatencyTable``; space ``ofa-mbv3``): ``Conv`` + ``expanded_conv-...-
  expand:MID-kernel:K-stride:S-idskip:I-se:0|1-hs:0|1`` per block (``MID`` the hidden channels,
  ``hs`` h-swish) + ``Conv_1`` (final expand) + ``AvgPool2D-input:HxWxC-output:1x1xC`` +
  ``Conv_2-input:1x1xC-output:1x1xC`` (feature mix) + ``Logits-input:1x1xC-output:N``.

Each rule sums the ``mean`` of the keys of the network's layers. The import gives every hwnas op
of the space the ``mean`` of its OFA key (``median_ms`` = ``mean_ms`` = that mean; ``std_ms`` from
``std`` or ``sqrt(var)``; min / max are not in the files and are set to the mean), so the table
sum of an hwnas subnet, uncalibrated, is exactly the OFA rule's sum for the same network. The one
many-to-one case: ProxylessNAS's ``Logits`` covers hwnas's ``gap`` and ``linear`` ops; the
``linear`` entry carries it and ``gap`` gets 0 (``folded_into`` names the key).

Which space, width, resolution and classes: the dialect (``se`` / ``hs`` fields) gives the space,
the stem key the resolution, ``Logits`` the classes, and the width is the first candidate whose
keys the file holds (``--width``, ``--resolution``, ... fix them). Every key the space needs must be
in the file (else one error naming the first missing key). Keys of the file that the space does
not produce (ProxylessNAS's ``mobile_trim.yaml`` has k5 / k7 variants of the fixed first block) are
left out with a warning that counts them, or refused with ``strict``; a key of an unknown layer
type or shape syntax is always an error.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwnas.errors import HwnasError
from hwnas.io import read_text
from hwnas.spaces.base import OpSpec, SearchSpace

LAYER_TYPES = ("Conv", "Conv_1", "Conv_2", "AvgPool2D", "Logits", "expanded_conv")
_KEY = re.compile(r"(?P<type>[A-Za-z0-9_]+)-input:(?P<inp>\d+(?:x\d+)*)-output:(?P<out>\d+(?:x\d+)*)"
                  r"(?P<rest>(?:-[a-z_]+:\d+)*)")
#: dialect -> (space, the expanded_conv fields in key order, the rule's name)
DIALECTS = {
    "proxyless": ("mbv2", ("expand", "kernel", "stride", "idskip"), "ProxylessNASLatencyTable"),
    "mbv3": ("ofa-mbv3", ("expand", "kernel", "stride", "idskip", "se", "hs"), "MBv3LatencyTable"),
}
SPACE_DIALECT = {v[0]: k for k, v in DIALECTS.items()}


def _shape(s: tuple[int, int, int]) -> str:
    c, h, w = s
    return f"{h}x{w}x{c}"


def _mb_key(op: OpSpec, dialect: str) -> str:
    idskip = int(op.stride == 1 and op.in_shape[0] == op.out_shape[0])
    base = f"expanded_conv-input:{_shape(op.in_shape)}-output:{_shape(op.out_shape)}"
    if dialect == "proxyless":
        return f"{base}-expand:{int(op.expand)}-kernel:{op.kernel}-stride:{op.stride}-idskip:{idskip}"
    return (f"{base}-expand:{op.mid}-kernel:{op.kernel}-stride:{op.stride}-idskip:{idskip}"
            f"-se:{int(op.se)}-hs:{int(op.act == 'hswish')}")


def op_keys(space: SearchSpace, resolution: int | None = None) -> dict[str, tuple[str, bool]]:
    """hwnas op key -> (OFA key, carries the value) for every op ``space`` executes at ``resolution``
    (False only for the ``gap`` folded into ProxylessNAS's ``Logits``)."""
    from hwnas.latency.keys import op_key

    dialect = SPACE_DIALECT.get(space.name)
    if dialect is None:
        raise HwnasError(f"format ofa holds latency tables of spaces {', '.join(SPACE_DIALECT)}, not {space.name!r}")
    fixed = space.fixed_ops(resolution)
    gap = next(op for op in fixed if op.op == "gap")
    out: dict[str, tuple[str, bool]] = {}
    linears = [op for op in fixed if op.op == "linear"]
    for op in fixed:
        if op.op == "conv" and op.stride == 2:
            key = f"Conv-input:{_shape(op.in_shape)}-output:{_shape(op.out_shape)}"
        elif op.op == "conv":
            key = f"Conv_1-input:{_shape(op.in_shape)}-output:{_shape(op.out_shape)}"
        elif op.op in ("mbconv", "mbconv3"):
            key = _mb_key(op, dialect)
        elif op.op == "gap" and dialect == "proxyless":
            out[op_key(op)] = (f"Logits-input:{_shape(op.in_shape)}-output:{linears[-1].out_shape[0]}", False)
            continue
        elif op.op == "gap":
            key = f"AvgPool2D-input:{_shape(op.in_shape)}-output:{_shape(op.out_shape)}"
        elif op.op == "linear" and op is linears[-1]:
            shape = _shape(gap.in_shape) if dialect == "proxyless" else _shape(op.in_shape)
            key = f"Logits-input:{shape}-output:{op.out_shape[0]}"
        elif op.op == "linear":
            key = f"Conv_2-input:{_shape(op.in_shape)}-output:{_shape(op.out_shape)}"
        else:  # pragma: no cover (the two spaces emit nothing else)
            raise HwnasError(f"op {op.op} of space {space.name!r} has no OFA latency key")
        out[op_key(op)] = (key, True)
    for opt in space.block_options(resolution):
        for op in opt.ops:
            out.setdefault(op_key(op), (_mb_key(op, dialect), True))
    return out


@dataclass
class LutFile:
    """One parsed YAML: its entries and what its keys say about the network."""

    path: Path
    entries: dict[str, dict[str, float]]
    dialect: str
    resolution: int
    num_classes: int
    stem: int
    sha256: str
    parsed: dict[str, tuple[str, tuple[int, ...], tuple[int, ...], dict[str, int]]] = field(default_factory=dict)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def parse_file(path: str | Path) -> LutFile:
    """Read and check one OFA / ProxylessNAS lookup-table YAML."""
    import yaml

    path = Path(path)
    text = read_text(path, "latency lookup table")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise HwnasError(f"latency lookup table {path} is not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(doc, dict) or not doc:
        raise HwnasError(f"latency lookup table {path} must be a YAML mapping of layer key -> "
                         f"{{count, mean, var | std}}")
    entries: dict[str, dict[str, float]] = {}
    parsed = {}
    for key, value in doc.items():
        m = _KEY.fullmatch(str(key))
        if m is None or m["type"] not in LAYER_TYPES:
            what = "an unknown layer type" if m is not None else "not an OFA layer key"
            raise HwnasError(f"latency lookup table {path}: key {key!r} is {what} (expected "
                             f"TYPE-input:HxWxC-output:HxWxC[-field:N...] with TYPE one of "
                             f"{', '.join(LAYER_TYPES)})")
        if not isinstance(value, dict) or not _number(value.get("mean")) or value["mean"] < 0:
            shown = value.get("mean") if isinstance(value, dict) else value
            raise HwnasError(f"latency lookup table {path}: key {key!r} has mean {shown!r}; expected a "
                             f"finite number >= 0 (ms)")
        for f in ("count", "var", "std"):
            if f in value and (not _number(value[f]) or value[f] < 0):
                raise HwnasError(f"latency lookup table {path}: key {key!r} field {f} is {value[f]!r}, "
                                 f"expected a finite number >= 0")
        fields = dict((p.split(":")[0], int(p.split(":")[1])) for p in m["rest"].split("-")[1:])
        parsed[key] = (m["type"], tuple(int(x) for x in m["inp"].split("x")),
                       tuple(int(x) for x in m["out"].split("x")), fields)
        entries[key] = {f: float(value[f]) for f in ("mean", "count", "var", "std") if f in value}
    mb = [p for p in parsed.values() if p[0] == "expanded_conv"]
    dialect = "mbv3" if any("se" in p[3] or "hs" in p[3] for p in mb) else "proxyless"
    want = DIALECTS[dialect][1]
    for key, p in parsed.items():
        if p[0] == "expanded_conv" and tuple(p[3]) != want:
            raise HwnasError(f"latency lookup table {path}: key {key!r} has fields {', '.join(p[3]) or 'none'}; "
                             f"the {DIALECTS[dialect][2]} keys of this file have {', '.join(want)}")
    stems = [(k, p) for k, p in parsed.items() if p[0] == "Conv"]
    logits = [(k, p) for k, p in parsed.items() if p[0] == "Logits"]
    if len(stems) != 1 or len(stems[0][1][1]) != 3:
        raise HwnasError(f"latency lookup table {path} has {len(stems)} stem keys (Conv-input:HxWx3-...); "
                         f"one table holds one resolution: expected exactly one")
    if len(logits) != 1:
        raise HwnasError(f"latency lookup table {path} has {len(logits)} Logits keys; expected exactly one")
    stem_in, stem_out = stems[0][1][1], stems[0][1][2]
    return LutFile(path, entries, dialect, resolution=stem_in[0], num_classes=logits[0][1][2][-1],
                   stem=stem_out[-1], sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(), parsed=parsed)


@dataclass
class ImportedTable:
    """What ``read`` makes of the files: the table (not saved yet) and, per file, its unused keys."""

    table: Any
    space: SearchSpace
    unused: dict[str, list[str]]


def _fit(lut: LutFile, name: str, width: float | None, num_classes: int | None):
    """(space, key map) of the first width whose keys the file holds, else an HwnasError."""
    from hwnas.interop.ofa import WIDTH_CANDIDATES
    from hwnas.spaces import create_space

    classes = lut.num_classes if num_classes is None else num_classes
    best = None
    for w in ([width] if width is not None else WIDTH_CANDIDATES):
        sp = create_space(name, width=w, resolution=lut.resolution, num_classes=classes)
        if width is None and sp.fixed_ops()[0].out_shape[0] != lut.stem:
            continue  # the stem alone rules this width out (cheap: no block enumeration)
        keys = op_keys(sp)
        missing = [(h, o) for h, (o, _) in keys.items() if o not in lut.entries]
        if not missing:
            return sp, keys
        if best is None or len(missing) < len(best[1]):
            best = (sp, missing)
    if best is None:
        raise HwnasError(f"latency lookup table {lut.path}: stem key output {lut.stem} channels fits space "
                         f"{name!r} at no width up to 4")
    sp, missing = best
    hk, ok = missing[0]
    raise HwnasError(f"latency lookup table {lut.path} lacks {len(missing)} of the {len(op_keys(sp))} keys of "
                     f"space {name!r} at width {sp.width:g}, resolution {sp.resolution}, {sp.num_classes} "
                     f"classes (first: {ok!r}, op {hk}){_near_hint(lut, ok)}")


def _near_hint(lut: LutFile, key: str) -> str:
    """When the file has ``key``'s layer with other output channels: say so (a table of another
    layout of the space, e.g. ProxylessNAS's 24-channel search layout against mbv2's 32)."""
    m = _KEY.fullmatch(key)
    fields = dict((p.split(":")[0], int(p.split(":")[1])) for p in m["rest"].split("-")[1:])
    inp = tuple(int(x) for x in m["inp"].split("x"))
    out = tuple(int(x) for x in m["out"].split("x"))
    for k, (t, i, o, f) in lut.parsed.items():
        if t == m["type"] and i == inp and o[:-1] == out[:-1] and o[-1] != out[-1] and \
                {a: b for a, b in f.items() if a != "expand"} == {a: b for a, b in fields.items() if a != "expand"}:
            return (f"; the file has that layer with {o[-1]} output channels, not {out[-1]} ({k!r}): a table of "
                    f"another layout or width of the space")
    return ""


def read(paths, *, device: str, space: str | None = None, width: float | None = None,
         num_classes: int | None = None, runtime: str = "tflite", soc: str = "unknown",
         delegate: str = "unknown", threads: int | None = None, strict: bool = False,
         path: Path | None = None) -> ImportedTable:
    """Import one or more lookup tables (one resolution each) of one device into one hwnas table."""
    from hwnas.latency.table import LatencyTable

    files = [parse_file(p) for p in paths]
    if not files:
        raise HwnasError("no latency lookup table given")
    dialects = {f.dialect for f in files}
    if len(dialects) > 1:
        raise HwnasError(f"latency lookup tables {', '.join(str(f.path) for f in files)} mix ProxylessNAS and "
                         f"MobileNetV3 keys; import each kind into its own table")
    name = DIALECTS[files[0].dialect][0]
    if space is not None and space != name:
        raise HwnasError(f"latency lookup table {files[0].path} has {DIALECTS[files[0].dialect][2]} keys, which "
                         f"belong to space {name!r}, not {space!r}")
    table = None
    first = None
    unused: dict[str, list[str]] = {}
    sources = []
    for lut in files:
        sp, keys = _fit(lut, name, width if first is None else first.width,
                        num_classes if first is None else first.num_classes)
        if first is None:
            first = sp
            table = LatencyTable.new(device=device, soc=soc, runtime=runtime, runtime_version="unknown",
                                     delegate=delegate, threads=threads, warmup=None, runs=None, space=sp,
                                     path=path, imported_from=[],
                                     statistics="median_ms = mean_ms = min_ms = max_ms = the file's mean")
        elif any(src["resolution"] == sp.resolution for src in sources):
            raise HwnasError(f"latency lookup tables {sources[0]['file']} and {lut.path} both hold resolution "
                             f"{sp.resolution}; give one file per resolution")
        table.note_space(sp)
        used = {o for o, _ in keys.values()}
        extra = sorted(k for k in lut.entries if k not in used)
        if extra and strict:
            raise HwnasError(f"latency lookup table {lut.path}: key {extra[0]!r} is not produced by space "
                             f"{name!r} at width {sp.width:g}, resolution {sp.resolution} ({len(extra)} such "
                             f"keys; leave out --strict to import the others)")
        unused[str(lut.path)] = extra
        for hk, (ok, carries) in keys.items():
            src = lut.entries[ok]
            mean = src["mean"] if carries else 0.0
            std = src.get("std", math.sqrt(src["var"]) if "var" in src else 0.0) if carries else 0.0
            entry = {"count": int(src.get("count", 1)), "mean_ms": mean, "median_ms": mean, "std_ms": std,
                     "min_ms": mean, "max_ms": mean, "ofa_key": ok}
            if not carries:
                entry["folded_into"] = next(h for h, (o, c) in keys.items() if o == ok and c)
            table.add(hk, entry, save=False)
        sources.append({"file": str(lut.path.resolve()), "sha256": lut.sha256, "format": "ofa",
                        "rule": DIALECTS[lut.dialect][2], "resolution": sp.resolution, "keys": len(lut.entries),
                        "used_keys": len(lut.entries) - len(extra), "unused_keys": len(extra)})
    table.metadata["imported_from"] = sources
    return ImportedTable(table, first, unused)


class OFALutFormat:
    """Registered as latency-table format ``ofa``."""

    name = "ofa"
    read = staticmethod(read)


def _register() -> None:
    from hwnas.interop import register_lut_format

    register_lut_format("ofa", OFALutFormat())


_register()
