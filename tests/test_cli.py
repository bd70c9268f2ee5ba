"""The CLI end to end, in process: outputs, files and one-line errors with exit code 2."""

import json

import numpy as np
import pytest
import torch

from conftest import run_cli, tiny_space
from hwnas.checkpoint import save_checkpoint
from hwnas.export import read_onnx_metadata
from hwnas.runtimes import invoke
from hwnas.supernet import build_supernet, materialize

TINY = ["--width", "0.25", "--resolution", "32", "--num-classes", "10"]



def test_spaces_lists_exact_sizes(capsys):
    code, out, _ = run_cli(["spaces", "--json"], capsys)
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert int(rows["mbv2"]["size"]) == 6**6 * 7**15
    assert int(rows["shufflenetv2"]["size"]) == 32**20
    assert int(rows["mbv2"]["paper_size"]) == 7**21 and rows["shufflenetv2"]["paper_size"] is None


def test_arch_sample_json_is_seeded(capsys):
    _, a, _ = run_cli(["arch", "sample", "-s", "mbv2", "-n", "4", "--seed", "3", "--json"], capsys)
    _, b, _ = run_cli(["arch", "sample", "-s", "mbv2", "-n", "4", "--seed", "3", "--json"], capsys)
    _, c, _ = run_cli(["arch", "sample", "-s", "mbv2", "-n", "4", "--seed", "4", "--json"], capsys)
    assert a == b != c
    data = json.loads(a)
    assert len(data["archs"]) == 4 and all(len(r["genes"]) == 21 for r in data["archs"])
    assert all(r["macs"] > 0 for r in data["archs"])


def test_arch_show_decodes_and_costs(capsys, tmp_path):
    s = tiny_space("mbv2")
    g = s.largest()
    f = tmp_path / "g.json"
    f.write_text(json.dumps({"genes": list(g)}))
    code, out, _ = run_cli(["arch", "show", "-s", "mbv2", "-g", f"@{f}", "--json", *TINY], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["blocks"][0]["choice"] == "k7e6"
    from hwnas.cost import arch_costs
    assert data["costs"]["macs"] == arch_costs(s, g).macs
    code, out, _ = run_cli(["arch", "show", "-s", "mbv2", "-g", ",".join(map(str, g))], capsys)
    assert code == 0 and "MACs" in out and "BitOps" in out


@pytest.mark.parametrize("args,message", [
    (["arch", "show", "-s", "mbv2", "-g", "1,2,3"], "space 'mbv2' takes 21 genes, got 3"),
    (["arch", "show", "-s", "mbv2", "-g", ",".join(["0"] * 20 + ["9"])], "gene 20 (layer20) of space 'mbv2' is 9; allowed range is 0..5"),
    (["arch", "show", "-s", "resnet99", "-g", "1"], "unknown search space 'resnet99'; known spaces: fbnet, mbv2"),
    (["arch", "show", "-s", "mbv2", "-g", "1,x,3"], "gene 'x' is not an integer"),
    (["arch", "show", "-s", "mbv2", "-g", "@/nonexistent/genes.json"], "genes file /nonexistent/genes.json does not exist"),
    (["arch", "sample", "-s", "mbv2", "--width", "-1"], "--width must be > 0, got -1"),
])
def test_errors_are_one_line_exit_2(args, message, capsys):
    code, out, err = run_cli(args, capsys)
    assert code == 2
    assert message in " ".join(err.split())
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2


def _supernet_ckpt(tmp_path, name="mbv2"):
    s = tiny_space(name)
    net = build_supernet(s)
    path = save_checkpoint(tmp_path / f"{name}.pt", kind="supernet", space=s, model_state=net.state_dict())
    return s, net, path


def test_export_errors(capsys, tmp_path):
    s, _, path = _supernet_ckpt(tmp_path, "shufflenetv2")
    genes = ",".join(map(str, s.smallest()))
    code, _, err = run_cli(["export", "-s", "mbv2", "-g", genes, "--checkpoint", str(path), "-o", str(tmp_path)], capsys)
    assert code == 2 and "is for space 'shufflenetv2', not 'mbv2'" in err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 100)
    code, _, err = run_cli(["export", "-g", genes, "--checkpoint", str(bad), "-o", str(tmp_path)], capsys)
    assert code == 2 and "cannot read checkpoint" in err
    code, _, err = run_cli(["export", "-g", genes, "-o", str(tmp_path)], capsys)
    assert code == 2 and "--space is required" in err
    code, _, err = run_cli(["export", "-s", "shufflenetv2", "-g", genes, "-o", str(tmp_path), "-f", "pb", *TINY], capsys)
    assert code == 2 and "--format 'pb' is not allowed" in err
    assert not list(tmp_path.glob("model.*"))  # nothing written on bad input


@pytest.mark.slow
def test_export_from_supernet_checkpoint(capsys, tmp_path, rng):
    s, net, path = _supernet_ckpt(tmp_path)
    g = s.sample(rng)
    out_dir = tmp_path / "out"
    code, out, err = run_cli(["export", "-g", ",".join(map(str, g)), "--checkpoint", str(path),
                          "-f", "onnx", "-o", str(out_dir)], capsys)
    assert code == 0, err
    meta = read_onnx_metadata(out_dir / "model.onnx")
    assert meta["genes"] == list(g) and meta["source_checkpoint"] == str(path)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        ref = materialize(net.eval(), g)(x).numpy()
    assert np.abs(invoke(out_dir / "model.onnx", x.numpy()) - ref).max() <= 1e-4
    manifest = json.loads((out_dir / "model.export.json").read_text())
    assert manifest["results"][0]["max_abs_diff"] <= 1e-4
