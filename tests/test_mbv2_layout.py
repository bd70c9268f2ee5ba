"""``mbv2`` layout 2 (ProxylessNAS-mobile's macro-structure) and the refusal of layout-1 files.

The released ProxylessNAS-mobile ``net.config`` (tests/fixtures/ofa) expressed as ``mbv2``
genes must cost what ProxylessNAS itself counts (320.4M, GreedyNAS Table 1's 320M); files made with
layout 1 (first searchable stage 24 channels, no ``layout`` in their space config) are refused
where that layout built another network and accepted where it built the same one.
"""

import json
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from hwnas.checkpoint import load_checkpoint, save_checkpoint
from hwnas.cost import arch_costs
from hwnas.errors import HwnasError
from hwnas.latency.table import LatencyTable, load_table, space_tag
from hwnas.models import supernet_from_checkpoint
from hwnas.ranking.truth import load_ground_truth
from hwnas.spaces import create_space
from hwnas.spaces.mbv2 import LAYOUT, MBConfig, MBLayer
from hwnas.spaces.registry import read_space_config, space_from_config
from hwnas.supernet import Subnet, build_supernet

FIXTURE = Path(__file__).parent / "fixtures" / "ofa" / "proxyless_mobile.config"
SHIPPED_TRUTH = Path(__file__).parents[1] / "hwnas" / "ground_truth" / "gratings-mbv2-w0.25-r16.json"
#: ProxylessNAS's own count of its mobile network (``Total FLOPs: 320.4M`` in its
#: logs/imagenet_mobile_log.txt), recomputed below from the net.config with its rule
PROXYLESS_MOBILE_MACS = 320_427_584


def _proxyless_count(cfg: dict, resolution: int = 224) -> int:
    """ProxylessNAS's ``get_flops``: every conv ``in * out * k * k * (h // s)^2 / groups`` (no BN,
    no bias), the classifier ``weight.numel()``, zero for identity (``ZeroLayer``) and pooling."""
    def conv(ci, co, k, h, s, groups=1):
        return ci * co * k * k * (h // s) ** 2 // groups

    fc = cfg["first_conv"]
    total = conv(fc["in_channels"], fc["out_channels"], fc["kernel_size"], resolution, fc["stride"])
    h = resolution // fc["stride"]
    for block in cfg["blocks"]:
        m = block["mobile_inverted_conv"]
        if m["name"] == "ZeroLayer":
            continue
        ci, co, k, s, e = (m[key] for key in ("in_channels", "out_channels", "kernel_size", "stride",
                                               "expand_ratio"))
        mid = round(ci * e)
        if e != 1:
            total += conv(ci, mid, 1, h, 1)
        total += conv(mid, mid, k, h, s, mid)
        h //= s
        total += conv(mid, co, 1, h, 1)
    mix = cfg["feature_mix_layer"]
    total += conv(mix["in_channels"], mix["out_channels"], 1, h, 1)
    return total + cfg["classifier"]["in_features"] * cfg["classifier"]["out_features"]


def _proxyless_genes(space, cfg: dict) -> tuple[int, ...]:
    """The net.config's 21 searchable blocks as ``mbv2`` genes, after checking that the fixed parts
    and every searchable layer's channels and stride are the space's."""
    assert cfg["first_conv"]["out_channels"] == space.stem_channels
    first, *blocks = cfg["blocks"]
    assert first["mobile_inverted_conv"]["out_channels"] == space.first_channels
    assert cfg["feature_mix_layer"]["out_channels"] == space.last_channels
    plan = space._stage_plan()
    assert len(blocks) == len(plan)
    layers, c_in = [], space.first_channels
    for i, (block, (out_c, stride, allow)) in enumerate(zip(blocks, plan)):
        m = block["mobile_inverted_conv"]
        if m["name"] == "ZeroLayer":
            assert allow and block["shortcut"] is not None, i
            layers.append(MBLayer(0, 0))
            continue
        assert (m["in_channels"], m["out_channels"], m["stride"]) == (c_in, out_c, stride), i
        layers.append(MBLayer(m["kernel_size"], m["expand_ratio"]))
        c_in = out_c
    return space.encode(MBConfig(tuple(layers)))


def test_proxyless_mobile_costs_what_proxylessnas_counts():
    cfg = json.loads(FIXTURE.read_text())
    assert _proxyless_count(cfg) == PROXYLESS_MOBILE_MACS  # 320.4M: ProxylessNAS's log, GreedyNAS Table 1
    space = create_space("mbv2", width=1.0, resolution=224, num_classes=1000)
    genes = _proxyless_genes(space, cfg)
    c = arch_costs(space, genes)
    assert c.macs == PROXYLESS_MOBILE_MACS
    # and the network hwnas builds executes exactly that many (torch's own count)
    net = Subnet(space, genes).eval()
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        net(torch.randn(1, 3, 224, 224))
    assert fc.get_total_flops() == 2 * c.macs
    # parameters as ProxylessNAS counts them (every trainable tensor): its log's 4.08M
    assert sum(p.numel() for p in net.parameters()) == c.params
    assert round(c.params / 1e6, 2) == 4.08


def test_layout_1_network_differs_at_w035_and_not_at_w025():
    assert create_space("mbv2", width=1.0)._stage_plan()[0][0] == 32
    assert create_space("mbv2", width=0.35)._stage_plan()[0][0] == 16  # layout 1: 8
    assert create_space("mbv2", width=0.25)._stage_plan()[0][0] == 8  # layout 1: 8 as well
    assert space_tag(create_space("mbv2", width=0.25, resolution=16)) == "mbv2@w0.25r16"
    assert space_tag(create_space("mbv2", width=0.35, resolution=32)) == "mbv2@w0.35r32-l2"
    assert space_tag(create_space("mbv2-mp", width=1.0)) == "mbv2-mp@w1r224-l2"
    with pytest.raises(HwnasError, match=r"layout 1 not allowed on space 'mbv2'; allowed: 2"):
        create_space("mbv2", layout=1)


@pytest.mark.parametrize("name", ["mbv2", "mbv2-se", "mbv2-mp", "mbv2-se-width"])
def test_read_space_config_accepts_identical_and_refuses_different_plans(name):
    old = {"name": name, "width": 0.25, "resolution": 16, "num_classes": 10, "in_channels": 3}
    assert read_space_config(old, "f.json", "redo") == {**old, "layout": LAYOUT}
    assert space_from_config(old).config() == create_space(name, width=0.25, resolution=16,
                                                           num_classes=10).config()
    with pytest.raises(HwnasError, match=rf"^f\.json was made with layout 1 of space '{name}' \(first "
                                         r"searchable stage 24 channels\), whose network at width 0\.35 "
                                         r"differs .* layer 0 has 8 channels, now 16\): redo$"):
        read_space_config({**old, "width": 0.35}, "f.json", "redo")
    with pytest.raises(HwnasError, match=r"layout 3 of space .* not one this hwnas knows"):
        read_space_config({**old, "layout": 3}, "f.json", "redo")
    other = {"name": "shufflenetv2", "width": 0.35}
    assert read_space_config(other, "f.json", "redo") == other  # spaces without layouts: unchanged


def _old_checkpoint(tmp_path: Path, width: float) -> Path:
    space = create_space("mbv2", width=width, resolution=32, num_classes=10)
    path = save_checkpoint(tmp_path / f"w{width}.pt", kind="supernet", space=space,
                           model_state=build_supernet(space).state_dict())
    ckpt = torch.load(path, weights_only=True)
    del ckpt["space"]["layout"]  # as hwnas wrote it before layouts
    torch.save(ckpt, path)
    return path


def test_old_layout_checkpoint_refused_where_the_network_differs(tmp_path):
    path = _old_checkpoint(tmp_path, 0.35)
    with pytest.raises(HwnasError, match=rf"^checkpoint {path} was made with layout 1 .* width 0\.35 .*"
                                         r"retrain it with this hwnas \(hwnas train\)$"):
        load_checkpoint(path)
    ok = _old_checkpoint(tmp_path, 0.25)
    assert load_checkpoint(ok)["space"]["layout"] == LAYOUT
    net, _ = supernet_from_checkpoint(ok)
    assert net.space == create_space("mbv2", width=0.25, resolution=32, num_classes=10)
    load_checkpoint(ok, expect_space=net.space)  # compares equal after the stamp


def _old_table(tmp_path: Path, width: float) -> Path:
    space = create_space("mbv2", width=width, resolution=32, num_classes=10)
    path = tmp_path / "host" / "mbv2-tflite.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    table = LatencyTable.new(device="host", soc="host CPU", runtime="tflite", runtime_version="2.3.0",
                             delegate="xnnpack", threads=1, warmup=1, runs=2, space=space, path=path)
    for op in space.layers(space.smallest()):
        table.add(op.latency_key(), {f: 1.0 for f in ("count", "mean_ms", "median_ms", "std_ms",
                                                       "min_ms", "max_ms")}, save=False)
    table.save()
    doc = json.loads(path.read_text())
    for cfg in doc["metadata"]["space_configs"]:
        del cfg["layout"]
    path.write_text(json.dumps(doc))
    return path


