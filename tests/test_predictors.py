"""Latency predictors: registry, JSON round trip, learning a non-additive latency, CSV input,
errors, the ``hwnas lut fit / validate`` commands, and search with a non-additive predictor."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli, tiny_space
from hwnas.errors import HwnasError
from hwnas.latency.keys import space_ops
from hwnas.latency.predictors import (
    BUILTIN,
    LatencyPredictor,
    PredictorContext,
    StoredPredictor,
    create_predictor,
    load_predictor,
    predictor_names,
    predictor_path,
)
from hwnas.latency.predictors.base import predictor_document
from hwnas.latency.predictors.features import OP_FEATURES, SubnetFeatures, op_features
from hwnas.latency.predictors.fitting import (
    Measurements,
    fit_in_memory,
    fit_predictors,
    learning_curve,
    read_csv,
    roundtrip,
    score,
    spread_genes,
    write_csv,
)
from hwnas.latency.table import LatencyTable, table_path
from hwnas.spaces.base import SearchSpace

TINY = ["--width", "0.25", "--resolution", "32", "--num-classes", "10"]
DEVICE = "fake-phone"


def make_table(root, space, seed=0) -> LatencyTable:
    rng = np.random.default_rng(seed)
    t = LatencyTable.new(device=DEVICE, soc="none", runtime="tflite", runtime_version="0", delegate="cpu",
                         threads=1, warmup=1, runs=1, space=space, path=table_path(DEVICE, space.name, "tflite", root))
    for key in space_ops(space):
        v = float(rng.uniform(0.01, 1.0))
        t.add(key, {"count": 1, "mean_ms": v, "median_ms": v, "std_ms": 0.0, "min_ms": v, "max_ms": v}, save=False)
    t.save()
    return t


def non_additive(ctx: PredictorContext, genes, seed=0) -> np.ndarray:
    """SYNTHETIC latency: the table sum times a cache factor that grows with the subnet's total
    activation traffic (x0.5 .. x1.5: a subnet whose activations exceed the cache is slower per
    op), plus 1 % noise. No sum of per-block terms reproduces it."""
    m = np.asarray(genes)
    raw = ctx.table_sum().raw(m)
    ref = ctx.features().totals(ctx.space.sample_many(np.random.default_rng(99), 300))[:, 2]
    act = ctx.features().totals(m)[:, 2]
    noise = np.random.default_rng(seed).normal(1.0, 0.01, len(m))
    return raw * (1.0 + 0.5 * np.tanh((act - np.median(ref)) / ref.std())) * noise


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("tables")
    space = tiny_space("mbv2")
    table = make_table(root, space)
    ctx = PredictorContext(space, DEVICE, "tflite", "fp32", table)
    X = space.sample_many(np.random.default_rng(0), 160)
    y = non_additive(ctx, X)
    return root, space, ctx, X, y


def test_registry_lists_every_builtin_in_order():
    assert predictor_names()[:len(BUILTIN)] == list(BUILTIN)
    for name in BUILTIN:
        p = create_predictor(name)
        assert isinstance(p, LatencyPredictor) and p.name == name
    additive = {n for n in BUILTIN if create_predictor(n).block_additive}
    assert additive == {"table-sum", "physical"}
    with pytest.raises(HwnasError, match="unknown latency predictor 'nope'; allowed: table-sum"):
        create_predictor("nope")


@pytest.mark.parametrize("name", ["mbv2", "shufflenetv2", "resnet48", "ofa-mbv3"])
def test_features_equal_the_sum_over_layers(name):
    space = tiny_space(name)
    feats = SubnetFeatures(space)
    m = space.sample_many(np.random.default_rng(1), 6)
    got = feats(m)
    for row, g in zip(got, m):
        layers = space.layers(g)
        assert np.allclose(row[-len(OP_FEATURES):], sum(op_features(op) for op in layers))
        assert row[-1] == len(layers)  # op count
        # per-stage columns add up to the totals
        per_stage = row[:-len(OP_FEATURES)].reshape(-1, len(OP_FEATURES)).sum(axis=0)
        assert np.allclose(per_stage, row[-len(OP_FEATURES):])
        if any(op.op in ("mbconv", "mbconv3", "shuffle") for op in layers):
            assert row[-len(OP_FEATURES) + 1] > 0  # depthwise MACs counted


def test_every_predictor_round_trips_through_json_with_identical_predictions(setup):
    root, space, ctx, X, y = setup
    small = {"n_estimators": 10}  # few trees / iterations: the file format, not the fit, is tested
    fitted = {}
    for name in predictor_names():
        kind = getattr(create_predictor(name), "model_kind", None)
        p = create_predictor(name, **(small if kind == "gbdt" else {"max_iter": 50} if kind == "mlp" else {}))
        p.fit(X[:12], y[:12], ctx)
        fitted[name] = StoredPredictor(p, predictor_document(p, ctx, X[:12], y[:12], "test"))
    probe = space.sample_many(np.random.default_rng(5), 50)
    for name, sp in fitted.items():
        back = roundtrip(sp, PredictorContext(space, DEVICE, "tflite", "fp32", ctx.table))
        assert back.name == name
        np.testing.assert_array_equal(back(probe), sp(probe))
        assert np.all(np.isfinite(sp(probe))) and np.all(sp(probe) > 0)
        doc = sp.doc
        assert doc["device"] == DEVICE and doc["space"] == space.config() and doc["runtime"] == "tflite"
        assert doc["fitted_on"]["n"] == 12 and doc["fitted_on"]["genes"][0] == list(X[0])
        assert "sklearn" in doc["versions"] and doc["block_additive"] == sp.block_additive
        assert "pickle" not in json.dumps(doc)


def test_best_learned_predictor_beats_the_table_sum_on_a_non_additive_latency(setup):
    root, space, ctx, X, y = setup
    fit = Measurements([tuple(g) for g in X[:100]], y[:100], "synthetic")
    fitted = fit_in_memory(["table-sum", "gbdt-features", "hybrid"], fit, ctx)
    s = {n: score(p(X[100:]), y[100:]) for n, p in fitted.items()}
    best = max(s[n]["within_10"] for n in ("gbdt-features", "hybrid"))
    assert s["table-sum"]["within_10"] < 0.5  # the calibrated sum cannot follow the cache factor
    assert best >= s["table-sum"]["within_10"] + 0.3
    assert s["hybrid"]["kendall_tau"] > s["table-sum"]["kendall_tau"]


def test_physical_model_recovers_non_negative_costs(setup):
    root, space, ctx, X, y = setup
    coef = np.array([2e-6, 5e-6, 1e-5, 0.0, 0.01])  # ms per dense MAC, dw MAC, act byte, weight byte, op
    truth = ctx.features().totals(X) @ coef + 0.3
    p = create_predictor("physical")
    p.fit(X[:40], truth[:40], ctx)
    assert np.all(p.coef >= 0)
    np.testing.assert_allclose(p.predict(X[40:]), truth[40:], rtol=1e-6)


def test_score_figures():
    s = score(np.array([1.0, 2.08, 3.5, 4.0]), np.array([1.0, 2.0, 3.0, 4.0]))
    assert s["n"] == 4 and s["within_5"] == 0.75 and s["within_10"] == 0.75
    assert s["mape"] == pytest.approx((0.04 + 0.5 / 3) / 4) and s["kendall_tau"] == 1.0


def test_spread_genes_cover_the_predicted_range(setup):
    root, space, ctx, X, y = setup
    ts = ctx.table_sum()
    genes = spread_genes(space, 10, ts.raw, seed=3)
    pred = np.sort(ts.raw(np.asarray(genes)))
    lo, hi = ts.raw(np.asarray([space.smallest()]))[0], ts.raw(np.asarray([space.largest()]))[0]
    assert len(set(genes)) == 10 and pred[0] <= lo * 1.01 and pred[-1] - pred[0] >= 0.9 * (hi - lo)
    assert np.max(np.diff(pred)) < 0.3 * (hi - lo)  # no big gap: spread over the range


def test_learning_curve_points(setup):
    root, space, ctx, X, y = setup
    m = Measurements([tuple(g) for g in X], y, "synthetic")
    pts = learning_curve(["table-sum", "physical"], m, ctx, sizes=(10, 20), test=40, repeats=1)
    assert [(p.predictor, p.n_fit) for p in pts] == [("table-sum", 10), ("physical", 10),
                                                    ("table-sum", 20), ("physical", 20)]
    assert all(p.scores["n"] == 40 for p in pts)
    with pytest.raises(HwnasError, match="the learning curve needs 240"):
        learning_curve(["physical"], m, ctx, sizes=(200,), test=40)


# ---- files and errors ----------------------------------------------------------------------------
def test_stored_predictor_of_another_space_or_device_is_refused(setup, tmp_path):
    root, space, ctx, X, y = setup
    fitted = fit_predictors(["physical"], Measurements([tuple(g) for g in X[:20]], y[:20], "t"), ctx, tmp_path)
    path = fitted["physical"].path
    assert path == predictor_path(DEVICE, space, "tflite", "physical", tmp_path)
    assert path.name == "mbv2-tflite.mbv2@w0.25r32.predictor.physical.json"
    back = load_predictor(path, ctx)
    np.testing.assert_array_equal(back(X), fitted["physical"](X))
    other = tiny_space("mbv2", resolution=40)
    with pytest.raises(HwnasError, match=r"was fitted on space mbv2 .*resolution=32.*, not on mbv2 .*resolution=40"):
        load_predictor(path, PredictorContext(other, DEVICE))
    with pytest.raises(HwnasError, match="was fitted on device 'fake-phone', not on 'pixel'"):
        load_predictor(path, PredictorContext(space, "pixel"))


def test_too_few_measurements_say_how_many_are_needed(setup):
    root, space, ctx, X, y = setup
    m = Measurements([tuple(g) for g in X[:7]], y[:7], "t")
    with pytest.raises(HwnasError, match="7 measured subnets are too few to fit gbdt-genes, mlp-genes: "
                                         "they need at least 10"):
        fit_in_memory(["table-sum", "gbdt-genes", "mlp-genes"], m, ctx)


def test_csv_reader(setup, tmp_path):
    root, space, ctx, X, y = setup
    m = Measurements([tuple(g) for g in X[:5]], y[:5], "t")
    path = write_csv(tmp_path / "m.csv", m)
    back = read_csv(path, space)
    assert back.genes == m.genes and np.array_equal(back.latency_ms, m.latency_ms)
    # other columns are ignored, in any order
    (tmp_path / "x.csv").write_text("device,latency_ms,genes,notes\npixel,1.5,"
                                    + "-".join(map(str, X[0])) + ",warm\n")
    assert read_csv(tmp_path / "x.csv", space).latency_ms.tolist() == [1.5]


@pytest.mark.parametrize("text, match", [
    ("arch,ms\n1-2,3\n", r"lacks the column\(s\) genes, latency_ms \(has: arch, ms\)"),
    ("genes\n1-2\n", r"lacks the column\(s\) latency_ms"),
    ("genes,latency_ms\n", "has no data rows"),
    ("genes,latency_ms\nGOOD,1.0\n0-1-2,2.0\n", r"row 3: space 'mbv2' takes 21 genes, got 3"),
    ("genes,latency_ms\nBAD7,1.0\n", r"row 2: gene 1 \(.*\) of space 'mbv2' is 7; allowed range is 0..6"),
    ("genes,latency_ms\n1-x,1.0\n", r"row 2: genes '1-x' are not integers joined by '-'"),
    ("genes,latency_ms\nGOOD,fast\n", r"row 2: latency_ms 'fast' is not a number"),
    ("genes,latency_ms\nGOOD,-1\n", r"row 2: latency_ms '-1' must be a finite number > 0"),
])
def test_bad_csv_is_one_line_error_naming_the_row(tmp_path, text, match):
    space = tiny_space("mbv2")
    good = "-".join(map(str, space.smallest()))
    bad = "-".join(["0", "7"] + ["0"] * (space.num_genes - 2))
    path = tmp_path / "bad.csv"
    path.write_text(text.replace("GOOD", good).replace("BAD7", bad))
    with pytest.raises(HwnasError, match=match) as exc:
        read_csv(path, space)
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)


# ---- search --------------------------------------------------------------------------------------
def _search(tmp_path, capsys, root, predictor, budget, monkeypatch):
    calls = []
    original = SearchSpace.minimize_additive

    def spy(self, fn):
        calls.append(1)
        return original(self, fn)

    monkeypatch.setattr(SearchSpace, "minimize_additive", spy)
    code, out, err = run_cli(["search", "--space", "mbv2", *TINY, "--device", DEVICE, "--tables-dir", str(root),
                              "--predictor", predictor, "--objectives", "latency,macs",
                              "--max-latency-ms", f"{budget:.6f}", "--pop", "8", "--gens", "2",
                              "--out", str(tmp_path / predictor), "--json"], capsys)
    return code, out, err, len(calls)


def test_search_with_a_non_additive_predictor_skips_the_additive_shortcut(setup, tmp_path, capsys, monkeypatch):
    root, space, ctx, X, y = setup
    m = Measurements([tuple(g) for g in X[:30]], y[:30], "t")
    fitted = fit_predictors(["table-sum", "gbdt-features"], m, ctx, root)
    gb = fitted["gbdt-features"]
    budget = float(np.median(gb(X)))
    code, out, err, calls = _search(tmp_path, capsys, root, "gbdt-features", budget, monkeypatch)
    assert code == 0, err
    assert calls == 0  # no exact-minimum shortcut on a learned model
    doc = json.loads(out)
    assert doc["settings"]["predictor"] == "gbdt-features"
    for row in doc["pareto"]:
        assert row["metrics"]["latency"] == pytest.approx(gb([row["genes"]])[0])
        assert row["metrics"]["latency"] <= budget + 1e-9
    code, out, err, calls = _search(tmp_path, capsys, root, "table-sum", budget, monkeypatch)
    assert code == 0, err
    assert calls >= 1  # block-additive: the exact minimum is used


def test_search_with_a_predictor_that_was_not_fitted(setup, tmp_path, capsys):
    root, space, ctx, X, y = setup
    code, out, err = run_cli(["search", "--space", "mbv2", *TINY, "--device", DEVICE, "--tables-dir", str(root),
                              "--predictor", "mlp-genes", "--objectives", "latency,macs", "--out",
                              str(tmp_path / "o")], capsys)
    assert code == 2 and "mlp-genes.json does not exist (fit it with `hwnas lut fit" in err
    assert len(err.strip().splitlines()) == 1


# ---- CLI -----------------------------------------------------------------------------------------
def _csv(path, ctx, X, seed=0):
    return write_csv(path, Measurements([tuple(g) for g in X], non_additive(ctx, X, seed), "t"))


def test_cli_fit_and_validate_from_csv_round_trip(setup, tmp_path, capsys):
    root, space, ctx, X, y = setup
    tables = tmp_path / "tables"
    make_table(tables, space)
    fit_csv = _csv(tmp_path / "fit.csv", ctx, X[:60])
    # the held-out file also holds rows of the fit file: those are left out of the scores
    test_csv = _csv(tmp_path / "test.csv", ctx, X[50:110])
    code, out, err = run_cli(["lut", "fit", "--device", DEVICE, "--space", "mbv2", *TINY, "--tables-dir", str(tables),
                              "--from-csv", str(fit_csv), "--predictors", "table-sum,physical,hybrid",
                              "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert list(doc["predictors"]) == ["table-sum", "physical", "hybrid"]
    for name, row in doc["predictors"].items():
        assert row["n"] == 60 and json.loads(open(row["path"]).read())["fitted_on"]["source"] == "csv:fit.csv"
    code, out, err = run_cli(["lut", "validate", "--device", DEVICE, "--space", "mbv2", *TINY,
                              "--tables-dir", str(tables), "--from-csv", str(test_csv), "--json"], capsys)
    assert code == 0, err
    scores = json.loads(out)
    assert set(scores) == {"table-sum", "physical", "hybrid"}
    for s in scores.values():
        assert s["n"] == 50 and {"mape", "within_5", "within_10", "kendall_tau", "spearman"} <= set(s)
    assert scores["hybrid"]["within_10"] > scores["table-sum"]["within_10"] + 0.3
    plot = tables / DEVICE / "mbv2-tflite.mbv2@w0.25r32.predictors.validation.png"
    assert plot.stat().st_size > 1000 and plot.with_suffix(".json").exists()
    # rich table
    code, out, err = run_cli(["lut", "validate", "--device", DEVICE, "--space", "mbv2", *TINY,
                              "--tables-dir", str(tables), "--from-csv", str(test_csv)], capsys)
    assert code == 0 and "hybrid" in out and "Kendall" in out and "50 held-out" in out


def test_cli_fit_from_csv_for_a_device_without_profile_or_table(setup, tmp_path, capsys):
    root, space, ctx, X, y = setup
    fit_csv = _csv(tmp_path / "fit.csv", ctx, X[:10])
    code, out, err = run_cli(["lut", "fit", "--device", "lab-board-7", "--space", "mbv2", *TINY,
                              "--tables-dir", str(tmp_path / "t"), "--from-csv", str(fit_csv),
                              "--predictors", "physical,mlp-features"], capsys)
    assert code == 0, err
    assert (tmp_path / "t" / "lab-board-7" / "mbv2-tflite.mbv2@w0.25r32.predictor.physical.json").exists()
    assert "physical" in out and "mlp-features" in out and "files:" in out
    # every predictor by default: the ones needing a table are skipped, and it says so
    code, out, err = run_cli(["lut", "fit", "--device", "lab-board-7", "--space", "mbv2", *TINY,
                              "--tables-dir", str(tmp_path / "t"), "--from-csv", str(fit_csv)], capsys)
    assert code == 0, err
    assert "table-sum skipped: no latency table" in err and "hybrid skipped" in err
    code, out, err = run_cli(["lut", "fit", "--device", "lab-board-7", "--space", "mbv2", *TINY,
                              "--tables-dir", str(tmp_path / "t"), "--from-csv", str(fit_csv),
                              "--predictors", "hybrid"], capsys)
    assert code == 2 and "hybrid: no latency table for this device" in err


@pytest.mark.parametrize("case", ["columns", "range", "few", "neither", "both", "space", "device", "name"])
def test_cli_errors_are_one_line_exit_2(setup, tmp_path, capsys, case):
    root, space, ctx, X, y = setup
    tables = tmp_path / "tables"
    base = ["--space", "mbv2", *TINY, "--tables-dir", str(tables)]
    good = _csv(tmp_path / "fit.csv", ctx, X[:20])
    bad = tmp_path / "bad.csv"
    if case in ("space", "device"):
        assert run_cli(["lut", "fit", "--device", "lab-1", *base, "--from-csv", str(good),
                        "--predictors", "physical"], capsys)[0] == 0
    if case == "columns":
        bad.write_text("arch,ms\n0-0,1\n")
        args, want = ["lut", "fit", "--device", "lab-1", *base, "--from-csv", str(bad)], "lacks the column(s) genes, latency_ms"
    elif case == "range":
        bad.write_text("genes,latency_ms\n" + "-".join(["9"] * space.num_genes) + ",1.0\n")
        args, want = ["lut", "fit", "--device", "lab-1", *base, "--from-csv", str(bad)], "row 2: gene 0"
    elif case == "few":
        args = ["lut", "fit", "--device", "lab-1", *base, "--from-csv", str(_csv(tmp_path / "f.csv", ctx, X[:6]))]
        want = "6 measured subnets are too few to fit"
    elif case == "neither":
        args, want = ["lut", "fit", "--device", "lab-1", *base], "give exactly one of --n N"
    elif case == "both":
        args, want = ["lut", "fit", "--device", "lab-1", *base, "--n", "20", "--from-csv", str(good)], "give exactly one of"
    elif case == "space":  # same file name (width and resolution), another number of classes
        args = ["lut", "validate", "--device", "lab-1", "--space", "mbv2", "--width", "0.25", "--resolution", "32",
                "--num-classes", "20", "--tables-dir", str(tables), "--from-csv", str(good)]
        want = "was fitted on space mbv2"
    elif case == "device":
        (tables / "lab-2").mkdir()
        src = tables / "lab-1" / "mbv2-tflite.mbv2@w0.25r32.predictor.physical.json"
        (tables / "lab-2" / src.name).write_text(src.read_text())
        args, want = ["lut", "validate", "--device", "lab-2", *base, "--from-csv", str(good)], "was fitted on device 'lab-1', not on 'lab-2'"
    else:
        args, want = ["lut", "fit", "--device", "../x", *base, "--from-csv", str(good)], "is not a device name"
    code, out, err = run_cli(args, capsys)
    assert code == 2, (out, err)
    assert want in err and len(err.strip().splitlines()) == 1, err
    assert not (tables / "lab-1").exists() or case in ("space", "device")  # nothing written on refusal


def test_cli_fit_n_checks_before_measuring(tmp_path, capsys):
    code, out, err = run_cli(["lut", "fit", "--device", "host", "--space", "mbv2", *TINY, "--tables-dir",
                              str(tmp_path), "--n", "5"], capsys)
    assert code == 2 and "5 measured subnets are too few to fit" in err and "at least 10" in err
    assert not any(tmp_path.iterdir())


def test_search_predictor_without_a_latency_objective_is_refused(tmp_path, capsys):
    code, out, err = run_cli(["search", "--space", "mbv2", *TINY, "--device", DEVICE, "--predictor", "hybrid",
                              "--objectives", "macs,params", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "--predictor hybrid predicts latency, which this search neither minimises" in err
    assert not (tmp_path / "o").exists()



def test_cli_fit_n_and_validate_measure_on_the_device(setup, tmp_path, capsys, monkeypatch):
    """--n: the subnets to measure are spread over the table's range, measured through the
    end-to-end path (replaced here by the synthetic latency), fitted and stored; validate measures
    held-out subnets none of the predictors was fitted on."""
    import hwnas.latency.predictor_commands as pc

    root, space, ctx, X, y = setup
    tables = tmp_path / "tables"
    make_table(tables, space)
    asked = []

    def measure(profile, sp, c, genes, threads, canary, root_):
        assert profile.name == "host" and c.table is not None and root_ == tables
        asked.append(list(genes))
        return non_additive(ctx, np.asarray(genes))

    monkeypatch.setattr(pc, "_measure", measure)
    args = ["--device", "host", "--space", "mbv2", *TINY, "--tables-dir", str(tables)]
    # the host table of this test is the fake one: copy it under the host's name
    (tables / "host").mkdir()
    (tables / "host" / "mbv2-tflite.json").write_text((tables / DEVICE / "mbv2-tflite.json").read_text()
                                                      .replace(f'"device": "{DEVICE}"', '"device": "host"'))
    code, out, err = run_cli(["lut", "fit", *args, "--n", "30", "--predictors", "table-sum,hybrid", "--json"], capsys)
    assert code == 0, err
    fit = asked[0]
    assert len(fit) == len({tuple(g) for g in fit}) == 30
    raw = ctx.table_sum().raw(np.asarray(fit))
    lo, hi = ctx.table_sum().raw(np.asarray([space.smallest(), space.largest()]))
    assert raw.min() <= lo * 1.05 and raw.max() - raw.min() >= 0.9 * (hi - lo)  # spread over the range
    assert json.loads(out)["source"] == "device:host"
    code, out, err = run_cli(["lut", "validate", *args, "--n", "20", "--json"], capsys)
    assert code == 0, err
    held = asked[1]
    assert len(held) == 20 and not {tuple(g) for g in held} & {tuple(g) for g in fit}
    scores = json.loads(out)
    assert set(scores) == {"table-sum", "hybrid"} and scores["hybrid"]["n"] == 20


def test_cli_round_trip_on_measured_host_latencies(tmp_path, capsys, monkeypatch):
    """Real measurements (the host's end-to-end store shipped with its LiteRT table) written to CSV,
    every predictor fitted through `lut fit --from-csv`, scored through `lut validate --from-csv
    --json` on a held-out CSV: the command's figures are those of the same predictors fitted and
    scored in memory (the files lose nothing), and on these additive host latencies the calibrated
    table sum and the hybrid keep >= 90 % of held-out subnets within +-10 %."""
    from hwnas.latency.predictors.fitting import context_for, e2e_store_path, store_measurements
    from hwnas.spaces import create_space

    monkeypatch.setenv("HWNAS_TABLES_DIR", str(tmp_path / "tables"))  # yours: empty; the shipped table is read
    # shufflenetv2's: 132 subnets measured on a quiet machine (mbv2's layout-2 store has 62, measured
    # on a loaded one: docs/latency.md)
    space = create_space("shufflenetv2", width=0.35, resolution=32, num_classes=10)
    m = store_measurements(e2e_store_path("host", space, "tflite", existing=True), "shipped")
    assert len(m) >= 100
    fit, held = m.subset(range(60)), m.subset(range(60, len(m)))
    write_csv(tmp_path / "fit.csv", fit)
    write_csv(tmp_path / "held.csv", held)
    args = ["--device", "host", "--space", "shufflenetv2", "--width", "0.35", "--resolution", "32", "--num-classes", "10"]
    code, out, err = run_cli(["lut", "fit", *args, "--from-csv", str(tmp_path / "fit.csv"), "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert list(doc["predictors"]) == predictor_names() and doc["skipped"] == {} and doc["source"] == "csv:fit.csv"
    code, out, err = run_cli(["lut", "validate", *args, "--from-csv", str(tmp_path / "held.csv"), "--json"], capsys)
    assert code == 0, err
    scores = json.loads(out)
    ctx = context_for("host", space, "tflite")
    assert ctx.table is not None and ctx.table.path.parent.parent != tmp_path / "tables"  # the shipped table
    assert len(list((tmp_path / "tables" / "host").glob("shufflenetv2-tflite.shufflenetv2@w0.35r32.predictor.*.json"))) == 7
    again = fit_in_memory(predictor_names(), fit, ctx)
    for name in predictor_names():
        s = scores[name]
        assert s["n"] == len(held) and s["fitted_on"] == 60
        assert set(s) >= {"n", "mape", "within_5", "within_10", "kendall_tau", "spearman"}
        want = score(again[name](np.asarray(held.genes)), held.latency_ms)
        assert s["mape"] == pytest.approx(want["mape"], rel=1e-9) and s["within_10"] == want["within_10"], name
        assert s["kendall_tau"] == pytest.approx(want["kendall_tau"], rel=1e-9)
    assert scores["table-sum"]["within_10"] >= 0.9 and scores["hybrid"]["within_10"] >= 0.9
    assert scores["table-sum"]["mape"] < scores["physical"]["mape"]


def test_curve_bench_reads_a_store_by_its_name():
    """tools/bench/predictor_curves.py: space, width, resolution, runtime and the table come from
    the end-to-end store's name and folder (num_classes from the table); figures as JSON."""
    import subprocess
    import sys
    from pathlib import Path

    from hwnas.latency.table import default_table_dir

    root = Path(__file__).resolve().parents[1]
    store = default_table_dir() / "host" / "shufflenetv2-tflite.shufflenetv2@w0.35r32.e2e.json"
    proc = subprocess.run([sys.executable, str(root / "tools" / "bench" / "predictor_curves.py"), "--measurements",
                           str(store), "--sizes", "10", "--repeats", "1", "--json"], capture_output=True, text=True,
                          timeout=300, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    (c,) = json.loads(proc.stdout)
    assert (c["space"], c["width"], c["resolution"], c["runtime"]) == ("shufflenetv2", 0.35, 32, "tflite")
    assert c["measurements"] >= 100 and c["held_out"] == 32 and c["skipped"] == {}
    got = {p["predictor"]: p for p in c["points"]}
    assert set(got) == set(predictor_names()) and all(p["n_fit"] == 10 for p in got.values())
    assert got["table-sum"]["within_10"] >= 0.9 and c["sizes_left_out"] == []
    proc = subprocess.run([sys.executable, str(root / "tools" / "bench" / "predictor_curves.py"), "--measurements",
                           str(store), "--sizes", "10,1000", "--repeats", "1"], capture_output=True, text=True,
                          timeout=300, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "n=1000: left out" in proc.stdout and "table sum weakest at n=10" in proc.stdout
    proc = subprocess.run([sys.executable, str(root / "tools" / "bench" / "predictor_curves.py"), "--measurements",
                           str(store.with_name("odd.e2e.json"))], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "not an end-to-end store name" in proc.stderr


def test_curve_bench_store_names():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "predictor_curves", Path(__file__).resolve().parents[1] / "tools" / "bench" / "predictor_curves.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    s = bench.parse_store_name(Path("t/lab/ofa-mbv3-tflite-int8.ofa-mbv3@w1.2r224.e2e.json"))
    assert (s["device"], s["space"], s["width"], s["resolution"], s["runtime"], s["precision"]) == \
        ("lab", "ofa-mbv3", 1.2, 224, "tflite", "int8")
    s = bench.parse_store_name(Path("t/host/fbnet-onnx.fbnet@w1r32-cifar.e2e.json"))
    assert (s["tag"], s["space"], s["runtime"], s["precision"]) == ("fbnet@w1r32-cifar", "fbnet", "onnx", None)
    with pytest.raises(HwnasError, match="not an end-to-end store name"):
        bench.parse_store_name(Path("t/host/mbv2-tflite.json"))
