"""Once-for-All / ProxylessNAS files: net.config <-> genes, lookup-table YAML -> latency tables.

Checked against OFA's own code (the ``ofa`` package, Once-for-All's released source): its
``build_from_config`` builds every exported file and counts the same parameters, its FLOPs counter
gives the MACs hwnas counts on the published networks, and its lookup-table classes'
``predict_network_latency_given_config`` (the summation rule) gives what hwnas predicts from the
imported table. The published files are in ``tests/fixtures/ofa/`` (sources in SOURCES.md there).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import run_cli
from hwnas.cost import arch_costs
from hwnas.errors import HwnasError
from hwnas.interop import arch_format, lut_format, ofa, ofa_lut
from hwnas.latency.predict import LatencyPredictor
from hwnas.latency.table import LatencyTable, table_path
from hwnas.spaces import create_space

FIX = Path(__file__).resolve().parent / "fixtures" / "ofa"
#: OFA's published MobileNetV3 subnets: (folder, width, resolution)
OFA_NETS = [("note10_lat-8ms_top1-71.4_finetune-25", 1.0, 160),
            ("LG-G8_lat-24ms_top1-76.4_finetune-25", 1.0, 220),
            ("flops-595M_top1-80.0_finetune-75", 1.2, 236)]

ofa_pkg = pytest.importorskip("ofa")


def _ofa_classes():
    from ofa.imagenet_classification.networks import MobileNetV3, ProxylessNASNets
    from ofa.nas.efficiency_predictor.latency_lookup_table import MBv3LatencyTable, ProxylessNASLatencyTable

    return {"MobileNetV3": (MobileNetV3, MBv3LatencyTable), "ProxylessNASNets": (ProxylessNASNets, ProxylessNASLatencyTable)}


def _ofa_view(doc: dict) -> dict:
    """The config as OFA's config-based rules walk it: a skipped block's conv is None (OFA's
    ``ResidualBlock`` with no conv passes its input through; the rules skip it)."""
    d = copy.deepcopy(doc)
    for b in d["blocks"]:
        if b["mobile_inverted_conv"]["name"] == "ZeroLayer":
            b["mobile_inverted_conv"] = None
    return d


def _ofa_rule(doc: dict, lut: dict, resolution: int) -> float:
    """OFA's own summation rule (its LatencyTable class, with the lookup table set directly: its
    constructor downloads or calls yaml.load without a Loader, which PyYAML 6 refuses)."""
    cls = _ofa_classes()[doc["name"]][1]
    table = object.__new__(cls)
    table.lut = lut
    return float(table.predict_network_latency_given_config(_ofa_view(doc), resolution))


def _mbv2_is_24_wide() -> bool:
    """Whether mbv2's first searchable stage has 24 channels (ProxylessNAS's search layout, the one
    its mobile_trim.yaml holds) rather than 32 (the published ProxylessNAS-mobile network)."""
    sp = create_space("mbv2")
    return next(op for op in sp.layers(sp.smallest_valid()) if op.block == 0).out_shape[0] == 24


# ---- net.config ---------------------------------------------------------------------------------
@pytest.mark.parametrize("folder,width,resolution", OFA_NETS)
def test_published_ofa_nets_import_with_ofas_macs_and_export_byte_for_byte(folder, width, resolution):
    path = FIX / folder / "net.config"
    a = ofa.read(path)
    assert a.space.name == "ofa-mbv3" and a.space.width == width and a.space.resolution == resolution
    assert a.resolution_from == "run.config" and a.network == "MobileNetV3"
    doc = json.loads(path.read_text())
    c = arch_costs(a.space, a.genes)
    net_cls, lut_cls = _ofa_classes()["MobileNetV3"]
    assert c.macs == round(lut_cls.count_flops_given_config(copy.deepcopy(doc), resolution) * 1e6)
    net = net_cls.build_from_config(copy.deepcopy(doc))
    assert c.params == sum(p.numel() for p in net.parameters())
    # export of the imported genes: the published file, key by key and byte for byte
    back = ofa.write(a.space, a.genes, a.hyper)
    assert back == doc and list(back) == list(doc)
    assert json.dumps(back, indent=4) == path.read_text().rstrip("\n")


def test_flops_595m_is_the_595m_network():
    a = ofa.read(FIX / "flops-595M_top1-80.0_finetune-75" / "net.config")
    assert round(arch_costs(a.space, a.genes).macs / 1e6) == 595


def test_published_proxyless_mobile():
    """ProxylessNAS-mobile (proxyless_mobile.config): 320M MACs by OFA's counter, as ProxylessNAS
    and GreedyNAS Table 1 report; mbv2 imports it once its first searchable stage has 32 channels."""
    path = FIX / "proxyless_mobile.config"
    doc = json.loads(path.read_text())
    net_cls, lut_cls = _ofa_classes()["ProxylessNASNets"]
    counted = _ofa_view(doc)
    for b in counted["blocks"]:
        if b["mobile_inverted_conv"] is not None:
            b["mobile_inverted_conv"].setdefault("mid_channels", None)
    ofa_macs = lut_cls.count_flops_given_config(counted) * 1e6
    assert round(ofa_macs / 1e6) == 320
    if _mbv2_is_24_wide():
        with pytest.raises(HwnasError, match=r"block 1 out_channels is 32, expected 24 by space 'mbv2'"):
            ofa.read(path)
        return
    a = ofa.read(path)
    assert a.space.name == "mbv2" and a.space.width == 1.0
    c = arch_costs(a.space, a.genes)
    assert c.macs == round(ofa_macs)
    assert c.params == sum(p.numel() for p in net_cls.build_from_config(copy.deepcopy(doc)).parameters())
    assert ofa.write(a.space, a.genes, a.hyper) == doc


@pytest.mark.parametrize("name,width,resolution", [("mbv2", 1.0, 64), ("mbv2", 0.35, 32),
                                                   ("ofa-mbv3", 1.0, 64), ("ofa-mbv3", 1.2, 48)])
def test_export_builds_in_ofa_and_imports_back(name, width, resolution, rng, tmp_path):
    import torch

    sp = create_space(name, width=width, resolution=resolution, num_classes=10)
    net_cls = _ofa_classes()[ofa.SPACE_NETWORKS[name]][0]
    archs = [sp.sample(rng) for _ in range(4)] + [sp.smallest(), sp.largest()]
    for g in archs:
        doc = ofa.write(sp, g)
        net = net_cls.build_from_config(copy.deepcopy(doc)).eval()
        with torch.no_grad():
            assert tuple(net(torch.randn(1, 3, resolution, resolution)).shape) == (1, 10)
        assert sum(p.numel() for p in net.parameters()) == arch_costs(sp, g).params
    # the file round trip: import(export(genes)) is the same subnet (canonical genes, same layers)
    for g in archs:
        p = tmp_path / "net.config"
        p.write_text(json.dumps(ofa.write(sp, g)))
        a = ofa.read(p, resolution=resolution, width=width)
        assert a.genes == sp.canonical(g) and a.space == sp
        inferred = ofa.read(p, resolution=resolution)  # width inferred: the same layers
        assert inferred.space.layers(inferred.genes) == sp.layers(g)


def _edit(tmp_path: Path, src: Path, fn) -> Path:
    doc = json.loads(src.read_text())
    fn(doc)
    out = tmp_path / "net.config"
    out.write_text(json.dumps(doc))
    return out


NOTE10 = FIX / "note10_lat-8ms_top1-71.4_finetune-25" / "net.config"


@pytest.mark.parametrize("edit,pattern", [
    (lambda d: d["blocks"][3]["mobile_inverted_conv"].update(name="DepthConvLayer"),
     r"block 3: unknown layer type 'DepthConvLayer'; known: MBInvertedConvLayer, MBConvLayer, ZeroLayer"),
    (lambda d: d["blocks"][2]["mobile_inverted_conv"].update(stride=2),
     r"block 2 stride is 2, expected 1 by space 'ofa-mbv3'"),
    (lambda d: d["blocks"][4]["mobile_inverted_conv"].update(out_channels=48),
     r"block 4 out_channels is 48, expected 40"),
    (lambda d: d["blocks"][4]["mobile_inverted_conv"].update(kernel_size=9),
     r"block 4 \(stage 1 layer 1\): kernel_size 9 is not an option of space 'ofa-mbv3'; allowed: 3, 5, 7"),
    (lambda d: d["blocks"][4]["mobile_inverted_conv"].update(use_se=False),
     r"block 4 use_se is False, expected True"),
    (lambda d: d["blocks"].insert(2, copy.deepcopy(d["blocks"][2])) or d["blocks"].insert(2, copy.deepcopy(d["blocks"][2]))
     or d["blocks"].insert(2, copy.deepcopy(d["blocks"][2])),
     r"stage 0 \(blocks 1..5\) has 5 layers; space 'ofa-mbv3' allows depths 2, 3, 4"),
    (lambda d: d["blocks"][5].update(name="ResNetBottleneckBlock"), r"block 5 is a 'ResNetBottleneckBlock'"),
    (lambda d: d.update(name="ResNets"), r"network 'ResNets' is not one format ofa imports"),
    (lambda d: d["final_expand_layer"].update(act_func="relu"), r"final_expand_layer act_func is 'relu', expected 'h_swish'"),
])
def test_a_layout_that_does_not_fit_is_one_error_naming_the_block(tmp_path, edit, pattern):
    with pytest.raises(HwnasError, match=pattern):
        ofa.read(_edit(tmp_path, NOTE10, edit))


def test_mbv2_layout_errors(tmp_path):
    sp = create_space("mbv2")
    src = tmp_path / "src.config"
    src.write_text(json.dumps(ofa.write(sp, sp.smallest_valid())))
    with pytest.raises(HwnasError, match=r"block 3 \(layer 2\) is k3e4, not an option of that layer of space "
                                         r"'mbv2'; allowed: k3e3, k3e6"):
        ofa.read(_edit(tmp_path, src, lambda d: d["blocks"][3]["mobile_inverted_conv"].update(expand_ratio=4)))
    with pytest.raises(HwnasError, match=r"block 1 \(layer 0\) is skip, not an option"):  # a stride-2 layer
        ofa.read(_edit(tmp_path, src, lambda d: d["blocks"][1].update(
            mobile_inverted_conv={"name": "ZeroLayer", "stride": 1}, shortcut=ofa._identity(16, False))))
    # OFA's own ProxylessNAS subnets (elastic depth, expand 4) are not mbv2 subnets
    with pytest.raises(HwnasError, match=r"has 13 blocks; space 'mbv2' has 22"):
        ofa.read(FIX / "cpu_lat-10ms_top1-71.1_finetune-25" / "net.config")
    with pytest.raises(HwnasError, match=r"is a ProxylessNASNets, which imports into space 'mbv2', not 'ofa-mbv3'"):
        ofa.read(src, space="ofa-mbv3")
    with pytest.raises(HwnasError, match=r"block 2 stride is 2, expected 1 by space 'mbv2' at width 1$"):
        ofa.read(_edit(tmp_path, src, lambda d: d["blocks"][2]["mobile_inverted_conv"].update(stride=2)), width=1.0)
    with pytest.raises(HwnasError, match=r"first_conv out_channels is 32, expected 16 by space 'mbv2' at width 0.5"):
        ofa.read(src, width=0.5)


def test_registry_names_the_known_formats():
    assert arch_format("ofa").read is ofa.read and lut_format("ofa").read is ofa_lut.read
    with pytest.raises(HwnasError, match="unknown architecture format 'onnx'; known: ofa"):
        arch_format("onnx")


def test_arch_import_export_cli_round_trip(tmp_path, capsys):
    genes_file = tmp_path / "a.json"
    code, out, err = run_cli(["arch", "import", str(NOTE10), "-o", str(genes_file)], capsys)
    assert code == 0, err
    assert "space ofa-mbv3 (width 1, resolution 160 from run.config, 1000 classes)" in out and "MACs 75.80M" in out
    doc = json.loads(genes_file.read_text())
    assert doc["format"] == "hwnas.arch" and doc["space"]["resolution"] == 160 and doc["macs"] == 75802880
    assert doc["hyper"] == {"bn": {"momentum": 0.1, "eps": 1e-05}, "dropout_rate": 0.1} and "hwnas" in doc["versions"]
    # the genes file is a --genes @FILE for every command
    code, out, _ = run_cli(["arch", "show", "-s", "ofa-mbv3", "--resolution", "160", "-g", f"@{genes_file}"], capsys)
    assert code == 0 and "MACs 75.8M" in out
    net = tmp_path / "out" / "net.config"
    code, _, err = run_cli(["arch", "export", "-f", "ofa", "-g", f"@{genes_file}", "-o", str(net)], capsys)
    assert code == 0 and "run it at resolution 160" in err
    assert net.read_bytes() == NOTE10.read_bytes()
    # to stdout, from plain genes: OFA's defaults for bn / dropout
    g = ",".join(map(str, doc["genes"]))
    code, out, _ = run_cli(["arch", "export", "-s", "ofa-mbv3", "-g", g], capsys)
    assert code == 0 and json.loads(out)["blocks"] == json.loads(NOTE10.read_text())["blocks"]
    code, _, err = run_cli(["arch", "import", str(FIX / "cpu_lat-10ms_top1-71.1_finetune-25" / "net.config")], capsys)
    assert code == 2 and err.count("\n") == 1 and "has 13 blocks" in err


# ---- lookup tables ------------------------------------------------------------------------------
class _Recorder(dict):
    """A lookup table that answers every key OFA's rule asks for with a random mean and records it:
    a synthetic YAML whose keys are exactly the ones OFA's code forms."""

    def __init__(self, rng):
        super().__init__()
        self.rng = rng

    def __missing__(self, key):
        self[key] = {"count": 7, "mean": float(self.rng.uniform(0.01, 3.0)), "std": float(self.rng.uniform(0, 0.1))}
        return self[key]


