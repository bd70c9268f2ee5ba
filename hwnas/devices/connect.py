"""Resolve a device profile for a command: ``--serial`` / ``--host`` overrides, and the serial of
the only attached device when the profile names none."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

from hwnas.devices.parsers import parse_adb_devices
from hwnas.devices.profiles import DeviceProfile, load_profile
from hwnas.errors import HwnasError


def attached_serial(profile: DeviceProfile) -> str:
    """The serial of the only ready device that the ``adb`` client sees (for profiles without one)."""
    adb = shutil.which("adb")
    if adb is None:
        raise HwnasError(f"device {profile.name!r} needs the adb client: install it (Debian: apt-get install adb) "
                         f"or pass --host to use the adb-shell transport")
    try:
        proc = subprocess.run([adb, "devices", "-l"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        raise HwnasError("`adb devices -l` did not answer in 30 s") from None
    devices = parse_adb_devices(proc.stdout)
    ready = [d for d in devices if d.ready]
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
