"""The runtime registry: every registered runtime is checked the same way (its references import
and agree with each other, its exporters write files that its own invoke and host runner run),
plus the precision axis and the names older versions used (``tflite-int8``)."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hwnas.devices.profiles import load_profile
from hwnas.devices.transport import LocalTransport
from hwnas.errors import HwnasError
from hwnas.latency.table import LatencyTable, table_path
from hwnas.runners.base import DeviceToolRunner, Runner
from hwnas.runners.host import HostRunner
from hwnas.runners.registry import create_runner, default_runner_name, open_runner, runner_class, runner_names
from hwnas.runtimes import PRECISIONS, get_runtime, invoke, load_ref, resolve, runtime_for_file, runtime_names

RUNTIMES = runtime_names()
PAIRS = [(rt, p) for rt in RUNTIMES for p in get_runtime(rt).latency_exporters]
FAKE_BENCHMARK_MODEL = Path(__file__).resolve().parents[1] / "tools" / "fake_benchmark_model.py"


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Flatten(), torch.nn.Linear(8 * 8 * 8, 4)).eval()


def test_builtin_runtimes_and_their_runners() -> None:
    assert RUNTIMES == ["onnx", "tflite"]
    assert runner_names() == [f"{rt}-{w}" for rt in RUNTIMES for w in ("host", "adb")]


@pytest.mark.parametrize("name", RUNTIMES)
def test_runtime_entry_is_complete_and_consistent(name: str) -> None:
    spec = get_runtime(name)
    assert spec.name == name and spec.suffix.startswith(".") and spec.title
    assert spec.delegates and "cpu" in spec.delegates
    assert "fp32" in spec.precisions and set(spec.precisions) <= set(PRECISIONS)
    assert set(spec.latency_exporters) <= set(spec.precisions)
    assert set(spec.export_estimate_s) == set(spec.latency_exporters)
    for ref in (spec.export, spec.invoke, *spec.latency_exporters.values(), spec.parser):
        assert callable(load_ref(ref)), ref
    assert list(inspect.signature(load_ref(spec.invoke)).parameters)[:2] == ["path", "x"]
    assert runtime_for_file(f"model{spec.suffix}") is spec
    host, device = runner_class(f"{name}-host"), runner_class(f"{name}-adb")
    assert issubclass(host, HostRunner) and issubclass(device, DeviceToolRunner)
    assert (host.runtime, device.runtime) == (name, name)
    assert (host.name, device.name) == (f"{name}-host", f"{name}-adb")
    assert device.tool == spec.device_tool and spec.build_hint
    assert issubclass(host, Runner)


@pytest.fixture(scope="module")
def latency_files(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """The tiny model exported by every (runtime, precision) latency exporter, once."""
    folder = tmp_path_factory.mktemp("latency-models")
    sample = torch.randn(1, 3, 8, 8)
    out = {}
    for name, precision in PAIRS:
        spec = get_runtime(name)
        out[name, precision] = spec.latency_exporter(precision)(tiny_model(), sample,
                                                                folder / f"{spec.tag(precision)}{spec.suffix}")
    return out


@pytest.mark.slow
@pytest.mark.parametrize(("name", "precision"), PAIRS)
def test_latency_export_runs_in_invoke_and_host_runner(name: str, precision: str,
                                                       latency_files: dict[tuple[str, str], Path]) -> None:
    """Each (runtime, precision) exporter writes a file that the runtime's invoke and its host
    runner both run; float files match torch."""
    model = tiny_model()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    path = latency_files[name, precision]
    assert path.suffix == get_runtime(name).suffix
    got = invoke(path, x.numpy())
    with torch.no_grad():
        ref = model(x).numpy()
    assert got.shape == ref.shape == (2, 4) and np.isfinite(got).all()
    if precision == "fp32":
        assert np.abs(got - ref).max() <= 1e-4
    else:  # int8: close to torch, at the scale of the logits
        assert np.abs(got - ref).max() <= 0.1 * np.abs(ref).max()
    m = open_runner(load_profile("host"), name, precision).measure(path, warmup=1, runs=3, cool_down=False)
    assert m.runner == f"{name}-host" and m.runs == 3 and m.median_ms > 0


def test_unknown_and_legacy_names_are_clear_errors() -> None:
    with pytest.raises(HwnasError, match="unknown runtime 'tvm'; allowed: onnx, tflite"):
        get_runtime("tvm")
    with pytest.raises(HwnasError, match="'tflite-int8' is now runtime 'tflite' at precision 'int8'"):
        get_runtime("tflite-int8")
    assert resolve("tflite-int8") == (get_runtime("tflite"), "int8")
    with pytest.raises(HwnasError, match="contradicts precision 'fp32'.*--runtime tflite --precision int8"):
        resolve("tflite-int8", "fp32")
    with pytest.raises(HwnasError, match="runtime 'onnx' has no precision 'int8'; allowed: fp32"):
        resolve("onnx", "int8")
    with pytest.raises(HwnasError, match=r"no runtime runs \.pte files; allowed: \.onnx \(onnx\), \.tflite"):
        runtime_for_file("m.pte")
    with pytest.raises(HwnasError, match="does not exist"):
        invoke("nowhere.tflite", np.zeros((1, 3, 8, 8)))


def test_profiles_list_precisions_and_int8_gets_a_device_runner() -> None:
    s22 = load_profile("s22")
    assert s22.runtime("tflite").precisions == ("fp32",)
    with pytest.raises(HwnasError, match="precision 'int8' is not listed for runtime 'tflite'.*precisions"):
        default_runner_name(s22, "tflite", "int8")
    int8 = load_profile("s22", overrides={"runtimes.tflite.precisions": ["fp32", "int8"]})
    assert default_runner_name(int8, "tflite", "int8") == "tflite-adb"
    assert runner_class("tflite-adb").runtime == "tflite"
    with pytest.raises(HwnasError, match=r"runtimes.onnx.precisions.*'int8' is not allowed; allowed values: 'fp32'"):
        load_profile("s22", overrides={"runtimes.onnx.precisions": ["int8"]})


def test_legacy_profile_table_is_refused_with_the_fix(tmp_path: Path) -> None:
    text = (Path(load_profile("host").source).read_text(encoding="utf-8")
            .replace('name = "host"', 'name = "old"') + '\n[runtimes.tflite-int8]\ndelegates = ["cpu"]\n')
    (tmp_path / "old.toml").write_text(text, encoding="utf-8")
    with pytest.raises(HwnasError, match=r"runtimes.tflite-int8: 'tflite-int8' is no longer a runtime.*"
                                         r"list 'int8' in runtimes.tflite.precisions"):
        load_profile(tmp_path / "old.toml")


def test_tables_keep_their_names_and_old_tables_read_as_runtime_plus_precision(tmp_path: Path) -> None:
    assert table_path("host", "mbv2", "tflite", tmp_path).name == "mbv2-tflite.json"
    assert table_path("host", "mbv2-mp", "tflite", tmp_path, "int8").name == "mbv2-mp-tflite-int8.json"
    assert table_path("host", "mbv2-mp", "tflite-int8", tmp_path) == table_path("host", "mbv2-mp", "tflite", tmp_path, "int8")
    old = LatencyTable({"runtime": "tflite-int8", "space": "mbv2"}, path=tmp_path / "t.json")
    assert old.runtime_precision == ("tflite", "int8")
    old.check_compatible(runtime="tflite", precision="int8")
    old.check_compatible(runtime="tflite-int8")
    with pytest.raises(HwnasError, match="is for runtime 'tflite' at precision 'int8', not 'fp32'"):
        old.check_compatible(runtime="tflite")


@pytest.mark.slow
def test_int8_model_on_a_device_runner(tmp_path: Path, latency_files: dict[tuple[str, str], Path]) -> None:
    """A profile listing int8 measures an int8 .tflite through benchmark_model (the fake tool, which
    runs the real LiteRT interpreter) over the local transport."""
    path = latency_files["tflite", "int8"]
    tool = tmp_path / "bin" / "benchmark_model"
    tool.parent.mkdir()
    tool.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_BENCHMARK_MODEL}" "$@"\n', encoding="utf-8")
    tool.chmod(0o755)
    (tmp_path / "dev.toml").write_text(f"""
