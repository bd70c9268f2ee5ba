"""The strategy seam end to end: the ported strategies reproduce the losses the loop recorded
before the port, a multi-path plug-in (distillation + its own trainable module and optimizer)
trains and resumes bit-identically, latency ranges come from a device's table, recipes fit the
dataset (the new-user GreedyNAS command trains past chance), batches too large for the data are
refused or reduced, and pre-seam checkpoints are refused for resume but still evaluate."""

import json
import sys
from pathlib import Path

import pytest
import torch

from conftest import run_cli
from hwnas.checkpoint import load_checkpoint, save_checkpoint
from hwnas.train import TrainConfig, train_supernet

sys.path.insert(0, str(Path(__file__).resolve().parent))
import plugin_strategies  # noqa: E402,F401  (registers test-distill)

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "strategy_losses.json").read_text())


def _ported(run: dict) -> TrainConfig:
    """The recorded run's settings on the seam: the flat pre-seam fields become strategy options
    with the behaviour those samplers had (one constant MACs range; eps rising over the whole run;
    the pool as large as the steps per epoch)."""
    s = dict(FIXTURE["settings"])
    greedy = {k: s.pop(k) for k in ("greedy_m", "greedy_k", "score_batch", "warmup_steps")}
    options = {}
    if run["strategy"] == "constrained":
        options = {"range": run["options"]["macs_range"], "bins": 1}
    elif run["strategy"] == "greedy":
        options = {"m": greedy["greedy_m"], "k": greedy["greedy_k"], "score_batch": greedy["score_batch"],
                   "warmup_steps": greedy["warmup_steps"], "pool_size": s["steps_per_epoch"], "eps_ramp": 1.0}
    return TrainConfig(**s, strategy=run["strategy"], sharing=run["sharing"], options=options)


def _cpu_class() -> dict:
    """The CPU class a recording holds for: float32 kernels differ between vendors and between the
    vector widths ATen dispatches to, so exact losses only repeat within one class."""
    vendor = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("vendor_id"):
                vendor = line.split(":", 1)[1].strip()
                break
    return {"vendor": vendor, "capability": torch.backends.cpu.get_cpu_capability()}


RUN_IDS = [(r["strategy"], r["sharing"]) for r in FIXTURE["recordings"][0]["runs"]]


def _recorded(strategy: str, sharing: str, recording: dict) -> dict:
    return next(r for r in recording["runs"] if (r["strategy"], r["sharing"]) == (strategy, sharing))


def test_recordings_agree_before_the_arithmetic_diverges():
    """Every CPU class's recording of the old loop took the same paths from the same start: step 1
    and 2 agree to 1e-4 (the classes differ in the last bits only), so they record one behaviour."""
    for strategy, sharing in RUN_IDS:
        runs = [_recorded(strategy, sharing, rec) for rec in FIXTURE["recordings"]]
        for run in runs[1:]:
            assert run["losses"][:2] == pytest.approx(runs[0]["losses"][:2], rel=1e-4)
            assert run["losses"][2:] != runs[0]["losses"][2:]  # distinct recordings, not copies


@pytest.mark.parametrize("strategy,sharing", RUN_IDS, ids=[f"{a}-{b}" for a, b in RUN_IDS])
def test_ported_strategies_reproduce_the_recorded_losses(strategy, sharing, tmp_path):
    first = _recorded(strategy, sharing, FIXTURE["recordings"][0])
    res = train_supernet(_ported(first), tmp_path / "r", quiet=True, torch_device="cpu")
    lines = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in lines if r["kind"] == "step"]
    assert len(losses) == len(first["losses"]) == 8
    cpu = _cpu_class()
    same_class = [rec for rec in FIXTURE["recordings"] if rec["cpu"] == cpu]
    if same_class:
        run = _recorded(strategy, sharing, same_class[0])
        assert losses == run["losses"]  # exact on CPU with one thread: same paths, same arithmetic
        assert res.weights_digest == run["weights_digest"]
    else:
        # a CPU class without a recording: the steps before the float32 differences grow (step 3
        # on) must still match; a different path or loss term changes step 1 or 2 by far more
        assert losses[:2] == pytest.approx(first["losses"][:2], rel=1e-4), cpu


DISTILL = dict(space="mbv2", width=0.25, resolution=16, data="digits", batch_size=32, lr=0.05, workers=0,
               steps_per_epoch=3, epochs=2, log_every=1, strategy="test-distill", sharing="elastic")


