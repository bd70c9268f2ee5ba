"""``--genes @file`` with hwnas's own outputs, the one amount parser / formatter, and BitOps budgets
as SPOS counts them (searched blocks only)."""

import json

import numpy as np
import pytest

from conftest import run_cli, tiny_space
from hwnas.arch import parse_genes
from hwnas.cost import CostModel, arch_costs
from hwnas.errors import HwnasError
from hwnas.units import format_amount, parse_amount

TINY = ["--width", "0.25", "--resolution", "32", "--num-classes", "10"]


# ---- amounts -----------------------------------------------------------------------------------
@pytest.mark.parametrize("text,value", [("330M", 3.3e8), ("1.5g", 1.5e9), ("6.5e9", 6.5e9), ("12.5", 12.5),
                                        (" 20K ", 2e4), ("2T", 2e12), (".5M", 5e5)])
def test_parse_amount(text, value):
    assert parse_amount(text, "--max-macs") == pytest.approx(value)


@pytest.mark.parametrize("text,message", [("lots", "--max-macs 'lots' is not a number"), ("3X", "is not a number"),
                                          ("0", "--max-macs must be > 0, got 0"), ("-3M", "--max-macs must be > 0, got -3M"),
                                          ("nan", "must be a finite number"), ("1e999", "is too large")])
def test_parse_amount_errors(text, message):
    with pytest.raises(HwnasError, match=message):
        parse_amount(text, "--max-macs")


def test_zero_is_allowed_where_asked_and_format_round_trips():
    assert parse_amount("0", "--macs-range", allow_zero=True) == 0.0
    assert format_amount(3.302e8, "MACs") == "330.2M MACs"
    assert format_amount(1.44e6, digits=3) == "1.44M"
    assert format_amount(12.5, "ms") == "12.5 ms"
    assert format_amount(None) == "-"
    for v in (3.3e8, 1.5e9, 6.5e9, 2.5e12, 999.0):
        assert parse_amount(format_amount(v), "x") == pytest.approx(v, rel=1e-3)


# ---- genes files --------------------------------------------------------------------------------
def test_genes_from_arch_sample_json_with_an_index(tmp_path, capsys):
    code, out, _ = run_cli(["arch", "sample", "-s", "shufflenetv2", "-n", "3", "--seed", "5", "--json", *TINY], capsys)
    assert code == 0
    f = tmp_path / "archs.json"
    f.write_text(out)
    archs = json.loads(out)["archs"]
    s = tiny_space("shufflenetv2")
    assert parse_genes(f"@{f}#2", s) == tuple(archs[2]["genes"])
    code, out, _ = run_cli(["arch", "show", "-s", "shufflenetv2", "-g", f"@{f}#1", "--json", *TINY], capsys)
    assert code == 0 and json.loads(out)["genes"] == archs[1]["genes"]
    with pytest.raises(HwnasError, match=r"holds 3 architectures; pick one with @.*#K \(K = 0..2\)"):
        parse_genes(f"@{f}", s)
    with pytest.raises(HwnasError, match=r"holds 3 architectures; #3 is out of range \(use #0..#2\)"):
        parse_genes(f"@{f}#3", s)
    with pytest.raises(HwnasError, match="#x after genes file .* is not an entry number"):
        parse_genes(f"@{f}#x", s)
    with pytest.raises(HwnasError, match="is for space 'shufflenetv2', not 'mbv2'"):
        parse_genes(f"@{f}#0", tiny_space("mbv2"))


def test_genes_from_pareto_json_of_a_search(tmp_path, capsys):
    out_dir = tmp_path / "search"
    code, _, err = run_cli(["search", "--space", "mbv2", *TINY, "--objectives", "macs,params", "--pop", "8",
                            "--gens", "2", "--out", str(out_dir)], capsys)
    assert code == 0, err
    doc = json.loads((out_dir / "pareto.json").read_text())
    s = tiny_space("mbv2")
    last = len(doc["pareto"]) - 1
    assert parse_genes(f"@{out_dir / 'pareto.json'}#{last}", s) == tuple(doc["pareto"][last]["genes"])
    code, out, _ = run_cli(["arch", "show", "-s", "mbv2", "-g", f"@{out_dir / 'pareto.json'}#0", "--json", *TINY],
                           capsys)
    assert code == 0 and json.loads(out)["genes"] == doc["pareto"][0]["genes"]


