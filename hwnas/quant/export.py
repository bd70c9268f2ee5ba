"""Quantized exports: int8 TFLite (litert-torch PT2E) and ONNX QDQ (onnxruntime), mixed precision
kept as k-bit weights in int8 containers plus per-layer bits in the metadata.

Which runtime executes which precision
--------------------------------------
* **TFLite (LiteRT CPU / XNNPACK)** and **onnxruntime CPU** execute int8 kernels: int8 weights
  (symmetric, per output channel; 7-bit in the ONNX model, see :func:`export_onnx_qdq`) and 8-bit
  activations (affine, per tensor). They have no 1-4 bit kernels. A layer searched at ``w_bits < 8`` runs as int8: its weights are fake-quantized to
  their k-bit grid before the export, so the int8 container holds at most ``2^k`` distinct levels
  per layer (the k-bit levels rescaled by the runtime's per-channel scale), and the bit widths are
  recorded per layer in the metadata (ONNX ``metadata_props`` key ``hwnas.layer_bits``, the TFLite
  sidecar ``<model>.tflite.json``) for runtimes or accelerators that can exploit them.
  Activations searched at ``a_bits < 8`` run at 8 bits: the export keeps PACT's learned clip
  (``clamp(x, 0, alpha)``) and lets the runtime's int8 quantizer pick the grid; rounding to
  ``2^a`` levels is not in the graph. Layers kept in full precision by the search (stem,
  classifier) are quantized to int8 too, like the rest of the graph.
* ``--quant int8`` quantizes the float network to int8 (post-training, calibrated); for a
  mixed-precision subnet the "float network" already has its weights on their k-bit grids (they
  *are* its weights), so both modes give the same numbers there. ``--quant mixed`` additionally
  requires per-layer bits (from the space, or ``--bits W,A`` applied to every searched block of
  a full-precision space) and refuses widths the int8 runtimes cannot hold (> 8).

The reference for parity is the *deployable* torch model (:func:`deployable`): weights baked at
their bits, activations clipped at the learned alphas, no activation rounding. Its accuracy is the
"float" accuracy; the accuracy of the training-time model (true ``a_bits`` rounding) is reported as
``fake_quant_accuracy``.

The int8 TFLite model has int8 inputs and outputs (scale / zero point in the tensor details;
hwnas.runtimes.invoke applies them); the ONNX QDQ model keeps float inputs and outputs
(QUInt8 activations, QInt8 per-channel weights in 7-bit range: onnxruntime's U8S8 path on x86).
"""

from __future__ import annotations

import copy
import json
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hwnas.errors import HwnasError
from hwnas.runtimes import invoke
from hwnas.runtimes.base import silenced
from hwnas.runtimes.onnx import export_onnx, read_onnx_metadata
from hwnas.runtimes.tflite import sidecar_path
from hwnas.io import atomic_write, atomic_write_json

QUANT_MODES = ("int8", "mixed")
#: format -> what produces its quantized model; a format missing here has no quantized path.
QUANTIZED_PATHS = {"onnx": "onnxruntime quantize_static (QDQ)", "tflite": "litert-torch PT2E int8"}
#: widest bit width an int8 runtime container holds.
MAX_RUNTIME_BITS = 8
RUNTIME_PRECISION = (
    "TFLite (LiteRT CPU/XNNPACK) and onnxruntime CPU execute int8 kernels (int8 per-channel weights, "
    "7-bit in ONNX QDQ models to avoid x86 U8S8 saturation; 8-bit activations); there are no 1-4 bit "
    "kernels. Weights searched below 8 bits are stored on "
    "their k-bit grid inside int8 containers; activations below 8 bits run at 8 bits after the "
    "learned PACT clip; layer_bits records the searched (w, a) bits of every layer.")
