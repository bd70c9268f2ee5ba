"""Runner registry: one runner per (runtime, where) pair, named ``<runtime>-<where>``, built by
:func:`create_runner`. The pairs come from the runtime registry (:mod:`hwnas.runtimes`): a runtime
with a ``host_runner`` gets ``<name>-host`` (measures in this process), one with a
``device_runner`` gets ``<name>-adb`` (runs the runtime's benchmark tool through a transport).

Built in: ``tflite-host`` (LiteRT interpreter), ``onnx-host`` (onnxruntime InferenceSession),
``tflite-adb`` (``benchmark_model``), ``onnx-adb`` (``onnxruntime_perf_test``). Every runner
measures every precision its runtime lists: precision is a property of the model file.

Runner modules are imported only when their runner is created, so listing runners or using the
ADB runners never imports onnxruntime or LiteRT.
"""

from __future__ import annotations

from typing import Any

from hwnas.devices.profiles import DeviceProfile
from hwnas.errors import HwnasError
from hwnas.runners.base import Runner
from hwnas.runtimes import get_runtime, load_ref, runtime_names
from hwnas.runtimes.base import WHERE

#: runner names of older hwnas versions -> the runner that measures those models now
LEGACY_RUNNERS = {"tflite-int8-host": "tflite-host"}


def runner_names() -> list[str]:
    """All runner names, ``<runtime>-<where>`` for every registered runtime."""
    return [f"{rt}-{where}" for rt in runtime_names() for where in WHERE
            if get_runtime(rt).runner_ref(where) is not None]


def runner_class(name: str) -> type[Runner]:
    """The class of runner ``name`` (imported on first use)."""
    if name in LEGACY_RUNNERS:
        raise HwnasError(f"runner {name!r} is now {LEGACY_RUNNERS[name]!r}: precision is a property "
                         f"of the model file, and one runner measures every precision of its runtime")
    runtime, _, where = name.rpartition("-")
    ref = get_runtime(runtime).runner_ref(where) if runtime in runtime_names() and where in WHERE else None
    if ref is None:
        raise HwnasError(f"unknown runner {name!r}; allowed: {', '.join(runner_names())}")
    cls: type[Runner] = load_ref(ref)
    return cls


def default_runner_name(profile: DeviceProfile, runtime: str, precision: str | None = None) -> str:
    """``<runtime>-host`` for a local profile without a benchmark binary, else ``<runtime>-adb``;
    ``precision`` (default fp32) must be one the profile lists for ``runtime``."""
    rt = profile.runtime(runtime)
    rt.check_precision(precision)
    where = "host" if profile.is_local and rt.binary is None else "adb"
    name = f"{runtime}-{where}"
    if get_runtime(runtime).runner_ref(where) is None:
        raise HwnasError(f"runtime {runtime!r} has no {where} runner, which profile {profile.name!r} "
                         f"needs; runners: {', '.join(runner_names())}")
    return name


def create_runner(name: str, profile: DeviceProfile, transport: Any = None, **options: Any) -> Runner:
    """Build runner ``name`` for ``profile``.

    Device runners (``*-adb``) need an open ``transport`` (see ``profile.open_transport()``);
    host runners take none. ``options`` go to the runner (``sleep=``, ``clock=``, ``seed=``...).
    """
    cls = runner_class(name)
    runtime = cls.runtime
    profile.runtime(runtime)  # the profile must offer the runner's runtime
    if name.endswith("-adb"):
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


def open_runner(profile: DeviceProfile, runtime: str, precision: str | None = None,
                transport: Any = None) -> Runner:
    """The default runner of ``profile`` for ``runtime`` / ``precision``, with a transport opened
    from the profile when it needs one and none was given."""
    name = default_runner_name(profile, runtime, precision)
    if name.endswith("-adb"):
        return create_runner(name, profile, transport if transport is not None else profile.open_transport())
    return create_runner(name, profile)