name = "dev"
human_name = "fake device"
kind = "devkit"
soc = "host CPU"
abi = "native"
remote_work_dir = "{tmp_path / 'remote'}"
[connection]
transport = "local"
[cpu]
default_threads = 1
[runtimes.tflite]
delegates = ["xnnpack"]
precisions = ["fp32", "int8"]
binary = "{tool}"
""", encoding="utf-8")
    profile = load_profile(tmp_path / "dev.toml")
    name = default_runner_name(profile, "tflite", "int8")
    m = create_runner(name, profile, LocalTransport(name="dev")).measure(path, warmup=1, runs=3, cool_down=False)
    assert (m.runner, m.runs) == ("tflite-adb", 3) and m.mean_ms > 0


def test_registry_and_profiles_import_no_runtime_package() -> None:
    """Listing runtimes and runners and loading a profile imports neither torch nor a runtime."""
    code = ("import sys; from hwnas.devices import load_profile; load_profile('s22'); "
            "from hwnas.runners.registry import runner_names; runner_names(); "
            "heavy = {'torch', 'onnxruntime', 'ai_edge_litert', 'litert_torch', 'onnx'} & set(sys.modules); "
            "print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert out.stdout.strip() == "[]"


def test_search_reads_the_table_of_the_requested_precision(capsys) -> None:
    from conftest import run_cli

    common = ["search", "--space", "mbv2", "--width", "0.35", "--resolution", "32", "--num-classes", "10",
              "--device", "host", "--objectives", "latency,macs", "--pop", "4", "--gens", "1"]
    code, _, err = run_cli([*common, "--precision", "int8", "--out", "unused"], capsys)
    assert code == 2 and "mbv2-tflite-int8.json" in err  # no shipped int8 table: the file it looked for
    code, _, err = run_cli([*common, "--runtime", "onnx", "--precision", "int8", "--out", "unused"], capsys)
    assert code == 2 and "runtime 'onnx' has no precision 'int8'; allowed: fp32" in err
