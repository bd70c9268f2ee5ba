"""What ``hwnas devices check`` reports about a device: model, board, ABI, CPU governors,
temperature and benchmark binaries (ADB devices), or the runtime packages (this computer)."""

from __future__ import annotations

import platform
from dataclasses import asdict
from importlib import metadata
from typing import Any

from hwnas.devices.parsers import device_info_from_getprop, parse_getprop
from hwnas.devices.profiles import DeviceProfile
from hwnas.devices.thermal import temperature_reader
from hwnas.errors import HwnasError
from hwnas.runtimes import get_runtime


def check_device(profile: DeviceProfile, transport: Any = None) -> list[tuple[str, str]]:
    """What ``devices check`` reports, as (item, value) rows. Raises HwnasError if unreachable.

    ``transport`` defaults to ``profile.open_transport()``.
    """
    rows: list[tuple[str, str]] = [("transport", profile.connection.transport)]
    if profile.is_local:
        rows.append(("machine", f"{platform.machine()} {platform.processor() or ''}".strip()))
        for rt in profile.runtimes:
            spec = get_runtime(rt.name)
            try:
                version = metadata.version(spec.host_package)
            except metadata.PackageNotFoundError:
                version = f"MISSING: pip install {spec.host_package}"
            rows.append((f"{spec.title} ({spec.host_package})", version))
        return rows
    tr = transport if transport is not None else profile.open_transport()
    try:
        res = tr.shell("getprop")
        if res.exit_code != 0:
            raise HwnasError(f"device {profile.name!r}: getprop failed (exit {res.exit_code}): {res.stderr[:200]}")
        info = device_info_from_getprop(parse_getprop(res.stdout))
        rows.extend((k, str(v)) for k, v in asdict(info).items())
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