def test_multi_path_plugin_with_its_own_module_trains_and_resumes_exactly(tmp_path):
    config = TrainConfig(**DISTILL, options={"students": 2})
    straight = train_supernet(config, tmp_path / "a", quiet=True)
    lines = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in lines if r["kind"] == "step"]
    assert len(steps) == 6 and all(r["kd"] > 0 and r["ce"] > 0 for r in steps)
    for r in steps:  # the one logged loss is the sum of the strategy's terms
        assert r["loss"] == pytest.approx(r["ce"] + r["kd"], rel=1e-5)
    a = load_checkpoint(tmp_path / "a" / "last.pt")
    temp = a["strategy_modules"]["temperature.raw"]
    assert float(temp) != 0.0  # the strategy's module was trained by its own optimizer ...
    sched = a["strategy_optimizers"][0]["scheduler"]
    assert sched["last_epoch"] == 6 and a["strategy_optimizers"][0]["optimizer"]["param_groups"][0]["lr"] == 0.5 * 0.5 ** 3
    # ... and resumes with it exactly
    train_supernet(config, tmp_path / "b", quiet=True, stop_after_epochs=1)
    resumed = train_supernet(config, tmp_path / "b", resume=True, quiet=True)
    assert resumed.weights_digest == straight.weights_digest
    b = load_checkpoint(tmp_path / "b" / "last.pt")
    assert torch.equal(b["strategy_modules"]["temperature.raw"], temp)
    conf = json.loads((tmp_path / "a" / "config.json").read_text())
    assert conf["strategy"] == {"name": "test-distill", "students": 2, "kd_weight": 1.0}
    with pytest.raises(Exception, match="option students must be >= 1"):
        TrainConfig(**DISTILL, options={"students": 0})


def test_latency_ranges_from_a_device_table_on_the_command_line(tmp_path, capsys):
    """SPOS uniform-constraint sampling with latency: the shipped host table of mbv2 (w0.35, 32 px)."""
    out = tmp_path / "lat"
    args = ["train", "--out", str(out), "--width", "0.35", "--resolution", "32", "--batch-size", "16",
            "--workers", "0", "--steps-per-epoch", "4", "--epochs", "1", "--log-every", "1", "-q",
            "--strategy", "constrained", "--opt", "cost=latency", "--opt", "bins=4",
            "--device", "host", "--runtime", "tflite"]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    conf = json.loads((out / "config.json").read_text())
    st = conf["strategy"]
    assert st["cost"] == "latency" and st["unit"] == "latency (ms)" and len(st["bins_used"]) == 4
    lo, hi = st["span"]
    assert 0 < lo < hi < 1000  # milliseconds, not MACs
    assert conf["train"]["device"] == "host" and conf["train"]["runtime"] == "tflite"
    ckpt = load_checkpoint(out / "last.pt")
    assert sum(ckpt["strategy_state"]["bin_counts"]) == 4
    code, _, err = run_cli([*args[:2], str(tmp_path / "none"), *args[3:], "--opt", "range=5000,6000"], capsys)
    assert code == 2 and "no architecture of space 'mbv2' has latency (ms) in [5000, 6000]" in " ".join(err.split())
    assert len(err.strip().splitlines()) <= 2 and not (tmp_path / "none").exists()


@pytest.mark.slow
def test_new_user_greedy_command_trains_past_chance(tmp_path, capsys):
    """The command a new user tries: the digits recipe gives 19 steps per epoch and a pool of 16;
    the stopping rule waits for the exploration schedule; inherited-weight accuracy beats chance."""
    import numpy as np

    from hwnas.train.evaluate import SubnetEvaluator

    out = tmp_path / "g"
    code, _, err = run_cli(["train", "--out", str(out), "--space", "mbv2", "--width", "0.25",
                            "--resolution", "16", "--data", "digits", "--strategy", "greedy",
                            "--sharing", "elastic", "--epochs", "8", "--workers", "0"], capsys)
    assert code == 0, err
    text = " ".join(err.split())
    assert "recipe 'digits': batch_size from it, lr from it" in text
    assert "greedy: the stopping rule may end the run from epoch" in text
    conf = json.loads((out / "config.json").read_text())
    assert conf["recipe"]["from_recipe"] == ["batch_size", "lr"] and conf["train"]["batch_size"] == 64
    assert conf["steps_per_epoch"] == 19 and conf["strategy"]["pool_size"] == 16
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["step"] >= 5 * 19  # far more than the 3 steps of the paper's batch on 1,257 images
    e = conf["strategy"]["earliest_stop_epoch"]
    assert ckpt["epoch"] >= e and e >= 5
    ev = SubnetEvaluator.from_checkpoint(out / "last.pt", calib_batches=4, device="cpu")
    rng = np.random.default_rng(5)
    top1 = [ev(ev.space.sample(rng)).top1 for _ in range(3)]
    assert min(top1) > 0.2, top1  # chance is 0.1


