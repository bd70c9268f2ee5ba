"""``hwnas bundle``: everything an app needs in one folder, with a model card and checksums.

A bundle holds

* ``model.tflite``: the app-ready classifier (:mod:`hwnas.deploy.app`), float or full-integer int8,
  with TFLite Model Metadata and the labels inside;
* ``model.onnx``: the same float network, the same facts in ``metadata_props``;
* ``labels.txt``: the class names, one per line, in output order;
* ``model_card.json`` / ``model_card.md``: space, genes, held-out accuracy (torch and the file
  itself on the host runtime), MACs, params, BitOps, predicted latency on every device with a
  latency table for the space, measured latency once ``hwnas verify`` ran, date and versions;
* ``SHA256SUMS``: the SHA-256 of every other file (``sha256sum -c`` format).

A folder that already holds other files is refused unless ``force``; the bundle is written in a
sibling temporary folder and moved into place, so a failed bundle leaves nothing half-written.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass
from importlib import metadata as _md
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hwnas.deploy.metadata import INPUT_KINDS, OUTPUT_KINDS, ModelFacts
from hwnas.deploy.tflite_file import IO_TYPES
from hwnas.errors import HwnasError
from hwnas.io import atomic_write_json, atomic_write_text
from hwnas.units import format_amount

CARD_JSON = "model_card.json"
CARD_MD = "model_card.md"
CHECKSUMS = "SHA256SUMS"
MODEL = "model.tflite"
ONNX = "model.onnx"
LABELS = "labels.txt"
CARD_FORMAT = "hwnas.model-card"
CARD_FORMAT_VERSION = 1
FORMATS = ("tflite", "onnx")
#: packages whose versions describe how a bundle was made and what runs it.
RUNTIME_PACKAGES = ("torch", "litert-torch", "ai-edge-litert", "ai-edge-quantizer", "onnx", "onnxruntime")


@dataclass(frozen=True)
class BundleOptions:
    """How to build a bundle. ``io`` (int8) and ``input`` (float) set the model's input type."""

    quant: str = "none"  # none | int8
    io: str = "uint8"  # --quant int8: uint8 | int8 | float inputs and outputs
    input: str = "float"  # float model: float (normalized image) | uint8 (raw pixels, folded)
    output: str = "probabilities"  # probabilities | logits
    formats: tuple[str, ...] = FORMATS
    name: str | None = None
    version: str = "1"
    description: str | None = None
    calib_images: int = 256
    test_images: int | None = None  # None: the whole held-out test split
    tables_dir: str | None = None  # None: your tables folder, then the shipped latency_tables/
    force: bool = False

    def __post_init__(self) -> None:
        if self.quant not in ("none", "int8"):
            raise HwnasError(f"--quant {self.quant!r} is not allowed; use none or int8")
        if self.io not in IO_TYPES:
            raise HwnasError(f"--io {self.io!r} is not allowed; use {', '.join(IO_TYPES)}")
        if self.input not in ("float", "uint8"):
            raise HwnasError(f"--input {self.input!r} is not allowed; use float or uint8 "
                             f"(--quant int8 takes --io uint8|int8|float)")
        if self.output not in OUTPUT_KINDS:
            raise HwnasError(f"--output {self.output!r} is not allowed; use {', '.join(OUTPUT_KINDS)}")
        bad = [f for f in self.formats if f not in FORMATS]
        if bad or "tflite" not in self.formats:
            raise HwnasError(f"bundle formats {list(self.formats)} are not allowed; tflite, optionally onnx")
        if self.quant == "none" and self.io != "uint8":
            raise HwnasError("--io applies to --quant int8; a float model takes --input float|uint8")
        if self.quant == "int8" and self.input != "float":
            raise HwnasError("--input applies to float models; with --quant int8 use --io uint8|int8|float")
        if self.calib_images < 1:
            raise HwnasError(f"--calib-images must be >= 1, got {self.calib_images}")

    @property
    def input_kind(self) -> str:
        """What the TFLite input tensor takes (:data:`hwnas.deploy.metadata.INPUT_KINDS`)."""
        kind = self.io if self.quant == "int8" else self.input
        assert kind in INPUT_KINDS
        return kind


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def versions() -> dict[str, str]:
    from hwnas import __version__

    out = {"hwnas": __version__, "python": platform.python_version()}
    for pkg in RUNTIME_PACKAGES:
        try:
            out[pkg] = _md.version(pkg)
        except _md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def check_target(out: Path, force: bool) -> None:
    """Refuse a folder holding anything unless ``force``; a file in the way is always refused."""
    if out.exists() and not out.is_dir():
        raise HwnasError(f"--out {out} is a file, not a folder")
    from hwnas.io import check_writable_dir

    check_writable_dir(out)  # read-only, or a file on the way: before the model is built
    if out.is_dir() and any(out.iterdir()) and not force:
        names = sorted(p.name for p in out.iterdir())
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        raise HwnasError(f"--out {out} already holds {len(names)} entries ({shown}); choose an empty "
                         f"folder or pass --force to replace them")


