"""Measurements know where they were taken: machine fingerprints in tables, end-to-end stores and
predictors; stored measurements of another machine are never reused (and that is said)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tiny_space
from hwnas.devices.profiles import load_profile
from hwnas.errors import HwnasError
from hwnas.latency.fingerprint import (
    adb_fingerprint,
    cpu_governor,
    cpu_model,
    describe,
    host_fingerprint,
    runner_fingerprint,
    same_machine,
)
from hwnas.latency.validate import FINGERPRINTS_KEY, EndToEndStore, measure_subnets

OTHER = host_fingerprint("onnx", "0.0.1-elsewhere") | {"cpu": "Some Other CPU", "id": "0123456789ab"}


def test_host_fingerprint_fields_and_id(tmp_path):
    (tmp_path / "cpuinfo").write_text("processor\t: 0\nmodel name\t: Fancy  CPU @ 2.0GHz\n\nprocessor\t: 1\n")
    assert cpu_model(tmp_path / "cpuinfo") == "Fancy CPU @ 2.0GHz"
    (tmp_path / "cpu0" / "cpufreq").mkdir(parents=True)
    (tmp_path / "cpu0" / "cpufreq" / "scaling_governor").write_text("schedutil\n")
    assert cpu_governor(tmp_path) == "schedutil" and cpu_governor(tmp_path / "none") == "unreadable"
    a, b = host_fingerprint("tflite", "2.1.5"), host_fingerprint("tflite", "2.1.5")
    assert a == b and len(a["id"]) == 12 and a["cores"] >= 1 and a["runtime"] == "tflite"
    assert host_fingerprint("tflite", "2.1.6")["id"] != a["id"]  # another runtime build
    assert host_fingerprint("onnx", "2.1.5")["id"] != a["id"]
    runner = _host_runner("onnx")
    fp = runner_fingerprint(runner)
    assert fp["kind"] == "host" and fp["runtime"] == "onnx" and fp["runtime_version"] != "unknown"
    assert "cores" in describe(fp) and fp["id"] in describe(fp)
    # unstamped measurements: foreign on the host, the device's own on an ADB device
    assert not same_machine(None, fp) and same_machine(dict(fp), fp) and not same_machine(OTHER, fp)
    adb = adb_fingerprint("R5CT", "samsung/s22/...:14/UP1A/user/release-keys", "tflite")
    assert same_machine(None, adb) and adb["id"] != adb_fingerprint("R5CU", adb["build_fingerprint"], "tflite")["id"]


def _host_runner(runtime):
    from hwnas.latency.build import device_runner

    return device_runner(load_profile("host"), runtime)


def test_store_hides_other_machines_records_and_says_so(tmp_path):
    path = tmp_path / "t.e2e.json"
    here = runner_fingerprint(_host_runner("onnx"))
    path.write_text(json.dumps({
        "1,2": {"median_ms": 1.0, "rounds_ms": [1.0] * 5},  # older hwnas: no fingerprint
        "3,4": {"median_ms": 2.0, "rounds_ms": [2.0] * 5, "fingerprint": OTHER["id"]},
        "5,6": {"median_ms": 3.0, "rounds_ms": [3.0] * 5, "fingerprint": here["id"]},
        FINGERPRINTS_KEY: {OTHER["id"]: OTHER, here["id"]: here}}))
    store = EndToEndStore(path)
    msg = store.bind(here, [(1, 2), (3, 4), (5, 6)])
    assert "\n" not in msg and msg.startswith("skipped 2 stored end-to-end measurements")
    assert "1 of no fingerprint" in msg and "1 of host Some Other CPU" in msg and here["id"] in msg
    assert store.get((1, 2)) is None and store.get((3, 4)) is None and store.get((5, 6))["median_ms"] == 3.0
    assert not store.complete((3, 4), 5) and store.complete((5, 6), 5)
    assert store.bind(here, [(5, 6)]) is None  # nothing of another machine asked for: no line
    store.put((3, 4), {"median_ms": 2.5, "rounds_ms": [2.5]})
    again = json.loads(path.read_text())
    assert again["3,4"]["fingerprint"] == here["id"] and again[FINGERPRINTS_KEY][here["id"]] == here
    assert set(EndToEndStore(path).records()) == {"1,2", "3,4", "5,6"}


@pytest.mark.slow
def test_measure_subnets_remeasures_what_another_machine_stored(tmp_path, capsys):
    """Real ONNX Runtime on exported subnets: stored figures of another machine (absurd 999 ms)
    are measured afresh, one line says so, and the records now carry this machine's fingerprint."""
    from hwnas.latency.opmodels import SubnetModelCache

    s = tiny_space("mbv2", resolution=16)
    genes = [tuple(int(v) for v in s.sample(np.random.default_rng(i))) for i in range(3)]
    path = tmp_path / "t.e2e.json"
    path.write_text(json.dumps({",".join(map(str, g)): {"median_ms": 999.0, "rounds_ms": [999.0] * 5}
                                for g in genes}))
    runner = _host_runner("onnx")
    ms = measure_subnets(runner, s, genes, "onnx", EndToEndStore(path), threads=1, warmup=2, runs=5,
                         rounds=2, cache=SubnetModelCache(s, "onnx", tmp_path / "c"), canary=False)
    assert np.all(ms < 100)
    err = capsys.readouterr().err
    assert "skipped 3 stored end-to-end measurements" in err and "no fingerprint" in err
    doc = json.loads(path.read_text())
    fid = runner_fingerprint(runner)["id"]
    assert all(doc[",".join(map(str, g))]["fingerprint"] == fid for g in genes)
    # measured here: the same call reuses them and says nothing
    ms2 = measure_subnets(runner, s, genes, "onnx", EndToEndStore(path), threads=1, rounds=2, canary=False,
                          cache=SubnetModelCache(s, "onnx", tmp_path / "c"))
    assert np.array_equal(ms, ms2) and "skipped" not in capsys.readouterr().err


