"""What a runtime backend is: :class:`RuntimeSpec`, one frozen record per runtime, and the
precision axis.

A runtime (LiteRT / TFLite, onnxruntime, ...) is everything hwnas needs to export a model for it,
run that model on this computer to check it against torch, measure it on this computer and on a
device, and explain how to get its benchmark tool. The heavy parts (converters, interpreters,
runner classes, the tool-output parser) are named by ``"module:attribute"`` references and
imported only when used, so that listing runtimes or validating a device profile imports neither
torch nor a runtime package.

Precision is an axis of its own, not part of a runtime's name: a runtime lists the precisions it
can export and run (``fp32``, ``int8``); the same runners measure every precision (an int8
``.tflite`` file runs in the same interpreter and ``benchmark_model`` as a float one).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from hwnas.errors import HwnasError

PRECISIONS: tuple[str, ...] = ("fp32", "int8", "mixed")
"""``fp32``: float weights and activations. ``int8``: full-integer post-training quantization.
``mixed``: k-bit weights stored in int8 containers (the runtimes have no kernels below 8 bits, so
a mixed-precision model runs the int8 kernels: its latency is measured with precision ``int8``)."""
DEFAULT_PRECISION = "fp32"
#: where a runner measures: ``host`` (in this process) or ``adb`` (a benchmark tool through a transport)
WHERE: tuple[str, ...] = ("host", "adb")


def load_ref(ref: str) -> Any:
    """Import ``"package.module:attribute"`` and return the attribute."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not attr:
        raise HwnasError(f"bad reference {ref!r}: expected 'package.module:attribute'")
    return getattr(importlib.import_module(module_name), attr)


@dataclass(frozen=True)
class RuntimeSpec:
    """One runtime backend. References are ``"module:attribute"`` strings, imported on use.

    Signatures of the referenced callables:

    * ``export(model, path, sample, metadata) -> Path``: the deployable float file, with ``metadata``
      stored the runtime's way (ONNX ``metadata_props``, a TFLite ``<file>.json`` sidecar);
    * ``latency_exporters[precision](model, sample, path) -> Path``: a model file for latency
      measurement (one op or a whole subnet; no metadata, fastest converter settings);
    * ``invoke(path, x, threads=1) -> np.ndarray``: outputs for a float batch ``x`` (the model is
      exported at batch 1, so one call per image; integer inputs and outputs are (de)quantized);
    * ``host_runner`` / ``device_runner``: :class:`hwnas.runners.base.Runner` subclasses;
    * ``parser(text, source=...)``: the device tool's output parser.
    """

    name: str
    title: str
    suffix: str
    delegates: tuple[str, ...]
    precisions: tuple[str, ...]
    export: str
    latency_exporters: Mapping[str, str]
    invoke: str
    host_runner: str | None
    device_runner: str | None
    parser: str | None
    device_tool: str | None
    host_package: str
    build_hint: str
    binary_urls: Mapping[str, str] = field(default_factory=dict)
    #: rough seconds to export one one-op model, per precision (``hwnas profile --dry-run``)
    export_estimate_s: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = [p for p in self.precisions if p not in PRECISIONS]
        if bad or set(self.latency_exporters) - set(self.precisions):
            raise ValueError(f"runtime {self.name!r}: precisions {self.precisions} must be among "
                             f"{PRECISIONS} and cover every latency exporter")
        if not self.suffix.startswith("."):
            raise ValueError(f"runtime {self.name!r}: suffix {self.suffix!r} must start with '.'")

    def check_precision(self, precision: str | None) -> str:
        """``precision`` (default fp32) after checking this runtime can export and run it."""
        chosen = precision or DEFAULT_PRECISION
        if chosen not in self.precisions:
            raise HwnasError(f"runtime {self.name!r} has no precision {chosen!r}; allowed: "
                             f"{', '.join(self.precisions)}")
        return chosen

    def latency_exporter(self, precision: str | None = None) -> Callable[..., Any]:
        """The function that writes a latency-measurement model at ``precision``."""
        chosen = self.check_precision(precision)
        ref = self.latency_exporters.get(chosen)
        if ref is None:
            raise HwnasError(f"runtime {self.name!r} cannot export {chosen} models for latency "
                             f"measurement; allowed: {', '.join(self.latency_exporters)}")
        return load_ref(ref)

    def runner_ref(self, where: str) -> str | None:
        """The runner class reference for ``where`` (``host`` / ``adb``), or None."""
        if where not in WHERE:
            raise HwnasError(f"unknown runner location {where!r}; allowed: {', '.join(WHERE)}")
        return self.host_runner if where == "host" else self.device_runner

    def tag(self, precision: str | None = None) -> str:
        """File-name tag of a (runtime, precision) pair: ``tflite``, ``tflite-int8``."""
        chosen = self.check_precision(precision)
        return self.name if chosen == DEFAULT_PRECISION else f"{self.name}-{chosen}"


@contextlib.contextmanager
def silenced() -> Iterator[None]:
    """Silence converters that print progress, at the Python level and on file descriptors 1 and 2
    (litert's C++ writer logs there). Errors still propagate as exceptions."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)
