import dataclasses

import numpy as np
import pytest

from conftest import SPACE_NAMES, tiny_space
from hwnas.errors import HwnasError
from hwnas.spaces import create_space, space_from_config, space_names
from hwnas.spaces.mbv2 import MBLayer


def test_registry_lists_builtin_spaces():
    assert set(SPACE_NAMES) <= set(space_names())


def test_unknown_space_lists_known_ones():
    with pytest.raises(HwnasError, match=r"unknown search space 'nope'.*mbv2.*shufflenetv2"):
        create_space("nope")


@pytest.mark.parametrize("kw,match", [({"width": 0}, "width"), ({"resolution": 4}, "resolution"),
                                      ({"num_classes": 0}, "num_classes"), ({"depth": 3}, "bad settings")])
def test_bad_space_settings(kw, match):
    with pytest.raises(HwnasError, match=match):
        create_space("mbv2", **kw)


def test_mbv2_exact_size_and_identity_placement():
    s = create_space("mbv2")
    assert len(s.choices) == 21
    # identity is impossible in the first layer of each of the 6 stages (shape changes)
    assert [i for i, c in enumerate(s.choices) if c == 6] == [0, 4, 8, 12, 16, 20]
    assert s.size() == 6**6 * 7**15
    assert s.paper_size() == 7**21  # the figure GreedyNAS quotes
    assert s.gene_labels(1)[-1] == "skip" and "skip" not in s.gene_labels(0)


def test_mbv2_se_exact_size():
    s = create_space("mbv2-se")
    assert sorted(set(s.choices)) == [12, 13]
    assert s.size() == 12**6 * 13**15
    assert s.paper_size() == 13**21


def test_shufflenetv2_exact_size():
    s = create_space("shufflenetv2")
    assert len(s.groups) == 20 and s.num_genes == 40
    assert s.size() == 4**20 * 8**20
    assert s.gene_labels(0) == ("choice_3", "choice_5", "choice_7", "choice_x")
    assert s.gene_labels(1)[0] == "0.2x" and s.gene_labels(1)[-1] == "1.6x"


def test_shufflenetv2_mid_channels_follow_spos():
    s = create_space("shufflenetv2")
    # SPOS: base mid = out // 2, scaled 0.2x .. 1.6x; stage 1 has 64 channels -> base 32
    assert [s.mid_channels(0, j) for j in range(8)] == [6, 12, 19, 25, 32, 38, 44, 51]


def test_macro_structure_at_224():
    s = create_space("mbv2")
    ops = s.layers(s.largest())
    assert ops[0].out_shape == (32, 112, 112)
    assert ops[1].out_shape == (16, 112, 112)
    assert ops[-3].out_shape == (1280, 7, 7)
    assert ops[-1].out_shape == (1000, 1, 1)
    sh = create_space("shufflenetv2")
    ops = sh.layers(sh.largest())
    assert ops[0].out_shape == (16, 112, 112)
    assert [o.out_shape for o in ops if o.op.startswith("shuffle") and o.stride == 2] == [
        (64, 56, 56), (160, 28, 28), (320, 14, 14), (640, 7, 7)]


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_decode_encode_roundtrip_and_shapes_chain(name, rng):
    s = tiny_space(name)
    for _ in range(50):
        g = s.sample(rng)
        # a config holds what runs: the genes of layers switched off by a depth gene come back as 0
        assert s.encode(s.decode(g)) == s.canonical(g)
        ops = s.layers(g)
        for a, b in zip(ops, ops[1:]):
            assert a.out_shape == b.in_shape or (a.op == "gap" and a.out_shape[0] == b.in_shape[0])


def test_identity_layers_are_dropped_from_ops():
    s = create_space("mbv2")
    g = list(s.largest())
    g[1] = 6  # skip
    cfg = s.decode(g)
    assert cfg.layers[1] == MBLayer(0, 0)
    assert len(s.layers(g)) == len(s.layers(s.largest())) - 1


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_gene_validation_messages(name):
    s = tiny_space(name)
    with pytest.raises(HwnasError, match=rf"takes {s.num_genes} genes, got 3"):
        s.validate([0, 0, 0])
    bad = list(s.smallest())
    bad[2] = s.choices[2]
    with pytest.raises(HwnasError, match=rf"gene 2 .* is {s.choices[2]}; allowed range is 0..{s.choices[2] - 1}"):
        s.validate(bad)
    bad[2] = -1
    with pytest.raises(HwnasError, match="gene 2"):
        s.layers(bad)


def test_encode_rejects_identity_where_shape_changes():
    s = create_space("mbv2")
    cfg = s.decode(s.largest())
    layers = list(cfg.layers)
    layers[0] = MBLayer(0, 0)
    with pytest.raises(HwnasError, match="layer 0 .* cannot be skip"):
        s.encode(dataclasses.replace(cfg, layers=tuple(layers)))


def test_sampling_is_seeded_and_uniform(rng):
    s = create_space("mbv2")
    a = s.sample_many(np.random.default_rng(7), 5)
    b = s.sample_many(np.random.default_rng(7), 5)
    assert (a == b).all()
    many = s.sample_many(rng, 14000)
    counts = np.bincount(many[:, 1], minlength=7)
    assert counts.min() > 1800 and counts.max() < 2200  # ~2000 each


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_smallest_and_largest_bound_random_archs(name, rng):
    from hwnas.cost import CostModel

    s = tiny_space(name)
    cm = CostModel(s)
    samples = s.sample_many(rng, 500)
    macs = cm(samples)["macs"]
    lo = cm(np.array([s.smallest()]))["macs"][0]
    hi = cm(np.array([s.largest()]))["macs"][0]
    assert lo <= macs.min() and hi >= macs.max() and lo < hi