def _covering_archs(sp):
    """A few architectures that together use every option of every block."""
    if sp.name == "ofa-mbv3":
        from hwnas.spaces.ofa_mbv3 import DEPTHS, EXPANDS, KERNELS

        return [tuple((len(DEPTHS) - 1 if i in sp.depth_genes else k if i in sp.kernel_genes else e)
                      for i in range(sp.num_genes)) for k in range(len(KERNELS)) for e in range(len(EXPANDS))]
    return [tuple(j if j < c else 0 for c in sp.choices) for j in range(max(sp.choices))]


@pytest.mark.parametrize("name,width,resolution", [("mbv2", 0.35, 64), ("ofa-mbv3", 1.0, 64), ("ofa-mbv3", 1.2, 32)])
def test_synthetic_yaml_from_ofas_rule_predicts_what_ofas_rule_sums(name, width, resolution, tmp_path, rng):
    sp = create_space(name, width=width, resolution=resolution, num_classes=10)
    rec = _Recorder(rng)
    for g in _covering_archs(sp):
        _ofa_rule(ofa.write(sp, g), rec, resolution)
    path = tmp_path / "lut.yaml"
    path.write_text(yaml.safe_dump(dict(rec)))
    imported = ofa_lut.read([path], device="synthetic", width=width)
    assert imported.space == sp and imported.unused == {str(path): []}  # every key OFA asks for is used
    pred = LatencyPredictor(imported.table, imported.space)
    archs = [sp.sample(rng) for _ in range(40)] + [sp.smallest(), sp.largest()]
    frozen = dict(rec)  # held-out subnets: a key OFA asks for that the import missed fails here
    ours = pred(np.asarray(archs))
    theirs = [_ofa_rule(ofa.write(sp, g), frozen, resolution) for g in archs]
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert not pred.is_calibrated
    # the table is an hwnas table: stamped, saved, loaded back, refused for another space
    imported.table.save(tmp_path / "t.json")
    t = LatencyTable.load(tmp_path / "t.json")
    assert t.metadata["imported_from"][0]["sha256"] and t.metadata["imported_from"][0]["rule"]
    assert "torch" in t.metadata["versions"] and t.metadata["runtime_version"] == "unknown"
    np.testing.assert_allclose(LatencyPredictor(t, sp)(np.asarray(archs)), theirs, rtol=1e-12)


