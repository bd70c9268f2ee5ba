"""``hwnas`` command line (typer + rich). Thin: parse, call the library, print.

Every :class:`~hwnas.errors.HwnasError` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from hwnas.errors import HwnasError
from hwnas.ui import note

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Hardware-aware NAS: train supernets, profile devices, search, export.")
arch_app = typer.Typer(no_args_is_help=True, help="Sample and inspect architectures (genes).")
app.add_typer(arch_app, name="arch")

out = Console()
err = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        from hwnas import __version__

        typer.echo(f"hwnas {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print hwnas's version and exit.")] = False,
) -> None:
    """Hardware-aware NAS: train supernets, profile devices, search, export."""

SpaceOpt = Annotated[str, typer.Option("--space", "-s", help="Search space name (see `hwnas spaces`).")]
WidthOpt = Annotated[Optional[float], typer.Option(help="Width multiplier (default: the space's, 1.0).")]
ResOpt = Annotated[Optional[int], typer.Option(help="Input resolution (default: the space's, 224).")]
ClassesOpt = Annotated[Optional[int], typer.Option("--num-classes", help="Number of classes (default 1000).")]
GenesOpt = Annotated[str, typer.Option("--genes", "-g", help="Comma-separated ints, or @FILE[#K]: a JSON list, `arch sample --json`, pareto.json or an .export.json (#K picks entry K).")]


def _space(name: str, width: float | None = None, resolution: int | None = None,
           num_classes: int | None = None):
    from hwnas.spaces import create_space

    return create_space(name, width=width, resolution=resolution, num_classes=num_classes)


def _fmt_int(n: float) -> str:
    from hwnas.units import format_amount

    return format_amount(n, digits=3)


@app.command("spaces")
def spaces_cmd(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the registered search spaces with their exact sizes."""
    from hwnas.spaces import create_space, space_names

    rows = []
    for name in space_names():
        s = create_space(name)
        paper_size = getattr(s, "paper_size", None)
        rows.append({"name": name, "genes": s.num_genes, "blocks": len(s.groups),
                     "choices": sorted(set(s.choices)), "size": s.size(), "paper": s.paper_note,
                     "paper_size": None if paper_size is None else paper_size()})
    if json_out:
        out.print_json(json.dumps([{**r, "size": str(r["size"]),
                                    "paper_size": None if r["paper_size"] is None else str(r["paper_size"])}
                                   for r in rows]))
        return
    t = Table(title="hwnas search spaces")
    for col in ("name", "blocks", "genes", "choices", "exact size", "as the paper counts"):
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(r["name"], str(r["blocks"]), str(r["genes"]), "/".join(map(str, r["choices"])),
                  f"{r['size']} (~{float(r['size']):.3e})", r["paper"])
    out.print(t)


@arch_app.command("sample")
def arch_sample(
    space: SpaceOpt,
    n: Annotated[int, typer.Option("--n", "-n", min=1, help="How many architectures.")] = 1,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    width: WidthOpt = None, resolution: ResOpt = None, num_classes: ClassesOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON (genes and costs).")] = False,
) -> None:
    """Sample architectures uniformly (SPOS) and print their genes and costs."""
    import numpy as np

    from hwnas.cost import CostModel

    sp = _space(space, width, resolution, num_classes)
    genes = sp.sample_many(np.random.default_rng(seed), n)
    c = CostModel(sp)(genes)
    rows = [{"genes": [int(v) for v in g], "macs": int(c["macs"][i]), "params": int(c["params"][i]),
             "bitops": int(c["bitops"][i]), "searched_bitops": int(c["searched_bitops"][i])}
            for i, g in enumerate(genes)]
    if json_out:
        typer.echo(json.dumps({"space": sp.config(), "seed": seed, "archs": rows}, indent=2))
        return
    t = Table(title=f"{n} random {sp.name} architectures (seed {seed})")
    for col in ("#", "genes", "MACs", "params"):
        t.add_column(col)
    for i, r in enumerate(rows):
        t.add_row(str(i), ",".join(map(str, r["genes"])), _fmt_int(r["macs"]), _fmt_int(r["params"]))
    out.print(t)