#: images used for calibration by default (post-training quantization needs a few hundred at most).
DEFAULT_CALIB_IMAGES = 64

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class QuantExportResult:
    """One quantized model file with its parity and accuracy against the deployable torch model."""

    format: str
    quant: str
    path: str
    seconds: float
    size_bytes: int
    n_images: int = 0
    max_abs_diff: float | None = None  # of the logits, runtime vs torch (deployable model)
    logit_range: float | None = None  # max |logit| of the torch model: the scale of max_abs_diff
    top1_agreement: float | None = None  # fraction of images with the same arg-max
    accuracy: float | None = None  # runtime top-1 on the labelled images
    float_accuracy: float | None = None  # torch deployable model
    accuracy_drop: float | None = None  # float - runtime, in percentage points
    fake_quant_accuracy: float | None = None  # torch model as trained (a_bits rounding)
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---- requests ------------------------------------------------------------------------------------
def parse_bits(text: str | None) -> tuple[int, int] | None:
    """``"4,8"`` -> (4, 8); None stays None. Widths must fit an int8 container (1..8)."""
    if text is None:
        return None
    parts = [p.strip() for p in str(text).split(",")]
    try:
        w, a = (int(p) for p in parts)
    except ValueError:
        raise HwnasError(f"--bits must be W,A (two integers, e.g. 4,8), got {text!r}") from None
    for what, b in (("weight", w), ("activation", a)):
        if not 1 <= b <= MAX_RUNTIME_BITS:
            raise HwnasError(f"--bits {text}: {what} bits {b} cannot run on the int8 runtimes "
                             f"(onnxruntime, TFLite); allowed: 1..{MAX_RUNTIME_BITS}")
    return w, a


def check_quant_request(quant: str, formats: Sequence[str], bits: tuple[int, int] | None = None) -> None:
    """Refuse unknown modes, formats without a quantized path and ``bits`` outside 1..8."""
    if quant not in QUANT_MODES:
        raise HwnasError(f"unknown quantization {quant!r}; allowed: {', '.join(QUANT_MODES)}")
    for fmt in formats:
        if fmt not in QUANTIZED_PATHS:
            raise HwnasError(f"format {fmt!r} has no quantized export path; quantized formats: "
                             f"{', '.join(QUANTIZED_PATHS)}")
    if bits is not None:
        if quant != "mixed":
            raise HwnasError("--bits W,A applies to --quant mixed only")
        parse_bits(",".join(map(str, bits)))


def layer_bits(model: nn.Module) -> list[dict[str, Any]]:
    """Per executed op of a static subnet: index, op type, block, searched (w, a) bits, runtime dtype."""
    specs = getattr(model, "specs", None)
    if specs is None:
        return []
    return [{"index": i, "op": s.op, "block": s.block, "w_bits": s.w_bits, "a_bits": s.a_bits,
             "runtime": "int8"}
            for i, s in enumerate(specs)]


def has_low_bits(model: nn.Module) -> bool:
    return any(r["w_bits"] < 32 or r["a_bits"] < 32 for r in layer_bits(model))


# ---- the deployable model ------------------------------------------------------------------------
@torch.no_grad()
def deployable(model: nn.Module, bits: tuple[int, int] | None = None) -> nn.Module:
    """A copy of a static subnet in its export form (eval mode; ``model`` is not changed).

    Quantized blocks bake their weights at their ``w_bits`` and freeze their PACT clips
    (:meth:`hwnas.quant.blocks._QuantBlock.switch_to_deploy`). ``bits = (W, A)`` first sets every
    searched block to (W, A): quantized blocks through their spec, full-precision blocks (e.g.
    ``mbconv``) by fake-quantizing their conv / linear weights at W bits per output channel.
    """
    from hwnas.quant.baselines import with_block_bits
    from hwnas.quant.blocks import _QuantBlock, switch_to_deploy
    from hwnas.quant.quantizers import quantize_weight

    m = copy.deepcopy(model).eval()
    if bits is not None:
        if getattr(m, "specs", None) is None:
            raise HwnasError("--bits needs a static subnet of a search space")
        with_block_bits(m, *bits)
        for spec, op in zip(m.specs, m.ops):
            if spec.block >= 0 and not isinstance(op, _QuantBlock):
                for sub in op.modules():
                    if isinstance(sub, (nn.Conv2d, nn.Linear)):
                        sub.weight.copy_(quantize_weight(sub.weight, bits[0]))
    return switch_to_deploy(m)


