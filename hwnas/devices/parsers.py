"""Parsers for what Android devices print about themselves: ``getprop``, ``adb devices -l``,
adb client errors, thermal zones, ``dumpsys thermalservice`` and cpufreq ``time_in_state``, plus
:func:`decode_output`, which every parser of device or tool output starts from.

They work on real output as captured from devices (``tests/fixtures/real-outputs/`` holds the
captures and their sources), including ``getprop`` dumps saved as UTF-16LE with CRLF.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from hwnas.errors import HwnasError

NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
"""A decimal number as tools print it (sign, fraction and exponent optional)."""


def decode_output(data: str | bytes) -> str:
    """Decode tool output robustly: UTF-8 / UTF-16 (with or without BOM), CRLF -> LF.

    Windows shells save ``adb shell getprop > file`` as UTF-16LE with a BOM and CRLF line ends;
    captures from other tools are UTF-8. Undecodable bytes become U+FFFD instead of failing.
    """
    if isinstance(data, str):
        text = data
    elif data.startswith(codecs.BOM_UTF8):
        text = data[len(codecs.BOM_UTF8):].decode("utf-8", errors="replace")
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = data.decode("utf-16", errors="replace")
    elif len(data) >= 4 and data[1::2].count(0) > len(data) // 4:
        text = data.decode("utf-16-le", errors="replace")  # UTF-16LE without BOM
    elif len(data) >= 4 and data[0::2].count(0) > len(data) // 4:
        text = data.decode("utf-16-be", errors="replace")
    else:
        text = data.decode("utf-8", errors="replace")
    text = text.lstrip("\ufeff")
    return text.replace("\r\n", "\n").replace("\r", "\n")


# --------------------------------------------------------------------------------------------
def parse_getprop(text: str | bytes) -> dict[str, str]:
    """Parse ``adb shell getprop`` output (``[key]: [value]`` lines) into a dict.

    Handles UTF-16LE/CRLF files saved on Windows, empty values (``[]``) and values that span
    several lines (``persist.sys.boot.reason.history``), which keep their inner newlines.
    """
    props: dict[str, str] = {}
    key: str | None = None
    parts: list[str] = []

    def flush() -> None:
        if key is not None:
            value = "\n".join(parts)
            props[key] = value[:-1] if value.endswith("]") else value

    start = re.compile(r"^\[([^\]]+)\]: \[(.*)$")
    for raw in decode_output(text).split("\n"):
        m = start.match(raw)
        if m:
            flush()
            key, parts = m.group(1), [m.group(2)]
        elif key is not None and raw:
            parts.append(raw)
    flush()
    return props


@dataclass(frozen=True)
class DeviceInfo:
    """The few ``getprop`` values hwnas checks a device profile against."""

    model: str | None
    manufacturer: str | None
    soc_model: str | None  # ro.soc.model, Android 12+ only
    soc_manufacturer: str | None
    board_platform: str | None  # Qualcomm code name: taro, kona, lito, pineapple, sun ...
    hardware: str | None
    abi: str | None
    android_release: str | None
    sdk: int | None
    serial: str | None


def device_info_from_getprop(props: Mapping[str, str]) -> DeviceInfo:
    """Pick model, SoC, ABI and Android version out of a ``getprop`` dict (missing keys -> None)."""

    def get(*keys: str) -> str | None:
        for k in keys:
            if props.get(k):
                return props[k]
        return None

    sdk = get("ro.build.version.sdk")
    return DeviceInfo(
        model=get("ro.product.model", "ro.product.vendor.model"),
        manufacturer=get("ro.product.manufacturer", "ro.product.vendor.manufacturer"),
        soc_model=get("ro.soc.model"), soc_manufacturer=get("ro.soc.manufacturer"),
        board_platform=get("ro.board.platform"), hardware=get("ro.hardware"),
        abi=get("ro.product.cpu.abi"), android_release=get("ro.build.version.release"),
        sdk=int(sdk) if sdk and sdk.isdigit() else None, serial=get("ro.serialno"),
    )


# --------------------------------------------------------------------------------------------
# adb client output


@dataclass(frozen=True)
class AdbDevice:
    """One line of ``adb devices [-l]``."""

    serial: str
    state: str
    details: Mapping[str, str] = field(default_factory=dict)  # usb, product, model, device, transport_id

    @property
    def model(self) -> str | None:
        return self.details.get("model")

    @property
    def ready(self) -> bool:
        """True when the device accepts shell commands (state ``device``)."""
        return self.state == "device"


def parse_adb_devices(text: str | bytes) -> list[AdbDevice]:
    """Parse ``adb devices`` / ``adb devices -l`` (tab or space separated) into devices."""
    devices: list[AdbDevice] = []
    for raw in decode_output(text).split("\n"):
        s = raw.strip()
        if not s or s.startswith(("List of devices", "*")) or s.startswith("adb "):
            continue
        m = re.match(r"^(\S+)\s+(no permissions.*?(?=\s+\w+:|$)|\S+)(.*)$", s)
        if not m:
            continue
        details = dict(kv.split(":", 1) for kv in m.group(3).split() if ":" in kv)
        devices.append(AdbDevice(serial=m.group(1), state=m.group(2), details=details))
    return devices


def adb_error_kind(text: str | bytes) -> str | None:
    """Classify an adb client error message: ``unauthorized``, ``offline``, ``not-found``,
    ``no-device``, ``more-than-one``, ``connection-refused`` (None if not an adb error)."""
    s = decode_output(text).lower()
    checks = (
        ("unauthorized", "unauthorized"),
        ("offline", "device offline"),
        ("more-than-one", "more than one device"),
        ("no-device", "no devices/emulators found"),
        ("not-found", "not found"),
        ("connection-refused", "connection refused"),
    )
    for kind, needle in checks:
        if needle in s and ("error" in s or "adb:" in s or "failed" in s):
            return kind
    return None


# --------------------------------------------------------------------------------------------
# Thermal


def parse_thermal_zone_temp(text: str | bytes, *, source: str = "thermal zone") -> float:
    """Degrees Celsius from a ``/sys/class/thermal/thermal_zone*/temp`` read.

    The kernel reports millidegrees (``45200``); a few vendor zones report whole degrees (``45``),
    so values with magnitude below 1000 are taken as degrees.
    """
    s = decode_output(text).strip()
    if not re.fullmatch(r"-?\d+(\.\d+)?", s):
        raise HwnasError(f"{source}: expected a temperature in millidegrees C, got {s[:80]!r}")
    value = float(s)
    return value / 1000.0 if abs(value) >= 1000 else value


TEMPERATURE_TYPES: Mapping[int, str] = {
    -1: "UNKNOWN", 0: "CPU", 1: "GPU", 2: "BATTERY", 3: "SKIN", 4: "USB_PORT",
    5: "POWER_AMPLIFIER", 6: "BCL_VOLTAGE", 7: "BCL_CURRENT", 8: "BCL_PERCENTAGE", 9: "NPU",
    10: "TPU", 11: "DISPLAY", 12: "MODEM", 13: "SOC", 14: "WIFI", 15: "CAMERA", 16: "FLASHLIGHT",
    17: "SPEAKER", 18: "AMBIENT", 19: "POGO",
}
"""android.os.Temperature TYPE_* constants. BCL_* "temperatures" are battery volts/amps/%."""


@dataclass(frozen=True)
class TemperatureReading:
    """One ``Temperature{mValue=..., mType=..., mName=..., mStatus=...}`` record."""

    name: str
    type: int
    value: float
    status: int

    @property
    def type_name(self) -> str:
        return TEMPERATURE_TYPES.get(self.type, f"TYPE_{self.type}")

    @property
    def is_temperature(self) -> bool:
        """False for the battery voltage / current / percentage channels."""
        return self.type not in (6, 7, 8)


@dataclass(frozen=True)
class ThermalServiceDump:
    """``dumpsys thermalservice``: throttling status and both temperature lists."""

    status: int | None
    cached: tuple[TemperatureReading, ...]
    current: tuple[TemperatureReading, ...]

    @property
    def readings(self) -> tuple[TemperatureReading, ...]:
        """The HAL's current values when present, else the cached ones."""
        return self.current or self.cached

    def temperature(self, sensor: str = "CPU") -> float | None:
        """Hottest reading of a type (``"CPU"``, ``"SKIN"``...) or the value of a named sensor."""
        wanted = sensor.upper()
        by_type = [r.value for r in self.readings if r.type_name == wanted and r.is_temperature]
        if by_type:
            return max(by_type)
        for r in self.readings:
            if r.name.upper() == wanted:
                return r.value
        return None


