"""Devices: profiles (TOML), transports (adb-shell, adb, local) and on-device helpers."""
