"""Full-integer int8 TFLite models with ai-edge-quantizer (static int8 weights and activations).

The float app model (litert-torch) is quantized by ai-edge-quantizer's ``static_wi8_ai8`` recipe
(every op it supports: int8 per-channel weights, int8 activations from min / max calibration),
which quantizes the residual ``ADD``\\ s, the pooling and the softmax too and leaves int8 graph
inputs and outputs: no float compute op remains (:func:`hwnas.deploy.tflite_file.float_compute_ops`).

:func:`hwnas.deploy.tflite_file.set_io` then gives the model the inputs and outputs an app
wants (uint8 for the Task libraries and MediaPipe, int8, or float).

With an integer input the normalization is folded into the graph and the input's calibrated
range is pinned to the pixel range 0..255, so the input grid is the pixel grid (scale 1, zero
point 0 for uint8, -128 for int8): an app passes the raw pixels.

Calibration (``calibration``): ``minmax`` (default) keeps each activation's smallest and largest
value over all calibration images; ``ema`` is the quantizer's own default, a moving average of the
per-image extremes (smoothing 0.95, so the last ~20 images set the range and the others' larger
values saturate). The measured agreement of both is in docs/benchmarks.md ("Deployment int8").
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from hwnas.deploy import tflite_file
from hwnas.errors import HwnasError


#: activation range rules (see the module docstring).
CALIBRATIONS = ("minmax", "ema")


def full_integer(float_buf: bytes, calib: np.ndarray, *, io: str = "uint8", pixel_input: bool = True,
                 signature: str = "classify", input_name: str = "image", calibration: str = "minmax") -> bytes:
    """Quantize a float TFLite model to full integer, calibrated on ``calib`` (NHWC images)."""
    from ai_edge_quantizer import calibrator, quantizer, recipe, recipe_manager
    from ai_edge_quantizer.utils import qsv_utils

    from hwnas.runtimes.base import silenced

    if io not in tflite_file.IO_TYPES:
        raise HwnasError(f"--io {io!r} is not allowed; use {', '.join(tflite_file.IO_TYPES)}")
    if calibration not in CALIBRATIONS:
        raise HwnasError(f"calibration {calibration!r} is not allowed; use {', '.join(CALIBRATIONS)}")
    if len(calib) == 0:
        raise HwnasError("full-integer quantization needs calibration images; none were given")
    with tempfile.TemporaryDirectory(prefix="hwnas-int8-") as tmp, silenced():
        src = Path(tmp) / "float.tflite"
        src.write_bytes(float_buf)
        rcp = recipe.static_wi8_ai8()
        q = quantizer.Quantizer(str(src))
        q.load_quantization_recipe(rcp)
        rules = recipe_manager.RecipeManager()
        rules.load_quantization_recipe(rcp)
        update = {"minmax": qsv_utils.min_max_update, "ema": qsv_utils.moving_average_update}[calibration]
        cal = calibrator.Calibrator(float_buf, num_threads=1, qsv_update_func=update)
        cal.calibrate({signature: [{input_name: x[None].astype(np.float32)} for x in calib]}, rules)
        qsv = cal.get_model_qsvs()
        if pixel_input:
            key = _input_tensor_name(float_buf)
            shape = np.asarray(qsv[key]["min"]).shape
            qsv[key] = {"min": np.zeros(shape, np.float32), "max": np.full(shape, 255.0, np.float32)}
        buf = bytes(q.quantize(qsv, enable_progress_report=False).quantized_model)
    model = tflite_file.load(buf)
    tflite_file.set_io(model, io)
    return tflite_file.dump(model)


def _input_tensor_name(buf: bytes) -> str:
    model = tflite_file.load(buf)
    sg = model.subgraphs[0]
    name = sg.tensors[int(sg.inputs[0])].name
    return name.decode() if isinstance(name, bytes) else name


__all__ = ["CALIBRATIONS", "full_integer"]
