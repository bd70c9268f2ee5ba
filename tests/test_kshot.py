"""K-shot NAS (``--strategy kshot``): K weight copies merged per path by the simplex-net's code,
warm-up with lambda = 1/K, then supernet and simplex-net updates with the other fixed; exact resume,
materialize / export of the merged weights, one-line errors."""

import numpy as np
import pytest
import torch

from conftest import run_cli
from hwnas.checkpoint import load_checkpoint
from hwnas.models import subnet_from_checkpoint, supernet_from_checkpoint
from hwnas.nn.kshot import Code, KShotOp, KShotSharing, SimplexNet
from hwnas.spaces import create_space
from hwnas.spaces.base import OpSpec
from hwnas.supernet import build_supernet, materialize
from hwnas.train import TrainConfig, train_supernet
from hwnas.train.distributed import state_digest

TINY = dict(space="mbv2-se-width", width=0.25, resolution=16, data="digits", batch_size=16, lr=0.05, workers=0,
            steps_per_epoch=2, epochs=2, log_every=1, strategy="kshot", sharing="elastic")
OPTS = {"k": 3, "warmup_epochs": 1, "paths": 2}
ARGS = ["--space", "mbv2-se-width", "--sharing", "elastic", "--width", "0.25", "--resolution", "16", "--batch-size", "16", "--lr", "0.05",
        "--workers", "0", "--steps-per-epoch", "2", "--log-every", "1", "-q", "--strategy", "kshot"]


def test_merged_weights_are_the_convex_combination_of_the_copies():
    spec = OpSpec("mbconv", (8, 6, 6), (8, 6, 6), kernel=3, mid=24, expand=3, groups=24, block=0)
    from hwnas.nn.blocks import build_op

    torch.manual_seed(0)
    op = KShotOp(lambda: build_op(spec), 3).eval()
    x = torch.randn(2, 8, 6, 6)
    name = op.names[0]
    copies = [dict(op.op.named_parameters())[name]] + list(op.copies[0])
    lam = torch.tensor([0.2, 0.5, 0.3])
    merged = op.merged(lam)[name]
    assert torch.allclose(merged, 0.2 * copies[0] + 0.5 * copies[1] + 0.3 * copies[2])
    assert not torch.equal(copies[0], copies[1])  # independently initialised copies
    # a one-hot code runs exactly copy j; copy 0 is the plain op
    with torch.no_grad():
        assert torch.equal(op(x, spec, torch.tensor([1.0, 0.0, 0.0])), op.op(x, spec))
        one = op(x, spec, torch.tensor([0.0, 1.0, 0.0]))
    assert not torch.allclose(one, op.op(x, spec))


def test_simplex_net_codes_lie_on_the_simplex_and_start_at_one_over_k():
    net = SimplexNet((3, 4, 5), k=4, hidden=8, channel_genes=(2,))
    genes = torch.tensor([[0, 1, 2], [2, 3, 4]])
    codes = net(genes)
    assert torch.allclose(codes, torch.full((2, 4), 0.25))  # zero output layers: the warm-up code
    for p in net.parameters():
        torch.nn.init.normal_(p)
    codes = net(genes)
    assert codes.shape == (2, 4) and (codes >= 0).all()
    assert torch.allclose(codes.sum(1), torch.ones(2))
    assert not torch.allclose(codes[0], codes[1])  # per-path codes
    # the channel branch sees only the width gene, the architecture branch the others
    assert net.arch[0].in_features == 3 + 4 and net.channel[0].in_features == 5


@pytest.mark.parametrize("sharing", ["independent", "elastic"])
def test_kshot_supernet_path_equals_its_materialized_subnet(sharing):
    space = create_space("mbv2", width=0.25, resolution=16, num_classes=10)
    torch.manual_seed(0)
    net = build_supernet(space, KShotSharing(sharing, k=3)).eval()
    for p in net.shared.parameters():  # a non-trivial simplex-net
        torch.nn.init.normal_(p, std=0.5)
    g = space.sample(np.random.default_rng(3))
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        ref = net(x, g)
        sub = materialize(net, g).eval()
        assert torch.allclose(sub(x), ref, atol=1e-5)
        # other codes give other weights: the code matters (train mode: batch statistics)
        net.train()
        mine, other = net(x, g), net(x, g, Code(torch.tensor([1.0, 0.0, 0.0])))
    assert not torch.allclose(other, mine, atol=1e-3)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    out = tmp_path_factory.mktemp("kshot") / "run"
    res = train_supernet(TrainConfig(**TINY, options=OPTS), out, quiet=True)
    return out, res


def test_kshot_trains_copies_and_simplex_net_after_the_warm_up(straight):
    out, res = straight
    assert res.steps == 4 and res.final_loss is not None
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["sharing_config"] == {"name": "kshot", "base": {"name": "elastic"}, "k": 3,
                                      "hidden": 64, "channel": True}
    space = create_space("mbv2-se-width", width=0.25, resolution=16, num_classes=10)
    torch.manual_seed(0)
    net0 = build_supernet(space, KShotSharing("elastic", k=3))
    init, trained = net0.state_dict(), ckpt["model"]
    moved = {k for k, _ in net0.named_parameters() if not torch.equal(init[k], trained[k])}
    assert any(".copies." in k for k in moved)  # the K copies learn
    assert any(k.startswith("shared.simplex.arch.2") for k in moved)  # the simplex-net learns after warm-up
    import json

    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [s for s in steps if s["kind"] == "step"]
    assert "simplex_loss" not in steps[1] and "simplex_loss" in steps[2]  # warm-up: 2 steps (1 epoch)
    assert "r_c" not in steps[1] and steps[2]["r_c"] > 0  # width genes: channel branch and r_c
    assert any(k.startswith("shared.simplex.channel.0") for k in moved)
    # a reloaded checkpoint evaluates each path with its own code; materialize bakes it in
    net, _ = supernet_from_checkpoint(out / "last.pt")
    g = space.sample(np.random.default_rng(0))
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(subnet_from_checkpoint(out / "last.pt", genes_text=",".join(map(str, g)))(x),
                              net(x, g), atol=1e-5)


