"""``hwnas profile`` on the ``ofa-mbv3`` space, on every shipped device profile.

The MobileNetV3 block (op ``mbconv3``: SE with a hard-sigmoid gate, h-swish or ReLU) is exported as
one-op models and measured on each profile with its own runtimes, default delegate, threads and
precisions: the host profile through the host runners (real onnxruntime / LiteRT interpreters), the
phone, dev-kit, tablet and watch profiles through the loopback ADB device (the real ADB wire
protocol, the fake ``benchmark_model`` / ``onnxruntime_perf_test`` that run the pushed model with
the real interpreters). On the loopback device the profile's connection, binaries, CPU masks and
thermal rule are replaced (the loopback device is this 2-core computer, without the phone's
cores or thermal sensors); its runtimes, delegates, threads and precisions are the shipped ones.
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

import pytest

from conftest import tiny_space
from conftest_adb import adb_test_key, make_loopback_adbd  # noqa: F401  (fixtures)
from hwnas.devices.profiles import list_profiles, load_profile
from hwnas.latency.keys import space_ops
from hwnas.latency.opmodels import OpModelCache
from hwnas.latency.profile import ProfileConfig, plan_profile, profile_device
from hwnas.latency.table import LatencyTable, table_path

REPO = Path(__file__).resolve().parents[1]
PROFILES = REPO / "hwnas" / "device_profiles"
FAKES = {"tflite": REPO / "tools" / "fake_benchmark_model.py", "onnx": REPO / "tools" / "fake_onnxruntime_perf_test.py"}
STATS = {"count": 10, "mean_ms": 1.0, "median_ms": 1.0, "std_ms": 0.1, "min_ms": 0.9, "max_ms": 1.2}


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory) -> Path:
    """One-op models shared by the tests of this file (each key is exported once per runtime)."""
    return tmp_path_factory.mktemp("opmodels")


def _space():
    return tiny_space("ofa-mbv3", resolution=32)


def _chosen(ops) -> list[str]:
    """Two MobileNetV3 blocks: SE + h-swish at kernel 7 (stages 4 / 5) and SE + ReLU (stage 2)."""
    hs = next(k for k, o in ops.items() if o.op == "mbconv3" and o.se and o.act == "hswish" and o.kernel == 7)
    relu = next(k for k, o in ops.items() if o.op == "mbconv3" and o.se and o.act == "relu")
    return [hs, relu]


def test_every_profile_plans_every_ofa_mbv3_key(tmp_path):
    sp = _space()
    ops = space_ops(sp)
    blocks = {(o.se, o.act) for o in ops.values() if o.op == "mbconv3"}
    assert blocks == {(False, "relu"), (True, "relu"), (False, "hswish"), (True, "hswish")}
    names = list_profiles()
    assert {"host", "mate50", "s22", "sd855-hdk", "tab-s8", "watch"} <= set(names)
    for name in names:
        profile = load_profile(name)
        for rt in profile.runtimes:
            for precision in rt.precisions:
                plan = plan_profile(profile, sp, ProfileConfig(runtime=rt.name, precision=precision), tmp_path)
                assert plan.keys == list(ops) and plan.measured == 0 and plan.estimate_s > 0, (name, rt.name)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    return "[" + ", ".join(_toml_value(x) for x in v) + "]"


def _toml(doc: dict, prefix: str = "") -> list[str]:
    lines = [f"{k} = {_toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for k, v in doc.items():
        if isinstance(v, dict):
            lines += ["", f"[{prefix}{k}]", *_toml(v, f"{prefix}{k}.")]
    return lines


def _on_loopback(name: str, port: int, tmp_path: Path) -> Path:
    """The shipped profile ``name`` pointed at the loopback ADB device (see the module docstring)."""
    doc = tomllib.loads((PROFILES / f"{name}.toml").read_text(encoding="utf-8"))
    doc["connection"] = {"transport": "adb-shell", "host": "127.0.0.1", "port": port}
    doc["cpu"] = {"default_threads": doc["cpu"]["default_threads"], "cores": "all"}
    doc["thermal"] = {"source": "none", "fixed_pause_s": 0.0}
    for rt, spec in doc["runtimes"].items():
        wrapper = tmp_path / "device" / "hwnas" / "bin" / f"{rt}-tool"
        wrapper.parent.mkdir(parents=True, exist_ok=True)
        wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} {FAKES[rt]} \"$@\"\n")
        wrapper.chmod(0o755)
        spec["binary"] = f"/data/local/tmp/hwnas/bin/{rt}-tool"
    path = tmp_path / f"{name}.toml"
    path.write_text("\n".join(_toml(doc)) + "\n", encoding="utf-8")
    return path


def _measure_blocks(profile, sp, runtime, precision, tables, cache, transport=None, n=2, rounds=2):
    """Fill the table with placeholders except ``n`` MobileNetV3 blocks (:func:`_chosen`), then
    profile (resume): those are exported, measured on the device and stored."""
    ops = space_ops(sp)
    chosen = _chosen(ops)[:n]
    rt = profile.runtime(runtime)
    cfg = ProfileConfig(runtime=runtime, precision=precision, warmup=1, runs=3, rounds=rounds, cool_down=False,
                        canary=False, method="one-op")
    path = table_path(profile.name, sp.name, runtime, tables, precision)
    t = LatencyTable.new(device=profile.name, soc=profile.soc, runtime=runtime, precision=precision,
                         runtime_version="unknown", delegate=rt.default_delegate,
                         threads=profile.cpu.default_threads, warmup=1, runs=3, space=sp, path=path,
                         method="one-op")
    for k in ops:
        if k not in chosen:
            t.add(k, STATS, save=False)
    t.save()
    table = profile_device(profile, sp, cfg, tables_dir=tables, resume=True, transport=transport, cache=cache)
    on_disk = LatencyTable.load(path)
    for k in chosen:
        e = on_disk.entries[k]
        assert e == table.entries[k] and e["median_ms"] > 0 and len(e["rounds"]) == rounds, (profile.name, runtime, k)
        assert e["median_ms"] != STATS["median_ms"]
    assert on_disk.metadata["device"] == profile.name and on_disk.metadata["delegate"] == rt.default_delegate
    return on_disk


@pytest.mark.slow
def test_host_profile_measures_ofa_mbv3_blocks_with_every_runtime_and_precision(tmp_path, cache_root):
    sp = _space()
    host = load_profile("host")
    for rt in host.runtimes:
        for precision in rt.precisions:
            cache = OpModelCache(rt.name, cache_root / f"{rt.name}-{precision}", precision=precision)
            # one block (SE + h-swish), one round: the trace test below measures every other block
            _measure_blocks(host, sp, rt.name, precision, tmp_path / "tables", cache, n=1, rounds=1)


@pytest.mark.slow
def test_host_onnx_trace_profile_covers_every_ofa_mbv3_key(tmp_path):
    """The default method on the host's onnxruntime (auto: trace): a few whole subnets cover every
    key, each op's entry from the profiler's nodes."""
    sp = _space()
    cfg = ProfileConfig(runtime="onnx", warmup=1, runs=3, rounds=1, cool_down=False, canary=False)
    table = profile_device(load_profile("host"), sp, cfg, tables_dir=tmp_path)
    assert table.metadata["method"] == "trace" and set(table.entries) == set(space_ops(sp))
    assert all(e["median_ms"] > 0 for k, e in table.entries.items() if k.startswith("mbconv3"))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mate50", "s22", "sd855-hdk", "tab-s8", "watch"])
def test_device_profile_measures_ofa_mbv3_blocks_over_adb(name, tmp_path, cache_root, make_loopback_adbd,
                                                         adb_test_key):  # noqa: F811
    dev = make_loopback_adbd(sandbox=tmp_path / "device")
    profile = load_profile(_on_loopback(name, dev.port, tmp_path))
    assert profile.name == name
    sp = _space()
    for rt in profile.runtimes:
        for precision in rt.precisions:
            transport = profile.open_transport(key_path=adb_test_key, attempts=2, base_delay=0.01, max_delay=0.02)
            cache = OpModelCache(rt.name, cache_root / f"{rt.name}-{precision}", precision=precision)
            # one block (SE + h-swish), one round: each run of the fake tool starts a Python interpreter
            _measure_blocks(profile, sp, rt.name, precision, tmp_path / "tables", cache, transport, n=1, rounds=1)
    assert (tmp_path / "device" / "hwnas").is_dir()  # the one-op models were pushed there
