"""Devices: profiles (one TOML file per device), transports (ADB, adb-shell, local), parsers of
what devices print, temperature readers, and resolving / checking a device for a command."""

from hwnas.devices.check import check_device
from hwnas.devices.connect import attached_serial, resolve_device
from hwnas.devices.profiles import DeviceProfile, list_profiles, load_profile

__all__ = ["DeviceProfile", "attached_serial", "check_device", "list_profiles", "load_profile",
           "resolve_device"]