@pytest.mark.parametrize("content,message", [
    ("{not json", "genes file .* is not valid JSON"),
    ('{"archs": []}', "holds no architectures"),
    ('{"archs": 3}', "'archs' must be a list of architectures"),
    ('{"model": "x"}', "holds no genes: expected a list of integers or an object with 'genes'"),
    ('[[0, 1], ["a"]]', "entry 1 of genes file .* must be a list of integers"),
    ('"3,0,6"', "holds str, expected a JSON object or a JSON list"),
    ('[0, NaN]', "NaN is not allowed"),
])
def test_bad_genes_files_are_named(tmp_path, content, message):
    f = tmp_path / "g.json"
    f.write_text(content)
    with pytest.raises(HwnasError, match=message):
        parse_genes(f"@{f}#1" if content.startswith("[[") else f"@{f}")


def test_genes_files_unreadable_or_folders_are_named(tmp_path):
    f = tmp_path / "g.json"
    f.write_bytes(b"\xff\xfe[0, 1]")
    with pytest.raises(HwnasError, match=r"genes file .*g.json is not UTF-8 text \(byte 0"):
        parse_genes(f"@{f}")
    with pytest.raises(HwnasError, match=r"genes file .* is a folder, not a file"):
        parse_genes(f"@{tmp_path}")


@pytest.mark.parametrize("text", ["--1,0", "\u0663,0", "1,\u00b2", "1_0,0", "+1,0", "0x1,0"])
def test_genes_on_the_command_line_are_ascii_integers(text):
    with pytest.raises(HwnasError, match=r"gene '.*' is not an integer \(digits 0-9"):
        parse_genes(text)


def test_genes_from_a_plain_list_and_an_export_manifest(tmp_path):
    s = tiny_space("mbv2")
    g = s.largest()
    plain, manifest = tmp_path / "plain.json", tmp_path / "model.export.json"
    plain.write_text(json.dumps(list(g)))
    manifest.write_text(json.dumps({"space": s.config(), "genes": list(g), "results": []}))
    assert parse_genes(f"@{plain}", s) == g == parse_genes(f"@{manifest}", s)


# ---- BitOps budgets of the searched blocks ------------------------------------------------------
def test_searched_bitops_exclude_the_full_precision_stem_and_classifier():
    s = tiny_space("resnet18-mp")
    g = s.largest()
    c = arch_costs(s, g)
    fixed = [op for op in s.layers(g) if op.block < 0]
    from hwnas.cost import op_costs
    assert c.bitops - c.searched_bitops == sum(op_costs(op).macs * 32 * 32 for op in fixed) > 0
    m = s.sample_many(np.random.default_rng(0), 50)
    vec = CostModel(s)(m)
    assert all(vec["searched_bitops"][i] == arch_costs(s, row).searched_bitops for i, row in enumerate(m))


def test_readme_bitops_search_runs_and_bounds_the_searched_blocks(tmp_path, capsys):
    """The README's command (ImageNet-sized resnet18-mp), at a small population."""
    out = tmp_path / "bitops"
    code, stdout, err = run_cli(["search", "--space", "resnet18-mp", "--objectives", "macs,bitops",
                                 "--max-bitops", "6.5e9", "--pop", "10", "--gens", "3", "--json",
                                 "--out", str(out)], capsys)
    assert code == 0, err
    doc = json.loads(stdout)
    assert doc["constraints"] == [{"name": "searched_bitops", "unit": "BitOps", "budget": 6.5e9}]
    assert doc["pareto"]
    for row in doc["pareto"]:
        m = row["metrics"]
        assert m["searched_bitops"] <= 6.5e9 < m["bitops"]  # total BitOps (stem at 32 x 32) are reported
    code, _, err = run_cli(["search", "--space", "resnet18-mp", "--max-bitops", "1e9", "--out", str(tmp_path / "x")],
                           capsys)
    assert code == 2 and "searched_bitops <= 1G BitOps is below the cheapest architecture" in " ".join(err.split())


def test_max_bitops_help_says_what_it_counts(capsys):
    code, out, _ = run_cli(["search", "--help"], capsys)
    text = " ".join(out.replace("│", " ").split())  # rich wraps the help in a box
    assert code == 0 and "searched (quantized) blocks" in text and "stem and classifier are excluded" in text
