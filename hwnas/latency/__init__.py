"""Latency lookup tables: op keys, table files, profiling on a device, prediction and validation."""
