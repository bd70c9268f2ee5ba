"""Mixed-precision quantization (SPOS Sec. 4 "Mixed-Precision Quantization").

* :mod:`hwnas.quant.quantizers`: PACT activations and uniform symmetric weights, bits per call.
* :mod:`hwnas.quant.blocks`: quantized ResNet basic block (``basic``) and MBConv (``qmbconv``).
* :mod:`hwnas.quant.baselines`: uniform kWkA baselines and the accuracy / BitOps report.
* :mod:`hwnas.quant.export`: int8 TFLite (PT2E) and ONNX QDQ exports, k-bit weights in int8
  containers, per-layer bits in the model metadata.

The spaces ``resnet18-mp``, ``resnet34-mp`` and ``mbv2-mp`` live in :mod:`hwnas.spaces.resnet_mp`
and :mod:`hwnas.spaces.mbv2_mp`.
"""

from hwnas.quant.quantizers import ALLOWED_BITS, PACT, check_bits, pact, quantize_weight, weight_scale

__all__ = ["ALLOWED_BITS", "PACT", "check_bits", "pact", "quantize_weight", "weight_scale"]
