"""Runtime backends (LiteRT / TFLite, ONNX Runtime): one registered :class:`RuntimeSpec` per
runtime, the precision axis, and :func:`invoke`, which runs an exported model file."""

from hwnas.runtimes.base import DEFAULT_PRECISION, PRECISIONS, RuntimeSpec, load_ref
from hwnas.runtimes.registry import (
    LEGACY_NAMES,
    get_runtime,
    invoke,
    register_runtime,
    resolve,
    runtime_for_file,
    runtime_names,
)

__all__ = ["DEFAULT_PRECISION", "LEGACY_NAMES", "PRECISIONS", "RuntimeSpec", "get_runtime", "invoke",
           "load_ref", "register_runtime", "resolve", "runtime_for_file", "runtime_names"]
