"""Delegates as Android has them today: NNAPI (deprecated since Android 15) is never a default; a
profile may name the LiteRT NPU accelerator (Qualcomm / MediaTek), validated and turned into
``benchmark_model`` flags; runs through an external vendor delegate parse from a real capture."""

from __future__ import annotations

from pathlib import Path

import pytest

from hwnas.devices.profiles import ENV_PROFILES_DIRS, Npu, builtin_profiles_dir, list_profiles, load_profile
from hwnas.devices.transport import ShellResult
from hwnas.errors import HwnasError
from hwnas.runners.benchmark_model import BenchmarkModelRunner, benchmark_model_command

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "real-outputs"
TFLITE = '''[runtimes.tflite]
# xnnpack first: the default. NNAPI (deprecated since Android 15) only with --delegate nnapi.
delegates = ["xnnpack", "cpu", "gpu", "nnapi"]
binary = "/data/local/tmp/hwnas/benchmark_model"
'''


@pytest.fixture(autouse=True)
def _no_user_profile_dirs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_PROFILES_DIRS, raising=False)


def s22_with(tmp_path: Path, tflite: str) -> Path:
    text = (builtin_profiles_dir() / "s22.toml").read_text(encoding="utf-8")
    assert TFLITE in text
    path = tmp_path / "s22.toml"
    path.write_text(text.replace(TFLITE, tflite), encoding="utf-8")
    return path


QNN_EXTERNAL = '''[runtimes.tflite]
delegates = ["xnnpack", "gpu", "npu"]
binary = "/data/local/tmp/hwnas/benchmark_model"

[runtimes.tflite.npu]
vendor = "qualcomm"
external_delegate = "/data/local/tmp/hwnas/libQnnTFLiteDelegate.so"
external_delegate_options = { backend_type = "htp", htp_performance_mode = 2, library_path = "/data/local/tmp/hwnas/libQnnHtp.so" }
'''

DISPATCH = '''[runtimes.tflite]
delegates = ["xnnpack", "gpu", "npu"]
binary = "/data/local/tmp/hwnas/litert_benchmark_model"

[runtimes.tflite.npu]
vendor = "mediatek"
dispatch_library_dir = "/data/local/tmp/hwnas/npu"
compiler_plugin_dir = "/data/local/tmp/hwnas/npu"
require_full_delegation = true
'''


def test_shipped_profiles_never_default_to_nnapi() -> None:
    for name in list_profiles():
        for rt in load_profile(name).runtimes:
            assert rt.default_delegate in ("xnnpack", "cpu", "gpu"), (name, rt)


@pytest.mark.parametrize("tflite, key", [
    (TFLITE.replace('["xnnpack", "cpu", "gpu", "nnapi"]', '["nnapi", "xnnpack"]'), "delegates"),
    (TFLITE + 'default_delegate = "nnapi"\n', "default_delegate"),
])
def test_nnapi_is_never_the_default(tmp_path: Path, tflite: str, key: str) -> None:
    with pytest.raises(HwnasError, match=rf"runtimes\.tflite\.{key}: makes 'nnapi' the default delegate; NNAPI "
                                         r"is deprecated since Android 15 .* --delegate nnapi"):
        load_profile(s22_with(tmp_path, tflite))


def test_npu_profile_fields_and_flags(tmp_path: Path) -> None:
    rt = load_profile(s22_with(tmp_path, QNN_EXTERNAL)).runtime("tflite")
    assert rt.default_delegate == "xnnpack" and rt.check_delegate("npu") == "npu"
    assert rt.npu == Npu("qualcomm", external_delegate="/data/local/tmp/hwnas/libQnnTFLiteDelegate.so",
                         external_delegate_options=(("backend_type", "htp"), ("htp_performance_mode", "2"),
                                                    ("library_path", "/data/local/tmp/hwnas/libQnnHtp.so")))
    assert benchmark_model_command("/d/bm", "/d/m.tflite", threads=1, warmup=1, runs=5, delegate="npu",
                                   npu=rt.npu)[7:] == [
        "--external_delegate_path=/data/local/tmp/hwnas/libQnnTFLiteDelegate.so",
        "--external_delegate_options=backend_type:htp;htp_performance_mode:2;"
        "library_path:/data/local/tmp/hwnas/libQnnHtp.so"]
    (tmp_path / "b").mkdir()
    npu = load_profile(s22_with(tmp_path / "b", DISPATCH)).runtime("tflite").npu
    assert npu is not None and npu.flags() == (
        "--use_npu=true", "--dispatch_library_path=/data/local/tmp/hwnas/npu",
        "--compiler_plugin_library_path=/data/local/tmp/hwnas/npu", "--require_full_delegation=true")
    assert load_profile("s22").to_dict()["runtimes"]["tflite"]["npu"] is None
    with pytest.raises(HwnasError, match=r"delegate 'npu' needs the device profile's \[runtimes\.tflite\.npu\]"):
        benchmark_model_command("b", "m", threads=1, warmup=0, runs=1, delegate="npu")


