"""SparseNAS flow end to end on built-in data (proxy -> pairs -> early predictor -> sparse space ->
sparse training with a teacher -> pick), plus the strategy option, the file checks and the errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwnas.errors import HwnasError
from tests.conftest import run_cli, tiny_space

TINY = dict(space="mbv2", width=0.25, resolution=16, data="digits", workers=0, batch_size=32)


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    from hwnas.sparse.evolve import build_sparse_set
    from hwnas.sparse.pairs import collect_pairs
    from hwnas.sparse.predictor import fit_predictor, load_predictor
    from hwnas.sparse.teacher import train_teacher
    from hwnas.train.config import TrainConfig
    from hwnas.train.loop import train_supernet

    root = tmp_path_factory.mktemp("sparsenas")
    proxy = TrainConfig(**TINY, strategy="uniform", options={"paths": 2}, epochs=1, steps_per_epoch=4)
    train_supernet(proxy, root / "proxy", quiet=True)
    pairs = collect_pairs(root / "proxy" / "last.pt", root / "pairs.jsonl", n=16, calib_batches=1,
                          batch_size=32, max_images=64, quiet=True)
    pred = fit_predictor(pairs, "gbdt", test_fraction=0.25)
    pred.save(root / "gbdt.json")
    pred = load_predictor(root / "gbdt.json")
    sparse, report = build_sparse_set(pred, buckets=3, per_bucket=2, pop=6, iterations=3)
    sparse.save(root / "sparse.json")
    teacher, _ = train_teacher(TrainConfig(**TINY, epochs=1, steps_per_epoch=2), root / "teacher.pt")
    cfg = TrainConfig(**TINY, strategy="sparse", epochs=1, steps_per_epoch=3,
                      options={"space_file": str(root / "sparse.json"), "n_sub": 2, "teacher": str(teacher)})
    result = train_supernet(cfg, root / "sparse", quiet=True)
    return {"root": root, "pairs": pairs, "pred": pred, "sparse": sparse, "report": report, "result": result}


def test_flow_files_and_training(flow):
    root, sparse = flow["root"], flow["sparse"]
    assert len(flow["pairs"]) == 16 and len(set(map(tuple, flow["pairs"].genes.tolist()))) == 16
    m = flow["pred"].metrics
    assert m["n_test"] == 4 and m["n_train"] == 12 and m["rmse"] >= m["rmse_shifted"] >= 0
    assert flow["pred"].model.get_params()["n_estimators"] == 100  # SparseNAS Sec. 5.2.1 defaults
    assert flow["pred"].model.get_params()["learning_rate"] == 0.01
    # the sparse set: per bucket the predictor's best, every member inside its bucket
    d = json.loads((root / "sparse.json").read_text())
    assert d["format"] == "hwnas.sparse_space" and d["versions"]["hwnas"]
    assert 1 <= len(sparse) <= 6 and len(d["members"]) == len(sparse)
    from hwnas.cost import CostModel

    space = flow["pred"].space_obj()
    macs = CostModel(space)(sparse.genes)["macs"]
    assert np.array_equal(macs, sparse.macs)
    lo, hi, n = d["buckets"]["lo"], d["buckets"]["hi"], d["buckets"]["count"]
    edges = np.linspace(lo, hi, n + 1)
    for mac, b in zip(macs, sparse.bucket):
        assert edges[b] <= mac <= edges[b + 1]
    assert np.allclose(flow["pred"].predict(sparse.genes), sparse.predicted)
    # sparse training ran only members, with distillation terms
    cfg = json.loads((root / "sparse" / "config.json").read_text())
    assert cfg["strategy"]["members"] == len(sparse) and cfg["strategy"]["teacher_genes"]
    lines = [json.loads(x) for x in (root / "sparse" / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("kind") == "epoch" and r.get("members_trained", 0) >= 2 for r in lines)


def test_pick_cli_and_errors(flow, capsys):
    root, sparse = flow["root"], flow["sparse"]
    ckpt = str(root / "sparse" / "last.pt")
    budget = int(np.sort(sparse.macs)[min(1, len(sparse) - 1)])
    code, out, _ = run_cli(["pick", "--checkpoint", ckpt, "--max-macs", str(budget), "--max-images", "64",
                            "--calib-batches", "1", "--json"], capsys)
    assert code == 0, out
    r = json.loads(out)
    assert r["macs"] <= budget and r["feasible"] == int((sparse.macs <= budget).sum())
    assert tuple(r["genes"]) in set(sparse.members())
    cache = json.loads((root / "sparse" / "sparse_accuracy.json").read_text())["top1"]
    feasible = [",".join(map(str, g)) for g, m in zip(sparse.genes, sparse.macs) if m <= budget]
    assert r["top1"] == max(cache[k] for k in feasible)
    code, out, _ = run_cli(["pick", "--checkpoint", ckpt, "--max-macs", str(budget), "--max-images", "64",
                            "--calib-batches", "1", "--json"], capsys)
    assert code == 0 and json.loads(out)["evaluated"] == 0  # second pick: a lookup
    code, _, err = run_cli(["pick", "--checkpoint", ckpt, "--max-macs", "1k"], capsys)
    assert code == 2 and "no member of the sparse set" in err and "the cheapest has" in err
    code, _, err = run_cli(["pick", "--checkpoint", str(root / "proxy" / "last.pt"), "--max-macs", "1M"], capsys)
    assert code == 2 and "not sparse: pass --sparse-space FILE" in err
    code, _, err = run_cli(["pick", "--checkpoint", ckpt], capsys)
    assert code == 2 and "pick needs a budget" in err


def test_sparse_space_of_another_space_is_refused(flow, tmp_path, capsys):
    from hwnas.spaces.sparse_set import load_sparse_set

    with pytest.raises(HwnasError, match="is for space 'mbv2', not 'shufflenetv2'"):
        load_sparse_set(flow["root"] / "sparse.json", tiny_space("shufflenetv2", resolution=16))
    with pytest.raises(HwnasError, match="was built for resolution=16"):
        load_sparse_set(flow["root"] / "sparse.json", tiny_space("mbv2", resolution=32))
    code, _, err = run_cli(["train", "--out", str(tmp_path / "x"), "--space", "shufflenetv2", "--width", "0.25",
                            "--resolution", "16", "--strategy", "sparse", "--sparse-space",
                            str(flow["root"] / "sparse.json"), "--workers", "0"], capsys)
    assert code == 2 and "is for space 'mbv2', not 'shufflenetv2'" in err
    code, _, err = run_cli(["train", "--out", str(tmp_path / "y"), "--strategy", "sparse"], capsys)
    assert code == 2 and "space_file is required: pass --sparse-space FILE" in err
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(HwnasError, match="is not a sparse-space file"):
        load_sparse_set(bad)


def test_uniform_paths_option_and_encoding():
    from hwnas.sparse.encoding import encode, feature_names
    from hwnas.train.strategies import RunContext, create_strategy

    s = tiny_space("mbv2", resolution=16)
    st = create_strategy("uniform", {"paths": 2}, RunContext.for_sampling(s))
    runs = st.paths(0)
    assert len(runs) == 2 and all(r.grad for r in runs)
    one = create_strategy("uniform", {}, RunContext.for_sampling(s))
    assert len(one.paths(0)) == 1
    X = s.sample_many(np.random.default_rng(0), 5)
    E = encode(s, X)
    assert E.shape == (5, sum(s.choices)) == (5, len(feature_names(s)))
    assert np.array_equal(E.sum(axis=1), np.full(5, s.num_genes))
    with pytest.raises(HwnasError, match="option paths must be >= 1"):
        create_strategy("uniform", {"paths": 0}, RunContext.for_sampling(s))


def test_fit_kinds_and_predictor_file_errors(flow, tmp_path):
    from hwnas.sparse.predictor import fit_predictor, load_predictor

    for kind in ("rf", "mlp"):
        p = fit_predictor(flow["pairs"], kind, test_fraction=0.25)
        p.save(tmp_path / f"{kind}.json")
        back = load_predictor(tmp_path / f"{kind}.json")
        assert np.array_equal(back.predict(flow["pairs"].genes), p.predict(flow["pairs"].genes))
    with pytest.raises(HwnasError, match="unknown predictor kind 'svm'"):
        fit_predictor(flow["pairs"], "svm")
    (tmp_path / "x.json").write_text('{"format": "other"}')
    with pytest.raises(HwnasError, match="is not an early-predictor file"):
        load_predictor(tmp_path / "x.json")


def test_random_resolution_per_step(flow, tmp_path):
    """Once-for-All elastic resolution: each step's batch is resized to a drawn resolution, for every
    path (and the sparse teacher); empty resolutions leave the batch and the draws unchanged."""
    import torch

    from hwnas.train.config import TrainConfig
    from hwnas.train.loop import train_supernet
    from hwnas.train.strategies import RunContext, create_strategy

    s = tiny_space("mbv2", resolution=16)

    class Rec:  # stands in for TrainModel: records the input size each path sees
        def __init__(self):
            self.seen = []
            self.supernet = lambda x, genes, mix=None: self.seen.append(x.shape[-1]) or x.mean((2, 3))

    st = create_strategy("uniform", {"paths": 2, "resolutions": "20,12"}, RunContext.for_sampling(s, seed=3))
    rec, x = Rec(), torch.rand(2, 3, 16, 16)
    for step in range(40):
        runs = st.paths(step)
        st.forward(rec, x, runs)
        assert rec.seen[-1] == rec.seen[-2] == st.resolution.current  # one resolution per step
    assert set(rec.seen) == {12, 20}
    plain = create_strategy("uniform", {"paths": 2}, RunContext.for_sampling(s, seed=3))
    rec2 = Rec()
    plain.forward(rec2, x, plain.paths(0))
    assert rec2.seen == [16, 16]
    # without the option the same seed draws the same paths as before the option existed
    again = create_strategy("uniform", {"paths": 2}, RunContext.for_sampling(s, seed=3))
    assert [r.genes for r in again.paths(0)] == [r.genes for r in create_strategy(
        "uniform", {"paths": 2}, RunContext.for_sampling(s, seed=3)).paths(0)]
    with pytest.raises(HwnasError, match="resolutions must be >= 8 px, got 4"):
        create_strategy("uniform", {"resolutions": "4,16"}, RunContext.for_sampling(s))
    with pytest.raises(HwnasError, match="comma-separated integers"):
        create_strategy("sparse", {"space_file": str(flow["root"] / "sparse.json"), "resolutions": "x"},
                        RunContext.for_sampling(s))
    # a real sparse run with the option trains and stores it
    cfg = TrainConfig(**TINY, strategy="sparse", epochs=1, steps_per_epoch=3,
                      options={"space_file": str(flow["root"] / "sparse.json"), "n_sub": 2,
                               "resolutions": "12,16,24"})
    r = train_supernet(cfg, tmp_path / "res", quiet=True)
    assert r.steps == 3 and r.final_loss is not None and np.isfinite(r.final_loss)
    stored = json.loads((tmp_path / "res" / "config.json").read_text())
    assert stored["strategy"]["resolutions"] == "12,16,24"