def facts_for(src, options: BundleOptions) -> ModelFacts:
    from hwnas import __version__

    space = src.space
    data = src.train_config.data if src.train_config is not None else "unknown data"
    genes = ",".join(map(str, src.genes))
    name = options.name or f"hwnas-{space.name}-{hashlib.sha1(genes.encode()).hexdigest()[:8]}"
    desc = options.description or (
        f"Image classifier for {data} ({space.num_classes} classes): {space.name} subnet "
        f"(width {space.width:g}, {space.resolution} px, genes {genes}) found and exported with hwnas "
        f"{__version__}; {'full-integer int8' if options.quant == 'int8' else 'float32'}.")
    if not src.mean:
        raise HwnasError(f"checkpoint {src.checkpoint}: the input normalization (mean / std) is unknown "
                         f"(no training settings or stored normalization)")
    return ModelFacts(name=name, version=options.version, description=desc, labels=src.class_names,
                      mean=src.mean, std=src.std, height=space.resolution, width=space.resolution,
                      color_space="RGB" if space.in_channels == 3 else "GRAYSCALE",
                      input=options.input_kind, output=options.output)


def predicted_latency(space, genes: tuple[int, ...], runtime: str, tables_dir: str | None,
                      precision: str | None = None) -> list[dict[str, Any]]:
    """Predicted latency of ``genes`` on every device with a ``runtime`` table at ``precision``
    (default fp32) for the space."""
    from hwnas.latency.predict import LatencyPredictor
    from hwnas.latency.table import LatencyTable, find_table, table_roots

    devices = sorted({p.name for root in table_roots(tables_dir) for p in root.glob("*") if p.is_dir()})
    rows = []
    for device in devices:  # your table of a device before the shipped one
        path = find_table(device, space.name, runtime, tables_dir, precision)
        if not path.is_file():
            continue
        try:
            table = LatencyTable.load(path)
            pred = LatencyPredictor(table, space)
            ms = float(pred(np.asarray([genes]))[0])
        except HwnasError as exc:
            rows.append({"device": device, "runtime": runtime, "table": str(path),
                         "predicted_ms": None, "note": str(exc)})
            continue
        meta = table.metadata
        rows.append({"device": device, "runtime": runtime, "table": str(path),
                     "predicted_ms": ms, "calibrated": pred.is_calibrated,
                     "delegate": meta.get("delegate"), "threads": meta.get("threads"),
                     "soc": meta.get("soc")})
    return rows


