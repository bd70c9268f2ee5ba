"""``hwnas arch import | export`` and ``hwnas lut import``: other tools' files (docs/interop.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from hwnas.errors import HwnasError

Opt = typer.Option

FormatO = Annotated[str, Opt("--format", "-f", help="File format: ofa (Once-for-All / ProxylessNAS).")]
WidthO = Annotated[Optional[float], Opt(help="Width multiplier (default: inferred from the file's channels).")]
ClassesO = Annotated[Optional[int], Opt("--num-classes", help="Number of classes (default: the file's classifier).")]

#: format of the files ``arch import -o`` writes
ARCH_FILE_FORMAT = "hwnas.arch"


def _group(app: typer.Typer, name: str) -> typer.Typer:
    for g in app.registered_groups:
        if g.name == name:
            return g.typer_instance
    raise RuntimeError(f"command group {name!r} is not registered yet")  # pragma: no cover


def arch_document(imported, source: Path, fmt: str) -> dict:
    """What ``arch import -o`` writes: genes with their space (``@FILE`` for every ``--genes``),
    the costs, where they came from and the file's training settings (for an exact re-export)."""
    from hwnas.checkpoint import version_stamp
    from hwnas.cost import arch_costs

    c = arch_costs(imported.space, imported.genes)
    return {"format": ARCH_FILE_FORMAT, "format_version": 1, "space": imported.space.config(),
            "genes": list(imported.genes), "macs": int(c.macs), "params": int(c.params),
            "source": {"file": str(source), "format": fmt, "network": imported.network,
                       "resolution_from": imported.resolution_from},
            "hyper": imported.hyper, "versions": version_stamp()}


