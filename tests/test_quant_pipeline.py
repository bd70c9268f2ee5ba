"""Mixed precision end to end on digits: QAT supernet training of resnet18-mp, a BitOps-constrained search
with inherited weights, and a mixed-precision export of the chosen subnet through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwnas.cli import main
from hwnas.cost import CostModel
from hwnas.export import read_onnx_metadata
from hwnas.search import build_problem
from hwnas.search.run import run_search
from hwnas.spaces import create_space
from hwnas.train.config import TrainConfig
from hwnas.train.loop import train_supernet


@pytest.mark.slow
def test_qat_train_bitops_search_and_mixed_export(tmp_path, capsys):
    cfg = TrainConfig(space="resnet18-mp", width=0.25, resolution=16, data="digits", strategy="uniform",
                      epochs=1, steps_per_epoch=4, batch_size=32, lr=0.05, workers=0)
    res = train_supernet(cfg, tmp_path / "run", torch_device="cpu", quiet=True)
    ckpt = tmp_path / "run" / "last.pt"
    assert res.steps == 4 and ckpt.exists()

    space = create_space("resnet18-mp", width=0.25, resolution=16, num_classes=10)
    bitops = CostModel(space)(space.sample_many(np.random.default_rng(0), 500))["searched_bitops"]
    budget = float(np.quantile(bitops, 0.3))
    setup = build_problem(checkpoint=ckpt, objectives="error,bitops", budgets={"searched_bitops": budget},
                          eval_batches=1, calib_batches=1, batch_size=64, eval_device="cpu")
    result = run_search(setup.problem, "nsga2", pop=6, gens=2, seed=0, out_dir=tmp_path / "search",
                        initial=setup.initial, progress=False)
    front = result.pareto_index
    assert len(front) >= 1
    assert (result.history.column("searched_bitops")[front] <= budget).all()
    best = result.best_genes
    assert CostModel(space)(np.asarray([best]))["searched_bitops"][0] <= budget

    out = tmp_path / "export"
    try:
        main(["export", "--checkpoint", str(ckpt), "-g", ",".join(map(str, best)), "--quant", "mixed",
              "--format", "onnx", "--out", str(out), "--calib-images", "32"])
        code = 0
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 0, err
    onnx_files = sorted(out.glob("*.onnx"))
    assert onnx_files
    meta = read_onnx_metadata(onnx_files[0])
    # the metadata records exactly the searched bits of every executed op
    want = [(o.op, o.w_bits, o.a_bits) for o in space.layers(best)]
    assert [(b["op"], b["w_bits"], b["a_bits"]) for b in meta["layer_bits"]] == want
    report = json.loads(next(out.glob("*.mixed.export.json")).read_text())
    assert report["results"][0]["format"] == "onnx"
