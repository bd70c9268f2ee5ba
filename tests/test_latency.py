"""Latency keys, tables, prediction, profiling (host and loopback ADB device), calibration, validation."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conftest import SPACE_NAMES, tiny_space
from conftest_adb import adb_test_key, make_loopback_adbd  # noqa: F401  (fixtures)
from hwnas.devices.profiles import load_profile
from hwnas.errors import HwnasError
from hwnas.latency.keys import arch_keys, space_ops
from hwnas.latency.predict import LatencyPredictor
from hwnas.latency.profile import ProfileConfig, plan_profile, profile_device
from hwnas.latency.table import LatencyTable, space_tag, table_path
from hwnas.latency.validate import calibrate, validate

REPO = Path(__file__).resolve().parents[1]
FAKE_ORT = REPO / "tools" / "fake_onnxruntime_perf_test.py"
STATS = {"count": 10, "mean_ms": 1.0, "median_ms": 1.0, "std_ms": 0.1, "min_ms": 0.9, "max_ms": 1.2}


def synthetic_table(space, tmp_path, seed=0) -> LatencyTable:
    """A table with a random value per key of the space (no device needed)."""
    rng = np.random.default_rng(seed)
    t = LatencyTable.new(device="synthetic", soc="none", runtime="tflite", runtime_version="0", delegate="xnnpack",
                         threads=1, warmup=1, runs=1, space=space, path=tmp_path / "t.json")
    for key in space_ops(space):
        v = float(rng.uniform(0.01, 1.0))
        t.add(key, {**STATS, "median_ms": v, "mean_ms": v}, save=False)
    t.save()
    return t


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_space_ops_cover_every_arch(name, rng):
    s = tiny_space(name)
    ops = space_ops(s)
    for _ in range(50):
        assert set(arch_keys(s, s.sample(rng))) <= set(ops)
    # keys are canonical: ops that execute the same thing (whichever block they sit in) share one
    # key, and ops that differ in anything the runtime executes get different keys
    executed = {replace(op, block=-1) for op in s.fixed_ops()}
    executed |= {replace(op, block=-1) for opt in s.block_options() for op in opt.ops}
    assert len(ops) == len(executed)
    assert all(key == spec.latency_key() and key.endswith(spec.dtype) for key, spec in ops.items())


@pytest.mark.parametrize("name", ["mbv2", "mbv2-se", "shufflenetv2"])
def test_vectorised_prediction_equals_sum_over_keys(name, rng, tmp_path):
    s = tiny_space(name)
    table = synthetic_table(s, tmp_path)
    m = s.sample_many(rng, 200)
    pred = LatencyPredictor(table, s)
    got = pred(m)
    want = [sum(table.median_ms(k) for k in arch_keys(s, g)) for g in m]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert np.array_equal(pred.n_ops(m), [len(s.layers(g)) for g in m])
    table.set_calibration(space_tag(s), 2.0, 0.5, per_op_ms=-0.01)
    np.testing.assert_allclose(LatencyPredictor(table, s)(m), 2.0 * np.asarray(want) - 0.01 * pred.n_ops(m) + 0.5)


def test_prediction_refuses_missing_keys_and_other_spaces(tmp_path):
    s = tiny_space("mbv2")
    table = synthetic_table(s, tmp_path)
    victim = sorted(table.entries)[3]
    del table.entries[victim]
    with pytest.raises(HwnasError, match=r"lacks 1 op keys of mbv2@w0.25r32 \(e.g. " + victim) as exc:
        LatencyPredictor(table, s)
    assert (f"`hwnas profile --device {table.metadata['device']} --space mbv2 --width 0.25 --resolution 32 "
            f"--num-classes 10") in str(exc.value) and str(exc.value).endswith(" --resume`")
    with pytest.raises(HwnasError, match="lacks"):
        LatencyPredictor(synthetic_table(s, tmp_path), tiny_space("mbv2", resolution=48))
    with pytest.raises(HwnasError, match="is for space 'mbv2', not 'shufflenetv2'"):
        LatencyPredictor(table, tiny_space("shufflenetv2"))


def test_table_roundtrip_and_bad_files(tmp_path):
    s = tiny_space("mbv2")
    t = synthetic_table(s, tmp_path)
    again = LatencyTable.load(t.path)
    assert again.entries == t.entries and again.metadata["space"] == "mbv2"
    assert again.metadata["versions"]["hwnas"] and again.metadata["threads"] == 1
    with pytest.raises(HwnasError, match="does not exist"):
        LatencyTable.load(tmp_path / "none.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(HwnasError, match="cannot read latency table"):
        LatencyTable.load(tmp_path / "x.json")
    (tmp_path / "y.json").write_text(json.dumps({"format": "hwnas.latency_table", "metadata": {"device": "a"}}))
    with pytest.raises(HwnasError, match="metadata lacks soc, runtime"):
        LatencyTable.load(tmp_path / "y.json")
    doc = t.to_json()
    doc["entries"][next(iter(doc["entries"]))].pop("median_ms")
    (tmp_path / "z.json").write_text(json.dumps(doc))
    with pytest.raises(HwnasError, match="lacks numeric median_ms"):
        LatencyTable.load(tmp_path / "z.json")
    with pytest.raises(HwnasError, match="is for runtime 'tflite', not 'onnx'"):
        again.check_compatible(runtime="onnx")


def test_host_profile_resumes_and_refuses_overwrite(tmp_path):
    """Profile 3 keys, stop; resume 3 more; a second run without --resume is refused."""
    s = tiny_space("mbv2", resolution=16)
    host = load_profile("host")
    cfg = ProfileConfig(runtime="onnx", warmup=2, runs=10, max_keys=3, cool_down=False)
    cache_dir = tmp_path / "cache"
    from hwnas.latency.opmodels import OpModelCache

    seen = []
    t1 = profile_device(host, s, cfg, tables_dir=tmp_path, cache=OpModelCache("onnx", cache_dir),
                        on_progress=lambda k, d, n: seen.append((k, d, n)))
    # 3 exports, then 3 rounds round-robin over the 3 keys
    keys = list(t1.entries)
    assert len(keys) == 3 and [d for _, d, _ in seen] == list(range(1, 13)) and seen[-1][2] == 12
    assert [k for k, _, _ in seen[3:]] == keys * 3
    path = table_path("host", "mbv2", "onnx", tmp_path)
    on_disk = LatencyTable.load(path)
    assert on_disk.entries == t1.entries
    meta = on_disk.metadata
    assert meta["runtime"] == "onnx" and meta["runtime_version"] != "unknown" and meta["runs"] == 10
    assert meta["rounds"] == 3
    canary = meta["last_profile_canary"]  # the guard ran: its canary was timed and is recorded
    assert canary["canary_best_ms"] > 0 and canary["canary_checks"] >= 3 and canary["key"] in keys
    for e in on_disk.entries.values():
        assert 0 < e["min_ms"] <= e["median_ms"] <= e["max_ms"] and e["count"] >= 15
        medians = sorted(r["median_ms"] for r in e["rounds"])
        assert len(medians) == 3 and e["median_ms"] == medians[0]  # the quietest round
    with pytest.raises(HwnasError, match="already holds 3 measured keys: pass --resume"):
        profile_device(host, s, cfg, tables_dir=tmp_path, cache=OpModelCache("onnx", cache_dir))
    plan = plan_profile(host, s, ProfileConfig(runtime="onnx"), tmp_path)
    assert plan.measured == 3 and len(plan.keys) == len(space_ops(s)) - 3 and plan.estimate_s > 0
    t2 = profile_device(host, s, cfg, tables_dir=tmp_path, resume=True, cache=OpModelCache("onnx", cache_dir))
    assert len(t2.entries) == 6 and set(t1.entries) < set(t2.entries)
    # a key left with fewer rounds (a profile stopped mid-round) gets only the missing rounds
    cut = t2.entries[keys[0]]
    cut["rounds"] = cut["rounds"][:1]
    t2.save()
    seen.clear()
    t3 = profile_device(host, s, replace(cfg, max_keys=1), tables_dir=tmp_path, resume=True,
                        cache=OpModelCache("onnx", cache_dir), on_progress=lambda k, d, n: seen.append(k))
    assert seen == [keys[0]] * 3 and len(t3.entries[keys[0]]["rounds"]) == 3
    with pytest.raises(HwnasError, match="measured with threads=1, this profile uses threads=2"):
        profile_device(host, s, ProfileConfig(runtime="onnx", threads=2), tables_dir=tmp_path, resume=True)


def _loopback_profile(tmp_path: Path, port: int) -> Path:
    """A device profile for the loopback ADB device, with the fake onnxruntime_perf_test as its binary."""
    wrapper = tmp_path / "device" / "hwnas" / "bin" / "onnxruntime_perf_test"
    wrapper.parent.mkdir(parents=True)
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} {FAKE_ORT} \"$@\"\n")
    wrapper.chmod(0o755)
    toml = tmp_path / "loopback.toml"
    toml.write_text(f"""
