"""Where a measurement was taken: a fingerprint of the machine and runtime behind a runner.

Latency tables, end-to-end measurements (``*.e2e.json``) and fitted predictors carry the
fingerprint of what measured them, so a measurement of one computer is never reused as if it had
been taken on another (a shipped host table describes the computer that built it, not yours).

* host (transport ``local``, in-process runners): CPU model, logical core count, machine type, the
  cpufreq governor when readable, runtime name and version;
* ADB device: serial and ``ro.build.fingerprint`` (``getprop``), runtime name.

The fingerprint is a dict; its ``id`` is the first 12 hex digits of the SHA-1 of the other fields
(canonical JSON), which is what files compare. Measurements without a fingerprint (written by an
older hwnas) count as another machine's on the host; on an ADB device the device profile names
the phone, so they count as its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

#: the field that files compare
ID = "id"
_CACHE_ATTR = "_hwnas_fingerprint"


def fingerprint_id(fields: Mapping[str, Any]) -> str:
    """SHA-1 (12 hex digits) of the canonical JSON of ``fields`` without ``id``."""
    body = {k: v for k, v in fields.items() if k != ID}
    return hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]


def _stamped(fields: dict[str, Any]) -> dict[str, Any]:
    return {**fields, ID: fingerprint_id(fields)}


def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's model name (``model name`` / ``Hardware`` / ``Processor`` of ``/proc/cpuinfo``),
    else :func:`platform.processor`, else ``unknown``."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for key in ("model name", "Hardware", "Processor", "cpu model", "uarch"):
        for line in text.splitlines():
            name, sep, value = line.partition(":")
            if sep and name.strip() == key and value.strip():
                return " ".join(value.split())
    return platform.processor() or "unknown"


def cpu_governor(root: str | Path = "/sys/devices/system/cpu") -> str:
    """The cpufreq governors of the CPUs (one name, or names joined by ``,`` when they differ);
    ``unreadable`` where the kernel does not expose them (virtual machines, containers)."""
    names = []
    for path in sorted(Path(root).glob("cpu[0-9]*/cpufreq/scaling_governor")):
        try:
            names.append(path.read_text(encoding="ascii").strip())
        except OSError:
            continue
    names = list(dict.fromkeys(n for n in names if n))
    return ",".join(names) if names else "unreadable"


def host_fingerprint(runtime: str, runtime_version: str | None) -> dict[str, Any]:
    """This computer's fingerprint for measurements with ``runtime`` at ``runtime_version``."""
    return _stamped({"kind": "host", "cpu": cpu_model(), "cores": os.cpu_count() or 0,
                     "machine": platform.machine(), "governor": cpu_governor(),
                     "runtime": runtime, "runtime_version": runtime_version or "unknown"})


def adb_fingerprint(serial: str | None, build_fingerprint: str | None, runtime: str) -> dict[str, Any]:
    """An ADB device's fingerprint: its serial and ``ro.build.fingerprint``, and the runtime."""
    return _stamped({"kind": "adb", "serial": serial or "unknown",
                     "build_fingerprint": build_fingerprint or "unreadable", "runtime": runtime})


def runner_fingerprint(runner: Any) -> dict[str, Any]:
    """The fingerprint of what ``runner`` measures on (computed once per runner).

    Host runners: :func:`host_fingerprint`. Device runners (with a ``transport``): the serial of
    the profile's connection (else the transport's) and ``getprop ro.build.fingerprint``; a device
    whose getprop fails is fingerprinted ``unreadable``, never an error here (measuring reports
    the device's problems)."""
    cached = getattr(runner, _CACHE_ATTR, None)
    if cached is not None:
        return cached
    profile = getattr(runner, "profile", None)
    runtime = str(getattr(runner, "runtime", "unknown"))
    transport = getattr(runner, "transport", None)
    if transport is None or profile is None or profile.is_local:
        version = None
        fn = getattr(runner, "runtime_version", None)
        try:
            version = fn() if callable(fn) else None
        except Exception:  # noqa: BLE001 (a tool's version may be unknown until it runs)
            version = None
        fp = host_fingerprint(runtime, version)
    else:
        serial = getattr(getattr(profile, "connection", None), "serial", None) or getattr(transport, "serial", None)
        build = None
        try:
            res = transport.shell(["getprop", "ro.build.fingerprint"])
            if res.exit_code == 0:
                build = res.stdout.strip() or None
        except Exception:  # noqa: BLE001 (see the docstring)
            build = None
        fp = adb_fingerprint(serial, build, runtime)
    try:
        setattr(runner, _CACHE_ATTR, fp)
    except AttributeError:
        pass
    return fp


def describe(fp: Mapping[str, Any] | None) -> str:
    """A short human description: ``host Intel(R) Xeon(R) ..., 2 cores, governor unreadable,
    tflite 2.1.5 (fingerprint 0123456789ab)``."""
    if not fp:
        return "no fingerprint (written before hwnas recorded where measurements were taken)"
    if fp.get("kind") == "adb":
        body = f"ADB device {fp.get('serial')}, build {fp.get('build_fingerprint')}, {fp.get('runtime')}"
    else:
        body = (f"host {fp.get('cpu')}, {fp.get('cores')} cores, governor {fp.get('governor')}, "
                f"{fp.get('runtime')} {fp.get('runtime_version')}")
    return f"{body} (fingerprint {fp.get(ID)})"


def same_machine(stored: Mapping[str, Any] | None, current: Mapping[str, Any]) -> bool:
    """Whether a measurement stamped ``stored`` may be reused where ``current`` measures. Unstamped
    measurements count as foreign on the host and as their own on an ADB device (its profile
    names the phone)."""
    if not stored:
        return current.get("kind") == "adb"
    return stored.get(ID) == current.get(ID)


def skipped_message(what: str, where: str | Path, foreign: Iterable[Mapping[str, Any] | None],
                    current: Mapping[str, Any]) -> str | None:
    """The one line saying how many stored measurements were skipped and whose they were (None
    when none was)."""
    foreign = list(foreign)
    if not foreign:
        return None
    groups: dict[str, tuple[int, Mapping[str, Any] | None]] = {}
    for fp in foreign:
        key = (fp or {}).get(ID, "")
        n, _ = groups.get(key, (0, fp))
        groups[key] = (n + 1, fp)
    whose = "; ".join(f"{n} of {describe(fp)}" for n, fp in groups.values())
    return (f"skipped {len(foreign)} stored {what} in {where} taken elsewhere ({whose}); this machine "
            f"is {describe(current)}, measured afresh")
