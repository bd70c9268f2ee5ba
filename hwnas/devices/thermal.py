"""Read a device's temperature as its profile's ``[thermal]`` table says (sysfs zone or
``dumpsys thermalservice``), for the cool-down loop and ``hwnas devices check``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hwnas.devices.profiles import Thermal
from hwnas.errors import HwnasError
from hwnas.devices.parsers import (
    decode_output,
    parse_dumpsys_thermalservice,
    parse_thermal_zone_temp,
)


def temperature_reader(thermal: Thermal, transport: Any, *, timeout: float = 30.0
                       ) -> Callable[[], float | None] | None:
    """A callable returning the device temperature in degrees C, or None when unreadable.

    Returns None (no reader) for ``source = "none"``; the cool-down then uses the fixed pause.
    ``transport`` is anything with ``shell(cmd, timeout=...) -> result(exit_code, stdout, stderr)``.
    """
    if thermal.source == "none":
        return None
    if thermal.source == "sysfs":
        zone = thermal.zone or ""

        def read_sysfs() -> float | None:
            result = transport.shell(["cat", zone], timeout=timeout)
            if result.exit_code != 0:
                return None
            try:
                return parse_thermal_zone_temp(result.stdout, source=zone)
            except HwnasError:
                return None

        return read_sysfs

    def read_dumpsys() -> float | None:
        result = transport.shell(["dumpsys", "thermalservice"], timeout=timeout)
        if result.exit_code != 0:
            return None
        return parse_dumpsys_thermalservice(decode_output(result.stdout)).temperature(thermal.sensor)

    return read_dumpsys
