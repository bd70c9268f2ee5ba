"""`hwnas devices` and device resolution, end to end against the loopback ADB device.

The loopback device runs commands on this host, which has no `getprop`: the test puts a `getprop`
on PATH that prints a real captured `getprop` output (tests/fixtures/real-outputs), so the parser
sees a real phone's text through the real ADB wire protocol.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest_adb import adb_client, adb_env, adb_test_key, loopback_adbd, make_loopback_adbd  # noqa: F401
from conftest import run_cli
from hwnas.devices import attached_serial, check_device, resolve_device
from hwnas.devices.profiles import load_profile
from hwnas.errors import HwnasError

FIXTURES = Path(__file__).parent / "fixtures" / "real-outputs"



@pytest.fixture
def fake_getprop(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "getprop"
    script.write_text(f"#!/bin/sh\ncat {FIXTURES / 'getprop-poco-f6-sm8635-pineapple-full.txt'}\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return script


def _profile_toml(tmp_path: Path, port: int, transport: str = "adb-shell") -> Path:
    p = tmp_path / "loop.toml"
    p.write_text(f"""
name = "loop"
human_name = "Loopback device"
kind = "phone"
soc = "test"
abi = "arm64-v8a"
remote_work_dir = "/data/local/tmp/hwnas"

[connection]
transport = "{transport}"
host = "127.0.0.1"
port = {port}

[cpu]
default_threads = 1

[runtimes.tflite]
delegates = ["xnnpack"]
binary = "/data/local/tmp/hwnas/benchmark_model"

[thermal]
source = "none"
fixed_pause_s = 0.0
""")
    return p


def test_devices_list_and_show(capsys):
    code, out, _ = run_cli(["devices", "list"], capsys)
    assert code == 0
    for name in ("host", "s22", "tab-s8", "mate50", "watch", "sd855-hdk"):
        assert name in out
    code, out, _ = run_cli(["devices", "show", "s22", "--serial", "R5CT1234"], capsys)
    assert code == 0 and '"serial": "R5CT1234"' in out and '"big_mask": "f0"' in out


def test_devices_list_json_and_a_bad_profile(tmp_path, monkeypatch, capsys):
    import json

    code, out, _ = run_cli(["devices", "list", "--json"], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["errors"] == []
    host = next(p for p in doc["profiles"] if p["name"] == "host")
    assert host["runtimes"]["tflite"] == {"delegates": ["xnnpack", "cpu"], "precisions": ["fp32", "int8"]}
    (tmp_path / "broken.toml").write_text('name = "broken"\nkind = "toaster"\n', encoding="utf-8")
    monkeypatch.setenv("HWNAS_DEVICE_PROFILES", str(tmp_path))
    code, out, err = run_cli(["devices", "list", "--json"], capsys)
    doc = json.loads(out)
    assert code == 2 and len(doc["profiles"]) == 6  # the others are still listed
    (bad,) = doc["errors"]
    assert bad["file"] == str(tmp_path / "broken.toml") and "human_name" in bad["error"]
    code, out, err = run_cli(["devices", "list"], capsys)
    assert code == 2 and "s22" in out and f"{tmp_path / 'broken.toml'}: human_name: missing" in err


def test_devices_check_unknown_and_unattached(capsys):
    code, _, err = run_cli(["devices", "check", "pixel99"], capsys)
    assert code == 2 and "pixel99" in err and "s22" in err


def test_check_over_adb_shell_reads_real_getprop(tmp_path, make_loopback_adbd, adb_test_key, fake_getprop):  # noqa: F811
    dev = make_loopback_adbd()
    (dev.sandbox / "hwnas").mkdir()
    bm = dev.sandbox / "hwnas" / "benchmark_model"
    profile = load_profile(_profile_toml(tmp_path, dev.port))

    def transport():  # the test key, never the user's ~/.android/adbkey
        return profile.open_transport(key_path=adb_test_key)

    rows = dict(check_device(profile, transport()))
    assert rows["model"] == "24069PC21I"  # POCO F6, from the captured getprop
    assert rows["board_platform"] == "pineapple"
    assert "MISSING" in rows["tflite binary"]
    bm.write_text("#!/bin/sh\necho ok\n")
    bm.chmod(0o755)
    assert "present" in dict(check_device(profile, transport()))["tflite binary"]


def test_attached_serial_uses_the_real_adb_client(adb_client, monkeypatch):  # noqa: F811
    for k, v in adb_client.env.items():
        monkeypatch.setenv(k, v)
    profile = load_profile("s22")
    assert attached_serial(profile) == adb_client.serial
    resolved = resolve_device("s22")
    assert resolved.connection.serial == attached_serial(profile)


def test_no_device_attached_is_a_clear_error(adb_env, monkeypatch):  # noqa: F811
    for k, v in adb_env.env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(HwnasError, match="no device attached for profile 's22'"):
        resolve_device("s22")
