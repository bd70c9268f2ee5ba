"""``hwnas finetune``, ``hwnas bundle`` and ``hwnas verify`` (thin: parse, call hwnas.deploy, print)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

out = Console()
err = Console(stderr=True)

CheckpointOpt = Annotated[Path, typer.Option("--checkpoint", "-c", help="Supernet checkpoint (or a fine-tuned subnet's finetune.pt).")]
GenesOpt = Annotated[Optional[str], typer.Option("--genes", "-g", help="Comma-separated ints or @file.json (not needed for a fine-tuned subnet).")]


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f} %"


def _ms(v) -> str:
    return "-" if v is None else f"{v:.3f} ms"


def register(app: typer.Typer) -> None:
    @app.command("finetune")
    def finetune_cmd(
        checkpoint: CheckpointOpt,
        genes: Annotated[str, typer.Option("--genes", "-g", help="Comma-separated ints or @file.json.")],
        out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output folder (finetune.pt, finetune.json).")],
        epochs: Annotated[int, typer.Option(help="Training epochs.")] = 10,
        lr: Annotated[Optional[float], typer.Option(help="Peak learning rate (default: the run's; a tenth of it from inherited weights).")] = None,
        batch_size: Annotated[Optional[int], typer.Option(help="Batch size (default: the run's).")] = None,
        from_scratch: Annotated[bool, typer.Option("--from-scratch", help="Random initial weights instead of the inherited ones (SPOS retraining).")] = False,
        kd: Annotated[bool, typer.Option("--kd", help="Distil from the supernet's largest path.")] = False,
        kd_ratio: Annotated[float, typer.Option(help="Weight of the distillation loss.")] = 1.0,
        kd_temperature: Annotated[float, typer.Option(help="Distillation temperature.")] = 1.0,
        steps_per_epoch: Annotated[Optional[int], typer.Option(help="Cap the batches per epoch.")] = None,
        seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
        resume: Annotated[bool, typer.Option(help="Continue OUT/finetune.pt.")] = False,
        data_root: Annotated[Optional[str], typer.Option(help="Where file-based datasets live.")] = None,
    ) -> None:
        """Train the chosen subnet stand-alone (inherited weights or from scratch, optional KD)."""
        from hwnas.deploy.finetune import FinetuneConfig, finetune

        cfg = FinetuneConfig(epochs=epochs, lr=lr, batch_size=batch_size, from_scratch=from_scratch, kd=kd,
                             kd_ratio=kd_ratio, kd_temperature=kd_temperature,
                             steps_per_epoch=steps_per_epoch, seed=seed)

        def progress(epoch: int, total: int, loss: float) -> None:
            err.print(f"epoch {epoch}/{total}: loss {loss:.4f}", highlight=False)

        r = finetune(checkpoint, genes, out_dir, cfg, resume=resume, data_root=data_root, progress=progress)
        out.print(f"fine-tuned {r.steps} steps in {r.seconds:.1f} s: test top-1 {_pct(r.accuracy_before)} -> "
                  f"{_pct(r.accuracy)}; checkpoint {r.checkpoint}", highlight=False)

    @app.command("bundle")
    def bundle_cmd(
        checkpoint: CheckpointOpt,
        out_dir: Annotated[Path, typer.Option("--out", "-o", help="Bundle folder.")],
        genes: GenesOpt = None,
        quant: Annotated[str, typer.Option(help="none (float32) or int8 (full integer).")] = "none",
        io: Annotated[str, typer.Option(help="--quant int8: input/output type uint8, int8 or float.")] = "uint8",
        input_kind: Annotated[str, typer.Option("--input", help="Float model: float (normalized image) or uint8 (raw pixels, normalization folded in).")] = "float",
        output: Annotated[str, typer.Option(help="probabilities (softmax) or logits.")] = "probabilities",
        fmt: Annotated[str, typer.Option("--format", help="tflite, or both (tflite + onnx).")] = "both",
        name: Annotated[Optional[str], typer.Option(help="Model name in the metadata and card.")] = None,
        version: Annotated[str, typer.Option(help="Model version in the metadata and card.")] = "1",
        description: Annotated[Optional[str], typer.Option(help="Model description.")] = None,
        calib_images: Annotated[int, typer.Option(min=1, help="--quant int8: calibration images.")] = 256,
        test_images: Annotated[Optional[int], typer.Option(min=1, help="Evaluate on at most N test images.")] = None,
        tables_dir: Annotated[Optional[str], typer.Option(help="Latency tables (default: your tables folder, then the shipped ones).")] = None,
        force: Annotated[bool, typer.Option("--force", help="Replace a folder that holds other files.")] = False,
        data_root: Annotated[Optional[str], typer.Option(help="Where file-based datasets live.")] = None,
    ) -> None:
        """An app bundle: model.tflite (+ model.onnx), labels.txt, model card, SHA256SUMS."""
        from hwnas.deploy.bundle import BundleOptions, make_bundle
        from hwnas.errors import HwnasError

        formats = {"both": ("tflite", "onnx"), "tflite": ("tflite",)}.get(fmt)
        if formats is None:
            raise HwnasError(f"--format {fmt!r} is not allowed; use tflite or both")
        opts = BundleOptions(quant=quant, io=io, input=input_kind, output=output,
                             formats=formats, name=name, version=version, description=description,
                             calib_images=calib_images, test_images=test_images, tables_dir=tables_dir,
                             force=force)
        card = make_bundle(checkpoint, genes, out_dir, opts, data_root=data_root)
        _print_card(card, out_dir)

    @app.command("verify")
    def verify_cmd(
        device: Annotated[str, typer.Option("--device", "-d", help="Device profile (name or file).")],
        bundle: Annotated[Path, typer.Option("--bundle", "-b", help="Bundle folder (hwnas bundle).")],
        serial: Annotated[Optional[str], typer.Option(help="ADB serial (default: the profile's or the only attached device).")] = None,
        host: Annotated[Optional[str], typer.Option(help="IP[:PORT] of a device on the network (adb-shell).")] = None,
        rounds: Annotated[int, typer.Option(min=1, help="Measurements; the quietest (lowest median) is kept.")] = 5,
        warmup: Annotated[int, typer.Option(min=0)] = 10,
        runs: Annotated[int, typer.Option(min=1)] = 50,
        delegate: Annotated[Optional[str], typer.Option(help="Delegate (default: the profile's).")] = None,
        threads: Annotated[Optional[int], typer.Option(min=1, help="Threads (default: the profile's).")] = None,
        inputs: Annotated[int, typer.Option(min=0, help="Pushed inputs for the output check (0: latency only).")] = 4,
    ) -> None:
        """Measure a bundle's model on the device, check its outputs there, write the model card."""
        from hwnas.devices import resolve_device
        from hwnas.deploy.verify import VerifyOptions, verify_bundle

        profile = resolve_device(device, serial, host)
        row = verify_bundle(bundle, profile, profile.open_transport(),
                            VerifyOptions(rounds=rounds, warmup=warmup, runs=runs, delegate=delegate,
                                          threads=threads, inputs=inputs))
        t = Table(title=f"verified {bundle} on {row['human_name']}")
        for col in ("delegate", "threads", "measured (median)", "predicted", "error", "outputs"):
            t.add_column(col)
        oc = row["output_check"]
        outputs = (f"match on {oc['checked']} inputs (max |diff| {oc['max_abs_diff']:.2g})"
                   if oc["status"] == "match" else oc.get("note", oc["status"]))
        t.add_row(row["delegate"], str(row["threads"]), _ms(row["median_ms"]), _ms(row["predicted_ms"]),
                  "-" if row["error_pct"] is None else f"{row['error_pct']:+.1f} %", outputs)
        out.print(t)


def _print_card(card: dict, folder: Path) -> None:
    acc = card["accuracy"]
    t = Table(title=f"bundle {folder}: {card['name']} ({card['model']['precision']})")
    t.add_column("item")
    t.add_column("value", overflow="fold")
    for name, f in card["files"].items():
        t.add_row(name, f"{f['bytes'] / 1024:.1f} KiB")
    if acc.get("split"):
        t.add_row("test top-1 (torch / model.tflite)", f"{_pct(acc['torch_top1'])} / {_pct(acc['tflite_top1'])}")
        t.add_row("top-1 agreement", _pct(acc["top1_agreement"]))
    for r in card["latency"]["predicted"]:
        t.add_row(f"predicted latency, {r['device']}", _ms(r.get("predicted_ms")) if r.get("predicted_ms")
                  is not None else r.get("note", "-"))
    out.print(t)
