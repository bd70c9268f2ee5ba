"""``hwnas verify``: measure a bundle's model on the device and check its outputs there.

1. **Latency**: the device's ``benchmark_model`` through the ``tflite-adb`` runner, exactly as
   profiling measures (the profile's binary, delegate, thread count, big-core ``taskset`` mask,
   warm-up and timed runs, thermal cool-down before each measurement); ``rounds`` measurements,
   the quietest (lowest median) kept, as latency tables keep theirs. Compared with the bundle's
   predicted latency for that device (from its latency table), when the card has one.
2. **Outputs**: a few seeded random inputs in the model's input type are pushed and run once each
   with ``benchmark_model --input_layer_value_files=image:FILE --output_filepath=FILE`` (same
   delegate and threads); the pulled outputs are compared with the LiteRT interpreter on this
   computer: every input must give the same top-1 class, and the largest difference must stay
   within the delegate's tolerance. A ``benchmark_model`` build that does not write outputs
   (older than ``--output_filepath``) leaves the outputs unchecked, and the card says that only
   latency was verified.
3. The figures go into the model card (JSON, Markdown, checksums). Any failure raises before the
   card is written, so a failed verify leaves the bundle unchanged.
"""

from __future__ import annotations

import datetime as _dt
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.errors import HwnasError

#: largest allowed |device - host| of float outputs by delegate (GPU delegates compute in fp16).
FLOAT_TOLERANCE = {"cpu": 1e-4, "xnnpack": 1e-4, "gpu": 2e-2, "nnapi": 5e-2, "npu": 5e-2}
#: quantized outputs: at most this many quantization steps apart.
QUANT_STEPS = 2


@dataclass(frozen=True)
class VerifyOptions:
    rounds: int = 5
    warmup: int = 10
    runs: int = 50
    delegate: str | None = None  # None: the profile's default
    threads: int | None = None  # None: the profile's default
    inputs: int = 4  # pushed inputs for the output check; 0 skips it
    seed: int = 0

    def __post_init__(self) -> None:
        for name, low in (("rounds", 1), ("warmup", 0), ("runs", 1), ("inputs", 0)):
            if getattr(self, name) < low:
                raise HwnasError(f"--{name} must be >= {low}, got {getattr(self, name)}")


def _random_inputs(detail: dict[str, Any], n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    shape, dtype = tuple(int(d) for d in detail["shape"]), np.dtype(detail["dtype"])
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return [rng.integers(info.min, int(info.max) + 1, size=shape).astype(dtype) for _ in range(n)]
    return [rng.standard_normal(shape).astype(dtype) for _ in range(n)]


def _host_outputs(model: Path, inputs: list[np.ndarray]) -> tuple[list[np.ndarray], dict[str, Any]]:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(model), num_threads=1)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    ys = []
    for x in inputs:
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        ys.append(interp.get_tensor(out["index"]).copy())
    return ys, out


def check_outputs(runner, model: Path, remote_model: str, *, delegate: str, threads: int, mask: str | None,
                  n: int, seed: int) -> dict[str, Any]:
    """Run ``n`` pushed inputs through the device's ``benchmark_model`` and compare with the host."""
    from ai_edge_litert.interpreter import Interpreter

    from hwnas.runners.base import MeasureConfig

    interp = Interpreter(model_path=str(model))
    in_detail = interp.get_input_details()[0]
    inputs = _random_inputs(in_detail, n, seed)
    expected, out_detail = _host_outputs(model, inputs)
    rt = runner.profile.runtime(runner.runtime)
    binary = runner.ensure_binary(rt)
    work = (runner.profile.remote_work_dir or tempfile.gettempdir()).rstrip("/")
    worst, agree, quant = 0.0, 0, np.issubdtype(out_detail["dtype"], np.integer)
    with tempfile.TemporaryDirectory(prefix="hwnas-verify-") as tmp:
        for i, x in enumerate(inputs):
            local_in, local_out = Path(tmp) / f"input{i}.bin", Path(tmp) / f"output{i}.bin"
            local_in.write_bytes(x.tobytes())
            remote_in, remote_out = f"{work}/verify_input{i}.bin", f"{work}/verify_output{i}.bin"
            runner.transport.push(local_in, remote_in)
            runner.transport.shell(["rm", "-f", remote_out], timeout=30)
            argv = runner.build_command(binary, remote_model, threads=threads, delegate=delegate,
                                        config=MeasureConfig(warmup=0, runs=1))
            argv += [f"--input_layer_value_files={in_detail['name']}:{remote_in}",
                     f"--output_filepath={remote_out}"]
            if mask:
                argv = ["taskset", mask, *argv]
            runner.run_tool(argv, timeout=300)
            try:
                runner.transport.pull(remote_out, local_out)
                got = np.fromfile(local_out, dtype=out_detail["dtype"])
            except (HwnasError, OSError):
                got = None
            if got is None or got.size != expected[i].size:
                return {"checked": 0, "status": "latency only",
                        "note": f"benchmark_model at {binary} wrote no outputs (--output_filepath is not "
                                f"supported by this build): only latency was verified"}
            want = expected[i].reshape(-1)
            if quant:
                diff = float(np.abs(got.astype(np.int64) - want.astype(np.int64)).max())
            else:
                diff = float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max())
            worst = max(worst, diff)
            agree += int(np.argmax(got) == np.argmax(want))
    if quant:
        scale = float(out_detail["quantization"][0])
        ok, tol, worst_real = worst <= QUANT_STEPS, f"{QUANT_STEPS} quantization steps", worst * scale
    else:
        tolerance = FLOAT_TOLERANCE.get(delegate, 1e-3)
        ok, tol, worst_real = worst <= tolerance, f"{tolerance:g}", worst
    result = {"checked": n, "top1_agree": agree, "max_abs_diff": worst_real, "tolerance": tol,
              "status": "match" if ok and agree == n else "MISMATCH"}
    if result["status"] != "match":
        raise HwnasError(f"outputs on device {runner.profile.name!r} differ from this computer's: "
                         f"{agree}/{n} inputs give the same top-1 class, max |diff| {worst_real:.3g} "
                         f"(allowed {tol}); the model card was not changed")
    return result


