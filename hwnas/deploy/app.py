"""App-ready classifier files: NHWC image in, named probabilities (or logits) out, metadata inside.

:class:`AppModel` wraps a static subnet (NCHW, normalized input, logits out) in what an Android
app feeds and reads: ``[1, H, W, C]`` images, the normalization folded into the graph when the
input is integer (raw pixels), softmax on request. :func:`write_tflite` converts it with
litert-torch under the signature ``classify`` (input ``image``, output ``probabilities`` or
``logits``), optionally quantizes it to full integer (:mod:`hwnas.deploy.int8`), and embeds the
TFLite Model Metadata and the labels file (:mod:`hwnas.deploy.metadata`).
:func:`write_onnx` writes the same network with the same facts in ``metadata_props``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hwnas.deploy import tflite_file
from hwnas.deploy.metadata import LABELS_FILE, ModelFacts, build_metadata
from hwnas.errors import HwnasError
from hwnas.io import atomic_write

SIGNATURE = "classify"
INPUT_NAME = "image"
#: what the wrapped network's input tensor holds.
TAKES = ("normalized", "pixels", "uint8")


class AppModel(nn.Module):
    """``net`` behind an NHWC image input and an optional softmax.

    ``takes``: ``normalized`` (float, already ``(pixel/255 - mean) / std``), ``pixels`` (float
    0..255, normalization in the graph; the float form of a quantized integer input) or ``uint8``
    (uint8 0..255, cast and normalized in the graph).
    """

    def __init__(self, net: nn.Module, mean, std, *, takes: str = "normalized", softmax: bool = True,
                 output_name: str | None = None) -> None:
        super().__init__()
        if takes not in TAKES:
            raise HwnasError(f"unknown input form {takes!r}; allowed: {', '.join(TAKES)}")
        self.net, self.takes, self.softmax, self.output_name = net.eval(), takes, softmax, output_name
        mean = torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.register_buffer("scale", 1.0 / (255.0 * std))
        self.register_buffer("shift", -mean / std)

    def forward(self, image: torch.Tensor):
        x = image.permute(0, 3, 1, 2)
        if self.takes != "normalized":
            x = x.float() * self.scale + self.shift
        y = self.net(x)
        if self.softmax:
            y = torch.softmax(y, dim=-1)
        return {self.output_name: y} if self.output_name else y


def takes_for(input_kind: str) -> str:
    """The :class:`AppModel` input form of a file input kind (``float``, ``uint8``, ``int8``)."""
    return {"float": "normalized", "uint8": "uint8", "int8": "pixels"}[input_kind]


def sample_image(facts: ModelFacts, takes: str, channels: int) -> torch.Tensor:
    shape = (1, facts.height, facts.width, channels)
    if takes == "uint8":
        return torch.zeros(shape, dtype=torch.uint8)
    return torch.zeros(shape)


def convert_tflite(module: nn.Module, sample: torch.Tensor) -> bytes:
    """litert-torch conversion of ``module(image=sample)`` under the ``classify`` signature."""
    import litert_torch

    from hwnas.runtimes.base import silenced

    with tempfile.TemporaryDirectory(prefix="hwnas-app-") as tmp, silenced():
        path = Path(tmp) / "model.tflite"
        litert_torch.signature(SIGNATURE, module.eval(), sample_kwargs={INPUT_NAME: sample}).convert() \
            .export(str(path))
        return path.read_bytes()


def finish_tflite(buf: bytes, facts: ModelFacts) -> bytes:
    """Name the signature and tensors, then embed the metadata and the labels file."""
    model = tflite_file.load(buf)
    tflite_file.name_io(model, signature=SIGNATURE, input_name=INPUT_NAME, output_name=facts.output)
    named = tflite_file.dump(model)
    meta = build_metadata(facts, INPUT_NAME, facts.output)
    return tflite_file.embed_metadata(named, meta, {LABELS_FILE: facts.labels_text().encode()})


def write_tflite(net: nn.Module, path: str | Path, facts: ModelFacts, *, channels: int = 3,
                 quant: str = "none", calib: np.ndarray | None = None, calibration: str = "minmax") -> Path:
    """Write the app-ready ``.tflite`` of ``net`` at ``path`` (atomically) and return the path.

    ``quant="int8"`` makes a full-integer model whose input and output are ``facts.input``
    (``uint8`` / ``int8``: raw pixels with the normalization folded in; ``float``: the normalized
    image), calibrated on ``calib`` (NHWC images in the input form, see :func:`calibration_images`)
    with the ``calibration`` range rule of :func:`hwnas.deploy.int8.full_integer`.
    The int8 graph writes the PACT clips of a mixed-precision subnet in the ``relu6`` form
    (:func:`hwnas.quant.blocks.with_clip_form`), which the quantizer covers.
    """
    if quant not in ("none", "int8"):
        raise HwnasError(f"--quant {quant!r} is not allowed for an app model; use none or int8")
    if quant == "none":
        takes = takes_for(facts.input)
        if facts.input == "int8":
            raise HwnasError("--input int8 needs --quant int8 (a float model takes float or uint8 images)")
        module = AppModel(net, facts.mean, facts.std, takes=takes, softmax=facts.output == "probabilities",
                          output_name=facts.output)
        buf = convert_tflite(module, sample_image(facts, takes, channels))
    else:
        from hwnas.deploy.int8 import full_integer
        from hwnas.quant.blocks import with_clip_form

        if calib is None or not len(calib):
            raise HwnasError("--quant int8 needs calibration images")
        takes = "normalized" if facts.input == "float" else "pixels"
        # PACT's frozen clips as MUL / ReLU6 (the quantizer has no int8 MINIMUM): same function
        module = AppModel(with_clip_form(net, "relu6"), facts.mean, facts.std, takes=takes, softmax=facts.output == "probabilities",
                          output_name=facts.output)
        float_buf = convert_tflite(module, sample_image(facts, takes, channels))
        buf = full_integer(float_buf, calib, io=facts.input, pixel_input=takes == "pixels", calibration=calibration)
    data = finish_tflite(buf, facts)
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def calibration_images(batches, facts: ModelFacts, limit: int) -> np.ndarray:
    """NHWC float images for int8 calibration from normalized NCHW batches: pixels 0..255 when the
    input is integer (normalization folded), else the normalized images themselves."""
    out = []
    mean = np.asarray(facts.mean, dtype=np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(facts.std, dtype=np.float32).reshape(1, -1, 1, 1)
    for b in batches:
        x = (b[0] if isinstance(b, (tuple, list)) else b).numpy()
        if facts.input != "float":
            x = np.clip(np.round((x * std + mean) * 255.0), 0, 255)
        out.extend(np.transpose(x, (0, 2, 3, 1)).astype(np.float32))
        if len(out) >= limit:
            break
    return np.stack(out[:limit])


def write_onnx(net: nn.Module, path: str | Path, facts: ModelFacts, *, channels: int = 3,
               extra: dict | None = None) -> Path:
    """The same app model as ONNX: input ``image`` (NHWC), output ``probabilities`` / ``logits``,
    ``facts`` (and ``extra``) in ``metadata_props`` as ``hwnas.*`` entries."""
    import onnx

    from hwnas.export import export_onnx

    if facts.input == "int8":
        raise HwnasError("--input int8 exists for the full-integer TFLite model only")
    takes = takes_for(facts.input)
    module = AppModel(net, facts.mean, facts.std, takes=takes, softmax=facts.output == "probabilities")
    path = Path(path)

    def write(tmp: Path) -> None:
        export_onnx(module, tmp, sample_image(facts, takes, channels),
                    {**(extra or {}), **facts.to_dict()})
        proto = onnx.load(str(tmp))
        _rename_onnx_io(proto, INPUT_NAME, facts.output)
        proto.doc_string = facts.description
        onnx.checker.check_model(proto, full_check=True)
        onnx.save(proto, str(tmp))

    return atomic_write(path, write)


def _rename_onnx_io(proto, input_name: str, output_name: str) -> None:
    g = proto.graph
    renames = {g.input[0].name: input_name, g.output[0].name: output_name}
    for value in (*g.input, *g.output):
        value.name = renames.get(value.name, value.name)
    for node in g.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]


__all__ = ["AppModel", "SIGNATURE", "calibration_images", "convert_tflite", "finish_tflite",
           "write_onnx", "write_tflite"]


def app_inputs(images: np.ndarray, facts: ModelFacts, dtype) -> np.ndarray:
    """Normalized NCHW images (as the datasets give them) in the form the file's input takes:
    normalized NHWC floats, or raw pixels (uint8 0..255 / int8 pixel - 128)."""
    x = np.transpose(np.asarray(images, dtype=np.float32), (0, 2, 3, 1))
    if facts.input == "float":
        return x.astype(dtype)
    mean = np.asarray(facts.mean, dtype=np.float32)
    std = np.asarray(facts.std, dtype=np.float32)
    pixels = np.clip(np.round((x * std + mean) * 255.0), 0, 255)
    return (pixels - 128).astype(np.int8) if np.dtype(dtype) == np.int8 else pixels.astype(dtype)


def run_app_tflite(path: str | Path, images: np.ndarray, facts: ModelFacts, threads: int = 1) -> np.ndarray:
    """Scores (float, dequantized) of an app-ready ``.tflite`` for normalized NCHW ``images``,
    one invoke per image through the ``classify`` signature."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=threads)
    runner = interp.get_signature_runner(SIGNATURE)
    details = runner.get_input_details()[INPUT_NAME]
    out_q = runner.get_output_details()[facts.output]["quantization"]
    x = app_inputs(images, facts, details["dtype"])
    outs = []
    for xi in x:
        y = runner(**{INPUT_NAME: xi[None]})[facts.output]
        if np.issubdtype(y.dtype, np.integer):
            y = (y.astype(np.float32) - out_q[1]) * out_q[0]
        outs.append(y.astype(np.float32))
    return np.concatenate(outs)
