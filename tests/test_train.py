"""The supernet training loop and ``hwnas train``: every strategy trains, only the sampled paths
change, runs resume bit-identically (epoch boundary and SIGINT mid-epoch), files are complete,
and bad input is a one-line error with exit code 2 that overwrites nothing."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import run_cli
from hwnas.checkpoint import load_checkpoint
from hwnas.spaces import create_space
from hwnas.supernet import build_supernet
from hwnas.train import TrainConfig, train_supernet
from hwnas.train.distributed import state_digest
from hwnas.train.loop import read_run_config
from hwnas.train.strategies import PathRun, RunContext, Strategy, create_strategy, register_strategy


TINY = dict(space="mbv2", width=0.25, resolution=16, data="digits", batch_size=32, lr=0.05,
            workers=0, steps_per_epoch=3, epochs=2, log_every=1)
GREEDY_TINY = dict(m=4, k=2, score_batch=64, warmup_steps=2)
TINY_ARGS = ["--width", "0.25", "--resolution", "16", "--batch-size", "32", "--lr", "0.05",
             "--workers", "0", "--steps-per-epoch", "3", "--log-every", "1", "-q"]
REPO = Path(__file__).resolve().parents[1]


def cfg(**kw) -> TrainConfig:
    return TrainConfig(**{**TINY, **kw})



def trained_paths(config: TrainConfig, space, steps: int):
    """Replay the strategy the loop used (seeded), for strategies that need no scores."""
    run = RunContext.for_sampling(space, seed=config.seed, epochs=config.epochs,
                                  steps_per_epoch=config.steps_per_epoch)
    smp = create_strategy(config.strategy, config.options, run)
    return [r.genes for step in range(steps) for r in smp.paths(step)]


def init_supernet(config: TrainConfig):
    space = create_space(config.space, width=config.width, resolution=config.resolution, num_classes=10)
    torch.manual_seed(config.seed)
    return space, build_supernet(space, config.sharing)


@pytest.mark.parametrize("strategy,options", [("uniform", {}), ("constrained", {"range": (2e5, 4e5)}),
                                              ("greedy", GREEDY_TINY)])
def test_each_strategy_trains_only_the_sampled_paths(strategy, options, tmp_path):
    config = cfg(strategy=strategy, options=options)
    res = train_supernet(config, tmp_path / strategy, quiet=True)
    assert res.epochs_done == 2 and res.steps == 6 and res.final_loss is not None
    ckpt = load_checkpoint(tmp_path / strategy / "last.pt")
    space, net0 = init_supernet(config)
    init = net0.state_dict()
    trained = ckpt["model"]
    params = dict(net0.named_parameters())
    changed = {k for k in params if not torch.equal(init[k], trained[k])}
    assert changed, "training changed no weight"
    if strategy == "greedy":
        pool = json.loads((tmp_path / strategy / "pool.json").read_text())
        losses = [e["loss"] for e in pool["entries"]]
        assert losses and losses == sorted(losses) and pool["capacity"] == 16  # the digits recipe's pool
        assert ckpt["strategy_state"]["rounds"] == 2  # steps 2..5 after the 2-step warm-up, k=2 per round
        return
    used = set()
    name_of = {id(p): n for n, p in params.items()}
    for g in trained_paths(config, space, res.steps):
        used |= {name_of[id(p)] for p in net0.path_parameters(g)}
    if strategy == "constrained":
        from hwnas.cost import CostModel
        import numpy as np
        macs = CostModel(space)(np.array(trained_paths(config, space, res.steps)))["macs"]
        assert ((macs >= 2e5) & (macs <= 4e5)).all()
    # every parameter of a trained path moved; no untrained candidate was touched (no weight decay
    # or momentum on parameters without gradients)
    assert changed == used


class _FixedPathStrategy(Strategy):
    """A plug-in strategy defined outside the package: always the smallest path."""

    name = "test-fixed-path"

    def paths(self, step):
        return [PathRun(self.space.smallest())]


def test_loop_learns_with_a_plugged_in_strategy(tmp_path):
    """The loop (data, optimizer, schedule) lowers the loss of what it trains. On a fixed path the
    drop is fast; a uniformly sampled supernet needs hundreds of steps before its loss moves."""
    from hwnas.data import load_data, take_batches
    from hwnas.models import supernet_from_checkpoint

    register_strategy(_FixedPathStrategy)
    config = cfg(strategy="test-fixed-path", epochs=3, steps_per_epoch=15, label_smoothing=0.0)
    res = train_supernet(config, tmp_path / "f", quiet=True)
    net, _ = supernet_from_checkpoint(tmp_path / "f" / "last.pt")
    space, net0 = init_supernet(config)
    data = load_data("digits", resolution=16)
    x, y = take_batches(data.search_val, 256, max_batches=1)[0]

    def loss(model):
        model.train()  # batch statistics: independent of the running statistics
        with torch.no_grad():
            return torch.nn.functional.cross_entropy(model(x, space.smallest()), y).item()

    assert loss(net) < 0.75 * loss(net0)
    assert res.metrics[-1]["loss"] < res.metrics[0]["loss"]


def test_elastic_supernet_learns_random_paths(tmp_path):
    """With OFA-style elastic sharing, uniformly sampled paths learn within a few epochs: held-out
    paths (not the trained ones) evaluated with inherited weights beat chance by far. (Independent
    candidate blocks stay at chance for this budget; see hwnas.supernet.)"""
    import numpy as np

    from hwnas.train.evaluate import SubnetEvaluator

    config = cfg(strategy="uniform", sharing="elastic", epochs=8, steps_per_epoch=None, log_every=50)
    train_supernet(config, tmp_path / "e", quiet=True)
    ckpt = load_checkpoint(tmp_path / "e" / "last.pt")
    assert ckpt["sharing"] == "elastic" and ckpt["train_config"]["sharing"] == "elastic"
    ev = SubnetEvaluator.from_checkpoint(tmp_path / "e" / "last.pt", calib_batches=4)
    assert ev.supernet.sharing == "elastic"
    rng = np.random.default_rng(99)
    top1 = [ev(ev.space.sample(rng)).top1 for _ in range(4)]
    assert min(top1) > 0.3, top1  # chance is 0.1


def test_resume_with_other_sharing_is_refused(tmp_path, capsys):
    run = tmp_path / "r"
    train_supernet(cfg(strategy="uniform", epochs=1), run, quiet=True)
    before = (run / "last.pt").read_bytes()
    code, _, err = run_cli(["train", "--out", str(run), "--resume", "--sharing", "elastic",
                            "--epochs", "2", *TINY_ARGS], capsys)
    assert code == 2 and "sharing='independent'" in err and "sharing='elastic'" in err
    assert (run / "last.pt").read_bytes() == before
    code, _, err = run_cli(["train", "--out", str(tmp_path / "x"), "--sharing", "ofa", *TINY_ARGS], capsys)
    assert code == 2 and "unknown --sharing 'ofa'; allowed: independent, elastic" in err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("strategy", ["uniform", "greedy"])
def test_resume_at_an_epoch_boundary_is_bit_identical(strategy, tmp_path):
    config = cfg(strategy=strategy, options=GREEDY_TINY if strategy == "greedy" else {})
    straight = train_supernet(config, tmp_path / "a", quiet=True)
    first = train_supernet(config, tmp_path / "b", quiet=True, stop_after_epochs=1)
    assert first.epochs_done == 1 and first.weights_digest != straight.weights_digest
    resumed = train_supernet(config, tmp_path / "b", resume=True, quiet=True)
    assert resumed.weights_digest == straight.weights_digest
    a, b = load_checkpoint(tmp_path / "a" / "last.pt"), load_checkpoint(tmp_path / "b" / "last.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert state_digest({str(i): v["momentum_buffer"] for i, v in a["optimizer"]["state"].items()}) == \
        state_digest({str(i): v["momentum_buffer"] for i, v in b["optimizer"]["state"].items()})
    assert a["strategy_state"] == b["strategy_state"] and a["step"] == b["step"] == 6 and b["finished"]
    ea = [m["loss"] for m in a["metrics"]]
    assert ea == [m["loss"] for m in b["metrics"]]
    if strategy == "greedy":
        assert (tmp_path / "a" / "pool.json").read_text() == (tmp_path / "b" / "pool.json").read_text()


@pytest.mark.slow
def test_sigint_mid_epoch_checkpoints_exits_130_and_resumes_exactly(tmp_path):
    args = ["--width", "0.25", "--resolution", "16", "--batch-size", "32", "--lr", "0.05",
            "--workers", "0", "--steps-per-epoch", "8", "--epochs", "3", "--log-every", "1",
            "--seed", "4", "-q", "--torch-device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    run = tmp_path / "b"
    proc = subprocess.Popen([sys.executable, "-m", "hwnas", "train", "--out", str(run), *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = run / "metrics.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and '"step": 2,' in metrics.read_text():
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "SIGINT: stopped after the current step" in err and "--resume" in err
    ckpt = load_checkpoint(run / "last.pt")
    assert 2 <= ckpt["step"] < 24 and not ckpt["finished"]
    assert ckpt["batch_in_epoch"] > 0  # stopped inside an epoch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # same numerics as the OMP_NUM_THREADS=1 subprocess
    try:
        config = read_run_config(run)
        assert config.seed == 4 and config.steps_per_epoch == 8
        resumed = train_supernet(config, run, resume=True, quiet=True, torch_device="cpu")
        straight = train_supernet(config, tmp_path / "a", quiet=True, torch_device="cpu")
    finally:
        torch.set_num_threads(threads)
    assert resumed.weights_digest == straight.weights_digest
    # the epoch interrupted and resumed logs the loss of all its steps, not only the resumed ones
    assert [m["loss"] for m in resumed.metrics] == pytest.approx([m["loss"] for m in straight.metrics],
                                                                 rel=1e-12)
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()
             if json.loads(line)["kind"] == "step"]
    assert steps == list(range(1, 25))  # lines logged after the checkpoint were not duplicated


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "u"
    train_supernet(cfg(epochs=1, steps_per_epoch=2), out, quiet=True)
    return out


def test_run_folder_files(tiny_run):
    conf = json.loads((tiny_run / "config.json").read_text())
    assert conf["train"]["strategy"] == "uniform" and conf["train"]["width"] == 0.25
    assert set(conf["versions"]) >= {"hwnas", "torch", "python"}
    assert conf["data"]["sizes"]["search-val"] > 0 and conf["space"]["num_classes"] == 10
    assert conf["lr"] == 0.05 and conf["steps_per_epoch"] == 2 and conf["world_size"] == 1
    lines = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    kinds = [r["kind"] for r in lines]
    assert kinds == ["step", "step", "epoch", "final"]
    assert {"epoch", "step", "loss", "lr", "images_per_s"} <= set(lines[0])
    assert lines[-1]["rank_digests"] == [lines[-1]["weights_digest"]]
    ckpt = load_checkpoint(tiny_run / "last.pt")
    assert lines[-1]["weights_digest"] == state_digest(ckpt["model"])
    assert set(ckpt["rng"]) >= {"torch", "numpy", "python"} and ckpt["strategy"] == "uniform"


def test_cli_trains_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run_cli(["train", "--out", str(out), *TINY_ARGS, "--epochs", "1"], capsys)
    assert code == 0, err
    code, _, err = run_cli(["train", "--out", str(out), "--resume", "--epochs", "2", "-q"], capsys)
    assert code == 0, err
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["epoch"] == 2 and ckpt["step"] == 6 and ckpt["train_config"]["epochs"] == 2


ERRORS = [
    (["--strategy", "foo"], "unknown strategy 'foo'; allowed: uniform, constrained, greedy"),
    (["--data", "mnist"], "unknown dataset 'mnist'; allowed: cifar10, cifar100, digits, fake, gratings[:test=N], gratings-fine[:test=N], imagefolder:PATH"),
    (["--lr", "-1"], "--lr must be > 0, got -1.0"),
    (["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
    (["--epochs", "0"], "--epochs must be >= 1, got 0"),
    (["--weight-decay", "-0.1"], "--weight-decay must be >= 0"),
    (["--amp", "--torch-device", "cpu"], "--amp needs a CUDA device"),
    (["--torch-device", "tpu"], "--torch-device must be cpu or cuda, got 'tpu'"),
    (["--strategy", "constrained", "--opt", "range=1G,2G"], "no architecture of space 'mbv2' has MACs in [1,000,000,000, 2,000,000,000]: the space spans 105,832 .. 685,984"),
    (["--strategy", "constrained", "--opt", "range=abc,1"], "strategy 'constrained': option range: range 'abc' is not a number"),
    (["--strategy", "constrained", "--opt", "cost=latency"], "a latency range needs --device (and --runtime)"),
    (["--strategy", "constrained", "--opt", "cost=latency", "--device", "nosuchphone"], "nosuchphone"),
    (["--data", "cifar10"], "cifar10 needs --data-root DIR"),
    (["--batch-size", "5000"], "--batch-size 5000 x 1 process(es) is more than a quarter of the training split of digits (1257 images): at most 314"),
    (["--strategy", "greedy", "--opt", "k=20"], "strategy 'greedy': option k must lie in 1..m (10), got 20"),
    (["--strategy", "greedy", "--opt", "q=1"], "strategy 'greedy' has no option 'q'; allowed: m=10, k=5"),
    (["--strategy", "uniform", "--opt", "m=3"], "strategy 'uniform' has no option 'm'; allowed: paths=1"),
    (["--opt", "m"], "--opt takes KEY=VALUE"),
]


@pytest.mark.parametrize("args,message", ERRORS)
def test_cli_errors_are_one_line_exit_2(args, message, tmp_path, capsys):
    code, out, err = run_cli(["train", "--out", str(tmp_path / "new"), *TINY_ARGS, *args], capsys)
    assert code == 2, err
    assert message in " ".join(err.split())
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2
    assert not (tmp_path / "new" / "last.pt").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cli_cuda_without_gpu(tmp_path, capsys):
    code, _, err = run_cli(["train", "--out", str(tmp_path / "x"), *TINY_ARGS, "--torch-device", "cuda"], capsys)
    assert code == 2 and "no CUDA device is available" in err


def _snapshot(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir()) if p.is_file()}


def test_existing_runs_are_never_overwritten(tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = _snapshot(run)
    cases = [
        ([], "already holds a run; pass --resume to continue it or choose another --out"),
        (["--resume", "--strategy", "greedy"], "was trained with strategy='uniform'; cannot resume it with strategy='greedy'"),
        (["--resume", "--space", "shufflenetv2"], "was trained with space='mbv2'; cannot resume it with space='shufflenetv2'"),
        (["--resume", "--width", "0.5"], "was trained with width=0.25; cannot resume it with width=0.5"),
    ]
    for args, message in cases:
        code, _, err = run_cli(["train", "--out", str(run), *TINY_ARGS, *args], capsys)
        assert code == 2 and message in " ".join(err.split()), err
    assert _snapshot(run) == before
    code, _, err = run_cli(["train", "--out", str(tmp_path / "empty"), "--resume"], capsys)
    assert code == 2 and "last.pt does not exist (nothing to resume)" in err
    (tmp_path / "file").write_text("x")
    code, _, err = run_cli(["train", "--out", str(tmp_path / "file"), *TINY_ARGS], capsys)
    assert code == 2 and f"--out {tmp_path / 'file'} is a file, a folder is needed" in err


def test_truncated_or_foreign_checkpoint_on_resume(tiny_run, tmp_path, capsys):
    run = tmp_path / "trunc"
    shutil.copytree(tiny_run, run)
    data = (run / "last.pt").read_bytes()
    (run / "last.pt").write_bytes(data[: len(data) // 3])
    before = _snapshot(run)
    code, _, err = run_cli(["train", "--out", str(run), "--resume", "-q"], capsys)
    assert code == 2 and "cannot read checkpoint" in err and "truncated" in err
    assert _snapshot(run) == before
    torch.save({"state_dict": {}}, run / "last.pt")
    code, _, err = run_cli(["train", "--out", str(run), "--resume", "-q"], capsys)
    assert code == 2 and "is not an hwnas checkpoint" in err