def _evaluate(src, facts: ModelFacts, tflite_path: Path, limit: int | None) -> dict[str, Any]:
    """Top-1 of the torch subnet and of the file (host LiteRT) on the held-out test split."""
    from hwnas.data import take_batches
    from hwnas.deploy.app import run_app_tflite

    if src.data is None:
        return {"split": None, "note": "no dataset known for this checkpoint: accuracy not measured"}
    bs = 256
    batches = take_batches(src.data.test, bs, max_batches=None if limit is None else max(1, -(-limit // bs)))
    xs = torch.cat([b[0] for b in batches])
    ys = torch.cat([b[1] for b in batches])
    if limit is not None:
        xs, ys = xs[:limit], ys[:limit]
    with torch.no_grad():
        ref = src.model.eval()(xs).argmax(1).numpy()
    got = run_app_tflite(tflite_path, xs.numpy(), facts).argmax(1)
    y = ys.numpy()
    return {"split": "test", "images": int(len(y)), "torch_top1": float((ref == y).mean()),
            "tflite_top1": float((got == y).mean()), "top1_agreement": float((got == ref).mean())}


def make_bundle(checkpoint: str | Path, genes_text: str | None, out: str | Path,
                options: BundleOptions = BundleOptions(), *, data_root: str | None = None) -> dict[str, Any]:
    """Build the bundle of subnet ``genes_text`` of ``checkpoint`` in ``out``; returns the model card."""
    from hwnas.cost import arch_costs
    from hwnas.deploy.app import calibration_images, write_onnx, write_tflite
    from hwnas.deploy.source import load_source

    out = Path(out)
    check_target(out, options.force)
    src = load_source(checkpoint, genes_text, data_root=data_root)
    facts = facts_for(src, options)
    calib = None
    if options.quant == "int8":
        from hwnas.quant.export import deployable

        # weights baked at their searched bits, PACT clips frozen (as `hwnas export --quant` does)
        src.model = deployable(src.model)
        if src.data is None:
            raise HwnasError(f"--quant int8 needs calibration images, but checkpoint {checkpoint} names no dataset")
        from hwnas.data import take_batches

        calib = calibration_images(take_batches(src.data.train_clean, 64, seed=0,
                                                max_batches=-(-options.calib_images // 64)),
                                   facts, options.calib_images)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        tflite = write_tflite(src.model, tmp / MODEL, facts, channels=src.space.in_channels,
                              quant=options.quant, calib=calib)
        files = {"tflite": tflite}
        if "onnx" in options.formats:
            onnx_facts = dataclasses.replace(facts, input="float" if facts.input == "float" else "uint8")
            files["onnx"] = write_onnx(src.model, tmp / ONNX, onnx_facts, channels=src.space.in_channels,
                                       extra={"space": src.space.config(), "genes": list(src.genes)})
        atomic_write_text(tmp / LABELS, facts.labels_text())
        costs = arch_costs(src.space, src.genes)
        card = {
            "format": CARD_FORMAT, "format_version": CARD_FORMAT_VERSION,
            "name": facts.name, "version": facts.version, "description": facts.description,
            "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
            "space": src.space.config(), "genes": list(src.genes), "blocks": src.space.describe(src.genes),
            "source": {"checkpoint": str(checkpoint), "kind": src.kind,
                       "bn_recalibrated_batches": src.recalibrated_batches,
                       **({"class_names_note": src.extra["class_names_note"]}
                          if "class_names_note" in src.extra else {}),
                       **({"finetune": {k: v for k, v in src.extra["finetune"].items()
                                        if k in ("config", "epoch", "steps", "lr", "accuracy_before")}}
                          if "finetune" in src.extra else {})},
            "data": {"name": src.train_config.data if src.train_config else None,
                     "classes": len(facts.labels)},
            "model": {
                "file": MODEL, "precision": "int8" if options.quant == "int8" else "float32",
                "signature": "classify", "input": {
                    "name": "image", "shape": [1, facts.height, facts.width, src.space.in_channels],
                    "dtype": {"float": "float32", "uint8": "uint8", "int8": "int8"}[facts.input],
                    "layout": "NHWC", "color_space": facts.color_space,
                    "normalization_folded": facts.folded, "mean": list(facts.mean), "std": list(facts.std),
                    "pixel_mean": facts.pixel_normalization()[0], "pixel_std": facts.pixel_normalization()[1]},
                "output": {"name": facts.output, "shape": [1, len(facts.labels)],
                           "dtype": "float32" if options.quant == "none" or options.io == "float" else options.io},
            },
            "files": {},
            "costs": {"macs": costs.macs, "params": costs.params, "bitops": costs.bitops, "flops": costs.flops},
            "accuracy": _evaluate(src, facts, tflite, options.test_images),
            "latency": {"predicted": predicted_latency(src.space, src.genes, "tflite", options.tables_dir,
                                                       "int8" if options.quant == "int8" else "fp32"),
                        "measured": []},
            "versions": versions(),
        }
        write_card(tmp, card)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return card


def write_card(folder: Path, card: dict[str, Any]) -> None:
    """Write the card (JSON + Markdown) and ``SHA256SUMS`` of every other file in ``folder``."""
    folder = Path(folder)
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name not in (CHECKSUMS, CARD_JSON, CARD_MD)
                   and not p.name.startswith("."))
    card["files"] = {n: {"bytes": (folder / n).stat().st_size, "sha256": sha256(folder / n)} for n in names}
    atomic_write_json(folder / CARD_JSON, card)
    atomic_write_text(folder / CARD_MD, card_markdown(card))
    sums = {n: sha256(folder / n) for n in [*names, CARD_JSON, CARD_MD]}
    atomic_write_text(folder / CHECKSUMS, "".join(f"{h}  {n}\n" for n, h in sums.items()))


def read_bundle(folder: str | Path) -> dict[str, Any]:
    """The model card of a bundle, after checking every file against ``SHA256SUMS``."""
    folder = Path(folder)
    sums_path = folder / CHECKSUMS
    if not (folder / CARD_JSON).is_file() or not sums_path.is_file():
        raise HwnasError(f"--bundle {folder} is not an hwnas bundle (no {CARD_JSON} / {CHECKSUMS}); "
                         f"make one with `hwnas bundle`")
    for line in sums_path.read_text(encoding="utf-8").splitlines():
        digest, _, name = line.partition("  ")
        path = folder / name
        if not path.is_file():
            raise HwnasError(f"bundle {folder}: {name} listed in {CHECKSUMS} is missing")
        if sha256(path) != digest:
            raise HwnasError(f"bundle {folder}: {name} does not match its SHA-256 in {CHECKSUMS} "
                             f"(changed after bundling)")
    card = json.loads((folder / CARD_JSON).read_text(encoding="utf-8"))
    if card.get("format") != CARD_FORMAT:
        raise HwnasError(f"{folder / CARD_JSON} is not an hwnas model card")
    return card


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f} %"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f} ms"


def card_markdown(card: dict[str, Any]) -> str:
    """The human-readable model card."""
    m, acc, c = card["model"], card["accuracy"], card["costs"]
    sp = card["space"]
    lines = [f"# {card['name']} (version {card['version']})", "", card["description"], "",
             f"Created {card['created']} with hwnas {card['versions']['hwnas']}.", "",
             "## Model", "",
             "| | |", "| --- | --- |",
             f"| space | {sp['name']} (width {sp['width']:g}, {sp['resolution']} px, {sp['num_classes']} classes) |",
             f"| genes | `{','.join(map(str, card['genes']))}` |",
             f"| precision | {m['precision']} |",
             f"| input `{m['input']['name']}` | {m['input']['dtype']} {m['input']['shape']} {m['input']['layout']} "
             f"{m['input']['color_space']} |",
             f"| preprocessing | " + ("raw pixels (normalization folded into the model)" if m["input"]["normalization_folded"]
                                    else f"(pixel - {[round(v, 3) for v in m['input']['pixel_mean']]}) / "
                                         f"{[round(v, 3) for v in m['input']['pixel_std']]}") + " |",
             f"| output `{m['output']['name']}` | {m['output']['dtype']} {m['output']['shape']} |",
             f"| MACs | {format_amount(c['macs'])} |", f"| params | {format_amount(c['params'])} |",
             f"| BitOps | {format_amount(c['bitops'])} |", "",
             "## Accuracy", ""]
    if acc.get("split"):
        lines += ["| split | images | torch top-1 | model.tflite top-1 (host) | top-1 agreement |",
                  "| --- | --- | --- | --- | --- |",
                  f"| {acc['split']} | {acc['images']} | {_pct(acc['torch_top1'])} | {_pct(acc['tflite_top1'])} "
                  f"| {_pct(acc['top1_agreement'])} |"]
    else:
        lines.append(acc.get("note", "not measured"))
    lines += ["", "## Latency", "", "| device | runtime | delegate | threads | predicted | measured | verified |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    measured = {r["device"]: r for r in card["latency"]["measured"]}
    devices = [r["device"] for r in card["latency"]["predicted"]] + [d for d in measured
                                                                      if d not in {r["device"] for r in card["latency"]["predicted"]}]
    pred = {r["device"]: r for r in card["latency"]["predicted"]}
    for d in devices:
        p, mm = pred.get(d, {}), measured.get(d, {})
        lines.append(f"| {d} | {p.get('runtime') or mm.get('runtime', '-')} | {mm.get('delegate') or p.get('delegate') or '-'} "
                     f"| {mm.get('threads') or p.get('threads') or '-'} | {_ms(p.get('predicted_ms'))} "
                     f"| {_ms(mm.get('median_ms'))} | {mm.get('outputs', '-') if mm else 'no'} |")
    if not devices:
        lines.append("| - | - | - | - | no latency table for this space | - | - |")
    lines += ["", "## Files", "", "| file | bytes | SHA-256 |", "| --- | --- | --- |"]
    lines += [f"| {n} | {f['bytes']} | `{f['sha256']}` |" for n, f in card["files"].items()]
    lines += ["", "## Versions", "", ", ".join(f"{k} {v}" for k, v in card["versions"].items()), ""]
    return "\n".join(lines)


__all__ = ["BundleOptions", "CARD_JSON", "CARD_MD", "CHECKSUMS", "card_markdown", "make_bundle",
           "read_bundle", "write_card"]