# ---- writers -------------------------------------------------------------------------------------
def _calib_tensors(calib: Iterable[Any], limit: int) -> list[torch.Tensor]:
    out: list[torch.Tensor] = []
    for b in calib:
        x = b[0] if isinstance(b, (tuple, list)) else b
        for xi in x:
            out.append(xi[None].float())
            if len(out) >= limit:
                return out
    if not out:
        raise HwnasError("quantized export needs calibration images; none were given")
    return out


def export_tflite_int8(model: nn.Module, path: str | Path, sample: torch.Tensor,
                       calib: Sequence[torch.Tensor], metadata: dict[str, Any] | None = None) -> Path:
    """Full-integer int8 TFLite via litert-torch's PT2E path, calibrated on ``calib`` (batch-1 tensors).

    PT2EQuantizer with the symmetric int8 config (per-channel weights, histogram-calibrated
    activations) -> ``prepare_pt2e`` -> calibration -> ``convert_pt2e`` -> ``litert_torch.convert``.
    """
    import litert_torch
    from litert_torch.quantize import pt2e_quantizer as pq
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e import quantize_pt2e

    path = Path(path)
    model = model.eval()
    quantizer = pq.PT2EQuantizer().set_global(pq.get_symmetric_quantization_config(is_per_channel=True))
    with silenced():
        exported = torch.export.export(model, (sample,)).module()
        prepared = quantize_pt2e.prepare_pt2e(exported, quantizer)
        with torch.no_grad():
            for x in calib:
                prepared(x)
        converted = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
        edge = litert_torch.convert(converted, (sample,), quant_config=QuantConfig(pt2e_quantizer=quantizer))
        atomic_write(path, lambda tmp: edge.export(str(tmp)))
    if metadata is not None:
        atomic_write_json(sidecar_path(path), metadata)
    return path


def export_onnx_qdq(model: nn.Module, path: str | Path, sample: torch.Tensor,
                    calib: Sequence[torch.Tensor], metadata: dict[str, Any] | None = None,
                    reduce_range: bool = True) -> Path:
    """ONNX QDQ model: the float export (BN folded) quantized by ``onnxruntime.quantization.quantize_static``.

    Per-channel symmetric QInt8 weights, QUInt8 activations calibrated with MinMax on ``calib``;
    ``metadata`` is kept in ``metadata_props`` (``hwnas.*``) and ``onnx.checker`` must pass.

    ``reduce_range`` (default) stores weights in 7-bit containers (-64..63): onnxruntime's x86
    U8S8 kernels on CPUs without VNNI (AVX2) saturate their 16-bit intermediate sums with full
    8-bit weights, a large accuracy loss (figures in docs/quantization.md). Weights searched at up to 7 bits keep their
    exact levels; 8-bit (and full-precision) layers lose their last bit in the ONNX model.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self, input_name: str) -> None:
            self._it = iter([{input_name: x.numpy().astype(np.float32)} for x in calib])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="hwnas-qdq-") as tmp:
        float_path = Path(tmp) / "float.onnx"
        export_onnx(model.eval(), float_path, sample, metadata)

        def write(dst: Path) -> None:
            with silenced():
                quantize_static(str(float_path), str(dst), Reader("input"),
                                quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=reduce_range,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                calibrate_method=CalibrationMethod.MinMax)
            proto = onnx.load(str(dst))
            onnx.checker.check_model(proto, full_check=True)

        atomic_write(path, write)
    return path


def onnx_weight_levels(path: str | Path) -> dict[str, int]:
    """Distinct int8 values of every quantized weight initializer of an ONNX QDQ model, by the torch
    parameter name it came from (``ops.3.conv1.weight``)."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    out = {}
    for init in proto.graph.initializer:
        if init.name.endswith("_quantized") and init.data_type == onnx.TensorProto.INT8 and len(init.dims) > 1:
            out[init.name[: -len("_quantized")]] = int(np.unique(numpy_helper.to_array(init)).size)
    return out


