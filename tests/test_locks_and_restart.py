"""Locked tables and run folders, runs that restart after any kill, user table folders."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_cli
from hwnas.errors import HwnasError
from hwnas.latency.table import LatencyTable, table_path

ROOT = Path(__file__).resolve().parents[1]

# One `profile_device` call in its own interpreter with a fast fake runner and no export: both
# processes wait for each other's ready file, then write one table at once.
PROFILE_WORKER = r"""
import sys, time, types
from pathlib import Path
sys.modules["hwnas.latency.opmodels"] = types.SimpleNamespace(OpModelCache=None)  # no export, no torch
import hwnas.latency.profile as P
from hwnas.devices.profiles import load_profile
from hwnas.spaces import create_space

tables, res, me, other = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])

class Runner:
    def preflight(self):
        pass
    def runtime_version(self):
        return "1.0"
    def measure(self, model, cfg):
        time.sleep(0.002)
        return types.SimpleNamespace(center_ms=0.1 * res, mean_ms=0.1 * res, std_ms=0.0, min_ms=0.1,
                                     max_ms=0.2 * res, runs=cfg.runs, extra={}, temp_before_c=None,
                                     temp_after_c=None, outliers_rejected=0)

class Cache:  # no one-op model export: the runner never opens them
    def get(self, key, op):
        return Path(key)
    def cached(self, key):
        return True

P._runner_for = lambda *a, **k: Runner()
me.touch()
while not other.exists():
    time.sleep(0.01)
