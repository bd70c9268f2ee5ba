"""Searches end to end on cheap objectives: budgets respected, exact resume, result files, errors, CLI."""

import csv
import json

import numpy as np
import pytest
import torch

from conftest import run_cli, tiny_space
from hwnas.checkpoint import save_checkpoint
from hwnas.cost import CostModel
from hwnas.errors import HwnasError
from hwnas.search.algorithms import initial_from_checkpoint
from hwnas.search.objectives import macs_objective, params_objective
from hwnas.search.problem import ArchProblem
from hwnas.search.quality import synthetic_error_objective
from hwnas.search.run import STATE_FILE, run_search
from hwnas.supernet import build_supernet

TINY = ["--width", "0.25", "--resolution", "32", "--num-classes", "10"]


@pytest.fixture(scope="module")
def space():
    return tiny_space("mbv2")


@pytest.fixture(scope="module")
def cm(space):
    return CostModel(space)


@pytest.fixture(scope="module")
def macs_median(space, cm):
    return float(np.median(cm(space.sample_many(np.random.default_rng(0), 4000))["macs"]))


def error_macs(space, cm, max_macs=None):
    """Synthetic error vs MACs: a real trade-off (see hwnas.search.quality)."""
    return ArchProblem(space, [synthetic_error_objective(space), macs_objective(cm, max_macs)],
                       cost_model=cm)


@pytest.mark.parametrize("algorithm", ["nsga2", "evolution", "random"])
def test_budget_is_respected(space, cm, macs_median, algorithm):
    budget = 0.9 * macs_median
    r = run_search(error_macs(space, cm, budget), algorithm, pop=30, gens=8, seed=1, progress=False)
    front_macs = cm(r.pareto_genes)["macs"]
    assert len(r.pareto_index) >= 1 and (front_macs <= budget).all()
    assert r.metrics(r.best_index)["macs"] <= budget
    h = r.history
    assert np.array_equal(h.feasible, h.column("macs") <= budget)
    assert len(h) <= 30 * 8 and len(np.unique(h.genes, axis=0)) == len(h)
    if algorithm == "nsga2":  # the front trades error for MACs and beats random sampling's best
        assert len(r.pareto_index) >= 3
        F = r.pareto_F
        assert (np.diff(F[:, 0]) >= 0).all() and (np.diff(F[:, 1]) <= 0).all()


@pytest.mark.parametrize("algorithm", ["nsga2", "evolution", "random"])
def test_resume_continues_exactly(space, cm, macs_median, tmp_path, algorithm):
    def problem():
        return ArchProblem(space, [macs_objective(cm, macs_median), params_objective(cm)], cost_model=cm)

    straight = run_search(problem(), algorithm, gens=3, seed=5, out_dir=tmp_path / "a", progress=False,
                          plot=False)
    run_search(problem(), algorithm, gens=2, seed=5, out_dir=tmp_path / "b", progress=False, plot=False)
    resumed = run_search(problem(), algorithm, gens=3, seed=5, out_dir=tmp_path / "b", resume=True,
                         progress=False, plot=False)
    assert resumed.settings["resumed_from"] == 2 and resumed.generations == 3
    assert np.array_equal(straight.population, resumed.population)
    assert np.array_equal(straight.history.genes, resumed.history.genes)
    assert np.array_equal(straight.history.gen, resumed.history.gen)
    assert np.array_equal(straight.pareto_genes, resumed.pareto_genes)


def test_resume_refuses_other_settings_and_plain_rerun(space, cm, tmp_path):
    def problem(budget=None):
        return ArchProblem(space, [macs_objective(cm, budget), params_objective(cm)], cost_model=cm)

    run_search(problem(), gens=1, pop=10, out_dir=tmp_path, progress=False, plot=False)
    with pytest.raises(HwnasError, match="--resume"):
        run_search(problem(), gens=2, pop=10, out_dir=tmp_path, progress=False)
    with pytest.raises(HwnasError, match="seed"):
        run_search(problem(), gens=2, pop=10, seed=9, out_dir=tmp_path, resume=True, progress=False)
    with pytest.raises(HwnasError, match="objectives"):
        run_search(problem(1e9), gens=2, pop=10, out_dir=tmp_path, resume=True, progress=False)
    with pytest.raises(HwnasError, match="evaluation"):  # e.g. other eval batches for the error
        run_search(problem(), gens=2, pop=10, out_dir=tmp_path, resume=True, progress=False,
                   extra_settings={"evaluation": {"eval_batches": 2}})


