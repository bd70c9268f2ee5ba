"""PGONAS (``--strategy pgonas``): balanced sandwich rule, in-place distillation, prior-guided rank
loss with the Table 3 schedules, Zen-score against a written-out computation, exact resume."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import run_cli
from hwnas.checkpoint import load_checkpoint
from hwnas.errors import HwnasError
from hwnas.spaces import create_space
from hwnas.train import TrainConfig, train_supernet
from hwnas.train.strategies.pgonas import (ZenPrior, balanced_pick, lam_schedule, pairwise_rank_loss,
                                           prior_function)
from hwnas.train.strategies.zen import zen_score

TINY = dict(space="mbv2", width=0.25, resolution=16, data="digits", batch_size=16, lr=0.05, workers=0,
            steps_per_epoch=2, epochs=2, log_every=1, strategy="pgonas")
OPTS = {"prior": "zen", "rank_warmup_epochs": 1, "random_paths": 1, "pairs": 1, "zen_batch": 4}
ARGS = ["--space", "mbv2", "--width", "0.25", "--resolution", "16", "--batch-size", "16", "--lr", "0.05",
        "--workers", "0", "--steps-per-epoch", "2", "--log-every", "1", "-q", "--strategy", "pgonas"]


def test_zen_score_matches_the_zen_nas_formula_written_out():
    torch.manual_seed(123)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU())
    before = torch.get_rng_state()
    got = zen_score(net, (3, 8, 8), batch=5, seed=7)
    assert torch.equal(torch.get_rng_state(), before)  # the global RNG is left alone

    # the same draws, in the order Zen-NAS Alg. 1 makes them: weights ~ N(0,1), x, eps ~ N(0,1)
    gen = torch.Generator().manual_seed(7)
    w1 = torch.randn((4, 3, 3, 3), generator=gen)
    w2 = torch.randn((6, 4, 3, 3), generator=gen)
    x = torch.randn((5, 3, 8, 8), generator=gen)
    eps = torch.randn((5, 3, 8, 8), generator=gen)

    def bn(h):  # training-mode BatchNorm with weight 1, bias 0
        mean = h.mean(dim=(0, 2, 3), keepdim=True)
        var = h.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
        return (h - mean) / torch.sqrt(var + 1e-5), var.flatten()

    def f(inp):
        h1 = F.conv2d(inp, w1, padding=1)
        a1, v1 = bn(h1)
        h2 = F.conv2d(F.relu(a1), w2, stride=2, padding=1)
        a2, v2 = bn(h2)
        return F.relu(a2), (v1, v2)

    out, (v1, v2) = f(x)
    mixed, _ = f(x + 0.01 * eps)
    delta = torch.stack([torch.linalg.norm(out[i] - mixed[i]) for i in range(5)]).mean()
    want = math.log(float(delta)) + 0.5 * math.log(float(v1.mean())) + 0.5 * math.log(float(v2.mean()))
    assert got == pytest.approx(want, rel=1e-4, abs=1e-4)


def test_zen_prior_ranks_the_largest_path_above_the_smallest_and_is_deterministic():
    space = create_space("mbv2", width=0.25, resolution=16, num_classes=10)
    prior = ZenPrior(space, batch=4, seed=0)
    big, small = prior(space.largest()), prior(space.smallest())
    assert big > small
    assert ZenPrior(space, batch=4, seed=0)(space.largest()) == big  # same on every rank / resume


def test_flops_and_params_priors_follow_the_cost_model():
    space = create_space("mbv2", width=0.25, resolution=16, num_classes=10)
    flops = prior_function("flops", space)
    params = prior_function("params", space)
    assert flops(space.largest()) > flops(space.smallest())
    assert params(space.largest()) > params(space.smallest())


def test_a_prior_the_space_cannot_compute_is_an_error():
    from hwnas.spaces.mbv2 import MobileNetV2Space

    class NoGap(MobileNetV2Space):
        def _layers(self, genes, resolution):
            return [op for op in super()._layers(genes, resolution) if op.op != "gap"]

    with pytest.raises(HwnasError, match="pre-GAP"):
        prior_function("zen", NoGap(width=0.25, resolution=16, num_classes=10))


def test_rank_loss_penalises_the_prior_favourite_only_when_it_is_worse():
    la, lb = torch.tensor(1.5), torch.tensor(1.0)
    assert float(pairwise_rank_loss(la, lb, 2.0, 1.0)) == pytest.approx(0.5)  # a favoured, a worse
    assert float(pairwise_rank_loss(la, lb, 1.0, 2.0)) == 0.0  # b favoured and b better
    assert float(pairwise_rank_loss(la, lb, 1.0, 1.0)) == 0.0  # tie: no order


def test_balanced_sampler_draws_in_proportion_to_flops():
    rng = np.random.default_rng(0)
    picks = np.bincount([balanced_pick(rng, np.array([1.0, 2.0, 3.0, 4.0])) for _ in range(20000)], minlength=4)
    assert np.allclose(picks / picks.sum(), [0.1, 0.2, 0.3, 0.4], atol=0.015)


def test_lambda_schedules_of_table_3():
    warm = [lam_schedule("warmup", e, 70, 2.0, 20) for e in (0, 10, 20, 50)]
    assert warm == [0.0, 1.0, 2.0, 2.0]
    assert lam_schedule("constant", 0, 70, 2.0, 20) == 2.0
    cos = [lam_schedule("cosine", e, 70, 2.0, 20) for e in (0, 35, 70)]
    assert cos[0] == pytest.approx(0.0) and cos[1] == pytest.approx(2.0) and cos[2] == pytest.approx(0.0)
    multi = [lam_schedule("multistage", e, 100, 2.0, 20) for e in (5, 20, 50, 85, 100)]
    assert multi == pytest.approx([0.0, 1.0, 2.0, 1.0, 0.0])


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    out = tmp_path_factory.mktemp("pgonas") / "run"
    return out, train_supernet(TrainConfig(**TINY, options=OPTS), out, quiet=True)


def test_pgonas_trains_the_sandwich_with_distillation_and_the_warmed_up_rank_loss(straight):
    out, res = straight
    assert res.steps == 4 and res.final_loss is not None
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [s for s in steps if s["kind"] == "step"]
    assert [s["rank_lambda"] for s in steps] == [0.0, 1.0, 2.0, 2.0]  # 0 -> 2 over 1 epoch of 2 steps
    assert all(s["distill_loss"] > 0 for s in steps)
    assert steps[0]["rank_loss"] == 0.0  # lambda 0: no pair is run
    cfg = json.loads((out / "config.json").read_text())
    space = create_space("mbv2", width=0.25, resolution=16, num_classes=10)
    assert cfg["strategy"]["largest"] == list(space.largest())
    assert cfg["strategy"]["smallest"] == list(space.smallest())


def test_pgonas_resumes_bit_identically(straight, tmp_path):
    out, res = straight
    half = tmp_path / "half"
    train_supernet(TrainConfig(**TINY, options=OPTS), half, quiet=True, stop_after_epochs=1)
    again = train_supernet(TrainConfig(**TINY, options=OPTS), half, resume=True, quiet=True)
    assert again.steps == 4 and again.weights_digest == res.weights_digest
    assert load_checkpoint(half / "last.pt")["step"] == 4


@pytest.mark.parametrize("opt,words", [("prior=bogus", "prior must be one of flops, params, zen"),
                                       ("schedule=linear", "schedule must be one of")])
def test_pgonas_bad_options_are_one_line_exit_2(opt, words, capsys, tmp_path):
    code, _, err = run_cli(["train", "--out", str(tmp_path / "x"), *ARGS, "--opt", opt], capsys)
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1


def test_a_prior_the_space_cannot_compute_is_one_line_exit_2_before_anything_is_written(capsys, tmp_path):
    # Zen-score is defined on full-precision networks; the PACT spaces quantize every block
    args = ["resnet18-mp" if a == "mbv2" else a for a in ARGS]
    code, _, err = run_cli(["train", "--out", str(tmp_path / "run"), *args, "--opt", "prior=zen"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "prior 'zen' needs a full-precision network" in err and "'resnet18-mp'" in err and "w1a2" in err
    assert "fp32" not in err
    assert not (tmp_path / "run").exists()
