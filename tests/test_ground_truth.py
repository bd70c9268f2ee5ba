"""Ground-truth files and ``hwnas rank-check --ground-truth``: build (resumable), round trip,
refusals (bad files; another space, width, resolution or dataset), scoring a tiny supernet, --json."""

import dataclasses
import json

import numpy as np
import pytest

from conftest import run_cli
from hwnas.errors import HwnasError
from hwnas.ranking.metrics import correlations, top_k_found
from hwnas.ranking.standalone import StandaloneRecipe
from hwnas.ranking.truth import build_ground_truth, load_ground_truth

TINY = StandaloneRecipe(epochs=1, batch_size=32, lr=0.05, warmup_steps=1, steps_per_epoch=2)


@pytest.fixture(scope="module")
def truth_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("gt") / "tiny.json"
    build_ground_truth("mbv2", width=0.25, resolution=16, n=3, seeds=(0, 1), recipe=TINY, out=out,
                       split="search-val")  # the smaller split: a faster test
    return out


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from hwnas.train import TrainConfig, train_supernet

    run = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(space="mbv2", width=0.25, resolution=16, data="gratings", batch_size=32, lr=0.05,
                      workers=0, steps_per_epoch=3, epochs=1, sharing="elastic")
    train_supernet(cfg, run, quiet=True)
    return run / "last.pt"


def test_top_k_found():
    truth = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    assert top_k_found(truth, truth, k=2, within=2) == 2
    assert top_k_found(truth, truth[::-1], k=2, within=2) == 0
    assert top_k_found(truth, [0.1, 0.9, 0.8, 0.0, 0.0, 0.0], k=2, within=2) == 1
    assert top_k_found(truth, [0.1, 0.9, 0.8, 0.0, 0.0, 0.0], k=2, within=3) == 2


def test_build_writes_a_complete_file_that_round_trips_and_resumes(truth_file):
    gt = load_ground_truth(truth_file)
    d = json.loads(truth_file.read_text())
    assert d["format"] == "hwnas-ground-truth" and d["format_version"] == 1
    assert gt.space == {"name": "mbv2", "width": 0.25, "resolution": 16, "num_classes": 10, "in_channels": 3,
                        "layout": 2}
    assert gt.data["name"] == "gratings" and gt.data["split"] == "search-val" and gt.data["images"] == 2000
    assert gt.recipe == TINY and gt.seeds == (0, 1) and set(d["versions"]) >= {"hwnas", "torch"}
    assert len(gt.subnets) == 3 and all(len(e.top1) == 2 and len(e.seconds) == 2 for e in gt.subnets)
    macs = [e.macs for e in gt.subnets]
    assert macs == sorted(macs) and macs[0] < macs[-1]  # spread over the MACs range
    s = d["summary"]
    assert s["seed_to_seed"] == correlations(np.array([e.top1[0] for e in gt.subnets]),
                                             np.array([e.top1[1] for e in gt.subnets]))
    assert s["macs_baseline"] == correlations(np.array(macs, float), gt.top1())
    assert s["top1_range_points"] == pytest.approx(100 * (gt.top1().max() - gt.top1().min()))
    # saved again, it reads back identically
    again = truth_file.with_name("again.json")
    gt.save(again)
    assert load_ground_truth(again).to_dict() == gt.to_dict()
    # resume: every training is in the partial file, so a rebuild trains nothing and agrees
    partial = truth_file.with_name(truth_file.name + ".partial.jsonl")
    assert len(partial.read_text().splitlines()) == 6
    rebuilt = build_ground_truth("mbv2", width=0.25, resolution=16, n=3, seeds=(0, 1), recipe=TINY,
                                 out=truth_file, split="search-val")
    assert len(partial.read_text().splitlines()) == 6
    assert [e.top1 for e in rebuilt.subnets] == [e.top1 for e in gt.subnets]
    # every other subnet of the same spread: nothing to train either
    half = build_ground_truth("mbv2", width=0.25, resolution=16, n=3, seeds=(0, 1), recipe=TINY,
                              out=truth_file, split="search-val", stride=2)
    assert [e.genes for e in half.subnets] == [gt.subnets[0].genes, gt.subnets[2].genes]
    assert half.sample == {"method": "spread", "n": 3, "stride": 2, "seed": 0}
    assert len(partial.read_text().splitlines()) == 6
    gt.save(truth_file)  # the other tests use all three
    with pytest.raises(HwnasError, match="leaves 1 subnet"):
        build_ground_truth("mbv2", width=0.25, resolution=16, n=3, recipe=TINY, out=truth_file, stride=3)


