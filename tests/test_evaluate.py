"""Subnet evaluation with inherited weights: BN recalibration on a copy (the supernet is never
modified), top-1 / top-5 / loss, the cached batched evaluator for search, and ``hwnas eval``."""

import json

import numpy as np
import pytest
import torch

from hwnas.cli import main
from hwnas.data import load_data, take_batches
from hwnas.models import supernet_from_checkpoint
from hwnas.supernet import materialize, recalibrate_bn
from hwnas.train import (EvalResult, SubnetEvaluator, TrainConfig, evaluate_many, evaluate_subnet,
                         train_supernet)
from hwnas.train.evaluate import evaluate_model



@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "run"
    cfg = TrainConfig(space="mbv2", width=0.25, resolution=16, batch_size=32, lr=0.05, workers=0,
                      steps_per_epoch=4, epochs=1)
    train_supernet(cfg, out, quiet=True)
    net, ckpt = supernet_from_checkpoint(out / "last.pt")
    data = load_data("digits", resolution=16)
    ev = take_batches(data.search_val, 32, max_batches=2)
    cal = take_batches(data.train_clean, 32, max_batches=2, seed=0)
    return out, net, ev, cal


def _state(net):
    return {k: v.clone() for k, v in net.state_dict().items()}


def test_evaluate_subnet_matches_a_manual_evaluation(run):
    _, net, ev, cal = run
    g = net.space.sample(np.random.default_rng(0))
    res = evaluate_subnet(net, g, ev, cal)
    sub = materialize(net, g)
    recalibrate_bn(sub, cal)
    x = torch.cat([b[0] for b in ev])
    y = torch.cat([b[1] for b in ev])
    with torch.no_grad():
        logits = sub.eval()(x)
    assert res.n == 64
    assert res.top1 == pytest.approx((logits.argmax(1) == y).float().mean().item())
    assert res.top5 == pytest.approx((logits.topk(5, 1).indices == y[:, None]).any(1).float().mean().item())
    assert res.loss == pytest.approx(torch.nn.functional.cross_entropy(logits, y).item(), rel=1e-5)
    assert 0 <= res.top1 <= res.top5 <= 1


def test_evaluation_never_modifies_the_supernet(run):
    _, net, ev, cal = run
    net.eval()
    before = _state(net)
    for g in net.space.sample_many(np.random.default_rng(1), 2):
        evaluate_subnet(net, g, ev, cal)
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN buffers
    assert not net.training
    net.train()
    evaluate_subnet(net, net.space.smallest(), ev, cal)
    after = net.state_dict()
    assert net.training and all(torch.equal(before[k], after[k]) for k in before)
    net.eval()


def test_bn_recalibration_is_applied(run):
    _, net, ev, cal = run
    g = net.space.sample(np.random.default_rng(5))
    with_cal = evaluate_subnet(net, g, ev, cal)
    without = evaluate_subnet(net, g, ev, None)
    shared_stats = evaluate_model(materialize(net, g).eval(), ev)
    assert without == shared_stats  # no calibration: the supernet's mixed running statistics
    assert with_cal.loss != without.loss


def test_subnet_evaluator_caches_per_genes(run):
    _, net, ev, cal = run
    evaluator = SubnetEvaluator(net, ev, cal, device="cpu")
    archs = [tuple(int(v) for v in g) for g in net.space.sample_many(np.random.default_rng(2), 3)]
    first = evaluator.many(archs + [archs[0]])
    assert evaluator.evaluations == 3 and first[0] is first[3]
    again = evaluator(list(archs[1]))  # any sequence type hits the cache
    assert again is first[1] and evaluator.evaluations == 3
    assert evaluate_many(net, archs, ev, cal) == first[:3]
    assert first[2] == evaluate_subnet(net, archs[2], ev, cal)
    assert isinstance(first[0], EvalResult) and set(first[0].to_dict()) == {"top1", "top5", "loss", "n"}
    from hwnas.errors import HwnasError
    with pytest.raises(HwnasError, match="takes 21 genes"):
        evaluator((1, 2, 3))


def test_evaluator_from_checkpoint(run):
    out, net, _, _ = run
    ev = SubnetEvaluator.from_checkpoint(out / "last.pt", split="test", batch_size=100, calib_batches=1)
    assert sum(b[1].numel() for b in ev.eval_batches) == 270 and len(ev.calib_batches) == 1
    r = ev(net.space.smallest())
    assert r.n == 270


def test_cli_eval(run, capsys):
    out, net, _, _ = run
    genes = ",".join(map(str, net.space.smallest()))
    try:
        main(["eval", "--checkpoint", str(out / "last.pt"), "-g", genes, "--split", "search-val",
              "--calib-batches", "1", "--json"])
    except SystemExit as exc:
        assert exc.code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["split"] == "search-val" and data["n"] == 270 and 0 <= data["top1"] <= 1
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--checkpoint", str(out / "last.pt"), "-g", "1,2", "--split", "test"])
    assert exc.value.code == 2 and "takes 21 genes, got 2" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--checkpoint", str(out / "last.pt"), "-g", genes, "--split", "val"])
    assert exc.value.code == 2 and "unknown split 'val'; allowed: train, train-clean, search-val, test" \
        in capsys.readouterr().err
