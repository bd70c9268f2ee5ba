"""Registry of runtime backends by name (one :class:`~hwnas.runtimes.base.RuntimeSpec` each).

``runtime_names()`` lists them, ``get_runtime(name)`` returns one, ``resolve(name, precision)``
also reads the names older tables and commands used (``tflite-int8`` = runtime ``tflite`` at
precision ``int8``). Built-in runtimes are the modules of this package (all but
:data:`NOT_RUNTIMES`); each calls :func:`register_runtime` at import.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from hwnas.errors import HwnasError
from hwnas.runtimes.base import DEFAULT_PRECISION, PRECISIONS, RuntimeSpec, load_ref

#: modules of this package that are not runtimes; every other module registers one runtime
NOT_RUNTIMES: frozenset[str] = frozenset({"base", "registry"})
#: runtime names of older hwnas versions -> (runtime, precision)
LEGACY_NAMES: dict[str, tuple[str, str]] = {"tflite-int8": ("tflite", "int8")}

_RUNTIMES: dict[str, RuntimeSpec] = {}


def register_runtime(spec: RuntimeSpec) -> RuntimeSpec:
    """Make ``spec`` available under ``spec.name`` (a second registration of a name is refused)."""
    old = _RUNTIMES.get(spec.name)
    if old is not None and old != spec:
        raise ValueError(f"runtime {spec.name!r} is registered twice")
    _RUNTIMES[spec.name] = spec
    return spec


def builtin_modules() -> list[str]:
    """The runtime modules of this package (``hwnas.runtimes.onnx``, ...), in name order: adding
    a runtime is adding a module here."""
    here = Path(__file__).resolve().parent
    return [f"hwnas.runtimes.{m.name}" for m in sorted(pkgutil.iter_modules([str(here)]), key=lambda m: m.name)
            if m.name not in NOT_RUNTIMES and not m.name.startswith("_")]


def _load_builtin() -> None:
    for module in builtin_modules():
        importlib.import_module(module)


def runtime_names() -> list[str]:
    """Every registered runtime, in registration order (built-ins first)."""
    _load_builtin()
    return list(_RUNTIMES)


def get_runtime(name: str) -> RuntimeSpec:
    """The runtime called ``name``, or an error naming the allowed values (and, for a legacy name
    such as ``tflite-int8``, the runtime and precision to use instead)."""
    _load_builtin()
    spec = _RUNTIMES.get(name)
    if spec is not None:
        return spec
    if name in LEGACY_NAMES:
        rt, precision = LEGACY_NAMES[name]
        raise HwnasError(f"runtime {name!r} is now runtime {rt!r} at precision {precision!r} "
                         f"(--runtime {rt} --precision {precision})")
    raise HwnasError(f"unknown runtime {name!r}; allowed: {', '.join(_RUNTIMES)}")


def resolve(name: str, precision: str | None = None) -> tuple[RuntimeSpec, str]:
    """(runtime, precision) for a runtime name and an optional precision, checked against each
    other. Legacy names map to their pair (``tflite-int8`` -> ``tflite``, ``int8``); a legacy name
    with a different explicit precision is refused."""
    _load_builtin()
    if name in LEGACY_NAMES and name not in _RUNTIMES:
        rt, legacy_precision = LEGACY_NAMES[name]
        if precision not in (None, legacy_precision):
            raise HwnasError(f"runtime {name!r} means runtime {rt!r} at precision {legacy_precision!r}, "
                             f"which contradicts precision {precision!r}; name the pair instead: "
                             f"--runtime {rt} --precision {legacy_precision} (or {precision})")
        name, precision = rt, legacy_precision
    spec = get_runtime(name)
    return spec, spec.check_precision(precision)


def runtime_for_file(path: str | Path) -> RuntimeSpec:
    """The runtime whose model files end like ``path`` (``.tflite`` -> tflite)."""
    suffix = Path(path).suffix
    for name in runtime_names():
        if _RUNTIMES[name].suffix == suffix:
            return _RUNTIMES[name]
    allowed = ", ".join(f"{s.suffix} ({s.name})" for s in _RUNTIMES.values())
    raise HwnasError(f"{path}: no runtime runs {suffix or 'suffix-less'} files; allowed: {allowed}")


def invoke(path: str | Path, x: object, threads: int = 1):
    """Outputs of the model file ``path`` for the float batch ``x`` (numpy, NCHW), run by the
    runtime its suffix names, one image at a time; quantized inputs and outputs are converted.
    The one way hwnas runs an exported model outside a latency runner (parity, accuracy)."""
    import numpy as np

    spec = runtime_for_file(path)
    if not Path(path).is_file():
        raise HwnasError(f"model file {path} does not exist")
    return load_ref(spec.invoke)(Path(path), np.asarray(x, dtype=np.float32), threads)


__all__ = ["DEFAULT_PRECISION", "LEGACY_NAMES", "PRECISIONS", "get_runtime", "invoke",
           "register_runtime", "resolve", "runtime_for_file", "runtime_names"]
