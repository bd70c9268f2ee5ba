"""Device profiles: the shipped TOML files, validation errors, lookup order and overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hwnas.devices.profiles import (
    ENV_PROFILES_DIRS,
    builtin_profiles_dir,
    list_profiles,
    load_profile,
    profile_search_path,
)
from hwnas.errors import HwnasError

SHIPPED = ("host", "s22", "tab-s8", "mate50", "watch", "sd855-hdk")


@pytest.fixture(autouse=True)
def _no_user_profile_dirs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_PROFILES_DIRS, raising=False)


def write_profile(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def s22_text(**replace: str) -> str:
    """The shipped s22 profile with lines replaced (``{"old line": "new line"}`` pairs)."""
    text = (builtin_profiles_dir() / "s22.toml").read_text(encoding="utf-8")
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def edited(tmp_path: Path, old: str, new: str) -> Path:
    return write_profile(tmp_path, "s22", s22_text(**{old: new}))


# ---- shipped profiles ------------------------------------------------------------------------


def test_all_shipped_profiles_load_and_are_listed() -> None:
    assert set(SHIPPED) <= set(list_profiles())
    for name in SHIPPED:
        profile = load_profile(name)
        assert profile.name == name
        assert profile.source == builtin_profiles_dir() / f"{name}.toml"
        assert profile.runtimes, name
        json.dumps(profile.to_dict())  # JSON-ready for latency-table metadata


def test_s22_snapdragon_variant() -> None:
    p = load_profile("s22")
    assert (p.kind, p.abi) == ("phone", "arm64-v8a")
    assert "SM8450" in p.soc and "SM-S908U" in p.human_name
    assert p.connection.transport == "adb" and p.connection.adb_serial is None
    assert (p.cpu.big_mask, p.cpu.little_mask, p.cpu.default_threads) == ("f0", "0f", 4)
    assert (p.cpu.mask(), p.cpu.mask("little"), p.cpu.mask("all")) == ("f0", "0f", None)
    tflite = p.runtime("tflite")
    assert set(tflite.delegates) == {"cpu", "xnnpack", "gpu", "nnapi"}
    assert tflite.default_delegate == "xnnpack"
    assert tflite.binary == "/data/local/tmp/hwnas/benchmark_model"
    assert p.runtime("onnx").binary == "/data/local/tmp/hwnas/onnxruntime_perf_test"
    assert p.remote_work_dir == "/data/local/tmp/hwnas"
    assert (p.thermal.source, p.thermal.sensor, p.thermal.cooldown_c) == ("dumpsys", "CPU", 40.0)


def test_other_shipped_devices() -> None:
    tab, mate, hdk = load_profile("tab-s8"), load_profile("mate50"), load_profile("sd855-hdk")
    assert (tab.kind, mate.kind, hdk.kind) == ("tablet", "phone", "devkit")
    assert "Snapdragon 8 Gen 1" in tab.soc and "8+ Gen 1" in mate.soc and "855" in hdk.soc
    assert all(p.cpu.mask() == "f0" for p in (tab, mate, hdk))
    assert (hdk.thermal.source, hdk.thermal.zone) == ("sysfs", "/sys/class/thermal/thermal_zone0/temp")


def test_watch_over_wifi_and_host_profile() -> None:
    watch = load_profile("watch")
    assert (watch.kind, watch.abi, watch.connection.transport) == ("watch", "armeabi-v7a", "adb-shell")
    assert watch.connection.adb_serial == "192.168.0.100:5555"
    assert (watch.cpu.mask(), watch.cpu.default_threads) == ("3", 2)
    host = load_profile("host")
    assert host.is_local and host.kind == "host" and host.remote_work_dir is None
    assert host.cpu.mask() is None
    assert all(rt.binary is None for rt in host.runtimes)
    assert (host.thermal.source, host.thermal.fixed_pause_s) == ("none", 0.0)


def test_runtime_and_delegate_errors_list_what_exists() -> None:
    watch = load_profile("watch")
    with pytest.raises(HwnasError, match="available: 'xnnpack', 'cpu'"):
        watch.runtime("tflite").check_delegate("nnapi")
    assert watch.runtime("tflite").check_delegate(None) == "xnnpack"
    host_only_tflite = load_profile("host")
    with pytest.raises(HwnasError, match="no runtime 'tvm'; available: 'tflite', 'onnx'"):
        host_only_tflite.runtime("tvm")
    with pytest.raises(HwnasError, match="cores = 'middle'"):
        watch.cpu.mask("middle")


# ---- overrides -------------------------------------------------------------------------------


def test_serial_override_replaces_the_wifi_address() -> None:
    p = load_profile("watch", overrides={"serial": "R3AW1234", "host": None})
    assert (p.connection.serial, p.connection.host, p.connection.adb_serial) == ("R3AW1234", None, "R3AW1234")


def test_host_override_with_port_replaces_serial(tmp_path: Path) -> None:
    path = edited(tmp_path, 'transport = "adb"\n', 'transport = "adb"\nserial = "R5CT"\n')
    p = load_profile(path, overrides={"host": "10.1.2.3:4444"})
    assert (p.connection.serial, p.connection.host, p.connection.port) == (None, "10.1.2.3", 4444)
    assert p.connection.adb_serial == "10.1.2.3:4444"


def test_dotted_overrides_are_validated_like_the_file() -> None:
    assert load_profile("s22", overrides={"cpu.default_threads": 2}).cpu.default_threads == 2
    with pytest.raises(HwnasError, match=r"cpu\.default_threads \(set by override\): must be an integer"):
        load_profile("s22", overrides={"cpu.default_threads": "two"})
    with pytest.raises(HwnasError, match=r"connection\.transport \(set by override\): = 'usb' is not allowed; "
                                         r"allowed values: 'adb-shell', 'adb', 'local'"):
        load_profile("s22", overrides={"transport": "usb"})
    with pytest.raises(HwnasError, match="not 'host' or 'host:port'"):
        load_profile("s22", overrides={"host": "10.0.0.1:abc"})


# ---- validation errors -----------------------------------------------------------------------


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = edited(tmp_path, 'kind = "phone"\n', 'kind = "phone"\ncolour = "black"\n')
    with pytest.raises(HwnasError) as exc:
        load_profile(path)
    msg = str(exc.value)
    assert str(path) in msg and "colour: unknown key" in msg
    assert "allowed keys in the top level: name, human_name, kind, soc, abi" in msg


def test_unknown_nested_key(tmp_path: Path) -> None:
    path = edited(tmp_path, 'big_mask = "f0"', 'big_msk = "f0"')
    with pytest.raises(HwnasError, match=r"s22\.toml: cpu\.big_msk: unknown key; allowed keys in \[cpu\]: "
                                         r"default_threads, big_mask, little_mask, cores"):
        load_profile(path)


def test_wrong_type(tmp_path: Path) -> None:
    path = edited(tmp_path, "default_threads = 4", 'default_threads = "4"')
    with pytest.raises(HwnasError, match=r"cpu\.default_threads: must be an integer, got str '4'"):
        load_profile(path)
    path = edited(tmp_path, "cooldown_c = 40.0", "cooldown_c = true")
    with pytest.raises(HwnasError, match=r"thermal\.cooldown_c: must be a finite number, got bool True"):
        load_profile(path)


def test_nan_infinity_tables_and_encodings_are_named(tmp_path: Path) -> None:
    for value in ("nan", "inf", "-inf"):
        path = edited(tmp_path, "cooldown_c = 40.0", f"cooldown_c = {value}")
        with pytest.raises(HwnasError, match=r"thermal\.cooldown_c: must be a finite number, got float"):
            load_profile(path)
    path = write_profile(tmp_path, "s22", s22_text(**{'kind = "phone"\n': 'kind = "phone"\ncpu = 3\n',
                                                       "[cpu]\n": "[cpu_old]\n"}))
    with pytest.raises(HwnasError, match=r"s22\.toml: cpu: must be a table \(\[cpu\]\), got int"):
        load_profile(path)
    path = edited(tmp_path, 'soc = "Qualcomm', 'soc = "\u00e9Qualcomm')
    path.write_bytes(path.read_bytes().replace("\u00e9".encode(), b"\xe9"))  # Latin-1, not UTF-8
    with pytest.raises(HwnasError, match=r"device profile .*s22\.toml is not UTF-8 text \(byte \d+: b'\\xe9'\)"):
        load_profile(path)
    (tmp_path / "folder.toml").mkdir()
    with pytest.raises(HwnasError, match=r"device profile .*folder\.toml is a folder, not a file"):
        load_profile(tmp_path / "folder.toml")


def test_missing_required_field_names_allowed_values(tmp_path: Path) -> None:
    path = edited(tmp_path, 'transport = "adb"\n', "")
    with pytest.raises(HwnasError, match=r"connection\.transport: missing required key \(one of 'adb-shell', "
                                         r"'adb', 'local'\)"):
        load_profile(path)
    path = edited(tmp_path, 'soc = "Qualcomm Snapdragon 8 Gen 1 (SM8450, taro)"\n', "")
    with pytest.raises(HwnasError, match=r"soc: missing required key \(a string\)"):
        load_profile(path)


@pytest.mark.parametrize(
    ("old", "new", "pattern"),
    [
        ('transport = "adb"', 'transport = "usb"',
         r"connection\.transport: = 'usb' is not allowed; allowed values: 'adb-shell', 'adb', 'local'"),
        ('kind = "phone"', 'kind = "fridge"',
         r"kind: = 'fridge' is not allowed; allowed values: 'phone', 'tablet', 'watch', 'devkit', 'host'"),
        ('delegates = ["xnnpack", "cpu", "gpu", "nnapi"]', 'delegates = ["xnnpack", "hexagon"]',
         r"runtimes\.tflite\.delegates: value 'hexagon' is not allowed; allowed values: 'cpu', 'xnnpack', "
         r"'gpu', 'nnapi'"),
        ('source = "dumpsys"', 'source = "ir-camera"',
         r"thermal\.source: = 'ir-camera' is not allowed; allowed values: 'sysfs', 'dumpsys', 'none'"),
        ('abi = "arm64-v8a"', 'abi = "mips"', r"abi: = 'mips' is not allowed"),
        ('cores = "big"', 'cores = "middle"', r"cpu\.cores: = 'middle' is not allowed; allowed values: 'big', "
                                              r"'little', 'all'"),
    ],
)
def test_bad_enum_values(tmp_path: Path, old: str, new: str, pattern: str) -> None:
    path = edited(tmp_path, old, new)
    with pytest.raises(HwnasError, match=pattern):
        load_profile(path)


@pytest.mark.parametrize(
    ("old", "new", "pattern"),
    [
        ('big_mask = "f0"', 'big_mask = "0xzz"', r"cpu\.big_mask: = '0xzz' must be a non-zero hex CPU mask"),
        ('big_mask = "f0"', 'big_mask = "00"', r"cpu\.big_mask: = '00' must be a non-zero hex"),
        ("default_threads = 4", "default_threads = 0", r"cpu\.default_threads: = 0 must be at least 1"),
        ('name = "s22"', 'name = "s23"', r"name: = 's23' must equal the file name 's22'"),
        ('transport = "adb"\n', 'transport = "adb"\nserial = "A"\nhost = "10.0.0.1"\n',
         r"connection\.host: set either connection\.serial \(USB\) or connection\.host"),
        ('transport = "adb"', 'transport = "local"\nserial = "A"',
         r"connection\.serial: must not be set for transport 'local'"),
        ('binary = "/data/local/tmp/hwnas/benchmark_model"\n', "",
         r"runtimes\.tflite\.binary: missing required key: the benchmark binary's path on the device"),
        ('remote_work_dir = "/data/local/tmp/hwnas"', 'remote_work_dir = "tmp/hwnas"',
         r"remote_work_dir: = 'tmp/hwnas' must be an absolute path"),
        ('source = "dumpsys"', 'source = "sysfs"', r"thermal\.zone: missing required key for source 'sysfs'"),
        ("cooldown_c = 40.0\n", "", r"thermal\.cooldown_c: missing required key for source 'dumpsys'"),
    ],
)
def test_bad_values(tmp_path: Path, old: str, new: str, pattern: str) -> None:
    path = edited(tmp_path, old, new)
    with pytest.raises(HwnasError, match=pattern):
        load_profile(path)


def test_default_delegate_must_be_listed(tmp_path: Path) -> None:
    path = edited(tmp_path, 'delegates = ["cpu", "xnnpack", "nnapi"]',
                  'delegates = ["cpu"]\ndefault_delegate = "nnapi"')
    with pytest.raises(HwnasError, match=r"runtimes\.onnx\.default_delegate: = 'nnapi' is not allowed; "
                                         r"allowed values: 'cpu'"):
        load_profile(path)


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    path = write_profile(tmp_path, "broken", 'name = "broken"\nkind = \n')
    with pytest.raises(HwnasError, match=r"broken\.toml: not valid TOML"):
        load_profile(path)
    with pytest.raises(HwnasError, match=r"nope\.toml does not exist"):
        load_profile(tmp_path / "nope.toml")


# ---- lookup ----------------------------------------------------------------------------------


def test_unknown_name_lists_known_profiles() -> None:
    with pytest.raises(HwnasError) as exc:
        load_profile("pixel9")
    msg = str(exc.value)
    assert "unknown device profile 'pixel9'" in msg
    for name in SHIPPED:
        assert f"'{name}'" in msg
    assert str(builtin_profiles_dir()) in msg and ENV_PROFILES_DIRS in msg
    with pytest.raises(HwnasError, match="is not valid"):
        load_profile("S22 Ultra!")


def test_env_dirs_shadow_builtins_and_add_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = tmp_path / "user"
    write_profile(user, "s22", s22_text(**{'human_name = "Samsung Galaxy S22 Ultra (SM-S908U, Snapdragon 8 Gen 1)"':
                                           'human_name = "My S22"'}))
    mine = s22_text(**{'name = "s22"': 'name = "lab-phone"'})
    write_profile(user, "lab-phone", mine)
    monkeypatch.setenv(ENV_PROFILES_DIRS, str(user))
    assert profile_search_path()[0] == user
    assert load_profile("s22").human_name == "My S22"
    assert load_profile("lab-phone").source == user / "lab-phone.toml"
    assert {"lab-phone", *SHIPPED} <= set(list_profiles())
    # an explicit profiles_dir comes before the environment
    explicit = tmp_path / "explicit"
    write_profile(explicit, "s22", s22_text(**{'human_name = "Samsung Galaxy S22 Ultra (SM-S908U, Snapdragon 8 Gen 1)"':
                                               'human_name = "Explicit S22"'}))
    assert load_profile("s22", profiles_dir=explicit).human_name == "Explicit S22"
    assert profile_search_path(explicit)[:2] == (explicit, user)
    assert profile_search_path(explicit)[-1] == builtin_profiles_dir()


def test_load_by_path_string_and_path(tmp_path: Path) -> None:
    path = write_profile(tmp_path, "lab", s22_text(**{'name = "s22"': 'name = "lab"'}))
    assert load_profile(str(path)).name == "lab"
    assert load_profile(path).source == path


# ---- transports ------------------------------------------------------------------------------


def test_open_transport_from_profiles() -> None:
    from hwnas.devices.transport import AdbShellTransport, LocalTransport

    local = load_profile("host").open_transport()
    assert isinstance(local, LocalTransport) and local.is_alive()
    assert local.shell(["echo", "hi"]).stdout.strip() == "hi"
    watch = load_profile("watch").open_transport()  # nothing connects until the first call
    assert isinstance(watch, AdbShellTransport)
    assert (watch.host, watch.port, watch.name) == ("192.168.0.100", 5555, "watch")
    with pytest.raises(HwnasError, match="names no device: pass --serial SERIAL"):
        load_profile("s22").open_transport()