def test_old_layout_table_refused_where_the_network_differs(tmp_path):
    path = _old_table(tmp_path / "a", 0.35)
    with pytest.raises(HwnasError, match=rf"^latency table {path} was made with layout 1 .* re-profile "
                                         r"\(hwnas profile --device host --space mbv2\) into a new table"):
        LatencyTable.load(path)
    ok = _old_table(tmp_path / "b", 0.25)
    space = create_space("mbv2", width=0.25, resolution=32, num_classes=10)
    table = load_table("host", space, "tflite", root=tmp_path / "b")
    assert table.metadata["space_configs"] == [space.config()]
    table.note_space(space)  # the stamped config is the space's: not recorded twice
    assert len(table.metadata["space_configs"]) == 1
    assert not table.missing(op.latency_key() for op in space.layers(space.smallest()))
    assert ok.exists()


def test_shipped_ground_truth_of_layout_1_still_reads_and_a_changed_width_is_refused(tmp_path):
    gt = load_ground_truth(SHIPPED_TRUTH)  # w0.25: the same network under both layouts
    assert "layout" not in json.loads(SHIPPED_TRUTH.read_text())["space"]
    assert gt.space["layout"] == LAYOUT
    doc = json.loads(SHIPPED_TRUTH.read_text())
    doc["space"]["width"] = 0.35
    bad = tmp_path / "gt.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(HwnasError, match=rf"^ground truth {bad} was made with layout 1 .*"
                                         r"build it again with tools/rank_truth\.py$"):
        load_ground_truth(bad)


def test_ground_truth_partial_records_before_layout_still_resume():
    from hwnas.ranking.truth import _same_key

    partial = SHIPPED_TRUTH.with_name(SHIPPED_TRUTH.name + ".partial.jsonl")
    stored = json.loads(partial.read_text().splitlines()[0])["key"]
    key = json.loads(stored)
    assert "layout" not in key["space"]
    key["space"] = create_space("mbv2", width=0.25, resolution=16, num_classes=key["space"]["num_classes"]).config()
    assert _same_key(stored, json.dumps(key, sort_keys=True))
    key["space"]["width"] = 0.35
    assert not _same_key(stored.replace('"width": 0.25', '"width": 0.35'), json.dumps(key, sort_keys=True))
