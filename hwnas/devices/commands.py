"""``hwnas devices list | show NAME | check NAME``."""

from __future__ import annotations

import json
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from hwnas.devices.check import check_device
from hwnas.devices.connect import resolve_device
from hwnas.devices.profiles import find_profile, list_profiles, load_profile
from hwnas.errors import HwnasError
from hwnas.ui import print_error

out = Console()
err = Console(stderr=True)

SerialOpt = Annotated[Optional[str], typer.Option(help="ADB serial (see `adb devices -l`); overrides the profile.")]
HostOpt = Annotated[Optional[str], typer.Option(help="IP[:PORT] for ADB over TCP/Wi-Fi; overrides the profile.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def profile_rows() -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Every profile on the search path as a summary row, and the profiles that fail to load
    (``{"name", "file", "error"}``: the error names the file and the key)."""
    rows: list[dict[str, Any]] = []
    bad: list[dict[str, str]] = []
    for name in list_profiles():
        try:
            p = load_profile(name)
        except HwnasError as exc:
            try:
                file = str(find_profile(name))
            except HwnasError:
                file = name
            bad.append({"name": name, "file": file, "error": str(exc)})
            continue
        rows.append({"name": p.name, "device": p.human_name, "kind": p.kind, "soc": p.soc,
                     "transport": p.connection.transport, "file": str(p.source),
                     "runtimes": {r.name: {"delegates": list(r.delegates), "precisions": list(r.precisions)}
                                  for r in p.runtimes}})
    return rows, bad


def register(app: typer.Typer) -> None:
    devices = typer.Typer(no_args_is_help=True, help="Device profiles: list, show, check a connection.")
    app.add_typer(devices, name="devices")

    @devices.command("list")
    def list_cmd(json_out: JsonOpt = False) -> None:
        """List the known device profiles. A profile that does not load is reported (file and
        key) after the others, and the exit code is 2."""
        rows, bad = profile_rows()
        if json_out:
            typer.echo(json.dumps({"profiles": rows, "errors": bad}, indent=2))
        else:
            t = Table(title="device profiles")
            for col in ("name", "device", "kind", "SoC", "transport", "runtimes"):
                t.add_column(col, overflow="fold")
            for r in rows:
                rts = ", ".join(f"{n} ({'/'.join(v['delegates'])}; {'/'.join(v['precisions'])})"
                                for n, v in r["runtimes"].items())
                t.add_row(r["name"], r["device"], r["kind"], r["soc"], r["transport"], rts)
            out.print(t)
        for b in bad:
            print_error(b["error"], err)
        if bad:
            raise typer.Exit(code=HwnasError.exit_code)

    @devices.command("show")
    def show_cmd(name: str, serial: SerialOpt = None, host: HostOpt = None) -> None:
        """Show one profile, fully resolved (file, connection, cores, runtimes, thermal)."""
        overrides = {k: v for k, v in (("serial", serial), ("host", host)) if v}
        p = load_profile(name, overrides=overrides or None)
        out.print_json(json.dumps(p.to_dict(), default=str))

    @devices.command("check")
    def check_cmd(name: str, serial: SerialOpt = None, host: HostOpt = None) -> None:
        """Connect and report model, board, ABI, CPU governors, temperature and benchmark binaries."""
        p = resolve_device(name, serial, host)
        rows = check_device(p)
        t = Table(title=f"device check: {p.name} ({p.human_name})")
        t.add_column("item")
        t.add_column("value", overflow="fold")
        for k, v in rows:
            t.add_row(k, v)
        out.print(t)