def test_recipe_batch_is_reduced_to_fit_and_an_explicit_one_refused(tmp_path, monkeypatch, capsys):
    from hwnas.train import recipes

    monkeypatch.setitem(recipes._RECIPES, "digits", recipes.Recipe("big", batch_size=1024, lr=0.12, epochs=1))
    config = TrainConfig(space="mbv2", width=0.25, resolution=16, data="digits", workers=0, steps_per_epoch=1)
    res = train_supernet(config, tmp_path / "r", quiet=False)
    err = " ".join(capsys.readouterr().err.split())
    assert "batch size 1024 of recipe 'big' is more than a quarter of the training split of digits (1257 images): using 256" in err
    conf = json.loads((tmp_path / "r" / "config.json").read_text())
    assert conf["train"]["batch_size"] == 256 and conf["lr"] == pytest.approx(0.12 * 256 / 1024)
    assert res.steps == 1 and any("using 256" in n for n in conf["notes"])
    with pytest.raises(Exception, match="more than a quarter"):
        train_supernet(config.replace(batch_size=400), tmp_path / "x", quiet=True)


def test_pre_seam_checkpoint_is_refused_for_resume_but_still_evaluates(tmp_path, capsys):
    run = tmp_path / "old"
    train_supernet(TrainConfig(**{**DISTILL, "strategy": "uniform", "sharing": "independent", "epochs": 1}),
                   run, quiet=True)
    ckpt = load_checkpoint(run / "last.pt")
    pre_seam_keys = ("strategy", "sharing", "optimizer", "scheduler", "scaler", "rng", "epoch",
                     "batch_in_epoch", "step", "metrics", "data", "world_size", "finished")
    legacy = {k: ckpt[k] for k in pre_seam_keys}
    legacy["sampler"] = {"name": "uniform", "rng": ckpt["strategy_state"]["rng"]}
    fx = json.loads((Path(__file__).parent / "fixtures" / "legacy_train_configs.json").read_text())
    legacy["train_config"] = {**fx["greedy"], "strategy": "uniform", "width": 0.25, "resolution": 16,
                              "batch_size": 32, "epochs": 1, "workers": 0, "steps_per_epoch": 3}
    from hwnas.spaces import create_space

    space = create_space("mbv2", width=0.25, resolution=16, num_classes=10)
    save_checkpoint(run / "last.pt", kind="supernet", space=space, model_state=ckpt["model"], extra=legacy)
    (run / "config.json").unlink()
    code, _, err = run_cli(["train", "--out", str(run), "--resume", "--epochs", "2", "-q"], capsys)
    assert code == 2 and "was written before training strategies became plug-ins" in " ".join(err.split())
    code, out, err = run_cli(["eval", "--checkpoint", str(run / "last.pt"), "--genes", ",".join(
        str(v) for v in space.smallest()), "--calib-batches", "1", "--torch-device", "cpu", "--json"], capsys)
    assert code == 0, err
    assert 0.0 <= json.loads(out)["top1"] <= 1.0


def test_strategies_command_lists_every_strategy_with_its_options(capsys):
    code, out, err = run_cli(["strategies", "--json"], capsys)
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads(out)}
    assert list(rows)[:3] == ["uniform", "constrained", "greedy"] and "test-distill" in rows
    assert rows["greedy"]["options"]["m"] == 10 and rows["greedy"]["options"]["alpha"] == 0.08
    assert rows["constrained"]["options"] == {"cost": "macs", "range": None, "bins": 8}
    assert rows["uniform"]["options"] == {"paths": 1, "resolutions": ""} and "SPOS Sec. 3.2" in rows["uniform"]["summary"]
    code, out, _ = run_cli(["strategies"], capsys)
    assert code == 0 and "GreedyNAS" in out