def test_stand_alone_training_is_a_function_of_the_seed():
    import torch

    from hwnas.data import load_data
    from hwnas.ranking.standalone import train_subnet
    from hwnas.spaces import create_space

    space = create_space("mbv2", width=0.25, resolution=16, num_classes=10)
    data = load_data("gratings", resolution=16)
    g = space.largest()
    a, b, c = (train_subnet(space, g, data, TINY, seed=s).state_dict() for s in (3, 3, 4))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    # zero-gamma init: every residual branch starts as the identity
    from hwnas.ranking.standalone import zero_init_residual
    from hwnas.supernet import Subnet

    net = Subnet(space, g)
    assert zero_init_residual(net) > 0
    seen = []
    for m in net.modules():
        if getattr(m, "residual", False):
            m.register_forward_hook(lambda mod, inp, out: seen.append(torch.equal(inp[0], out)))
    net.train()(torch.randn(4, 3, 16, 16))
    assert seen and all(seen)


def _edit(path, tmp_path, fn, name="bad.json"):
    d = json.loads(path.read_text())
    fn(d)
    p = tmp_path / name
    p.write_text(json.dumps(d))
    return p


@pytest.mark.parametrize("edit, match", [
    (lambda d: d.update(format="something"), "not a ground-truth file"),
    (lambda d: d.update(format_version=99), "format_version 99"),
    (lambda d: d.pop("recipe"), "lacks key 'recipe'"),
    (lambda d: d["subnets"][1].update(top1=[0.5]), r"subnets\[1\] has 1 results for 2 seeds"),
    (lambda d: d["subnets"][0].update(top1=[1.5, 0.2]), r"subnets\[0\].top1 must lie in \[0, 1\]"),
    (lambda d: d["subnets"][2].update(genes=[9] * 21), r"subnets\[2\]"),
    (lambda d: d["recipe"].update(optimizer="adam"), "unknown stand-alone recipe settings optimizer"),
])
def test_bad_files_are_refused_naming_what_is_wrong(truth_file, tmp_path, edit, match):
    with pytest.raises(HwnasError, match=match):
        load_ground_truth(_edit(truth_file, tmp_path, edit))


def test_unknown_name_and_unreadable_file(tmp_path):
    with pytest.raises(HwnasError, match="neither a file nor a shipped ground truth"):
        load_ground_truth("no-such-truth")
    bad = tmp_path / "t.json"
    bad.write_text("{")
    with pytest.raises(HwnasError, match="cannot read ground truth"):
        load_ground_truth(bad)


