"""Edits of a ``.tflite`` flatbuffer through the LiteRT schema's object API (``ai_edge_litert``).

* :func:`name_io` gives the signature and its input / output tensors names that say what they are;
* :func:`set_io` turns the int8 inputs / outputs of a full-integer model into uint8 or float by
  adding one ``QUANTIZE`` / ``DEQUANTIZE`` op at each end (what the TFLite converter's
  ``inference_input_type`` does);
* :func:`embed_metadata` stores a metadata flatbuffer under ``TFLITE_METADATA`` and packs the
  associated files (labels) as an uncompressed zip appended to the model, the layout the TFLite
  Support metadata populator writes (the file stays a valid model and a valid zip);
* :func:`float_compute_ops` lists the ops that still compute in floating point.
"""

from __future__ import annotations

import io
import zipfile
from collections import Counter
from typing import Any

import numpy as np

from hwnas.deploy.metadata import METADATA_NAME
from hwnas.errors import HwnasError

IO_TYPES = ("uint8", "int8", "float")
#: ops that only convert between representations at the graph boundary.
CONVERSION_OPS = ("QUANTIZE", "DEQUANTIZE")
_FLOAT_TYPES = ("FLOAT32", "FLOAT16", "FLOAT64", "BFLOAT16")


def _schema():
    from ai_edge_litert import schema_py_generated as fb

    return fb


def load(buf: bytes) -> Any:
    """The ``ModelT`` of a model; buffers stored after the flatbuffer (offset / size) are inlined."""
    fb = _schema()
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise HwnasError("not a TFLite model (no TFL3 file identifier)")
    model = fb.ModelT.InitFromPackedBuf(buf, 0)
    for b in model.buffers or []:
        if getattr(b, "offset", 0) > 1:
            b.data = np.frombuffer(buf, dtype=np.uint8, count=b.size, offset=b.offset).copy()
            b.offset, b.size = 0, 0
    return model


def dump(model: Any) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _names(enum_cls) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


def op_names(model: Any) -> list[str]:
    """The builtin (or custom) name of every op of the main subgraph, in order."""
    fb = _schema()
    names = _names(fb.BuiltinOperator)
    codes = model.operatorCodes
    out = []
    for op in model.subgraphs[0].operators:
        code = codes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        out.append(code.customCode.decode() if code.customCode else names.get(builtin, str(builtin)))
    return out


def op_counts(buf: bytes) -> Counter:
    return Counter(op_names(load(buf)))


def float_compute_ops(buf: bytes) -> list[str]:
    """Ops other than the boundary ``QUANTIZE`` / ``DEQUANTIZE`` that read or write a float tensor
    (weights and biases included): empty for a full-integer graph."""
    fb = _schema()
    model = load(buf)
    types = _names(fb.TensorType)
    sg = model.subgraphs[0]
    bad = []
    for name, op in zip(op_names(model), sg.operators):
        if name in CONVERSION_OPS:
            continue
        idx = [int(i) for i in [*(op.inputs if op.inputs is not None else []),
                                *(op.outputs if op.outputs is not None else [])] if i >= 0]
        if any(types[sg.tensors[i].type] in _FLOAT_TYPES for i in idx):
            bad.append(name)
    return bad


def _set_name(tensor: Any, name: str) -> None:
    tensor.name = name.encode() if isinstance(tensor.name, bytes) else name


def name_io(model: Any, *, signature: str, input_name: str, output_name: str) -> None:
    """One input and one output: name them (tensors and signature entries) and the signature."""
    sg = model.subgraphs[0]
    if len(sg.inputs) != 1 or len(sg.outputs) != 1:
        raise HwnasError(f"an image classifier has one input and one output; this model has "
                         f"{len(sg.inputs)} and {len(sg.outputs)}")
    _set_name(sg.tensors[int(sg.inputs[0])], input_name)
    _set_name(sg.tensors[int(sg.outputs[0])], output_name)
    for sig in model.signatureDefs or []:
        sig.signatureKey = signature
        for entry, name in ((sig.inputs[0], input_name), (sig.outputs[0], output_name)):
            entry.name = name


def _opcode(model: Any, builtin: int, version: int) -> int:
    fb = _schema()
    for i, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin and not code.customCode:
            code.version = max(code.version, version)
            return i
    code = fb.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), version
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _new_tensor(sg: Any, like: Any, ttype: int, zero_point_shift: int | None) -> int:
    """A copy of ``like`` (shape, name) of type ``ttype``: quantized with ``like``'s scale and its zero
    point shifted by ``zero_point_shift``, or float (``None``). Returns its index."""
    import copy

    fb = _schema()
    t = copy.deepcopy(like)
    t.type, t.buffer = ttype, 0
    if zero_point_shift is None:
        t.quantization = None
    else:
        t.quantization.zeroPoint = [int(z) + zero_point_shift for z in like.quantization.zeroPoint]
    sg.tensors.append(t)
    return len(sg.tensors) - 1


