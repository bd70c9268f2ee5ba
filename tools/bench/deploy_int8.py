"""Full-integer int8 (ai-edge-quantizer, app-ready) vs the PT2E int8 TFLite export, in one run.

For each model (a subnet trained briefly on ``digits``, 16 px, width 0.25) both int8 files are
made from the same weights and calibration images and run on the 270 test images with the LiteRT
interpreter: top-1 agreement with the torch model, accuracy, float compute ops left in the graph,
file size. Also the float app-ready file (float32, metadata inside) and the full-integer file
calibrated with ai-edge-quantizer's default moving average of per-image ranges instead of the
global min / max hwnas uses.

``--spaces`` instead converts the largest subnet of every registered space (width 0.25, 16 px,
32 px for resnet48; random weights with trained-looking PACT clips, BN statistics from random
images; uint8 I/O) and prints the float compute ops left in each full-integer file;
``--spaces mbv2:mish`` sets an activation (``--act``).

Usage: OMP_NUM_THREADS=1 python tools/bench/deploy_int8.py [--steps 300] [--spaces [SPACE[:ACT] ...]]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hwnas.data import load_data, take_batches  # noqa: E402
from hwnas.deploy import tflite_file  # noqa: E402
from hwnas.deploy.app import calibration_images, run_app_tflite, write_tflite  # noqa: E402
from hwnas.deploy.metadata import ModelFacts  # noqa: E402
from hwnas.quant.export import deployable, export_quantized  # noqa: E402
from hwnas.spaces import create_space  # noqa: E402
from hwnas.supernet import Subnet, recalibrate_bn  # noqa: E402

RES = 16
MODELS = {
    "mbv2 (plain)": ("mbv2", None),
    "resnet18-mp (mixed w1-w4 / a2-a4)": ("resnet18-mp", (1, 1, 2, 5, 0, 0, 1, 3, 1, 4, 2, 2, 1, 5, 0, 1)),
}


def train(space_name: str, genes, data, steps: int) -> Subnet:
    torch.manual_seed(0)
    s = create_space(space_name, width=0.25, resolution=RES, num_classes=10)
    sub = Subnet(s, genes if genes is not None else s.largest())
    batches = take_batches(data.train, 64, max_batches=20, seed=0)
    opt = torch.optim.SGD(sub.parameters(), lr=0.05, momentum=0.9)
    sub.train()
    for step in range(steps):
        x, y = batches[step % len(batches)]
        loss = torch.nn.functional.cross_entropy(sub(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    recalibrate_bn(sub, take_batches(data.train_clean, 64, max_batches=4, seed=0))
    return sub.eval()


def float_ops_per_space(names: list[str]) -> None:
    from hwnas.quant.quantizers import PACT
    from hwnas.spaces import space_names

    print("| space | float compute ops | ops | size |\n| --- | --- | --- | --- |")
    for entry in names or space_names():
        torch.manual_seed(0)
        name, _, act = entry.partition(":")
        res = 32 if name == "resnet48" else RES
        s = create_space(name, width=0.25, resolution=res, num_classes=10, **({"act": act} if act else {}))
        sub = Subnet(s, s.largest())
        for m in sub.modules():
            if isinstance(m, PACT):
                m.alpha.data.uniform_(1.5, 5.0)
        with torch.no_grad():  # BN statistics of random images, so no channel is constant
            for _ in range(3):
                sub(torch.randn(16, 3, res, res))
        facts = ModelFacts(name="bench", version="1", description="bench", labels=tuple("abcdefghij"),
                           mean=(0.5,) * 3, std=(0.25,) * 3, height=res, width=res, input="uint8")
        pixels = np.random.default_rng(0).integers(0, 256, (64, res, res, 3)).astype(np.float32)
        with tempfile.TemporaryDirectory() as tmp:
            path = write_tflite(deployable(sub.eval()), Path(tmp) / "m.tflite", facts, quant="int8", calib=pixels)
            buf = path.read_bytes()
        bad = tflite_file.float_compute_ops(buf)
        print(f"| {entry} | {len(bad)} | {', '.join(sorted(set(bad))) or '-'} | {len(buf) / 1024:.1f} KiB |",
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--spaces", nargs="*", default=None, metavar="SPACE[:ACT]")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.spaces is not None:
        float_ops_per_space(args.spaces)
        return
    data = load_data("digits", resolution=RES, in_channels=3)
    calib_b = take_batches(data.train_clean, 64, max_batches=4, seed=0)
    test_b = take_batches(data.test, 270)
    x, y = test_b[0]
    rows = []
    for label, (space_name, genes) in MODELS.items():
        sub = deployable(train(space_name, genes, data, args.steps))
        with torch.no_grad():
            ref = sub(x).argmax(1).numpy()
        float_acc = float((ref == y.numpy()).mean())
        with tempfile.TemporaryDirectory() as tmp:
            (old,) = export_quantized(sub, tmp, quant="int8", formats=("tflite",), calib=calib_b,
                                      eval_batches=test_b, resolution=RES)
            old_buf = Path(old.path).read_bytes()
            rows.append((label, "PT2E int8 (hwnas export --quant int8)", old.top1_agreement, old.accuracy,
                         float_acc, len(tflite_file.float_compute_ops(old_buf)), len(old_buf)))
            for kind in ("float", "int8", "int8-ema"):
                facts = ModelFacts(name="bench", version="1", description="bench", labels=data.labels(),
                                   mean=data.mean, std=data.std, height=RES, width=RES,
                                   input="float" if kind == "float" else "uint8")
                calib = calibration_images(calib_b, facts, 256) if kind != "float" else None
                path = write_tflite(sub, Path(tmp) / f"{kind}.tflite", facts,
                                    quant="none" if kind == "float" else "int8", calib=calib,
                                    calibration="ema" if kind == "int8-ema" else "minmax")
                got = run_app_tflite(path, x.numpy(), facts).argmax(1)
                buf = path.read_bytes()
                name = {"float": "app float32 (hwnas bundle)",
                        "int8": "app full-integer int8, uint8 I/O (hwnas bundle --quant int8)",
                        "int8-ema": "app full-integer int8, the quantizer's moving-average calibration"}[kind]
                rows.append((label, name, float((got == ref).mean()), float((got == y.numpy()).mean()),
                             float_acc, len(tflite_file.float_compute_ops(buf)), len(buf)))
    print(f"digits, {RES} px, width 0.25, {len(y)} test images, {args.steps} training steps\n")
    print("| model | file | top-1 agreement with torch | accuracy (torch -> file) | float compute ops | size |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, name, agree, acc, facc, nfloat, size in rows:
        print(f"| {label} | {name} | {100 * agree:.1f} % | {100 * facc:.1f} -> {100 * acc:.1f} % | "
              f"{nfloat} | {size / 1024:.1f} KiB |")


if __name__ == "__main__":
    main()