def verify_bundle(bundle: str | Path, profile, transport, options: VerifyOptions = VerifyOptions(),
                  **runner_options: Any) -> dict[str, Any]:
    """Verify ``bundle`` on ``profile``'s device through ``transport``; returns the card row written."""
    from hwnas.deploy.bundle import MODEL, read_bundle, write_card
    from hwnas.runners.base import MeasureConfig
    from hwnas.runners.registry import create_runner

    folder = Path(bundle)
    card = read_bundle(folder)
    try:
        rt = profile.runtime("tflite")
    except HwnasError as exc:
        raise HwnasError(f"device {profile.name!r} cannot run the bundle's TFLite model: {exc}") from None
    if not rt.binary:
        raise HwnasError(f"device {profile.name!r} has no benchmark_model (runtimes.tflite.binary in "
                         f"{profile.source or 'its profile'}): verify measures with the device's own tool")
    runner = create_runner("tflite-adb", profile, transport, **runner_options)
    model = folder / MODEL
    cfg = MeasureConfig(warmup=options.warmup, runs=options.runs, delegate=options.delegate,
                        threads=options.threads)
    rounds = [runner.measure(model, cfg) for _ in range(options.rounds)]
    best = min(rounds, key=lambda m: m.center_ms)
    remote_model = runner.push_model(model)  # where measure() put it
    outputs = ({"checked": 0, "status": "latency only", "note": "output check skipped (--inputs 0)"}
               if options.inputs == 0 else
               check_outputs(runner, model, remote_model, delegate=best.delegate, threads=best.threads,
                             mask=best.cpu_mask, n=options.inputs, seed=options.seed))
    predicted = next((r for r in card["latency"]["predicted"] if r["device"] == profile.name
                      and r.get("predicted_ms") is not None), None)
    row = {
        "device": profile.name, "human_name": profile.human_name, "soc": profile.soc,
        "runtime": "tflite", "runtime_version": best.runtime_version, "tool": rt.binary,
        "delegate": best.delegate, "threads": best.threads, "cpu_mask": best.cpu_mask,
        "warmup": best.warmup, "runs": best.runs, "rounds": options.rounds,
        "median_ms": best.center_ms, "mean_ms": best.mean_ms, "min_ms": best.min_ms,
        "round_medians_ms": [m.center_ms for m in rounds],
        "temp_before_c": best.temp_before_c,
        "predicted_ms": predicted["predicted_ms"] if predicted else None,
        "error_pct": (100.0 * (best.center_ms - predicted["predicted_ms"]) / predicted["predicted_ms"]
                      if predicted and predicted["predicted_ms"] else None),
        "outputs": outputs["status"], "output_check": outputs,
        "verified": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
    }
    card["latency"]["measured"] = [r for r in card["latency"]["measured"] if r["device"] != profile.name] + [row]
    write_card(folder, card)
    return row


__all__ = ["VerifyOptions", "check_outputs", "verify_bundle"]
