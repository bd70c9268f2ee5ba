"""``hwnas rank-check``: inherited-weight vs stand-alone evaluation of sampled subnets, rank
correlations from scipy.stats, CSV / PNG / JSON outputs, and reuse of finished stand-alone runs."""

import csv
import json

import numpy as np
import pytest

from hwnas.cli import main
from hwnas.train import TrainConfig, train_supernet
from hwnas.train.rank_check import correlations



def test_correlations():
    a = np.array([0.1, 0.4, 0.2, 0.9, 0.5])
    c = correlations(a, 2 * a + 1)
    assert c == pytest.approx({"kendall": 1.0, "spearman": 1.0, "pearson": 1.0})
    c = correlations(a, -a)
    assert c["kendall"] == pytest.approx(-1.0) and c["spearman"] == pytest.approx(-1.0)
    c = correlations(a, np.array([1.0, 2.0, 3.0, 5.0, 4.0]))  # 1 discordant pair of 10: tau 0.8
    assert c["kendall"] == pytest.approx(0.8) and c["spearman"] == pytest.approx(0.9)
    assert correlations(a, np.full(5, 0.3)) == {"kendall": None, "spearman": None, "pearson": None}


@pytest.mark.slow
def test_rank_check_cli_writes_csv_plot_json_and_reuses_standalone_runs(tmp_path, capsys):
    run = tmp_path / "run"
    cfg = TrainConfig(space="mbv2", width=0.25, resolution=16, batch_size=32, lr=0.05, workers=0,
                      steps_per_epoch=2, epochs=1)
    train_supernet(cfg, run, quiet=True)
    args = ["rank-check", "--checkpoint", str(run / "last.pt"), "--n", "3", "--epochs", "1",
            "--calib-batches", "1", "-q"]
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "Kendall tau" in out and "Spearman rho" in out and "Pearson r" in out
    folder = run / "rank_check"
    rows = list(csv.DictReader(open(folder / "rank_check.csv")))
    assert len(rows) == 3 and len({r["genes"] for r in rows}) == 3
    assert all(0 <= float(r["supernet_top1"]) <= 1 and 0 <= float(r["standalone_top1"]) <= 1 for r in rows)
    assert all(len(r["genes"].split(",")) == 21 and int(r["macs"]) > 0 for r in rows)
    assert (folder / "rank_check.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((folder / "rank_check.json").read_text())
    assert summary["n"] == 3 and summary["split"] == "search-val" and summary["strategy"] == "uniform"
    for metric in ("top1", "loss"):
        for v in summary["correlations"][metric].values():
            assert v is None or -1.0 <= v <= 1.0
    # the stand-alone results are cached: a rerun with the same settings trains nothing
    standalone = (folder / "standalone.jsonl").read_text()
    assert len(standalone.splitlines()) == 3
    with pytest.raises(SystemExit):
        main(args)
    capsys.readouterr()
    assert (folder / "standalone.jsonl").read_text() == standalone
    assert list(csv.DictReader(open(folder / "rank_check.csv"))) == rows
    with pytest.raises(SystemExit) as exc:
        main(["rank-check", "--checkpoint", str(run / "last.pt"), "--n", "1"])
    assert exc.value.code == 2 and "--n must be >= 2" in capsys.readouterr().err