_TEMPERATURE_RE = re.compile(
    rf"Temperature\{{mValue=({NUM}|NaN), mType=(-?\d+), mName=([^,]*), mStatus=(-?\d+)\}}"
)


def parse_dumpsys_thermalservice(text: str | bytes) -> ThermalServiceDump:
    """Parse ``adb shell dumpsys thermalservice`` (Android 10+ thermal service)."""
    status: int | None = None
    cached: list[TemperatureReading] = []
    current: list[TemperatureReading] = []
    target: list[TemperatureReading] | None = None
    for raw in decode_output(text).split("\n"):
        s = raw.strip()
        if s.startswith("Thermal Status:"):
            status = int(s.split(":", 1)[1])
        elif s.startswith("Cached temperatures"):
            target = cached
        elif s.startswith("Current temperatures from HAL"):
            target = current
        elif raw and not raw[0].isspace():
            target = None  # any other unindented heading ends a temperature list
        m = _TEMPERATURE_RE.search(s)
        if m and target is not None and m.group(1) != "NaN":
            target.append(TemperatureReading(
                name=m.group(3), type=int(m.group(2)), value=float(m.group(1)),
                status=int(m.group(4)),
            ))
    return ThermalServiceDump(status=status, cached=tuple(cached), current=tuple(current))


# --------------------------------------------------------------------------------------------
# cpufreq


def parse_time_in_state(text: str | bytes) -> dict[str, tuple[tuple[int, int], ...]]:
    """Parse cpufreq ``time_in_state`` dumps: ``{"cpu0": ((khz, time), ...), ...}``.

    Accepts one file (key ``""``) or several concatenated under ``cpuN`` / ``policyN`` headers;
    the policy with the highest top frequency holds the prime/big cores.
    """
    tables: dict[str, list[tuple[int, int]]] = {}
    current = ""
    for raw in decode_output(text).split("\n"):
        s = raw.strip()
        if not s:
            continue
        m = re.fullmatch(r"(\d+)\s+(\d+)", s)
        if m:
            tables.setdefault(current, []).append((int(m.group(1)), int(m.group(2))))
        else:
            current = s.rstrip(":").rsplit("/", 1)[-1]
    return {k: tuple(v) for k, v in tables.items()}