@pytest.mark.parametrize("tflite, pattern", [
    (QNN_EXTERNAL.replace('"xnnpack", "gpu", "npu"', '"xnnpack", "gpu"'),
     r"runtimes\.tflite\.npu: describes an NPU, but 'npu' is not in delegates"),
    (TFLITE.replace('"nnapi"]', '"npu"]'),
     r"runtimes\.tflite\.delegates: lists 'npu' but the profile has no \[runtimes\.tflite\.npu\] table"),
    (QNN_EXTERNAL.replace('vendor = "qualcomm"', 'vendor = "samsung"'),
     r"runtimes\.tflite\.npu\.vendor: = 'samsung' is not allowed; allowed values: 'qualcomm', 'mediatek'"),
    (DISPATCH.replace('dispatch_library_dir = "/data/local/tmp/hwnas/npu"\n', ""),
     r"runtimes\.tflite\.npu: needs exactly one of dispatch_library_dir .* and external_delegate"),
    (DISPATCH + 'external_delegate = "/x.so"\n',
     r"runtimes\.tflite\.npu: needs exactly one of dispatch_library_dir"),
    (DISPATCH.replace('"/data/local/tmp/hwnas/npu"\ncompiler', '"npu"\ncompiler'),
     r"runtimes\.tflite\.npu\.dispatch_library_dir: = 'npu' must be an absolute path"),
    (QNN_EXTERNAL + "require_full_delegation = true\n",
     r"runtimes\.tflite\.npu\.require_full_delegation: applies to dispatch_library_dir"),
    (DISPATCH + 'external_delegate_options = { a = "b" }\n',
     r"runtimes\.tflite\.npu\.external_delegate_options: applies to external_delegate only"),
    (QNN_EXTERNAL.replace('backend_type = "htp"', 'backend_type = "htp;gpu"'),
     r"runtimes\.tflite\.npu\.external_delegate_options\.backend_type: = 'htp;gpu': option names"),
    (DISPATCH + "threads = 4\n", r"runtimes\.tflite\.npu\.threads: unknown key"),
])
def test_npu_profile_errors(tmp_path: Path, tflite: str, pattern: str) -> None:
    with pytest.raises(HwnasError, match=pattern):
        load_profile(s22_with(tmp_path, tflite))


def test_npu_run_through_an_external_delegate_parses_a_real_capture(tmp_path: Path) -> None:
    """The runner sends the profile's NPU flags and reads a real external-delegate run (a vendor NPU
    delegate library loaded by benchmark_model, fully delegated)."""
    output = (FIXTURES / "benchmark_model-tf2.15-android-synaptics-external-delegate-timvx.txt").read_text()
    calls: list[list[str]] = []

    class Phone:
        name = "fake-phone"

        def shell(self, cmd, timeout: float = 120.0) -> ShellResult:
            calls.append(list(cmd))
            if cmd[0] in ("test", "mkdir"):
                return ShellResult(0, "", "")
            if cmd[0] == "dumpsys":
                return ShellResult(1, "", "")
            return ShellResult(0, "", output)

        def push(self, local, remote) -> None:
            pass

    model = tmp_path / "m.tflite"
    model.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(32))
    runner = BenchmarkModelRunner(load_profile(s22_with(tmp_path, QNN_EXTERNAL)), Phone(), sleep=lambda s: None)
    m = runner.measure(model, delegate="npu", runs=50, warmup=1, repetitions=1)
    (tool,) = [c for c in calls if c[0] == "taskset"]
    assert tool[2:] == ["/data/local/tmp/hwnas/benchmark_model", "--graph=/data/local/tmp/hwnas/m.tflite",
                        "--num_threads=4", "--warmup_runs=1", "--num_runs=50", "--min_secs=0", "--warmup_min_secs=0",
                        "--external_delegate_path=/data/local/tmp/hwnas/libQnnTFLiteDelegate.so",
                        "--external_delegate_options=backend_type:htp;htp_performance_mode:2;"
                        "library_path:/data/local/tmp/hwnas/libQnnHtp.so"]
    assert m.delegate == "npu" and m.mean_ms == pytest.approx(1.09648) and m.runs == 876
    assert m.extra["fully_delegated"] is True
    assert m.extra["delegate_nodes"] == [{"delegate": "Vx Delegate", "replaced": 31, "total": 31, "partitions": 1}]