def test_profile_refuses_to_continue_another_machines_table(tmp_path):
    from hwnas.latency.profile import _stamp_fingerprint
    from hwnas.latency.table import LatencyTable

    s = tiny_space("mbv2", resolution=16)
    table = LatencyTable.new(device="host", soc="x", runtime="onnx", runtime_version="1", delegate="cpu",
                             threads=1, warmup=1, runs=1, space=s, path=tmp_path / "host" / "mbv2-onnx.json")
    runner = _host_runner("onnx")
    _stamp_fingerprint(table, runner)  # a new table is stamped with this machine
    assert LatencyTable.load(table.path).metadata["fingerprint"] == runner_fingerprint(runner)
    table.metadata["fingerprint"] = OTHER
    table.add("k", {f: 1.0 for f in ("count", "mean_ms", "median_ms", "std_ms", "min_ms", "max_ms")}, save=False)
    with pytest.raises(HwnasError, match="was measured on host Some Other CPU.*this machine is host"):
        _stamp_fingerprint(table, runner)


def test_fold_batchnorm_keeps_outputs_and_drops_every_bn():
    from hwnas.latency.opmodels import export_workers, fold_batchnorm
    from hwnas.supernet import Subnet

    s = tiny_space("mbv2", resolution=16)
    torch.manual_seed(0)
    model = Subnet(s, s.largest()).eval()
    for m in model.modules():  # non-trivial statistics, so folding has something to do
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    x = torch.randn(1, 3, 16, 16)
    ref = model(x)
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert fold_batchnorm(model, x) == n_bn > 0
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert torch.allclose(model(x), ref, atol=1e-5)
    assert export_workers(30, "onnx") == 1  # fast exporter: no pool
    assert export_workers(2, "tflite") == 1  # too few to pay the workers' start
    assert 1 <= export_workers(30, "tflite") <= 30


@pytest.mark.slow
def test_subnets_export_in_a_process_pool(tmp_path, monkeypatch):
    """Two worker processes export three subnets; the files equal the serial export's."""
    from hwnas.latency.opmodels import SubnetModelCache

    s = tiny_space("mbv2", resolution=16)
    genes = [tuple(int(v) for v in s.sample(np.random.default_rng(i))) for i in range(3)]
    seen = []
    pooled = SubnetModelCache(s, "onnx", tmp_path / "pool").get_many(genes, workers=2, on_each=seen.append)
    serial = SubnetModelCache(s, "onnx", tmp_path / "serial").get_many(genes, workers=1)
    assert sorted(seen) == sorted(genes)
    import onnx

    for g in genes:
        a, b = onnx.load(str(pooled[g])), onnx.load(str(serial[g]))
        assert [n.op_type for n in a.graph.node] == [n.op_type for n in b.graph.node]