def register(app: typer.Typer) -> None:
    arch = _group(app, "arch")
    lut = _group(app, "lut")

    @arch.command("import")
    def arch_import(
        file: Annotated[Path, typer.Argument(help="The file to import (format ofa: a net.config).")],
        fmt: FormatO = "ofa",
        space: Annotated[Optional[str], Opt("--space", "-s", help="Space to import into (default: the file's network's: ProxylessNASNets -> mbv2, MobileNetV3 -> ofa-mbv3).")] = None,
        width: WidthO = None,
        resolution: Annotated[Optional[int], Opt(help="Input resolution (default: image_size of a run.config beside the file, else the space's).")] = None,
        num_classes: ClassesO = None,
        out_file: Annotated[Optional[Path], Opt("--out", "-o", help="Write the genes, space, costs and source as JSON (use as --genes @FILE).")] = None,
        json_out: Annotated[bool, Opt("--json", help="Print that JSON instead of a summary.")] = False,
    ) -> None:
        """Import an architecture file (OFA / ProxylessNAS net.config) as genes of an hwnas space."""
        from hwnas.interop import arch_format
        from hwnas.io import atomic_write_json, check_writable_file

        reader = arch_format(fmt)
        if out_file is not None:
            check_writable_file(out_file)
        imported = reader.read(file, space=space, width=width, resolution=resolution, num_classes=num_classes)
        doc = arch_document(imported, file, fmt)
        if out_file is not None:
            atomic_write_json(out_file, doc)
        if json_out:
            typer.echo(json.dumps(doc, indent=2))
            return
        sp = imported.space
        typer.echo(f"{file}: {imported.network} -> space {sp.name} (width {sp.width:g}, resolution "
                  f"{sp.resolution} from {imported.resolution_from}, {sp.num_classes} classes)")
        typer.echo(f"genes {','.join(map(str, imported.genes))}")
        typer.echo(f"MACs {doc['macs'] / 1e6:.2f}M, params {doc['params'] / 1e6:.2f}M"
                  + (f"; written to {out_file}" if out_file is not None else ""))

    @arch.command("export")
    def arch_export(
        genes: Annotated[str, Opt("--genes", "-g", help="Comma-separated ints, or @FILE[#K] (arch import -o, arch sample --json, pareto.json, .export.json).")],
        fmt: FormatO = "ofa",
        space: Annotated[Optional[str], Opt("--space", "-s", help="Search space (default: the one the genes file names).")] = None,
        width: Annotated[Optional[float], Opt(help="Width multiplier (default: the genes file's, else the space's).")] = None,
        resolution: Annotated[Optional[int], Opt(help="Input resolution (a net.config does not hold it; default: the genes file's, else the space's).")] = None,
        num_classes: Annotated[Optional[int], Opt("--num-classes", help="Number of classes (default: the genes file's, else 1000).")] = None,
        out_file: Annotated[Optional[Path], Opt("--out", "-o", help="Write the file here (default: print it).")] = None,
    ) -> None:
        """Export genes as another tool's architecture file (format ofa: a net.config that OFA's and ProxylessNAS's build_from_config read)."""
        from hwnas.arch import parse_genes, read_genes_file
        from hwnas.interop import arch_format
        from hwnas.io import atomic_write_text, check_writable_file, read_json
        from hwnas.spaces import create_space, space_from_config

        writer = arch_format(fmt)
        if out_file is not None:
            check_writable_file(out_file)
        hyper = None
        file_space = None
        spec = genes.strip()
        if spec.startswith("@"):
            _, file_space = read_genes_file(spec[1:])
            data = read_json(spec[1:].rpartition("#")[0] if "#" in spec else spec[1:], "genes file",
                             expect=(dict, list))
            if isinstance(data, dict) and isinstance(data.get("hyper"), dict):
                hyper = data["hyper"]  # the imported file's bn / dropout: re-exported as they were
        if space is None and file_space is None:
            raise HwnasError("give --space (the genes are not a file that names its space)")
        if file_space is not None and (space is None or space == file_space.get("name")):
            cfg = {**file_space, **{k: v for k, v in (("width", width), ("resolution", resolution),
                                                      ("num_classes", num_classes)) if v is not None}}
            sp = space_from_config(cfg)
        else:
            sp = create_space(space, width=width, resolution=resolution, num_classes=num_classes)
        g = parse_genes(genes, sp)
        text = json.dumps(writer.write(sp, g, hyper), indent=4)
        if out_file is None:
            typer.echo(text)
            return
        atomic_write_text(out_file, text + "\n")
        typer.echo(f"wrote {out_file} ({sp.name}, width {sp.width:g}; run it at resolution {sp.resolution})", err=True)

    @lut.command("import")
    def lut_import(
        files: Annotated[list[Path], typer.Argument(help="Lookup tables of one device (format ofa: OFA / ProxylessNAS YAML, one resolution per file).")],
        device: Annotated[str, Opt("--device", "-d", help="Device name the table is filed under (latency_tables/<device>/); use it as --device in search and pick.")],
        fmt: FormatO = "ofa",
        space: Annotated[Optional[str], Opt("--space", "-s", help="Space (default: the files' keys say: mbv2 or ofa-mbv3).")] = None,
        width: WidthO = None, num_classes: ClassesO = None,
        runtime: Annotated[str, Opt(help="Runtime the file was measured with (OFA's and ProxylessNAS's phone tables: tflite).")] = "tflite",
        soc: Annotated[str, Opt(help="SoC, recorded in the table.")] = "unknown",
        delegate: Annotated[str, Opt(help="Delegate, recorded in the table.")] = "unknown",
        threads: Annotated[Optional[int], Opt(help="Threads, recorded in the table.")] = None,
        strict: Annotated[bool, Opt("--strict", help="Refuse a file with keys the space does not produce (default: leave them out, with a warning).")] = False,
        force: Annotated[bool, Opt("--force", help="Replace an existing table.")] = False,
        tables_dir: Annotated[Optional[Path], Opt("--tables-dir", help="Root of latency tables (default: your tables folder).")] = None,
    ) -> None:
        """Import OFA / ProxylessNAS latency lookup tables as an hwnas latency table: its table sum is their summation rule."""
        from hwnas.interop import lut_format
        from hwnas.io import atomic_write_text, check_writable_file, json_text
        from hwnas.latency.table import table_path
        from hwnas.locking import file_lock
        from hwnas.ui import note

        reader = lut_format(fmt)
        if not device.strip() or "/" in device or device in (".", ".."):
            raise HwnasError(f"--device {device!r} must be a plain name (it names a folder of tables)")
        imported = reader.read(files, device=device, space=space, width=width, num_classes=num_classes,
                               runtime=runtime, soc=soc, delegate=delegate, threads=threads, strict=strict)
        sp = imported.space
        path = table_path(device, sp.name, runtime, tables_dir)
        if path.exists() and not force:
            raise HwnasError(f"{path} already exists; pass --force to replace it (import every resolution "
                             f"of a device in one call: one file per resolution)")
        check_writable_file(path, "--tables-dir")
        with file_lock(path):  # one atomic replace: never merged with the table it replaces
            atomic_write_text(path, json_text(imported.table.to_json(), path))
        for f, extra in imported.unused.items():
            if extra:
                note(f"{f}: {len(extra)} keys not produced by space {sp.name} were left out "
                     f"(e.g. {extra[0]})", label="warning")
        configs = imported.table.metadata["space_configs"]
        res = ", ".join(str(c["resolution"]) for c in configs)
        typer.echo(f"wrote {path}: {len(imported.table.entries)} op keys of space {sp.name} (width {sp.width:g}, "
                  f"resolution {res}, {sp.num_classes} classes); predict with --device {device}"
                  + (f" --tables-dir {tables_dir}" if tables_dir is not None else ""))
