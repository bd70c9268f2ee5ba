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