@pytest.mark.slow
def test_adaptation_fits_a_scaled_perturbed_table_to_this_computer(tmp_path):
    """A table of 'another computer': this computer's own table (ONNX Runtime, tiny space) with
    every op 2x slower and perturbed by up to +-20 %, unstamped and calibrated there. Adapted from
    6 subnets measured here, it predicts 6 other subnets measured here within 15 % (before: ~50 %
    off); the adaptation is cached for this fingerprint and reused; the own table needs none."""
    from hwnas.latency.adapt import adapt_table, adaptation_path, load_adaptation
    from hwnas.latency.keys import space_ops
    from hwnas.latency.opmodels import OpModelCache, SubnetModelCache
    from hwnas.latency.predict import LatencyPredictor
    from hwnas.latency.profile import ProfileConfig, profile_device
    from hwnas.latency.table import LatencyTable, space_tag

    s = tiny_space("mbv2", resolution=16)
    host = load_profile("host")
    cfg = ProfileConfig(runtime="onnx", warmup=2, runs=10, rounds=2, cool_down=False, canary=False)
    own = profile_device(host, s, cfg, tables_dir=tmp_path / "own", cache=OpModelCache("onnx", tmp_path / "c"))
    assert not own.missing(space_ops(s)) and own.metadata["fingerprint"]["kind"] == "host"
    rng = np.random.default_rng(3)
    meta = {k: v for k, v in own.metadata.items() if k != "fingerprint"}
    theirs = LatencyTable(meta, path=tmp_path / "theirs" / "host" / "mbv2-onnx.json")
    for key, e in own.entries.items():
        f = 2.0 * rng.uniform(0.8, 1.2)
        theirs.entries[key] = {**{k: v * f if k.endswith("_ms") else v for k, v in e.items() if k != "rounds"}}
    theirs.set_calibration(space_tag(s), 1.0, 0.0, per_op_ms=0.0)
    theirs.save()
    runner = _host_runner("onnx")
    cache = SubnetModelCache(s, "onnx", tmp_path / "subnets")
    user = tmp_path / "user"
    a = adapt_table(theirs, s, runner, threads=1, root=user, n=6)
    assert a is not None and not a.reused and len(a.genes) == 6 and a.speed_ratio < 0.8
    assert a.mape_after < a.mape_before and Path(a.path) == adaptation_path(theirs, s, user)
    held = [tuple(int(v) for v in s.sample(np.random.default_rng(100 + i))) for i in range(6)]
    measured = measure_subnets(runner, s, held, "onnx", EndToEndStore(tmp_path / "held.e2e.json"), threads=1,
                               cache=cache, canary=False)
    X = np.asarray(held)
    before = LatencyPredictor(theirs, s)(X)
    after = LatencyPredictor(a.apply(LatencyTable.load(theirs.path), s), s)(X)
    mape = lambda p: float(np.mean(np.abs(p - measured) / measured))  # noqa: E731
    assert mape(before) > 0.3 and mape(after) < 0.15, (mape(before), mape(after))
    # a second run on this computer reuses the cached adaptation (nothing measured)
    again = adapt_table(LatencyTable.load(theirs.path), s, runner, threads=1, root=user, n=6)
    assert again.reused and again.scale == a.scale
    # ... another computer does not; nor does a changed table
    assert load_adaptation(Path(a.path), theirs, s, OTHER) is None
    changed = LatencyTable.load(theirs.path)
    changed.metadata["updated"] = "2000-01-01T00:00:00+00:00"
    assert load_adaptation(Path(a.path), changed, s, runner_fingerprint(runner)) is None
    # a table measured on this computer is used as it is, and so is one calibrated here
    assert adapt_table(own, s, runner, threads=1, root=user) is None
    calibrated_here = LatencyTable.load(theirs.path)
    calibrated_here.set_calibration(space_tag(s), 1.0, 0.0, fingerprint=runner_fingerprint(runner))
    assert adapt_table(calibrated_here, s, runner, threads=1, root=user) is None