def test_result_files_parse(space, cm, macs_median, tmp_path):
    r = run_search(error_macs(space, cm, macs_median), pop=20, gens=4, seed=2, out_dir=tmp_path,
                   progress=False)
    assert set(r.files) == {"pareto.csv", "pareto.json", "history.csv", "pareto.png"}
    assert (tmp_path / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / STATE_FILE).is_file()
    doc = json.loads((tmp_path / "pareto.json").read_text())
    assert doc["versions"]["hwnas"] and doc["settings"]["algorithm"] == "nsga2"
    assert doc["settings"]["pop"] == 20 and doc["settings"]["gens"] == 4
    assert doc["space"] == space.config() and doc["n_evaluated"] == len(r.history)
    assert [o["name"] for o in doc["objectives"]] == ["error", "macs"]
    assert doc["constraints"] == [{"name": "macs", "unit": "MACs", "budget": macs_median}]
    assert len(doc["pareto"]) == len(r.pareto_index) and doc["best"] == doc["pareto"][0]
    for row in doc["pareto"]:
        assert row["config"] == space.describe(row["genes"])
        c = CostModel(space)([row["genes"]])
        assert row["metrics"]["macs"] == c["macs"][0] and row["metrics"]["params"] == c["params"][0]
        assert {"error", "bitops", "flops"} <= set(row["metrics"])
    with open(tmp_path / "pareto.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r_["genes"] for r_ in rows] == [",".join(map(str, p["genes"])) for p in doc["pareto"]]
    assert {"rank", "error", "macs", "params", "bitops", "config"} <= set(rows[0])
    with open(tmp_path / "history.csv") as fh:
        hist = list(csv.DictReader(fh))
    assert len(hist) == len(r.history) and {h["generation"] for h in hist} == {"1", "2", "3", "4"}


def test_budget_below_the_cheapest_architecture_fails_before_searching(space, cm, tmp_path):
    smallest = cm([space.smallest()])["macs"][0]
    with pytest.raises(HwnasError, match="below the cheapest architecture in the space") as exc:
        run_search(error_macs(space, cm, 0.5 * smallest), out_dir=tmp_path, progress=False)
    assert "smallest()" in str(exc.value) and not (tmp_path / STATE_FILE).exists()


def test_no_feasible_architecture_found_is_a_clear_error(space, cm, tmp_path):
    from hwnas.search.objectives import Objective

    lo, hi = cm([space.smallest(), space.largest()])["macs"]
    # each budget alone is reachable, together they exclude everything
    shortfall = Objective("shortfall", "MACs", lambda X: hi - cm(X)["macs"], budget=0.1 * (hi - lo),
                          block_additive=True)
    p = ArchProblem(space, [params_objective(cm), macs_objective(cm, lo + 0.5 * (hi - lo))], [shortfall],
                    cost_model=cm)
    with pytest.raises(HwnasError, match="no evaluated architecture meets the budgets") as exc:
        run_search(p, pop=20, gens=2, out_dir=tmp_path, progress=False)
    assert "the cheapest found is genes" in str(exc.value) and (tmp_path / "history.csv").is_file()


def test_tight_budget_still_gives_a_feasible_first_population(space, cm):
    lo = cm([space.smallest()])["macs"][0]  # uniform sampling practically never gets this low
    p = error_macs(space, cm, 1.05 * lo)
    run_search(p, "random", pop=20, gens=1, progress=False)
    assert p.history.feasible.all() and len(p.history) == 20


def test_initial_population_from_the_candidate_pool(space, cm, macs_median):
    rng = np.random.default_rng(3)
    pool = space.sample_many(rng, 30)
    losses = rng.random(30)
    ckpt = {"sampler": {"pool": {"capacity": 30, "entries": [[list(map(int, g)), float(v)]
                                                            for g, v in zip(pool, losses)]}}}
    initial = initial_from_checkpoint(ckpt, space)
    assert np.array_equal(initial, pool[np.argsort(losses)])
    assert initial_from_checkpoint({"model": {}}, space) is None
    p = error_macs(space, cm, macs_median)
    run_search(p, pop=20, gens=1, initial=initial, progress=False)
    fits = initial[p.cheap_feasible(initial)][:20]  # violators are ditched, best first
    assert np.array_equal(p.history.genes[: len(fits)], fits)



def test_cli_search_with_space_and_checkpoint(space, macs_median, tmp_path, capsys):
    code, out, err = run_cli(["search", "--space", "mbv2", *TINY, "--max-macs", f"{macs_median / 1e3:.0f}K",
                              "--pop", "16", "--gens", "3", "--out", str(tmp_path / "a"), "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert all(p["metrics"]["macs"] <= macs_median + 1e3 for p in doc["pareto"])
    assert [o["name"] for o in doc["objectives"]] == ["macs", "params"]
    code, out, err = run_cli(["search", "--space", "mbv2", *TINY, "--pop", "16", "--gens", "4",
                              "--out", str(tmp_path / "a"), "--resume", "--algorithm", "nsga2"], capsys)
    assert code == 2 and "max_macs" not in err and "started with" in err  # budget differs from the stored run
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "super.pt", kind="supernet", space=space,
                           model_state=build_supernet(space).state_dict())
    code, out, err = run_cli(["search", "--checkpoint", str(ckpt), "--objectives", "macs,params",
                              "--algorithm", "evolution", "--pop", "10", "--gens", "2",
                              "--out", str(tmp_path / "b")], capsys)
    assert code == 0, err
    assert "Pareto set" in out and (tmp_path / "b" / "pareto.png").is_file()


@pytest.mark.parametrize("args, message", [
    (["--max-latency-ms", "5"], "needs --device"),
    (["--objectives", "latency,macs"], "needs --device"),
    (["--objectives", "error,macs"], "needs --checkpoint"),
    (["--max-macs", "lots"], "is not a number"),
    (["--max-macs", "1K"], "below the cheapest architecture"),
    (["--algorithm", "annealing"], "unknown search algorithm"),
])
def test_cli_errors_are_one_line(tmp_path, capsys, args, message):
    code, _, err = run_cli(["search", "--space", "mbv2", *TINY, "--out", str(tmp_path), *args], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_cli_checkpoint_of_another_space_is_refused(space, tmp_path, capsys):
    ckpt = save_checkpoint(tmp_path / "super.pt", kind="supernet", space=space,
                           model_state=build_supernet(space).state_dict())
    code, _, err = run_cli(["search", "--checkpoint", str(ckpt), "--space", "shufflenetv2",
                            "--objectives", "macs,params", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "is for space 'mbv2'" in err


@pytest.mark.slow
def test_cli_searches_the_supernet_error_on_digits(space, cm, macs_median, tmp_path, capsys):
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "super.pt", kind="supernet", space=space,
                           model_state=build_supernet(space).state_dict())
    out = tmp_path / "s"
    args = ["search", "--checkpoint", str(ckpt), "--max-macs", str(int(macs_median)), "--pop", "4",
            "--gens", "2", "--data", "digits", "--eval-batches", "1", "--calib-batches", "1",
            "--batch-size", "16", "--out", str(out), "--json"]
    code, stdout, err = run_cli(args, capsys)
    assert code == 0, err
    doc = json.loads(stdout)
    assert [o["name"] for o in doc["objectives"]] == ["error", "macs"]  # default without --device
    assert doc["settings"]["evaluation"]["eval_batches"] == 1
    for row in doc["pareto"]:
        assert 0.0 <= row["metrics"]["error"] <= 100.0 and row["metrics"]["macs"] <= macs_median
    with open(out / "history.csv") as fh:
        hist = list(csv.DictReader(fh))
    # over-budget architectures were never evaluated: they carry the 100 % penalty
    assert all(float(h["error"]) == 100.0 for h in hist if h["feasible"] == "0")


def write_table(root, space, file_space_name=None, seed=0):
    """A latency table with made-up medians for every op of ``space`` (the real file format)."""
    from hwnas.latency.keys import space_ops
    from hwnas.latency.table import LatencyTable, table_path

    rng = np.random.default_rng(seed)
    path = table_path("fake-phone", file_space_name or space.name, "tflite", root)
    t = LatencyTable.new(device="fake-phone", soc="none", runtime="tflite", runtime_version="0",
                         delegate="cpu", threads=1, warmup=1, runs=1, space=space, path=path)
    for key in space_ops(space):
        ms = float(rng.uniform(0.05, 1.0))
        t.add(key, {"count": 1, "mean_ms": ms, "median_ms": ms, "std_ms": 0.0, "min_ms": ms, "max_ms": ms},
              save=False)
    return t.save(path)


def test_cli_latency_budget_from_a_device_table(space, tmp_path, capsys):
    from hwnas.latency.predict import LatencyPredictor
    from hwnas.latency.table import LatencyTable

    path = write_table(tmp_path / "tables", space)
    predict = LatencyPredictor(LatencyTable.load(path), space)
    budget = float(np.median(predict(space.sample_many(np.random.default_rng(0), 2000))))
    code, out, err = run_cli(["search", "--space", "mbv2", *TINY, "--device", "fake-phone",
                              "--tables-dir", str(tmp_path / "tables"), "--max-latency-ms", f"{budget:.6f}",
                              "--pop", "20", "--gens", "3", "--out", str(tmp_path / "o"), "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert [o["name"] for o in doc["objectives"]] == ["latency", "macs"]  # default with --device
    for row in doc["pareto"]:
        assert row["metrics"]["latency"] == pytest.approx(predict([row["genes"]])[0])
        assert row["metrics"]["latency"] <= budget + 1e-6
    # a table of another space under this space's file name is refused by the latency loader
    other = tiny_space("shufflenetv2")
    write_table(tmp_path / "bad", other, file_space_name="mbv2")
    code, _, err = run_cli(["search", "--space", "mbv2", *TINY, "--device", "fake-phone",
                            "--tables-dir", str(tmp_path / "bad"), "--out", str(tmp_path / "p")], capsys)
    assert code == 2 and "is for space 'shufflenetv2'" in err