@arch_app.command("show")
def arch_show(
    space: SpaceOpt, genes: GenesOpt,
    width: WidthOpt = None, resolution: ResOpt = None, num_classes: ClassesOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Decode an architecture and show its layers, MACs, params and BitOps."""
    from hwnas.arch import parse_genes
    from hwnas.cost import arch_costs

    sp = _space(space, width, resolution, num_classes)
    g = parse_genes(genes, sp)
    c = arch_costs(sp, g)
    if json_out:
        typer.echo(json.dumps({"space": sp.config(), "genes": list(g), "blocks": sp.describe(g),
                               "costs": c.to_dict(),
                               "layers": [op.to_dict() for op in sp.layers(g)]}, indent=2))
        return
    t = Table(title=f"{sp.name} architecture")
    for col in ("block", "choice"):
        t.add_column(col)
    for row in sp.describe(g):
        t.add_row(row["block"], row["choice"])
    out.print(t)
    out.print(f"MACs {_fmt_int(c.macs)} | FLOPs {_fmt_int(c.flops)} | params {_fmt_int(c.params)} | "
              f"BitOps {_fmt_int(c.bitops)} (searched blocks {_fmt_int(c.searched_bitops)}) | peak activations {c.peak_act_bytes / 2**20:.2f} MiB "
              f"@ {sp.resolution}x{sp.resolution}")


@app.command("export")
def export_cmd(
    genes: GenesOpt,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    space: Annotated[Optional[str], typer.Option("--space", "-s", help="Search space (default: the checkpoint's).")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(help="Supernet or subnet checkpoint (.pt).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="A runtime (onnx, tflite) or all of them (all, both).")] = "both",
    width: WidthOpt = None, resolution: ResOpt = None, num_classes: ClassesOpt = None,
    name: Annotated[str, typer.Option(help="File name stem of the exported models.")] = "model",
    seed: Annotated[int, typer.Option(help="Seed for random weights (no checkpoint).")] = 0,
    check: Annotated[bool, typer.Option(help="Check runtime output against torch.")] = True,
    quant: Annotated[str, typer.Option(help="none, int8 (int8 TFLite / ONNX QDQ) or mixed (k-bit weights in int8 containers, per-layer bits in the metadata).")] = "none",
    bits: Annotated[Optional[str], typer.Option(help="--quant mixed: W,A bits for every searched block (default: the architecture's own bits).")] = None,
    data: Annotated[Optional[str], typer.Option(help="--quant: dataset for calibration and the accuracy drop (default: the checkpoint's, else digits).")] = None,
    calib_images: Annotated[int, typer.Option(min=1, help="--quant: calibration images.")] = 64,
) -> None:
    """Export one subnet to ONNX and/or TFLite, with metadata and a parity check."""
    import torch

    from hwnas.arch import parse_genes
    from hwnas.deploy.source import load_source
    from hwnas.io import check_writable_dir
    from hwnas.export import export_model
    from hwnas.runtimes import runtime_names
    from hwnas.supernet import Subnet

    names = runtime_names()
    formats = tuple(names) if fmt in ("both", "all") else (fmt,) if fmt in names else None
    if formats is None:
        raise HwnasError(f"--format {fmt!r} is not allowed; use {', '.join(names)} or all (both)")
    _check_quant_options(quant, formats, bits)  # before any model is built
    check_writable_dir(out_dir)
    if checkpoint is not None:  # a supernet's subnet gets its own BN statistics first (SPOS Sec. 3.3)
        src = load_source(checkpoint, genes, space_name=space, resolution=resolution, need_data=False)
        if "recalibration_note" in src.extra:
            note(src.extra["recalibration_note"], err)
        model = src.model
        sp = model.space
    else:
        if space is None:
            raise HwnasError("--space is required without --checkpoint")
        sp = _space(space, width, resolution, num_classes)
        torch.manual_seed(seed)
        model = Subnet(sp, parse_genes(genes, sp))
        note(f"no --checkpoint: exporting randomly initialised weights (seed {seed})", err)
    meta = {**model.metadata(), "source_checkpoint": str(checkpoint) if checkpoint else None}
    if quant != "none":  # ---- quantized export (hwnas.quant.export) ----
        _export_quantized(model, sp, out_dir, quant=quant, formats=formats, bits=bits, data=data,
                          checkpoint=checkpoint, calib_images=calib_images, name=name, meta=meta)
        return
    results = export_model(model.eval(), out_dir, formats=formats, resolution=model.resolution,
                           in_channels=sp.in_channels, name=name, metadata=meta, check=check)
    t = Table(title=f"exported {sp.name} subnet")
    for col in ("format", "file", "size", "export s", "max |diff| vs torch"):
        t.add_column(col)
    for r in results:
        t.add_row(r.format, r.path, f"{r.size_bytes / 1024:.1f} KiB", f"{r.seconds:.1f}",
                  "-" if r.max_abs_diff is None else f"{r.max_abs_diff:.2e}")
    out.print(t)


def _check_quant_options(quant: str, formats: tuple[str, ...], bits: str | None) -> None:
    """``--quant`` / ``--bits`` errors (unknown mode, bits an int8 runtime cannot hold...)."""
    if quant == "none":
        if bits is not None:
            raise HwnasError("--bits applies to --quant mixed only")
        return
    from hwnas.quant.export import check_quant_request, parse_bits

    if quant not in ("int8", "mixed"):
        raise HwnasError(f"--quant {quant!r} is not allowed; use none, int8 or mixed")
    check_quant_request(quant, formats, parse_bits(bits))


def _export_quantized(model, sp, out_dir: Path, *, quant: str, formats: tuple[str, ...], bits: str | None,
                      data: str | None, checkpoint: Path | None, calib_images: int, name: str,
                      meta: dict) -> None:
    """``hwnas export --quant int8|mixed``: calibrate, export, measure on the test split, print."""
    from hwnas.io import atomic_write_json
    from hwnas.quant.export import cli_data, export_quantized, parse_bits

    wa = parse_bits(bits)
    calib, test, labelled, data_name = cli_data(data, checkpoint, resolution=model.resolution,
                                                in_channels=sp.in_channels, num_classes=sp.num_classes,
                                                calib_images=calib_images)
    if not labelled:
        note(f"{data_name} labels do not match the model's {sp.num_classes} classes: parity only, "
             f"no accuracy", err)
    results = export_quantized(model.eval(), out_dir, quant=quant, formats=formats, calib=calib,
                               eval_batches=test, labelled=labelled, resolution=model.resolution,
                               in_channels=sp.in_channels, name=name, metadata=meta, bits=wa,
                               calib_images=calib_images)
    atomic_write_json(Path(out_dir) / f"{name}.{quant}.export.json",
                      {**meta, "data": data_name, "results": [r.to_dict() for r in results]})

    def pct(v):
        return "-" if v is None else f"{100 * v:.1f} %"

    t = Table(title=f"{quant} export of a {sp.name} subnet ({data_name} test split, {results[0].n_images} images)")
    for col in ("format", "file", "size", "max |diff| vs torch", "top-1 agreement", "accuracy",
                "float accuracy", "drop (pp)"):
        t.add_column(col)
    for r in results:
        t.add_row(r.format, r.path, f"{r.size_bytes / 1024:.1f} KiB", f"{r.max_abs_diff:.3g}",
                  pct(r.top1_agreement), pct(r.accuracy), pct(r.float_accuracy),
                  "-" if r.accuracy_drop is None else f"{r.accuracy_drop:+.1f}")
    out.print(t)


# ---- command groups that live next to their library code ----------------------------------------
# Each module defines ``register(app: typer.Typer) -> None``; add one line per module here.
COMMAND_MODULES: tuple[str, ...] = (
    "hwnas.train.cli",
    "hwnas.ranking.commands",
    "hwnas.devices.commands",
    "hwnas.latency.commands",
    "hwnas.interop.commands",
    "hwnas.search.commands",
    "hwnas.quickstart",
    "hwnas.deploy.commands",
    "hwnas.sparse.commands",
)


def _register_commands() -> None:
    import importlib

    for mod in COMMAND_MODULES:
        importlib.import_module(mod).register(app)


_register_commands()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``hwnas`` script: every bad input ends as one line on stderr, exit code 2.

    :class:`HwnasError` prints its message; a usage error of the command line (an unknown option,
    ``--threads abc``, a value out of an option's range) prints click's one-line reason; an
    :class:`OSError` that no stage converted names its path. Messages print verbatim (no markup).
    """
    from hwnas.errors import os_error
    from hwnas.ui import print_error

    usage_error, click_exception = _click_errors()
    try:
        rv = checked_command()(args=argv, prog_name="hwnas", standalone_mode=False)
    except HwnasError as exc:
        print_error(str(exc))
        sys.exit(exc.exit_code)
    except usage_error as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare group: its help, as before
            exc.show()
            sys.exit(exc.exit_code)
        where = f"{exc.ctx.command_path}: " if exc.ctx is not None else ""
        print_error(" ".join(f"{where}{exc.format_message()}".split())
                    + (" (see --help)" if exc.ctx is not None else ""))
        sys.exit(2)
    except click_exception as exc:  # a bad file argument and the like
        print_error(" ".join(exc.format_message().split()))
        sys.exit(exc.exit_code)
    except typer.Abort:
        print_error("aborted")
        sys.exit(130)
    except OSError as exc:  # a path no stage converted: still one line naming it
        print_error(str(os_error(exc, "use")))
        sys.exit(2)
    if isinstance(rv, int) and rv:
        sys.exit(rv)


def iter_commands(command=None, path: tuple[str, ...] = ()):
    """``(path, click command)`` for every command of the app (sub-commands of groups included),
    e.g. ``(("lut", "validate"), <command>)``."""
    command = command if command is not None else typer.main.get_command(app)
    subs = getattr(command, "commands", None)
    if subs is None:
        yield path, command
        return
    for name in sorted(subs):
        yield from iter_commands(subs[name], (*path, name))


def option_flag(param) -> str:
    """The long name of a click option (``--max-latency-ms``), else its first name."""
    return next((o for o in param.opts if o.startswith("--")), param.opts[0] if param.opts else param.name)


def checked_command():
    """The click command of the app with the range of :data:`hwnas.checks.OPTION_RANGES` checked
    on every numeric option as it is parsed: before a command runs, so before it writes anything.

    Built once per set of registered commands (building takes a few hundred ms)."""
    key = (tuple(id(c.callback) for c in app.registered_commands),
           tuple((g.name, id(g.typer_instance), len(g.typer_instance.registered_commands))
                 for g in app.registered_groups))
    return _checked_command(key)


@functools.lru_cache(maxsize=1)
def _checked_command(_key: tuple):
    from hwnas.checks import option_range

    root = typer.main.get_command(app)
    for path, command in iter_commands(root):
        for param in command.params:
            rng = option_range(" ".join(path), option_flag(param))
            if rng is not None:
                param.callback = _range_callback(rng, option_flag(param), param.callback)
    return root


def _range_callback(rng, flag: str, previous):
    def callback(ctx, param, value):
        if previous is not None:
            value = previous(ctx, param, value)
        try:
            return rng.check(flag, value)
        except HwnasError as exc:
            raise HwnasError(f"{ctx.command_path}: {exc}") from None

    return callback


def _click_errors() -> tuple[type[Exception], type[Exception]]:
    """click's UsageError and ClickException (typer >= 0.20 vendors click: found through typer's
    own BadParameter)."""
    mro = {c.__name__: c for c in typer.BadParameter.__mro__}
    return mro["UsageError"], mro["ClickException"]
