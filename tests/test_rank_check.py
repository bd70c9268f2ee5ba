"""``hwnas rank-check``: inherited-weight vs stand-alone evaluation of sampled subnets, rank
correlations from scipy.stats, CSV / PNG / JSON outputs, and reuse of finished stand-alone runs."""

import csv
import json

import numpy as np
import pytest

from hwnas.cli import main
from conftest import run_cli
from hwnas.train import TrainConfig, train_supernet
from hwnas.ranking.rank_check import correlations



def test_correlations():
    a = np.array([0.1, 0.4, 0.2, 0.9, 0.5])
    c = correlations(a, 2 * a + 1)
    assert c == pytest.approx({"kendall": 1.0, "spearman": 1.0, "pearson": 1.0})
    c = correlations(a, -a)
    assert c["kendall"] == pytest.approx(-1.0) and c["spearman"] == pytest.approx(-1.0)
    c = correlations(a, np.array([1.0, 2.0, 3.0, 5.0, 4.0]))  # 1 discordant pair of 10: tau 0.8
    assert c["kendall"] == pytest.approx(0.8) and c["spearman"] == pytest.approx(0.9)
    assert correlations(a, np.full(5, 0.3)) == {"kendall": None, "spearman": None, "pearson": None}


@pytest.mark.parametrize("name", ["mbv2", "shufflenetv2"])
def test_spread_sample_covers_the_macs_range(name):
    from conftest import tiny_space
    from hwnas.cost import CostModel
    from hwnas.ranking.rank_check import spread_sample

    s = tiny_space(name)
    archs = spread_sample(s, 10, np.random.default_rng(0))
    assert len(set(archs)) == 10
    macs = CostModel(s)(np.array(archs))["macs"]
    lo, hi = CostModel(s)(np.array([s.smallest(), s.largest()]))["macs"]
    assert list(macs) == sorted(macs)
    assert macs[0] - lo < 0.1 * (hi - lo) and hi - macs[-1] < 0.1 * (hi - lo)
    gaps = np.diff(macs)
    assert gaps.max() < 0.25 * (hi - lo)  # evenly spread, no big hole
    uniform = CostModel(s)(s.sample_many(np.random.default_rng(0), 10))["macs"]
    assert np.ptp(macs) > 1.5 * np.ptp(uniform)


@pytest.mark.slow
def test_rank_check_cli_writes_csv_plot_json_and_reuses_standalone_runs(tmp_path, capsys):
    run = tmp_path / "run"
    cfg = TrainConfig(space="mbv2", width=0.25, resolution=16, batch_size=32, lr=0.05, workers=0,
                      steps_per_epoch=2, epochs=1)
    train_supernet(cfg, run, quiet=True)
    args = ["rank-check", "--checkpoint", str(run / "last.pt"), "--n", "3", "--epochs", "1",
            "--seeds", "2", "--calib-batches", "1", "-q"]
    code, out, err = run_cli(args, capsys)  # success returns (exit 0); errors exit 2
    assert code == 0, err
    assert "Kendall tau" in out and "Spearman rho" in out and "Pearson r" in out
    assert "baseline: MACs" in out and "ceiling: seed vs seed" in out
    folder = run / "rank_check"
    rows = list(csv.DictReader(open(folder / "rank_check.csv")))
    assert len(rows) == 3 and len({r["genes"] for r in rows}) == 3
    assert all(0 <= float(r["supernet_top1"]) <= 1 and 0 <= float(r["standalone_top1"]) <= 1 for r in rows)
    assert all(len(r["genes"].split(",")) == 21 and int(r["macs"]) > 0 for r in rows)
    for r in rows:  # two stand-alone seeds per subnet, their mean is the ground truth
        seeds = [float(r["standalone_top1_seed0"]), float(r["standalone_top1_seed1"])]
        assert float(r["standalone_top1"]) == pytest.approx(sum(seeds) / 2)
    assert (folder / "rank_check.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((folder / "rank_check.json").read_text())
    assert summary["n"] == 3 and summary["split"] == "search-val" and summary["strategy"] == "uniform"
    for metric in ("top1", "loss"):
        for v in summary["correlations"][metric].values():
            assert v is None or -1.0 <= v <= 1.0
    assert summary["seeds"] == 2 and set(summary["baselines"]) == {"macs", "seed_to_seed"}
    from hwnas.ranking.rank_check import correlations as corr

    top1 = lambda k: np.array([float(r[k]) for r in rows])  # noqa: E731
    assert summary["baselines"]["seed_to_seed"] == corr(top1("standalone_top1_seed0"),
                                                        top1("standalone_top1_seed1"))
    # the stand-alone results are cached: a rerun with the same settings trains nothing
    standalone = (folder / "standalone.jsonl").read_text()
    assert len(standalone.splitlines()) == 6
    assert run_cli(args, capsys)[0] == 0
    assert (folder / "standalone.jsonl").read_text() == standalone
    assert list(csv.DictReader(open(folder / "rank_check.csv"))) == rows
    with pytest.raises(SystemExit) as exc:
        main(["rank-check", "--checkpoint", str(run / "last.pt"), "--n", "1"])
    assert exc.value.code == 2 and "--n must be >= 2" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["rank-check", "--checkpoint", str(run / "last.pt"), "--sample", "random"])
    assert exc.value.code == 2 and "--sample must be one of uniform, spread" in capsys.readouterr().err