def test_real_note10_table_predicts_what_ofas_rule_sums(rng):
    path = FIX / "note10_224_lookup_table.yaml"
    imported = ofa_lut.read([path], device="note10")
    sp = imported.space
    assert (sp.name, sp.width, sp.resolution, sp.num_classes) == ("ofa-mbv3", 1.2, 224, 1000)
    assert len(imported.table.entries) == 96 and imported.unused[str(path)] == []
    lut = yaml.safe_load(path.read_text())
    archs = [sp.sample(rng) for _ in range(20)] + [sp.smallest(), sp.largest()]
    ours = LatencyPredictor(imported.table, sp)(np.asarray(archs))
    np.testing.assert_allclose(ours, [_ofa_rule(ofa.write(sp, g), lut, 224) for g in archs], rtol=1e-12)
    # OFA's tutorial rule on its spec dict (d / ks / e, mid = round(in * e)) agrees too (the module
    # alone: the tutorial package imports its model zoo, which needs gdown)
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "ofa_tutorial_latency_table", Path(ofa_pkg.__file__).parent / "tutorial" / "latency_table.py")
    tutorial = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tutorial)
    est = object.__new__(tutorial.LatencyEstimator)
    est.lut = lut
    for g, ms in zip(archs[:5], ours[:5]):
        cfg = sp.decode(g)
        ks = [k for s in range(5) for k in (list(cfg.kernels[s]) + [3] * (4 - cfg.depths[s]))]
        es = [e for s in range(5) for e in (list(cfg.expands[s]) + [3] * (4 - cfg.depths[s]))]
        assert est.predict_network_latency_given_spec({"r": [224], "d": list(cfg.depths), "ks": ks, "e": es}) == \
            pytest.approx(ms, rel=1e-12)