def set_io(model: Any, io_type: str) -> None:
    """Make a full-integer model with int8 input and output take and give ``io_type`` tensors.

    ``uint8``: same scale, zero point + 128, one ``QUANTIZE`` (requantize) op at each end;
    ``float``: ``QUANTIZE`` float -> int8 in, ``DEQUANTIZE`` int8 -> float out; ``int8``: unchanged.
    """
    if io_type not in IO_TYPES:
        raise HwnasError(f"--io {io_type!r} is not allowed; use {', '.join(IO_TYPES)}")
    fb = _schema()
    sg = model.subgraphs[0]
    i_old, o_old = int(sg.inputs[0]), int(sg.outputs[0])
    for idx, what in ((i_old, "input"), (o_old, "output")):
        if sg.tensors[idx].type != fb.TensorType.INT8:
            raise HwnasError(f"the quantized model's {what} is not int8; cannot set --io {io_type}")
    if io_type == "int8":
        return
    quant = _opcode(model, fb.BuiltinOperator.QUANTIZE, 2)
    if io_type == "uint8":
        i_new = _new_tensor(sg, sg.tensors[i_old], fb.TensorType.UINT8, 128)
        o_new = _new_tensor(sg, sg.tensors[o_old], fb.TensorType.UINT8, 128)
        out_code = quant
    else:
        i_new = _new_tensor(sg, sg.tensors[i_old], fb.TensorType.FLOAT32, None)
        o_new = _new_tensor(sg, sg.tensors[o_old], fb.TensorType.FLOAT32, None)
        out_code = _opcode(model, fb.BuiltinOperator.DEQUANTIZE, 2)

    def op(code: int, src: int, dst: int) -> Any:
        o = fb.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = code, [src], [dst]
        return o

    sg.operators.insert(0, op(quant, i_new, i_old))
    sg.operators.append(op(out_code, o_old, o_new))
    sg.inputs, sg.outputs = [i_new], [o_new]
    for sig in model.signatureDefs or []:
        for entry, old, new in ((sig.inputs[0], i_old, i_new), (sig.outputs[0], o_old, o_new)):
            if entry.tensorIndex == old:
                entry.tensorIndex = new
    # the boundary tensors keep the public names; the inner ones get a suffix
    for old, new in ((i_old, i_new), (o_old, o_new)):
        name = sg.tensors[old].name
        name = name.decode() if isinstance(name, bytes) else name
        _set_name(sg.tensors[new], name)
        _set_name(sg.tensors[old], f"{name}_int8")


def embed_metadata(buf: bytes, metadata: bytes, files: dict[str, bytes]) -> bytes:
    """``buf`` with ``metadata`` under ``TFLITE_METADATA`` and ``files`` zipped (stored) after it."""
    fb = _schema()
    model = load(buf)
    model.buffers.append(fb.BufferT())
    model.buffers[-1].data = np.frombuffer(metadata, dtype=np.uint8)
    entry = fb.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if _decode(m.name) != METADATA_NAME] + [entry]
    out = io.BytesIO(dump(model))
    out.seek(0, io.SEEK_END)
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # reproducible bytes
            zf.writestr(info, data)
    return out.getvalue()


def _decode(name: Any) -> str:
    return name.decode() if isinstance(name, bytes) else str(name)


def read_metadata_buffer(buf: bytes) -> bytes | None:
    """The raw ``TFLITE_METADATA`` flatbuffer of a model, if it has one."""
    model = load(buf)
    for m in model.metadata or []:
        if _decode(m.name) == METADATA_NAME:
            return bytes(np.asarray(model.buffers[m.buffer].data, dtype=np.uint8))
    return None


def associated_files(buf: bytes) -> dict[str, bytes]:
    """The files zipped into a model (labels), by name."""
    try:
        with zipfile.ZipFile(io.BytesIO(buf)) as zf:
            return {n: zf.read(n) for n in zf.namelist()}
    except zipfile.BadZipFile:
        return {}


__all__ = ["IO_TYPES", "associated_files", "dump", "embed_metadata", "float_compute_ops", "load",
           "name_io", "op_counts", "op_names", "read_metadata_buffer", "set_io"]
