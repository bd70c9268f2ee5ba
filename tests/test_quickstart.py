"""`hwnas quickstart` end to end with tiny settings: every step, the resume, and the summary."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from hwnas.errors import HwnasError
from hwnas.quickstart import QuickstartConfig, mismatch_hint, run_quickstart, summary_table

TINY = replace(QuickstartConfig(), epochs=1, steps_per_epoch=2, batch_size=32, pop=4, gens=1,
               eval_batches=1, calib_batches=1, adapt_subnets=4)


def _shipped_table_from_another_computer() -> None:
    """Put the shipped host mbv2 table in the user tables folder (searched first) stamped with
    another computer's fingerprint: the shipped table may have been measured on this very machine
    type, and the quick start must then adapt what another computer measured."""
    import os

    from hwnas.latency.table import find_table

    shipped = json.loads(Path(find_table("host", "mbv2", "tflite")).read_text())
    other = {"kind": "host", "cpu": "another CPU", "cores": 64, "machine": "x86_64", "governor": "performance",
             "runtime": "tflite", "runtime_version": "0", "id": "0123456789ab"}
    shipped["metadata"]["fingerprint"] = other
    for cal in shipped.get("calibrations", {}).values():
        cal["fingerprint"] = other
    dest = Path(os.environ["HWNAS_TABLES_DIR"]) / "host" / "mbv2-tflite.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(shipped))


@pytest.mark.slow
def test_quickstart_runs_every_step_and_resumes(tmp_path, capsys):
    _shipped_table_from_another_computer()
    out = tmp_path / "qs"
    first = run_quickstart(TINY, out, until="train")
    assert list(first["steps"]) == ["train"]
    ckpt = Path(first["steps"]["train"]["checkpoint"])
    mtime = ckpt.stat().st_mtime_ns
    data = run_quickstart(TINY, out)  # resumes: train is not run again
    assert ckpt.stat().st_mtime_ns == mtime
    s = data["steps"]
    assert list(s) == ["train", "latency", "search", "export", "measure"]
    # the shipped host table covers the quick-start settings (no profiling needed); it was measured
    # on another computer (its fingerprint), so it was adapted to this one, and that is said
    assert s["latency"]["profiled"] is False and s["latency"]["keys"] > 0
    ad = s["latency"]["adapted"]
    assert ad["n"] == 4 and ad["scale"] > 0 and ad["speed_ratio"] > 0 and ad["reused"] is False
    assert ad["fingerprint"]["kind"] == "host" and Path(ad["path"]).exists()
    assert "adapted the table to this computer from 4 subnets" in capsys.readouterr().err
    assert len(s["search"]["genes"]) == 21 and s["search"]["predicted_latency_ms"] <= s["search"]["budget_ms"]
    for fmt in ("onnx", "tflite"):
        assert Path(s["export"]["files"][fmt]).stat().st_size > 1000
        assert s["export"]["max_abs_diff"][fmt] <= 1e-4
    assert 0.0 <= s["export"]["test_top1_tflite"] <= 1.0
    assert abs(s["export"]["test_top1_tflite"] - s["export"]["test_top1_torch"]) <= 0.02
    assert s["measure"]["measured_ms"] > 0 and s["measure"]["predicted_ms"] > 0
    # the shipped table's reference op was timed again: this computer's speed relative to then
    assert 0.1 < s["measure"]["speed_ratio"] < 10 and "error_pct_at_profile_speed" in s["measure"]
    assert json.loads((out / "quickstart.json").read_text())["steps"]["measure"] == s["measure"]
    assert (out / "search" / "pareto.csv").exists() and (out / "export" / "subnet.pt").exists()
    assert summary_table(data).row_count >= 11
    from rich.console import Console

    console = Console(record=True, width=300)
    console.print(summary_table(data))
    text = console.export_text()
    assert "latency adaptation" in text and "x the table's times" in text and "MAPE on them" in text
    # another run on this computer reuses the cached adaptation (measures nothing)
    from hwnas.quickstart import step_latency

    other = step_latency(TINY, tmp_path / "qs2", Console(stderr=True))["adapted"]
    assert other["reused"] is True and other["scale"] == ad["scale"]
    # --no-adapt uses the table as shipped
    off = step_latency(replace(TINY, adapt=False), tmp_path / "qs3", Console(stderr=True))
    assert off["adapted"] is None
    # other settings in the same folder are refused, nothing overwritten
    with pytest.raises(HwnasError, match="holds a quick start with other settings \\(epochs\\)"):
        run_quickstart(replace(TINY, epochs=2), out)
    with pytest.raises(HwnasError, match="--until 'deploy' is not a step"):
        run_quickstart(TINY, out, until="deploy")


@pytest.mark.slow
def test_quickstart_profile_host_measures_this_computer(tmp_path):
    """--profile-host ignores the shipped table: a table for this computer is profiled and
    calibrated inside the run folder (ONNX Runtime and a tiny space keep it quick)."""
    from hwnas.latency.table import LatencyTable

    cfg = replace(TINY, runtime="onnx", width=0.25, resolution=16, profile_host=True)
    data = run_quickstart(cfg, tmp_path / "qs", until="latency")
    lat = data["steps"]["latency"]
    assert lat["profiled"] is True and Path(lat["tables_dir"]) == tmp_path / "qs" / "latency_tables"
    table = LatencyTable.load(lat["table"])
    assert table.metadata["device"] == "host" and table.metadata["runtime"] == "onnx"
    assert table.calibration("mbv2@w0.25r16")["n"] == 12


def test_mismatch_hint_names_the_likely_cause():
    slow = {"error_pct": -35.0, "speed_ratio": 1.4, "error_pct_at_profile_speed": -9.0}
    assert "1.40x" in mismatch_hint(slow, profiled=False) and "slower now" in mismatch_hint(slow, False)
    other = {"error_pct": -30.0, "speed_ratio": 1.02, "error_pct_at_profile_speed": -29.0}
    assert "another computer" in mismatch_hint(other, profiled=False)
    assert "disturbed" in mismatch_hint(other, profiled=True)
    # the shipped table measured on this very computer: neither "another computer" nor "adapt"
    native = mismatch_hint(other, profiled=False, native=True)
    assert "computer that measured the table" in native and "another computer" not in native


@pytest.mark.parametrize("content,message", [
    ("[1, 2]", "quick start state .*quickstart.json holds a JSON list, expected a JSON object; remove it"),
    ('{"config": {}, "steps": []}', "'steps' must be an object, got list; remove it"),
    (b'{"config": "\xff"}', "is not UTF-8 text"),
])
def test_a_broken_quickstart_state_is_one_line(tmp_path, content, message):
    state = tmp_path / "quickstart.json"
    state.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(HwnasError, match=message):
        run_quickstart(QuickstartConfig(), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quickstart.json"]  # nothing else written