def test_kshot_resumes_bit_identically(straight, tmp_path):
    out, res = straight
    half = tmp_path / "half"
    train_supernet(TrainConfig(**TINY, options=OPTS), half, quiet=True, stop_after_epochs=1)
    again = train_supernet(TrainConfig(**TINY, options=OPTS), half, resume=True, quiet=True)
    assert again.steps == 4
    assert again.weights_digest == res.weights_digest
    a, b = load_checkpoint(out / "last.pt"), load_checkpoint(half / "last.pt")
    assert state_digest(a["model"]) == state_digest(b["model"])


@pytest.mark.slow
def test_kshot_materialized_subnet_exports(straight, tmp_path):
    from hwnas.export import export_model

    out, _ = straight
    space = create_space("mbv2-se-width", width=0.25, resolution=16, num_classes=10)
    g = space.sample(np.random.default_rng(5))
    sub = subnet_from_checkpoint(out / "last.pt", genes_text=",".join(map(str, g)))
    (res,) = export_model(sub, tmp_path / "exp", formats=("onnx",), resolution=16)
    assert res.max_abs_diff is not None and res.max_abs_diff <= 1e-4


def test_kshot_errors_are_one_line_exit_2(straight, capsys, tmp_path):
    code, _, err = run_cli(["train", "--out", str(tmp_path / "a"), *ARGS, "--opt", "k=0"], capsys)
    assert code == 2 and "k must be >= 1" in err and len(err.strip().splitlines()) == 1
    no_width = ["mbv2" if a == "mbv2-se-width" else a for a in ARGS]
    code, _, err = run_cli(["train", "--out", str(tmp_path / "b"), *no_width, "--opt", "channel=true"], capsys)
    assert code == 2 and "width genes" in err and len(err.strip().splitlines()) == 1
    # the contrastive regulariser's options need the channel branch: no width genes, or channel=false
    code, _, err = run_cli(["train", "--out", str(tmp_path / "c"), *no_width, "--opt", "tau=0.5",
                            "--opt", "rc_margin=3"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "tau=0.5, rc_margin=3 sets the contrastive regulariser r_c" in err and "'mbv2' has no width genes" in err
    code, _, err = run_cli(["train", "--out", str(tmp_path / "d"), *ARGS, "--opt", "channel=false",
                            "--opt", "alpha=2"], capsys)
    assert code == 2 and "alpha=2.0 sets" in err and "channel=false" in err and len(err.strip().splitlines()) == 1
    assert not any((tmp_path / n).exists() for n in "abcd")
    out, _ = straight
    code, _, err = run_cli(["train", "--out", str(out), *ARGS, "--epochs", "3", "--resume", "--opt", "k=4",
                            "--opt", "warmup_epochs=1", "--opt", "paths=2"], capsys)
    assert code == 2 and "k=3" in err and "k=4" in err and len(err.strip().splitlines()) == 1


def test_kshot_width_space_size_genes_and_parity():
    full = create_space("mbv2-se-width")
    assert full.size() == 5**23 * 12**6 * 13**15 and full.paper_size() == 5**24 * 13**21
    space = create_space("mbv2-se-width", width=0.25, resolution=16, num_classes=10)
    assert len(space.width_genes) == 23 and space.num_genes == 44
    g = space.sample(np.random.default_rng(1))
    assert space.encode(space.decode(g)) == g
    wide, narrow = list(g), list(g)
    for i in space.width_genes:
        wide[i], narrow[i] = 4, 0
    from hwnas.cost import CostModel

    costs = CostModel(space)(np.asarray([wide, narrow]))
    assert costs["macs"][0] > costs["macs"][1]
    sub = materialize(build_supernet(space, "elastic").eval(), narrow)
    assert sum(p.numel() for p in sub.parameters()) == costs["params"][1]  # cost model exact


def test_kshot_on_the_elastic_depth_space_uses_one_code_per_subnet(tmp_path):
    """resnet48 (elastic depth): sampled paths are canonical, r_c moves only widths of running
    layers, and a path's code ignores the genes of its switched-off layers."""
    import json

    cfg = {**TINY, "space": "resnet48", "steps_per_epoch": 2, "epochs": 1}
    out = tmp_path / "r48"
    train_supernet(TrainConfig(**cfg, options={"k": 2, "warmup_epochs": 0, "paths": 2}), out, quiet=True)
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(s["r_c"] > 0 for s in steps if s["kind"] == "step")
    net, _ = supernet_from_checkpoint(out / "last.pt")
    space = net.space
    g = list(space.smallest())
    g[space.depth_genes[2] + 5] = 2  # a width gene of a layer the depth switches off
    assert tuple(g) != space.canonical(g)
    mix = net.provider.path_mix(net, g)
    assert torch.equal(mix.weights, net.provider.path_mix(net, space.canonical(g)).weights)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert (net(x, g) - materialize(net, g)(x)).abs().max() <= 1e-5