def test_real_proxylessnas_table(rng):
    """ProxylessNAS's mobile_trim.yaml is the table of its search layout (stage 1: 24 channels)."""
    path = FIX / "mobile_trim.yaml"
    if not _mbv2_is_24_wide():
        with pytest.raises(HwnasError, match=r"lacks \d+ of the \d+ keys of space 'mbv2' at width 1.*the file "
                                             r"has that layer with 24 output channels, not 32"):
            ofa_lut.read([path], device="pixel1")
        return
    imported = ofa_lut.read([path], device="pixel1")
    sp = imported.space
    assert (sp.name, sp.width, sp.resolution) == ("mbv2", 1.0, 224)
    unused = imported.unused[str(path)]  # its fixed first block also at kernels 5 and 7
    assert len(unused) == 2 and all("output:112x112x16-expand:1-kernel:" in k for k in unused)
    gap = next(e for e in imported.table.entries.values() if e.get("folded_into"))
    assert gap["median_ms"] == 0 and gap["ofa_key"].startswith("Logits-input:7x7x1280")
    lut = yaml.safe_load(path.read_text())
    archs = [sp.sample(rng) for _ in range(20)] + [sp.smallest(), sp.largest()]
    ours = LatencyPredictor(imported.table, sp)(np.asarray(archs))
    np.testing.assert_allclose(ours, [_ofa_rule(ofa.write(sp, g), lut, 224) for g in archs], rtol=1e-12)
    with pytest.raises(HwnasError, match=r"key 'expanded_conv-input:112x112x32-output:112x112x16-expand:1-"
                                         r"kernel:5-stride:1-idskip:0' is not produced by space 'mbv2'"):
        ofa_lut.read([path], device="pixel1", strict=True)