def test_rank_check_scores_a_supernet_against_the_truth(truth_file, checkpoint, tmp_path, capsys):
    out = tmp_path / "rc"
    code, stdout, err = run_cli(["rank-check", "--checkpoint", str(checkpoint), "--ground-truth",
                                 str(truth_file), "--calib-batches", "1", "--out", str(out), "--json"], capsys)
    assert code == 0, err
    r = json.loads(stdout)
    assert r["n"] == 3 and r["data"] == "gratings" and r["split"] == "search-val"
    assert set(r["correlations"]) == {"kendall", "spearman", "pearson"}
    # only 3 subnets: the truth's top 5 are all of them, and all are in any top 10
    assert r["top5_in_top10"] == 3 and r["baselines"]["macs"]["top5_in_top10"] == 3
    gt = load_ground_truth(truth_file)
    assert r["baselines"]["seed_to_seed"] == gt.seed_to_seed()
    assert {k: r["baselines"]["macs"][k] for k in ("kendall", "spearman", "pearson")} == gt.macs_baseline()
    import csv

    rows = list(csv.DictReader(open(out / "truth_tiny.csv", encoding="utf-8")))
    assert len(rows) == 3 and "standalone_top1_seed1" in rows[0]
    assert [tuple(map(int, r["genes"].split(","))) for r in rows] == [e.genes for e in gt.subnets]
    sup = np.array([float(r["supernet_top1"]) for r in rows])
    assert r["correlations"] == correlations(sup, gt.top1())
    assert (out / "truth_tiny.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stored = json.loads((out / "truth_tiny.json").read_text())
    assert stored["correlations"] == r["correlations"] and stored["sharing"] == "elastic"
    code, stdout, _ = run_cli(["rank-check", "--checkpoint", str(checkpoint), "--ground-truth",
                               str(truth_file), "--calib-batches", "1", "--out", str(out)], capsys)
    assert code == 0 and "Kendall" in stdout and "MACs" in stdout and "seed vs" in stdout


@pytest.mark.parametrize("edit, match", [
    (lambda d: d["space"].update(width=0.35), "width 0.35"),
    (lambda d: d["space"].update(resolution=32), "resolution 32"),
    (lambda d: d["space"].update(name="shufflenetv2"), "name 'shufflenetv2'"),
    (lambda d: d["data"].update(name="digits"), "trained on 'gratings'"),
    (lambda d: d["data"].update(name="gratings-fine:test=20000"), "trained on .gratings."),
    (lambda d: d["data"].update(split_seed=3), "split seed 3"),
])
def test_rank_check_refuses_a_truth_of_another_setting(truth_file, checkpoint, tmp_path, capsys, edit, match):
    if "shufflenetv2" in match:  # genes of another space would fail validation first: use its own
        from hwnas.spaces import create_space

        s = create_space("shufflenetv2", width=0.25, resolution=16, num_classes=10)

        def edit(d, s=s):
            d["space"].update(name="shufflenetv2")
            d["space"].pop("layout")  # mbv2's setting: a shufflenetv2 config has none
            for e in d["subnets"]:
                e["genes"] = list(s.smallest())
    bad = _edit(truth_file, tmp_path, edit)
    code, stdout, err = run_cli(["rank-check", "--checkpoint", str(checkpoint), "--ground-truth", str(bad),
                                 "--json"], capsys)
    assert code == 2 and stdout == ""
    assert len(err.strip().splitlines()) == 1 and "ground truth" in err
    import re

    assert re.search(match, err)


def test_json_without_ground_truth_is_refused(checkpoint, capsys):
    code, _, err = run_cli(["rank-check", "--checkpoint", str(checkpoint), "--json"], capsys)
    assert code == 2 and "--json needs --ground-truth" in err


def test_a_truth_measured_on_a_larger_test_split_fits_the_plain_dataset(truth_file):
    gt = load_ground_truth(truth_file)
    big = dataclasses.replace(gt, data=dict(gt.data, name="gratings:test=20000"))
    big.check_compatible(gt.space, "gratings", 0, "checkpoint c")  # same training images: accepted
    with pytest.raises(HwnasError, match="trained on 'gratings-fine'"):
        big.check_compatible(gt.space, "gratings-fine", 0, "checkpoint c")


def test_truth_noise_reports_sigma_range_and_a_projected_tau(truth_file):
    import importlib.util
    from pathlib import Path

    tool = Path(__file__).resolve().parents[1] / "tools" / "bench" / "truth_noise.py"
    spec = importlib.util.spec_from_file_location("truth_noise", tool)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    r = mod.analyse(truth_file, n=10)
    t = 100 * np.array([e.top1 for e in load_ground_truth(truth_file).subnets])
    assert r["sigma_points"] == pytest.approx(np.std(t[:, 0] - t[:, 1], ddof=1) / np.sqrt(2), abs=0.01)
    assert r["top1_range_points"] == pytest.approx(t.mean(1).max() - t.mean(1).min(), abs=0.01)
    macs, mean = np.array([1.0, 2.0, 3.0]), np.array([70.0, 75.0, 80.0])
    assert mod.projected_tau(macs, mean, 0.0, 30, trials=5) == pytest.approx(1.0)  # noise-free
    assert mod.projected_tau(macs, mean, 0.5, 30, trials=200) > mod.projected_tau(macs, mean, 3.0, 30, trials=200)
    assert 0.3 < mod.needed_sigma(macs, mean, 30) < 1.5  # 10 points over 30 subnets: about 0.8


def test_a_fixed_data_seed_gives_every_training_the_same_order(monkeypatch):
    import hwnas.ranking.standalone as S
    from hwnas.data import load_data
    from hwnas.spaces import create_space

    orders = []
    real = S.train_loader

    def spy(split, *, batch_size, seed, epoch):
        orders.append(seed)
        return real(split, batch_size=batch_size, seed=seed, epoch=epoch)

    monkeypatch.setattr(S, "train_loader", spy)
    space = create_space("mbv2", width=0.25, resolution=16, num_classes=10)
    data = load_data("gratings", resolution=16)
    fixed = dataclasses.replace(TINY, data_seed=7)
    for s in (3, 4):
        S.train_subnet(space, space.smallest(), data, fixed, seed=s)
    S.train_subnet(space, space.smallest(), data, TINY, seed=5)
    assert orders == [7, 7, 5]
    assert fixed.to_dict()["data_seed"] == 7 and "data_seed" not in TINY.to_dict()  # old keys unchanged
    assert StandaloneRecipe.from_dict(fixed.to_dict()) == fixed
    with pytest.raises(HwnasError, match="data_seed must be >= 0"):
        StandaloneRecipe(data_seed=-1)
