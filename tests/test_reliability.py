"""Nothing lost, nothing cryptic: the error path, locks, option checks, plain progress."""

from __future__ import annotations

import json
import math

import pytest

from conftest import run_cli
from hwnas.errors import HwnasError
from hwnas.io import atomic_write_json, read_json, read_text
from hwnas.locking import file_lock, folder_lock


# ---- one error path -------------------------------------------------------------------------------
@pytest.mark.parametrize("args,needle", [
    (["profile", "-d", "host", "--threads", "abc"], "hwnas profile: Invalid value for '--threads'"),
    (["profile", "--no-such-option"], "No such option: --no-such-option"),
    (["arch", "sample", "-s", "mbv2", "-n", "0"], "Invalid value for '--n'"),
])
def test_usage_errors_are_one_line_exit_2(args, needle, capsys):
    code, _, err = run_cli(args, capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and needle in err
    assert "Traceback" not in err and "╭" not in err


def test_messages_print_without_markup(capsys, tmp_path):
    bad = tmp_path / "[red]x[/red] [cpu]"
    code, _, err = run_cli(["arch", "show", "-s", "mbv2", "-g", f"@{bad}"], capsys)
    assert code == 2 and str(bad) in err  # the brackets survive


def test_os_errors_name_the_path_and_operation(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(HwnasError, match=r"cannot write .*file/sub/a.json: a part of it is a file"):
        atomic_write_json(blocker / "sub" / "a.json", {"a": 1})
    (tmp_path / "d.json").mkdir()
    with pytest.raises(HwnasError, match="it is a folder"):
        atomic_write_json(tmp_path / "d.json", {"a": 1})
    code, _, err = run_cli(["export", "-s", "mbv2", "-g", ",".join(["0"] * 21), "--out", str(blocker / "o"),
                            "--width", "0.25", "--resolution", "16", "--num-classes", "2", "-f", "onnx",
                            "--no-check"], capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"error: --out {blocker / 'o'} cannot be created: {blocker} is a file")


def test_readers_check_encoding_type_and_folders(tmp_path):
    f = tmp_path / "t.json"
    f.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(HwnasError, match="is not UTF-8 text"):
        read_text(f, "table")
    with pytest.raises(HwnasError, match="is a folder, not a file"):
        read_text(tmp_path, "table")
    f.write_text("[1, 2]")
    with pytest.raises(HwnasError, match="holds a JSON list, expected a JSON object"):
        read_json(f, "state file")
    f.write_text('{"a": NaN}')
    with pytest.raises(HwnasError, match="NaN is not allowed"):
        read_json(f, "table")


def test_nan_never_enters_a_json_file(tmp_path):
    f = tmp_path / "r.json"
    with pytest.raises(HwnasError, match=r"entries.k.median_ms is not a finite number"):
        atomic_write_json(f, {"entries": {"k": {"median_ms": math.nan}}})
    assert not f.exists()


# ---- locks ----------------------------------------------------------------------------------------
def test_folder_lock_refuses_a_second_holder(tmp_path):
    # an advisory lock per open file: a second holder in this process stands for a second process
    with folder_lock(tmp_path / "run"):
        with pytest.raises(HwnasError, match="run folder .*run is in use by another hwnas process"):
            with folder_lock(tmp_path / "run"):
                pass
    with folder_lock(tmp_path / "run"):  # free again once the holder ended
        pass


def test_file_lock_waits_with_a_message(tmp_path, monkeypatch):
    import hwnas.locking as L

    monkeypatch.setattr(L, "WAIT_NOTICE_S", 0.05)
    target = tmp_path / "t.json"
    seen = []
    with file_lock(target):
        with pytest.raises(HwnasError, match="is locked by another process"):
            with file_lock(target, wait_s=0.2, on_wait=seen.append):
                pass
    assert seen and "waiting for another process writing" in seen[0]


# ---- progress without a terminal --------------------------------------------------------------------
def test_plain_progress_lines_without_a_tty(capsys):
    from rich.console import Console

    from hwnas.ui import progress

    con = Console(stderr=True)  # captured: not a terminal
    with progress(con, every_s=0.0) as prog:
        t = prog.add_task("host [cpu]", total=4)
        for i in range(1, 5):
            prog.update(t, completed=i)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("host [cpu]: 1/4 (25 %)") and lines[-1].startswith("host [cpu]: 4/4 (100 %)")
    assert len(lines) == 4


# ---- the device is checked before any work ----------------------------------------------------------
from conftest_adb import adb_client, adb_env, adb_test_key, loopback_adbd, make_loopback_adbd  # noqa: E402,F401


def test_profile_checks_the_device_before_exporting(adb_client, tmp_path, monkeypatch, capsys):  # noqa: F811
    """A wrong serial, then the right one without the benchmark tool: both fail before one one-op
    model is exported and before a table is written."""
    from hwnas.latency.opmodels import OpModelCache

    for k, v in adb_client.env.items():
        monkeypatch.setenv(k, v)
    from hwnas.devices.profiles import builtin_profiles_dir

    fast = tmp_path / "profiles"  # s22 with quick retries: the wrong serial fails in a second
    fast.mkdir()
    (fast / "s22.toml").write_text((builtin_profiles_dir() / "s22.toml").read_text().replace(
        "[connection]\n", "[connection]\nattempts = 2\nretry_delay_s = 0.1\n", 1))
    monkeypatch.setenv("HWNAS_DEVICE_PROFILES", str(fast))
    exported = []
    monkeypatch.setattr(OpModelCache, "get", lambda self, key, spec: exported.append(key))
    tables = tmp_path / "tables"
    common = ["profile", "-d", "s22", "-s", "mbv2", "--width", "0.25", "--resolution", "16",
              "--num-classes", "2", "--calibrate", "0", "--tables-dir", str(tables)]
    code, _, err = run_cli([*common, "--serial", "WRONG-SERIAL-0"], capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "WRONG-SERIAL-0" in err and "not found by adb" in err
    code, _, err = run_cli([*common, "--serial", adb_client.serial], capsys)
    assert code == 2 and err.count("\n") == 1 and "benchmark_model not found" in err
    assert exported == [] and not tables.exists()


# ---- option ranges, checked before anything is written ----------------------------------------------
@pytest.mark.parametrize("args,needle", [
    (["profile", "-d", "host", "--threads", "0"], "hwnas profile: --threads must be >= 1, got 0"),
    (["profile", "-d", "host", "--threads", "-2"], "hwnas profile: --threads must be >= 1, got -2"),
    (["search", "-s", "mbv2", "--max-latency-ms", "nan"], "--max-latency-ms must be a finite number, got nan"),
    (["search", "-s", "mbv2", "--max-latency-ms", "-1"], "--max-latency-ms must be > 0, got -1"),
    (["search", "-s", "mbv2", "--max-macs", "-5"], "--max-macs must be > 0, got -5"),
    (["search", "-s", "mbv2", "--max-macs", "nan"], "--max-macs must be a finite number"),
    (["search", "-s", "mbv2", "--max-bitops", "inf"], "--max-bitops must be a finite number"),
    (["search", "-s", "mbv2", "--max-params", "1e400"], "--max-params '1e400' is too large"),
    (["arch", "sample", "-s", "mbv2", "--width", "nan"], "--width must be a finite number, got nan"),
    (["arch", "sample", "-s", "mbv2", "--width", "inf"], "--width must be a finite number, got inf"),
    (["arch", "sample", "-s", "mbv2", "--seed", "-1"], "--seed must be >= 0, got -1"),
    (["train", "--momentum", "1.5"], "--momentum must be < 1, got 1.5"),
])
def test_option_ranges_refused_before_any_file(args, needle, tmp_path, capsys):
    out = tmp_path / "out"
    extra = ["--out", str(out)] if args[0] in ("search", "train") else ["--tables-dir", str(out)] \
        if args[0] == "profile" else []
    code, _, err = run_cli([*args, *extra], capsys)
    assert code == 2 and err.count("\n") == 1 and needle in err, err
    assert not out.exists()  # no table, no state file, no run folder


def test_profile_settings_are_checked_by_the_library_too(tmp_path):
    from hwnas.latency.profile import ProfileConfig

    with pytest.raises(HwnasError, match="--threads must be >= 1, got -2"):
        ProfileConfig(runtime="onnx", threads=-2)
    with pytest.raises(HwnasError, match="--runs must be an integer"):
        ProfileConfig(runtime="onnx", runs=2.5)


def test_width_of_a_space_must_be_finite():
    from hwnas.spaces import create_space

    for bad in (math.nan, math.inf, "wide"):
        with pytest.raises(HwnasError, match="width of space 'mbv2'"):
            create_space("mbv2", width=bad)


def test_a_failed_single_device_profile_says_resume(tmp_path, monkeypatch, capsys):
    import hwnas.latency.profile as P
    from hwnas.latency.opmodels import OpModelCache

    monkeypatch.setattr(OpModelCache, "get", lambda self, key, spec: tmp_path / f"{key}.onnx")

    def lost(keys, measure, commit, guard, block):
        raise HwnasError("device host: lost")

    monkeypatch.setattr(P, "measure_guarded", lost)
    code, _, err = run_cli(["profile", "-d", "host", "--runtime", "onnx", "-s", "mbv2", "--width", "0.25",
                            "--resolution", "16", "--num-classes", "2", "--no-canary", "--calibrate", "0",
                            "--method", "one-op", "--tables-dir", str(tmp_path / "t")], capsys)
    last = err.splitlines()[-1]  # after the plain progress lines
    assert code == 2 and last.startswith("error: ") and "Traceback" not in err
    assert "device host: lost" in last and "run the same command again with --resume" in last


# ---- progress lines of the long steps without a terminal ---------------------------------------------
def test_train_prints_plain_progress_lines_without_a_tty(tmp_path, capsys):
    code, _, err = run_cli(["train", "--out", str(tmp_path / "run"), "--space", "mbv2", "--width", "0.25",
                            "--resolution", "16", "--data", "digits", "--epochs", "2", "--batch-size", "16",
                            "--steps-per-epoch", "3"], capsys)
    assert code == 0, err
    lines = [ln for ln in err.splitlines() if ln.startswith("epoch ") and " elapsed" in ln]
    # the first step and the last one at least; each with the counts, the loss and the speed
    assert lines[0].startswith("epoch 1/2: 1/6 (17 %), 0:00:0") and ", loss " in lines[0] and " img/s" in lines[0]
    assert lines[-1].startswith("epoch 2/2: 6/6 (100 %)")
    assert "\x1b[" not in err  # plain text, no terminal control codes


def test_search_and_calibration_report_progress_without_a_tty(tmp_path, capsys):
    code, _, err = run_cli(["search", "--space", "mbv2", "--width", "0.25", "--resolution", "16",
                            "--num-classes", "10", "--objectives", "macs,params", "--pop", "6", "--gens", "2",
                            "--out", str(tmp_path / "s")], capsys)
    assert code == 0, err
    lines = [ln for ln in err.splitlines() if ln.startswith("search (nsga2) generations: ")]
    assert lines and lines[-1].startswith("search (nsga2) generations: 2/2 (100 %)") and "evaluated" in lines[-1]