def _yaml(tmp_path, doc, name="lut.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(doc))
    return p


def test_lookup_table_errors(tmp_path):
    lut = yaml.safe_load((FIX / "note10_224_lookup_table.yaml").read_text())
    key = next(k for k in lut if k.startswith("expanded_conv-input:56x56x32"))
    with pytest.raises(HwnasError, match=rf"lacks 1 of the 96 keys of space 'ofa-mbv3' at width 1.2, resolution "
                                         rf"224, 1000 classes \(first: '{key}'"):
        ofa_lut.read([_yaml(tmp_path, {k: v for k, v in lut.items() if k != key})], device="x")
    with pytest.raises(HwnasError, match=r"key 'Squeeze-input:1x1x8-output:1x1x8' is an unknown layer type"):
        ofa_lut.read([_yaml(tmp_path, {**lut, "Squeeze-input:1x1x8-output:1x1x8": {"mean": 1.0}})], device="x")
    with pytest.raises(HwnasError, match=r"key 'hello' is not an OFA layer key"):
        ofa_lut.read([_yaml(tmp_path, {**lut, "hello": {"mean": 1.0}})], device="x")
    with pytest.raises(HwnasError, match=r"key 'Conv-input:224x224x3-output:112x112x24' has mean 'fast'"):
        ofa_lut.read([_yaml(tmp_path, {**lut, "Conv-input:224x224x3-output:112x112x24": {"mean": "fast"}})], device="x")
    nan = _yaml(tmp_path, {}).with_name("nan.yaml")
    nan.write_text((FIX / "note10_224_lookup_table.yaml").read_text().replace("mean: 0.994418", "mean: .nan", 1))
    with pytest.raises(HwnasError, match=r"has mean nan"):
        ofa_lut.read([nan], device="x")
    with pytest.raises(HwnasError, match=r"keys, which belong to space 'ofa-mbv3', not 'mbv2'"):
        ofa_lut.read([FIX / "note10_224_lookup_table.yaml"], device="x", space="mbv2")
    with pytest.raises(HwnasError, match=r"at width 1, resolution 224.*the file has that layer with 24 output "
                                         r"channels, not 16 \('Conv-input:224x224x3-output:112x112x24'\)"):
        ofa_lut.read([FIX / "note10_224_lookup_table.yaml"], device="x", width=1.0)
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1,\n")
    with pytest.raises(HwnasError, match=r"is not valid YAML"):
        ofa_lut.read([bad], device="x")
    with pytest.raises(HwnasError, match=r"both hold resolution 224"):
        ofa_lut.read([FIX / "note10_224_lookup_table.yaml"] * 2, device="x")


def test_lut_import_cli_then_search_uses_the_table(tmp_path, capsys):
    tables = tmp_path / "tables"
    lut = str(FIX / "note10_224_lookup_table.yaml")
    code, out, err = run_cli(["lut", "import", lut, "-d", "note10", "--tables-dir", str(tables)], capsys)
    assert code == 0, err
    path = table_path("note10", "ofa-mbv3", "tflite", tables)
    assert f"wrote {path}: 96 op keys of space ofa-mbv3 (width 1.2, resolution 224" in out
    code, _, err = run_cli(["lut", "import", lut, "-d", "note10", "--tables-dir", str(tables)], capsys)
    assert code == 2 and "already exists; pass --force" in err
    code, _, _ = run_cli(["lut", "import", lut, "-d", "note10", "--tables-dir", str(tables), "--force",
                          "--soc", "Exynos 9825", "--threads", "1"], capsys)
    assert code == 0 and LatencyTable.load(path).metadata["soc"] == "Exynos 9825"
    # the imported table is what search and pick read for --device note10
    from hwnas.search.objectives import load_latency_predictor

    sp = create_space("ofa-mbv3", width=1.2, resolution=224)
    pred = load_latency_predictor("note10", sp, "tflite", tables)
    assert 0 < float(pred(np.asarray([sp.smallest()]))[0]) < float(pred(np.asarray([sp.largest()]))[0])