def test_width_resolution_classes_scale_the_space():
    small = create_space("mbv2", width=0.5, resolution=64, num_classes=10)
    big = create_space("mbv2")
    g = big.largest()
    assert small.layers(g)[0].in_shape == (3, 64, 64)
    assert small.layers(g)[-1].out_shape == (10, 1, 1)
    assert small.layers(g)[0].out_shape[0] == 16
    assert space_from_config(small.config()) == small
    assert small.layers(g, resolution=96)[0].in_shape == (3, 96, 96)


# ---- the per-block contract: block_options(), BlockTable, genes_from_options() ---------------------
@pytest.mark.parametrize("name", SPACE_NAMES)
def test_block_options_enumerate_each_block_option_once(name, rng):
    s = tiny_space(name)
    opts = list(s.block_options())
    assert [(o.block, o.index) for o in opts] == [
        (b, j) for b in range(len(s.groups)) for j in range(len(s.group_options(b)))]
    for o in opts[:: max(1, len(opts) // 25)]:
        assert o.values == s.group_options(o.block)[o.index]
        assert tuple(o.genes[i] for i in s.groups[o.block].genes) == o.values
        assert int(s.group_index(np.array([o.genes]))[0, o.block]) == o.index
        assert o.ops == tuple(op for op in s.layers(o.genes) if op.block == o.block)
    # every op of any architecture is a fixed op or an op of its block's option
    by_option = {(o.block, o.index): o.ops for o in opts}
    fixed = s.fixed_ops()
    for g in s.sample_many(rng, 10):
        idx = s.group_index(g)[0]
        expected = [op for op in fixed if op in s.layers(g)]
        assert expected == fixed
        for b in range(len(s.groups)):
            assert tuple(op for op in s.layers(g) if op.block == b) == by_option[(b, int(idx[b]))]


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_genes_from_options_inverts_group_index(name, rng):
    s = tiny_space(name)
    m = s.sample_many(rng, 20)
    idx = s.group_index(m)
    rebuilt = np.array([s.genes_from_options(row) for row in idx])
    # genes that do not change the ops (an identity layer's bits) may differ; the option does not
    assert (s.group_index(rebuilt) == idx).all()
    assert all(s.layers(a) == s.layers(b) for a, b in zip(m, rebuilt))
    with pytest.raises(HwnasError, match=f"has {len(s.groups)} blocks, got 1 options"):
        s.genes_from_options([0])


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_block_table_gather_equals_the_per_architecture_sum_and_max(name, rng):
    s = tiny_space(name)

    def fn(op):
        return float(op.out_shape[0] * op.kernel + op.mid)

    m = s.sample_many(rng, 30)
    idx = s.group_index(m)
    total = s.block_table(fn).gather(idx)
    peak = s.block_table(fn, reduce=max).gather(idx, np.maximum)
    for i, g in enumerate(m):
        vals = [fn(op) for op in s.layers(g)]
        assert total[i] == pytest.approx(sum(vals))
        assert peak[i] == max(vals)


def test_cost_model_imports_without_torch():
    """The analytic cost model (and the spaces) need no torch: importing it with torch blocked works."""
    import subprocess
    import sys
    from pathlib import Path

    code = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, NoTorch())
import hwnas.cost
from hwnas.spaces import create_space, space_names
for name in space_names():
    s = create_space(name, width=0.25, resolution=32, num_classes=10)
    c = hwnas.cost.costs(s, [s.largest()])
    assert c["macs"][0] > 0
assert "torch" not in sys.modules
print("ok", len(space_names()))
"""
    root = Path(__file__).resolve().parents[1]
    env = {"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["ok", str(len(SPACE_NAMES))]


def test_an_installed_package_adds_a_space_through_its_entry_point(tmp_path):
    """A package that declares an ``hwnas.spaces`` entry point is listed by ``hwnas spaces``."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "my_spaces.py").write_text(
        "from dataclasses import dataclass\n"
        "from typing import ClassVar\n"
        "from hwnas.spaces import register_space\n"
        "from hwnas.spaces.mbv2 import MobileNetV2Space\n"
        "@dataclass(frozen=True)\n"
        "class Mine(MobileNetV2Space):\n"
        "    name: ClassVar[str] = 'mine'\n"
        "register_space(Mine)\n")
    dist = tmp_path / "my_spaces-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-spaces\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[hwnas.spaces]\nmine = my_spaces\n")
    root = Path(__file__).resolve().parents[1]
    env = {"PYTHONPATH": f"{root}:{tmp_path}", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    code = "from hwnas.spaces import create_space, space_names; print(space_names()); print(create_space('mine').size())"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    names, size = proc.stdout.splitlines()
    assert "mine" in json.loads(names.replace("'", '"')) and int(size) == 6**6 * 7**15
    (dist / "entry_points.txt").write_text("[hwnas.spaces]\nbroken = no_such_module\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode != 0
    assert "search-space plug-in 'broken'" in proc.stderr and "cannot be imported" in proc.stderr
