"""Runner registry: one name per (runtime, where) pair and one factory, :func:`create_runner`.

================  =====================================================  ==================
name              what                                                   needs
================  =====================================================  ==================
tflite-host       LiteRT interpreter in this process                     profile
onnx-host         onnxruntime InferenceSession in this process           profile
tflite-adb        TFLite ``benchmark_model`` through a transport         profile, transport
onnx-adb          ``onnxruntime_perf_test`` through a transport          profile, transport
tflite-int8-host  LiteRT interpreter, int8 models (runtime tflite-int8)  profile
================  =====================================================  ==================

Runner modules are imported only when their runner is created, so listing runners or using the
ADB runners never imports onnxruntime or LiteRT.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from hwnas.devices.profiles import DeviceProfile
from hwnas.errors import HwnasError
from hwnas.runners.base import Runner

RUNNERS: Mapping[str, str] = MappingProxyType({
    "tflite-host": "hwnas.runners.host:TfliteHostRunner",
    "onnx-host": "hwnas.runners.host:OnnxHostRunner",
    "tflite-adb": "hwnas.runners.benchmark_model:BenchmarkModelRunner",
    "onnx-adb": "hwnas.runners.ort_perf_test:OrtPerfTestRunner",
    "tflite-int8-host": "hwnas.runners.host:TfliteInt8HostRunner",
})
_DEVICE_RUNNERS = frozenset({"tflite-adb", "onnx-adb"})


def runner_names() -> list[str]:
    """All registered runner names."""
    return list(RUNNERS)


def runner_class(name: str) -> type[Runner]:
    """The class registered as ``name`` (imported on first use)."""
    target = RUNNERS.get(name)
    if target is None:
        raise HwnasError(f"unknown runner {name!r}; allowed: {', '.join(RUNNERS)}")
    module_name, _, attr = target.partition(":")
    cls: type[Runner] = getattr(importlib.import_module(module_name), attr)
    return cls


def default_runner_name(profile: DeviceProfile, runtime: str) -> str:
    """``<runtime>-host`` for a local profile without a benchmark binary, else ``<runtime>-adb``."""
    rt = profile.runtime(runtime)
    if profile.is_local and rt.binary is None:
        return f"{runtime}-host"
    return f"{runtime}-adb"


def create_runner(name: str, profile: DeviceProfile, transport: Any = None, **options: Any) -> Runner:
    """Build runner ``name`` for ``profile``.

    Device runners (``*-adb``) need an open ``transport`` (see ``profile.open_transport()``);
    host runners take none. ``options`` go to the runner (``sleep=``, ``clock=``, ``seed=``...).
    """
    cls = runner_class(name)
    runtime = cls.runtime
    profile.runtime(runtime)  # the profile must offer the runner's runtime
    if name in _DEVICE_RUNNERS:
        if transport is None:
            raise HwnasError(f"runner {name!r} runs a benchmark binary on the device and needs a "
                             f"transport: create_runner({name!r}, profile, profile.open_transport())")
        return cls(profile, transport, **options)  # type: ignore[call-arg]
    if transport is not None:
        raise HwnasError(f"runner {name!r} measures in this process and takes no transport")
    if not profile.is_local:
        raise HwnasError(f"runner {name!r} measures on this computer, but profile {profile.name!r} "
                         f"is a {profile.kind} reached over {profile.connection.transport!r}; "
                         f"use {runtime}-adb")
    return cls(profile, **options)
