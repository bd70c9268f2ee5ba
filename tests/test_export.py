"""Real exports: onnx.checker, onnxruntime and the LiteRT interpreter against torch."""

import json

import numpy as np
import onnx
import pytest
import torch

from conftest import tiny_space
from hwnas.export import PARITY_TOL, export_model, manifest_path, read_onnx_metadata, sidecar_path
from hwnas.runtimes import invoke
from hwnas.supernet import build_supernet, materialize, recalibrate_bn


def _trained_like_subnet(name, rng):
    """A materialized subnet with non-trivial BN statistics (recalibrated on random data)."""
    s = tiny_space(name)
    net = build_supernet(s)
    g = s.sample(rng)
    sub = materialize(net, g)
    recalibrate_bn(sub, [torch.randn(8, 3, 32, 32) * 2 for _ in range(2)])
    return s, g, sub


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mbv2-se", "shufflenetv2"])
def test_export_both_formats_with_parity_and_metadata(name, rng, tmp_path):
    s, g, sub = _trained_like_subnet(name, rng)
    meta = sub.metadata()
    results = export_model(sub, tmp_path, resolution=32, metadata=meta)
    assert [r.format for r in results] == ["onnx", "tflite"]
    for r in results:
        assert r.max_abs_diff is not None and r.max_abs_diff <= PARITY_TOL
        assert r.size_bytes > 1000
    onnx_path = tmp_path / "model.onnx"
    onnx.checker.check_model(onnx.load(str(onnx_path)), full_check=True)
    m = read_onnx_metadata(onnx_path)
    assert m["genes"] == list(g) and m["space"]["name"] == name and m["hwnas_version"]
    side = json.loads(sidecar_path(tmp_path / "model.tflite").read_text())
    assert side["genes"] == list(g) and side["space"] == s.config()
    manifest = json.loads(manifest_path(tmp_path).read_text())  # written by export_model itself
    assert manifest["genes"] == list(g)
    assert [(r["format"], r["path"]) for r in manifest["results"]] == [(r.format, r.path) for r in results]
    # independent check on a fresh input, batch 1, both runtimes
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        ref = sub(x).numpy()
    assert np.abs(invoke(onnx_path, x.numpy()) - ref).max() <= PARITY_TOL
    assert np.abs(invoke(tmp_path / "model.tflite", x.numpy()) - ref).max() <= PARITY_TOL
    # the exported models discriminate inputs (not a constant graph)
    y2 = invoke(onnx_path, (x * 3).numpy())
    assert np.abs(y2 - invoke(onnx_path, x.numpy())).max() > 1e-4


def test_export_rejects_unknown_format(tmp_path, rng):
    from hwnas.errors import HwnasError

    _, _, sub = _trained_like_subnet("mbv2", rng)
    with pytest.raises(HwnasError, match="unknown runtime 'coreml'; allowed: onnx, tflite"):
        export_model(sub, tmp_path, formats=("coreml",), resolution=32)


def test_parity_failure_is_reported(tmp_path, rng):
    """A model whose export differs from torch (tolerance 0 here) is an error naming the file."""
    from hwnas.errors import HwnasError

    _, _, sub = _trained_like_subnet("mbv2", rng)
    with pytest.raises(HwnasError, match=r"model.onnx: onnx output differs from torch"):
        export_model(sub, tmp_path, formats=("onnx",), resolution=32, tolerance=-1.0)