# ---- parity and accuracy -------------------------------------------------------------------------
def _logits(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model(x).float().numpy()


def measure(path: str | Path, reference: nn.Module, batches: Sequence[Any],
            labelled: bool = True, trained: nn.Module | None = None) -> dict[str, Any]:
    """Parity and accuracy of a quantized model file against ``reference`` (torch) on ``batches``.

    ``batches`` yield ``(images, labels)`` (``labelled``) or images. Returns ``n_images``,
    ``max_abs_diff``, ``logit_range`` (max |torch logit|), ``top1_agreement`` and, when labelled, ``accuracy``, ``float_accuracy``,
    ``accuracy_drop`` (percentage points) and the ``trained`` model's ``fake_quant_accuracy``.
    """
    n = agree = hit = hit_ref = hit_trained = 0
    worst = scale = 0.0
    for b in batches:
        x, y = (b[0], b[1]) if isinstance(b, (tuple, list)) else (b, None)
        ref = _logits(reference, x)
        got = invoke(path, x.numpy())
        worst = max(worst, float(np.abs(got - ref).max()))
        scale = max(scale, float(np.abs(ref).max()))
        agree += int((got.argmax(1) == ref.argmax(1)).sum())
        if labelled and y is not None:
            yv = y.numpy()
            hit += int((got.argmax(1) == yv).sum())
            hit_ref += int((ref.argmax(1) == yv).sum())
            if trained is not None:
                hit_trained += int((_logits(trained, x).argmax(1) == yv).sum())
        n += len(x)
    res: dict[str, Any] = {"n_images": n, "max_abs_diff": worst, "logit_range": scale,
                           "top1_agreement": agree / max(n, 1)}
    if labelled and n:
        res.update(accuracy=hit / n, float_accuracy=hit_ref / n,
                   accuracy_drop=100.0 * (hit_ref - hit) / n)
        if trained is not None:
            res["fake_quant_accuracy"] = hit_trained / n
    return res


# ---- the entry point -----------------------------------------------------------------------------
def export_quantized(model: nn.Module, out_dir: str | Path, *, quant: str = "int8",
                     formats: Sequence[str] = ("onnx", "tflite"), calib: Iterable[Any],
                     eval_batches: Sequence[Any] | None = None, labelled: bool = True,
                     resolution: int, in_channels: int = 3, name: str = "model",
                     metadata: dict[str, Any] | None = None, bits: tuple[int, int] | None = None,
                     calib_images: int = DEFAULT_CALIB_IMAGES) -> list[QuantExportResult]:
    """Export a static subnet as int8 / mixed-precision TFLite and ONNX QDQ, then measure them.

    ``calib`` yields image batches (or ``(images, labels)``) for calibration (training images);
    ``eval_batches`` (a test split) gives the parity and, when ``labelled``, the accuracy drop.
    Files are ``<name>.int8.tflite`` / ``<name>.qdq.onnx`` (``mixed`` in place of ``int8`` /
    ``qdq`` for mixed precision) with the per-layer bits in their metadata.
    """
    check_quant_request(quant, formats, bits)
    if quant == "mixed" and bits is None:
        bad = [r for r in layer_bits(model) if 8 < r["w_bits"] < 32 or 8 < r["a_bits"] < 32]
        if bad:
            raise HwnasError(f"layer {bad[0]['index']} ({bad[0]['op']}) has w{bad[0]['w_bits']}"
                             f"a{bad[0]['a_bits']}: the int8 runtimes hold at most {MAX_RUNTIME_BITS} bits")
        if not has_low_bits(model):
            raise HwnasError("--quant mixed needs per-layer bits, but this subnet is full precision "
                             "(space without bit genes): pass --bits W,A or use --quant int8")
    deploy = deployable(model, bits)
    bits_rows = layer_bits(deploy)
    meta = {**(metadata or {}), "quant": quant, "layer_bits": bits_rows,
            "runtime_precision": RUNTIME_PRECISION}
    if bits is not None:
        meta["bits_override"] = list(bits)
    calib_x = _calib_tensors(calib, calib_images)
    sample = torch.zeros(1, in_channels, resolution, resolution)
    trained = model.eval() if has_low_bits(model) and bits is None else None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for fmt in formats:
        tag = "mixed" if quant == "mixed" else ("int8" if fmt == "tflite" else "qdq")
        path = out_dir / f"{name}.{tag}.{fmt}"
        t0 = time.perf_counter()
        if fmt == "tflite":
            export_tflite_int8(deploy, path, sample, calib_x, meta)
        else:
            export_onnx_qdq(deploy, path, sample, calib_x, meta)
        res = QuantExportResult(fmt, quant, str(path), time.perf_counter() - t0, path.stat().st_size,
                                metadata=meta)
        if eval_batches:
            for k, v in measure(path, deploy, eval_batches, labelled, trained).items():
                setattr(res, k, v)
        results.append(res)
    return results


def cli_data(data: str | None, checkpoint: str | Path | None, *, resolution: int, in_channels: int,
             num_classes: int, calib_images: int = DEFAULT_CALIB_IMAGES,
             max_test_images: int | None = None) -> tuple[list[Batch], list[Batch], bool, str]:
    """Calibration batches (training images), test batches, whether the labels fit the model, and
    the dataset name, for ``hwnas export --quant``: ``--data``, else the checkpoint's dataset, else
    ``digits``."""
    from hwnas.data import load_data, take_batches

    if data is None and checkpoint is not None:
        from hwnas.checkpoint import load_checkpoint

        data = (load_checkpoint(checkpoint).get("train_config") or {}).get("data")
    data = data or "digits"
    splits = load_data(data, resolution=resolution, in_channels=in_channels)
    bs = 32
    calib = take_batches(splits.train_clean, bs, max_batches=max(1, -(-calib_images // bs)), seed=0)
    max_batches = None if max_test_images is None else max(1, -(-max_test_images // bs))
    test = take_batches(splits.test, bs, max_batches=max_batches)
    return calib, test, splits.num_classes == num_classes, data


def metadata_bits(result: QuantExportResult) -> list[dict[str, Any]]:
    """The per-layer bits stored with an exported model (read back from the file's metadata)."""
    if result.format == "onnx":
        return read_onnx_metadata(result.path)["layer_bits"]
    return json.loads(sidecar_path(result.path).read_text(encoding="utf-8"))["layer_bits"]


__all__ = ["QUANT_MODES", "QUANTIZED_PATHS", "RUNTIME_PRECISION", "QuantExportResult", "check_quant_request",
           "cli_data", "deployable", "export_onnx_qdq", "export_quantized", "export_tflite_int8",
           "layer_bits", "measure", "metadata_bits", "onnx_weight_levels", "parse_bits"]


def export_int8_for_latency(model: nn.Module, sample: torch.Tensor, path: str | Path,
                            n_calib: int = 8, seed: int = 0) -> Path:
    """An int8 TFLite one-op (or end-to-end) model for latency measurement (runtime ``tflite`` at precision ``int8``).

    Quantized blocks are switched to their export form (weights on their k-bit grids); the
    activation ranges are calibrated on ``n_calib`` N(0, 1) inputs of ``sample``'s shape: latency does
    not depend on the values, only on the int8 kernels.
    """
    from hwnas.quant.blocks import switch_to_deploy

    gen = torch.Generator().manual_seed(seed)
    calib = [torch.randn(*sample.shape, generator=gen) for _ in range(n_calib)]
    m = switch_to_deploy(copy.deepcopy(model).eval())
    return export_tflite_int8(m, path, sample, calib, metadata=None)
