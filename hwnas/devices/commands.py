"""``hwnas devices list | show NAME | check NAME`` and the device resolution shared by other commands."""

from __future__ import annotations

import shutil
import subprocess
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from hwnas.devices.profiles import DeviceProfile, list_profiles, load_profile
from hwnas.errors import HwnasError

out = Console()

SerialOpt = Annotated[Optional[str], typer.Option(help="ADB serial (see `adb devices -l`); overrides the profile.")]
HostOpt = Annotated[Optional[str], typer.Option(help="IP[:PORT] for ADB over TCP/Wi-Fi; overrides the profile.")]


def attached_serial(profile: DeviceProfile) -> str:
    """The serial of the only ready device that the ``adb`` client sees (for profiles without one)."""
    from hwnas.runners.parsers import parse_adb_devices

    adb = shutil.which("adb")
    if adb is None:
        raise HwnasError(f"device {profile.name!r} needs the adb client: install it (Debian: apt-get install adb) "
                         f"or pass --host to use the adb-shell transport")
    try:
        proc = subprocess.run([adb, "devices", "-l"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        raise HwnasError("`adb devices -l` did not answer in 30 s") from None
    devices = parse_adb_devices(proc.stdout)
    ready = [d for d in devices if d.state == "device"]
    if len(ready) == 1:
        return ready[0].serial
    if not devices:
        raise HwnasError(f"no device attached for profile {profile.name!r}: connect it with USB debugging on, "
                         f"or pass --serial / --host")
    if not ready:
        states = ", ".join(f"{d.serial} ({d.state})" for d in devices)
        raise HwnasError(f"no ready device for {profile.name!r}: {states}; accept the USB debugging prompt "
                         f"on the device for 'unauthorized', reconnect for 'offline'")
    raise HwnasError(f"{len(ready)} devices attached ({', '.join(d.serial for d in ready)}): pass --serial")


def resolve_device(name: str, serial: str | None = None, host: str | None = None) -> DeviceProfile:
    """Load profile ``name`` with ``--serial`` / ``--host`` overrides; find the serial if needed."""
    overrides: dict[str, Any] = {}
    if serial:
        overrides["serial"] = serial
    if host:
        overrides["host"] = host
    profile = load_profile(name, overrides=overrides or None)
    conn = profile.connection
    if conn.transport == "adb" and not (conn.serial or conn.host):
        profile = load_profile(name, overrides={"serial": attached_serial(profile)})
    return profile


def register(app: typer.Typer) -> None:
    devices = typer.Typer(no_args_is_help=True, help="Device profiles: list, show, check a connection.")
    app.add_typer(devices, name="devices")

    @devices.command("list")
    def list_cmd() -> None:
        """List the known device profiles."""
        t = Table(title="device profiles")
        for col in ("name", "device", "kind", "SoC", "transport", "runtimes"):
            t.add_column(col, overflow="fold")
        for name in list_profiles():
            p = load_profile(name)
            t.add_row(p.name, p.human_name, p.kind, p.soc, p.connection.transport,
                      ", ".join(f"{r.name}[{'/'.join(r.delegates)}]" for r in p.runtimes))
        out.print(t)

    @devices.command("show")
    def show_cmd(name: str, serial: SerialOpt = None, host: HostOpt = None) -> None:
        """Show one profile, fully resolved (file, connection, cores, runtimes, thermal)."""
        overrides = {k: v for k, v in (("serial", serial), ("host", host)) if v}
        p = load_profile(name, overrides=overrides or None)
        import json

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


def check_device(profile: DeviceProfile, transport: Any = None) -> list[tuple[str, str]]:
    """What ``devices check`` reports, as (item, value) rows. Raises HwnasError if unreachable.

    ``transport`` defaults to ``profile.open_transport()``.
    """
    from hwnas.devices.thermal import temperature_reader
    from hwnas.runners.parsers import device_info_from_getprop, parse_getprop

    rows: list[tuple[str, str]] = [("transport", profile.connection.transport)]
    if profile.is_local:
        import platform

        rows.append(("machine", f"{platform.machine()} {platform.processor() or ''}".strip()))
        for mod, label in (("ai_edge_litert", "LiteRT interpreter"), ("onnxruntime", "onnxruntime")):
            try:
                m = __import__(mod)
                rows.append((label, getattr(m, "__version__", "installed")))
            except ImportError:
                rows.append((label, "MISSING"))
        return rows
    tr = transport if transport is not None else profile.open_transport()
    try:
        res = tr.shell("getprop")
        if res.exit_code != 0:
            raise HwnasError(f"device {profile.name!r}: getprop failed (exit {res.exit_code}): {res.stderr[:200]}")
        info = device_info_from_getprop(parse_getprop(res.stdout))
        for k, v in (info.to_dict() if hasattr(info, "to_dict") else vars(info)).items():
            rows.append((k, str(v)))
        gov = tr.shell("cat /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor")
        rows.append(("cpu governors", " ".join(gov.stdout.split()) if gov.exit_code == 0 else "unreadable"))
        try:
            temp = temperature_reader(profile.thermal, tr)
            value = temp() if temp is not None else None
            rows.append(("temperature", "n/a" if value is None else f"{value:.1f} C"))
        except HwnasError as exc:
            rows.append(("temperature", f"unreadable: {exc}"))
        for rt in profile.runtimes:
            if rt.binary:
                ok = tr.shell(["test", "-x", rt.binary]).exit_code == 0
                rows.append((f"{rt.name} binary", f"{rt.binary} ({'present' if ok else 'MISSING: push it there'})"))
    finally:
        tr.close()
    return rows