name = "loopback"
human_name = "Loopback ADB device (test)"
kind = "devkit"
soc = "host CPU"
abi = "native"
remote_work_dir = "/data/local/tmp/hwnas"

[connection]
transport = "adb-shell"
host = "127.0.0.1"
port = {port}

[cpu]
default_threads = 1
cores = "all"

[runtimes.onnx]
delegates = ["cpu"]
binary = "/data/local/tmp/hwnas/bin/onnxruntime_perf_test"

[thermal]
source = "none"
fixed_pause_s = 0.0
""")
    return toml


@pytest.mark.slow
def test_profile_over_adb_survives_a_drop_and_resumes_after_losing_the_device(
        tmp_path, make_loopback_adbd, adb_test_key):  # noqa: F811
    from hwnas.latency.opmodels import OpModelCache

    dev = make_loopback_adbd(sandbox=tmp_path / "device")
    profile = load_profile(_loopback_profile(tmp_path, dev.port))
    s = tiny_space("mbv2", resolution=16)
    cache = OpModelCache("onnx", tmp_path / "cache")
    cfg = ProfileConfig(runtime="onnx", warmup=1, runs=5, max_keys=2, cool_down=False, canary=False)

    def transport():
        return profile.open_transport(key_path=adb_test_key, attempts=2, base_delay=0.01, max_delay=0.02)

    # one dropped connection in the middle: the transport reconnects and the profile completes
    dev.set_faults(drop_after_commands=3, max_faults=1)
    t = profile_device(profile, s, cfg, tables_dir=tmp_path / "tables", transport=transport(), cache=cache)
    assert len(t.entries) == 2 and dev.faults_fired == 1
    assert t.metadata["device"] == "loopback" and t.metadata["runtime"] == "onnx"
    # the device goes away for good: a clear error naming it; nothing measured is lost
    dev.set_faults(drop_after_commands=0, max_faults=None)
    with pytest.raises(HwnasError, match="loopback"):
        profile_device(profile, s, cfg, tables_dir=tmp_path / "tables", resume=True, transport=transport(),
                       cache=cache)
    kept = LatencyTable.load(table_path("loopback", "mbv2", "onnx", tmp_path / "tables"))
    assert set(kept.entries) == set(t.entries)
    # back online: resume measures the next keys
    dev.set_faults(drop_after_commands=None, max_faults=None)
    t3 = profile_device(profile, s, cfg, tables_dir=tmp_path / "tables", resume=True, transport=transport(),
                        cache=cache)
    assert len(t3.entries) == 4 and set(t.entries) < set(t3.entries)
    assert (tmp_path / "device" / "hwnas").is_dir()  # models were pushed to the device work dir


@pytest.mark.slow
def test_calibrate_and_validate_on_host(tmp_path):
    """Whole tiny space on the host (ONNX Runtime), calibration on 4+2 subnets, validation on 6 others."""
    from hwnas.latency.opmodels import OpModelCache
    from hwnas.runners.registry import create_runner

    s = tiny_space("mbv2", resolution=16)
    host = load_profile("host")
    cfg = ProfileConfig(runtime="onnx", warmup=2, runs=8, cool_down=False, canary=False, method="one-op")
    table = profile_device(host, s, cfg, tables_dir=tmp_path, cache=OpModelCache("onnx", tmp_path / "c"))
    assert not table.missing(space_ops(s))
    from hwnas.latency.opmodels import SubnetModelCache

    runner = create_runner("onnx-host", host)
    subnets = SubnetModelCache(s, "onnx", tmp_path / "subnets")
    cal = calibrate(table, s, runner, n=4, threads=1, cache=subnets, canary=False)
    assert cal["n"] == 6 and cal["scale"] > 0
    assert LatencyTable.load(table.path).calibration(space_tag(s))["scale"] == cal["scale"]
    rep = validate(table, s, runner, n=6, threads=1, cache=subnets, canary=False)
    assert len(list(subnets.dir.glob("*.onnx"))) == 12  # 4 + 2 calibration, 6 validation subnets
    assert rep.n == 6 and rep.calibrated and 0 <= rep.within_10pct <= 1
    assert rep.mape < 0.5  # a sane table on this machine is far better; this catches a broken one
    assert Path(rep.plot).stat().st_size > 5000
    saved = json.loads(table.path.with_name(f"{table.path.stem}.{space_tag(s)}.validation.json").read_text())
    assert len(saved["measured_ms"]) == 6 and saved["kendall_tau"] == rep.kendall_tau
    # measurements are stored: validating again re-measures nothing and gives the same figures
    rep2 = validate(table, s, runner, n=6, threads=1, cache=subnets, canary=False)
    assert rep2.mape == rep.mape


@pytest.mark.slow
def test_profile_and_lut_commands_on_host(tmp_path, monkeypatch, capsys):
    """The CLI end to end on the host (ONNX Runtime, tiny space): dry run, profile with rounds and
    calibration, show, validate; bad input is a one-line error with exit code 2."""
    from conftest import run_cli

    monkeypatch.setenv("HWNAS_CACHE_DIR", str(tmp_path / "cache"))
    common = ["-d", "host", "-s", "mbv2", "--runtime", "onnx", "--width", "0.25", "--resolution", "16",
              "--num-classes", "10", "--tables-dir", str(tmp_path / "t")]
    code, out, _ = run_cli(["profile", *common, "--dry-run"], capsys)
    assert code == 0 and "keys to measure" in out
    assert not (tmp_path / "t" / "host" / "mbv2-onnx.json").exists()
    code, out, err = run_cli(["profile", *common, "--rounds", "2", "--runs", "5", "--warmup", "1",
                              "--calibrate", "2", "--no-canary", "--method", "one-op"], capsys)
    assert code == 0, err
    assert "keys in" in out and "calibration: scale" in out
    table = LatencyTable.load(tmp_path / "t" / "host" / "mbv2-onnx.json")
    assert table.metadata["rounds"] == 2 and all(len(e["rounds"]) == 2 for e in table.entries.values())
    assert "last_profile_canary" not in table.metadata  # --no-canary
    assert table.calibration("mbv2@w0.25r16")["n"] == 4
    code, out, _ = run_cli(["lut", "show", "-d", "host", "-s", "mbv2", "--runtime", "onnx", "--keys",
                            "--tables-dir", str(tmp_path / "t")], capsys)
    assert code == 0 and "mbconv-in" in out
    code, out, err = run_cli(["lut", "validate", *common, "--n", "3", "--no-canary"], capsys)
    assert code == 0, err
    assert "MAPE" in out and (tmp_path / "t" / "host" / "mbv2-onnx.mbv2@w0.25r16.validation.png").exists()
    assert len(list((tmp_path / "cache" / "subnets" / "onnx" / "mbv2@w0.25r16").glob("*.onnx"))) == 7
    code, _, err = run_cli(["profile", *common, "--rounds", "0"], capsys)
    assert code == 2 and "--rounds" in err


def test_lut_show_json_on_the_shipped_table(capsys):
    import json

    from conftest import run_cli
    from hwnas.latency.table import default_table_dir

    code, out, err = run_cli(["lut", "show", "-d", "host", "-s", "mbv2", "--json", "--keys"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    shipped = LatencyTable.load(default_table_dir() / "host" / "mbv2-tflite.json")
    assert doc["keys"] == len(shipped.entries) == len(doc["entries"])
    assert doc["metadata"]["runtime"] == "tflite" and doc["calibrations"] == shipped.calibrations
    key = next(iter(sorted(shipped.entries)))
    assert doc["entries"][key]["median_ms"] == shipped.entries[key]["median_ms"]
    code, _, err = run_cli(["lut", "show", "-d", "host", "-s", "mbv2", "--precision", "int8"], capsys)
    assert code == 2 and "mbv2-tflite-int8.json" in err  # no shipped int8 table: the file it looked for