space = create_space("mbv2", width=0.25, resolution=res, num_classes=10)
cfg = P.ProfileConfig(runtime="onnx", warmup=1, runs=2, rounds=2, canary=False, cool_down=False)
table = P.profile_device(load_profile("host"), space, cfg, tables_dir=tables, resume=True, cache=Cache())
print(len(table.entries))
"""


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
            "HWNAS_TABLES_DIR": str(tmp_path / "user-tables")}


def test_two_profiles_on_one_table_keep_every_key(tmp_path):
    from hwnas.latency.keys import space_ops
    from hwnas.spaces import create_space

    tables = tmp_path / "tables"
    from hwnas.devices.profiles import load_profile

    host = load_profile("host")
    # the empty table, stamped as the workers' profile stamps it, so that they import no torch
    LatencyTable.new(device="host", soc=host.soc, runtime="onnx", runtime_version="1.0",
                     delegate=host.runtime("onnx").check_delegate(None), threads=host.cpu.default_threads,
                     warmup=1, runs=2, space=create_space("mbv2", width=0.25, resolution=16, num_classes=10),
                     path=table_path("host", "mbv2", "onnx", tables), device_name=host.human_name,
                     repetitions=1, rounds=2).save()
    a, b = tmp_path / "a.ready", tmp_path / "b.ready"
    procs = [subprocess.Popen([sys.executable, "-c", PROFILE_WORKER, str(tables), str(res), str(me), str(other)],
                              env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for res, me, other in ((16, a, b), (24, b, a))]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    want = set()
    for res in (16, 24):
        want |= set(space_ops(create_space("mbv2", width=0.25, resolution=res, num_classes=10)))
    table = LatencyTable.load(table_path("host", "mbv2", "onnx", tables))
    assert set(table.entries) == want  # every key of both processes survived
    # a key of both resolutions (the classifier) may hold the rounds of both processes
    assert min(len(e["rounds"]) for e in table.entries.values()) == 2
    assert sorted(c["resolution"] for c in table.metadata["space_configs"]) == [16, 24]


def test_save_merges_only_keys_this_table_never_had(tmp_path):
    from hwnas.spaces import create_space

    space = create_space("mbv2", width=0.25, resolution=16, num_classes=10)
    path = tmp_path / "host" / "t.json"
    stats = {"count": 1, "mean_ms": 1.0, "median_ms": 1.0, "std_ms": 0.0, "min_ms": 1.0, "max_ms": 1.0}
    mine = LatencyTable.new(device="host", soc="cpu", runtime="onnx", runtime_version="1", delegate="cpu",
                            threads=1, warmup=1, runs=2, space=space, path=path)
    mine.add("a", stats)
    mine.add("gone", stats)
    theirs = LatencyTable.load(path)  # a second process
    theirs.add("b", {**stats, "median_ms": 2.0})
    theirs.add("a", {**stats, "median_ms": 9.0})  # they re-measured a
    theirs.set_calibration("mbv2@w0.25r24", 1.1, 0.0)
    theirs.save()
    del mine.entries["gone"]  # removed here on purpose
    mine.entries["a"] = {**stats, "median_ms": 3.0}  # replaced here on purpose
    mine.save()
    on_disk = LatencyTable.load(path)
    assert set(on_disk.entries) == {"a", "b"}  # b taken from disk, gone not resurrected
    assert on_disk.entries["a"]["median_ms"] == 3.0 and on_disk.entries["b"]["median_ms"] == 2.0
    assert on_disk.calibrations["mbv2@w0.25r24"]["scale"] == 1.1
    # a file stamped with other settings is refused, not merged
    other = LatencyTable.load(path)
    other.metadata["threads"] = 4
    other.save()
    mine.add("c", stats, save=False)
    with pytest.raises(HwnasError, match="another process measuring with threads=4; this one uses threads=1"):
        mine.save()
    assert "c" not in LatencyTable.load(path).entries


# ---- table loader -----------------------------------------------------------------------------
def _table_doc(tmp_path: Path) -> tuple[Path, dict]:
    from hwnas.spaces import create_space

    space = create_space("mbv2", width=0.25, resolution=16, num_classes=10)
    path = tmp_path / "t.json"
    t = LatencyTable.new(device="host", soc="cpu", runtime="onnx", runtime_version="1", delegate="cpu",
                         threads=1, warmup=1, runs=2, space=space, path=path)
    t.add("k1", {"count": 1, "mean_ms": 1.0, "median_ms": 1.0, "std_ms": 0.0, "min_ms": 1.0, "max_ms": 1.0})
    t.set_calibration("mbv2@w0.25r16", 1.0, 0.1)
    t.save()
    return path, json.loads(path.read_text())


@pytest.mark.parametrize("edit,needle", [
    (lambda d: d.update(entries=[1, 2]), "entries is a list, expected an object"),
    (lambda d: d["entries"].update(k1="fast"), "entry 'k1' is a string, expected an object"),
    (lambda d: d["entries"]["k1"].update(median_ms="1.0"), "entry 'k1' field median_ms is a string"),
    (lambda d: d["entries"]["k1"].update(median_ms=math.nan), "entry 'k1' field median_ms is nan"),
    (lambda d: d["entries"]["k1"].update(max_ms=math.inf), "entry 'k1' field max_ms is inf"),
    (lambda d: d["calibrations"]["mbv2@w0.25r16"].update(scale="1.2"),
     "calibration 'mbv2@w0.25r16' field scale is a string"),
    (lambda d: d.update(calibrations=["x"]), "calibrations is a list"),
    (lambda d: d["calibrations"]["mbv2@w0.25r16"].update(offset_ms=math.nan),
     "calibration 'mbv2@w0.25r16' field offset_ms is nan"),
])
def test_bad_tables_are_one_line_errors_naming_file_and_key(tmp_path, edit, needle):
    path, doc = _table_doc(tmp_path)
    edit(doc)
    path.write_text(json.dumps(doc))  # json writes NaN / Infinity unless told not to
    with pytest.raises(HwnasError, match=needle) as info:
        LatencyTable.load(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_non_utf8_table_and_cli(tmp_path, capsys):
    path = tmp_path / "host" / "mbv2-tflite.json"
    path.parent.mkdir()
    path.write_bytes(b'{"format": "hwnas.latency_table", "x": "\xff"}')
    with pytest.raises(HwnasError, match=r"latency table .* is not UTF-8"):
        LatencyTable.load(path)
    code, _, err = run_cli(["lut", "show", "-d", "host", "--tables-dir", str(tmp_path)], capsys)
    assert code == 2 and err.count("\n") == 1 and "not UTF-8" in err and str(path) in err


# ---- run folders: one process each, restartable after any kill --------------------------------
TRAIN_ARGS = ["--space", "mbv2", "--width", "0.25", "--resolution", "16", "--data", "digits",
              "--batch-size", "16", "--lr", "0.05", "--workers", "0", "--log-every", "1", "-q",
              "--torch-device", "cpu", "--epochs", "1"]


def _start(args: list[str], tmp_path: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hwnas", *args], env=_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, needle: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if path.exists() and needle in path.read_text():
            return
        time.sleep(0.01)
    proc.kill()
    raise AssertionError(f"{needle!r} never appeared in {path}: {proc.communicate()}")


def test_second_train_into_one_folder_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    # many epochs: the first run is still training when the second starts (it is killed at the end)
    first = _start(["train", "--out", str(run), *TRAIN_ARGS, "--epochs", "1000"], tmp_path)
    try:
        _wait_for(run / "metrics.jsonl", '"kind": "step"', first)
        before = (run / "metrics.jsonl").read_text()
        code, _, err = run_cli(["train", "--out", str(run), *TRAIN_ARGS, "--steps-per-epoch", "3"], capsys)
        assert code == 2 and err.count("\n") == 1
        assert f"run folder {run} is in use by another hwnas process" in err
        assert first.poll() is None  # the first run goes on, its log only grows
        assert (run / "metrics.jsonl").read_text().startswith(before)
        lines = (run / "metrics.jsonl").read_text().splitlines()[:-1]  # the last may be half written
        recs = [json.loads(line) for line in lines]  # one writer: every line whole, steps in order
        steps = [r["step"] for r in recs if r["kind"] == "step"]
        assert steps == list(range(1, len(steps) + 1)) and {r["kind"] for r in recs} <= {"step", "epoch"}
    finally:
        first.kill()
        first.communicate()


def test_train_killed_in_its_first_epoch_restarts_on_the_same_command(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--out", str(run), *TRAIN_ARGS, "--steps-per-epoch", "20"]
    proc = _start(args, tmp_path)
    _wait_for(run / "metrics.jsonl", '"kind": "step"', proc)
    proc.kill()  # SIGKILL: no checkpoint, no clean-up
    proc.communicate()
    assert (run / "config.json").is_file() and not (run / "last.pt").exists()
    import shutil

    shutil.copytree(run, tmp_path / "copy")
    # the documented command again, as it was
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    assert "stopped before its first checkpoint" not in err  # -q
    from hwnas.checkpoint import load_checkpoint

    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["finished"] and ckpt["step"] == 20
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "step"]
    assert steps == list(range(1, 21))  # the killed attempt's lines are gone
    # and with --resume, as the refusal of the folder used to ask
    copy = tmp_path / "copy"
    code, _, err = run_cli(["train", "--out", str(copy), "--resume", "--torch-device", "cpu", "-q"], capsys)
    assert code == 0, err
    assert load_checkpoint(copy / "last.pt")["step"] == 20


def test_quickstart_killed_in_training_resumes_on_the_same_command(tmp_path, capsys):
    out = tmp_path / "qs"
    args = ["quickstart", "--out", str(out), "--epochs", "1", "--steps-per-epoch", "3", "--until", "train"]
    proc = _start(args, tmp_path)
    _wait_for(out / "supernet" / "config.json", "train", proc)  # written as training starts
    proc.kill()
    proc.communicate()
    assert not (out / "supernet" / "last.pt").exists()
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    state = json.loads((out / "quickstart.json").read_text())
    assert state["steps"]["train"]["steps"] == 3 and state["steps"]["train"]["epochs"] == 1


# ---- your tables folder, searched before the shipped one ------------------------------------
def _tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_profile_writes_to_your_tables_folder_never_the_package(tmp_path, monkeypatch, capsys):
    from hwnas.latency.table import default_table_dir, user_table_dir

    mine = tmp_path / "mine"
    monkeypatch.setenv("HWNAS_TABLES_DIR", str(mine))
    monkeypatch.setenv("HWNAS_CACHE_DIR", str(tmp_path / "cache"))
    assert user_table_dir() == mine
    shipped = _tree(default_table_dir())
    args = ["profile", "-d", "host", "--space", "mbv2", "--width", "0.35", "--resolution", "32",
            "--num-classes", "10", "--runtime", "onnx", "--max-keys", "1", "--rounds", "1",
            "--warmup", "1", "--runs", "2", "--calibrate", "0", "--no-canary"]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    written = mine / "host" / "mbv2-onnx.json"
    assert len(LatencyTable.load(written).entries) == 1 and str(written) in out
    assert _tree(default_table_dir()) == shipped  # the package's folder is untouched


def test_your_tables_are_read_before_the_shipped_ones(tmp_path, monkeypatch, capsys):
    import shutil

    from hwnas.latency.table import default_table_dir, find_table, user_table_dir, writable
    from hwnas.latency.table import load_table
    from hwnas.spaces import create_space

    monkeypatch.delenv("HWNAS_TABLES_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert user_table_dir() == tmp_path / "xdg" / "hwnas" / "latency_tables"
    monkeypatch.setenv("HWNAS_TABLES_DIR", str(tmp_path / "mine"))
    shipped = default_table_dir() / "host" / "mbv2-tflite.json"
    assert find_table("host", "mbv2", "tflite") == shipped  # nothing of yours yet
    space = create_space("mbv2", width=0.35, resolution=32, num_classes=10)
    # a calibration or validation of a shipped table is saved to your folder
    table = writable(load_table("host", space, "tflite"))
    assert table.path == tmp_path / "mine" / "host" / "mbv2-tflite.json"
    table.save()
    assert find_table("host", "mbv2", "tflite") == table.path
    code, out, err = run_cli(["lut", "show", "-d", "host", "--json"], capsys)
    assert code == 0 and json.loads(out)["path"] == str(table.path)
    # --tables-dir alone is searched when given
    other = tmp_path / "other"
    shutil.copytree(default_table_dir() / "host", other / "host")
    code, out, err = run_cli(["lut", "show", "-d", "host", "--json", "--tables-dir", str(other)], capsys)
    assert code == 0 and json.loads(out)["path"] == str(other / "host" / "mbv2-tflite.json")


# ---- ADB retries as device-profile settings ---------------------------------------------------
def _s22_with(tmp_path: Path, lines: str) -> Path:
    from hwnas.devices.profiles import builtin_profiles_dir

    path = tmp_path / "s22.toml"
    path.write_text((builtin_profiles_dir() / "s22.toml").read_text().replace(
        "[connection]\n", f"[connection]\n{lines}\n", 1))
    return path


def test_adb_retries_come_from_the_profile(tmp_path):
    from hwnas.devices.profiles import load_profile

    default = load_profile("s22", overrides={"serial": "R5CT1"})
    assert (default.connection.attempts, default.connection.retry_delay_s,
            default.connection.max_retry_delay_s) == (4, 1.0, 8.0)
    t = default.open_transport()
    assert (t.attempts, t.base_delay, t.max_delay) == (4, 1.0, 8.0)
    slow = load_profile(str(_s22_with(tmp_path, "attempts = 7\nretry_delay_s = 2\nmax_retry_delay_s = 30.5")),
                        overrides={"serial": "R5CT1"})
    t = slow.open_transport()
    assert (t.attempts, t.base_delay, t.max_delay) == (7, 2.0, 30.5)
    assert slow.open_transport(attempts=1).attempts == 1  # an explicit option still wins
    assert load_profile("host").open_transport() is not None  # local: no retry settings


@pytest.mark.parametrize("lines,needle", [
    ("attempts = 0", "connection.attempts: = 0 must be between 1 and 100"),
    ('attempts = "5"', "connection.attempts: must be"),
    ("retry_delay_s = nan", "connection.retry_delay_s: must be"),
    ("retry_delay_s = -1", "connection.retry_delay_s: = -1 must be between 0 and 600"),
    ("retry_delay_s = 5\nmax_retry_delay_s = 2", "connection.max_retry_delay_s: = 2 must be >= connection.retry_delay_s = 5"),
])
def test_bad_retry_settings_name_the_key(tmp_path, lines, needle):
    from hwnas.devices.profiles import load_profile

    with pytest.raises(HwnasError, match=needle):
        load_profile(str(_s22_with(tmp_path, lines)))


def test_quickstart_interrupted_says_run_the_same_command(tmp_path, monkeypatch, capsys):
    import signal

    import hwnas.quickstart as Q
    from hwnas.train.loop import TrainingInterrupted

    def interrupted(*a, **k):
        raise TrainingInterrupted(signal.SIGINT, tmp_path / "qs" / "supernet" / "last.pt")

    monkeypatch.setattr(Q, "run_quickstart", interrupted)
    code, _, err = run_cli(["quickstart", "--out", str(tmp_path / "qs")], capsys)
    assert code == 130 and "SIGINT: stopped after the current step" in err
    assert "run the same command again to resume" in err and "--resume" not in err  # it has none
