"""Latency lookup tables: op keys, table files, profiling on a device, prediction and validation."""

#: random subnets (plus smallest and largest) a table is calibrated on after profiling.
DEFAULT_CALIBRATION_SUBNETS = 8
