import re

import pytest
import torch

from conftest import tiny_space
from hwnas.checkpoint import load_checkpoint, save_checkpoint
from hwnas.errors import HwnasError
from hwnas.models import subnet_from_checkpoint, supernet_from_checkpoint
from hwnas.supernet import build_supernet, materialize


def _save_supernet(tmp_path, name="mbv2"):
    s = tiny_space(name)
    net = build_supernet(s)
    path = save_checkpoint(tmp_path / "ckpt.pt", kind="supernet", space=s, model_state=net.state_dict())
    return s, net, path


def test_roundtrip_supernet(tmp_path, rng):
    s, net, path = _save_supernet(tmp_path)
    net2, ckpt = supernet_from_checkpoint(path)
    assert ckpt["versions"]["torch"] == torch.__version__
    g = s.sample(rng)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(net.eval()(x, g), net2(x, g))
    sub = subnet_from_checkpoint(path, genes_text=",".join(map(str, g)))
    with torch.no_grad():
        assert torch.allclose(sub(x), materialize(net, g)(x), atol=1e-6)


def test_subnet_checkpoint(tmp_path, rng):
    s, net, _ = _save_supernet(tmp_path)
    g = s.sample(rng)
    sub = materialize(net, g)
    p = save_checkpoint(tmp_path / "sub.pt", kind="subnet", space=s, genes=g, model_state=sub.state_dict())
    again = subnet_from_checkpoint(p, genes_text=None)
    assert again.genes == g
    other = list(g)
    other[1] = (other[1] + 1) % s.choices[1]
    with pytest.raises(HwnasError, match="holds subnet"):
        subnet_from_checkpoint(p, genes_text=",".join(map(str, other)))


def test_missing_truncated_and_foreign_files(tmp_path):
    with pytest.raises(HwnasError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    _, _, path = _save_supernet(tmp_path)
    data = path.read_bytes()
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(HwnasError, match="cannot read checkpoint .*trunc.pt"):
        load_checkpoint(trunc)
    text = tmp_path / "text.pt"
    text.write_text("hello")
    with pytest.raises(HwnasError, match="cannot read checkpoint"):
        load_checkpoint(text)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(HwnasError, match="not an hwnas checkpoint"):
        load_checkpoint(foreign)


def test_checkpoint_from_another_space(tmp_path):
    _, _, path = _save_supernet(tmp_path, "shufflenetv2")
    with pytest.raises(HwnasError, match="is for space 'shufflenetv2', not 'mbv2'"):
        load_checkpoint(path, expect_space="mbv2")
    with pytest.raises(HwnasError, match="width=0.25, requested width=1.0"):
        load_checkpoint(path, expect_space=tiny_space("shufflenetv2", width=1.0))


def test_weights_only_refuses_pickled_objects(tmp_path):
    evil = tmp_path / "evil.pt"
    import datetime

    # any pickled Python object outside torch's allow-list (here a datetime) must be refused
    torch.save({"format": "hwnas.checkpoint", "obj": datetime.datetime(2026, 1, 1)}, evil)
    with pytest.raises(HwnasError, match="refusing checkpoint .*asks for datetime.datetime"):
        load_checkpoint(evil)


class _Payload:
    """A pickle that would run a shell command when unpickled without the weights-only guard."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_checkpoint_names_the_refused_global(tmp_path, capsys):
    from conftest import run_cli

    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "hwnas.checkpoint", "model": _Payload(marker)}, evil)
    with pytest.raises(HwnasError) as exc:
        load_checkpoint(evil)
    msg = str(exc.value)
    assert "posix.system" in msg and "not trusted" in msg and "nothing in it was run" in msg
    assert "weights_only" not in msg and not marker.exists()
    code, _, err = run_cli(["eval", "--checkpoint", str(evil), "--genes", "0"], capsys)
    assert code == 2 and err.count("\n") == 1 and "posix.system" in err and not marker.exists()


@pytest.mark.parametrize("field,value,message", [
    ("format_version", "1", "format_version must be an integer, got '1'"),
    ("model", [1, 2], "model must be a state dict (names -> tensors), got list"),
    ("model", {"w": 3}, "model must be a state dict"),
    ("space", ["mbv2"], "space must be a space config"),
    ("kind", "teacher", "kind must be one of supernet, subnet, got 'teacher'"),
    ("genes", "0,1", "genes must be a list of integers"),
])
def test_crafted_checkpoint_fields_are_one_line_errors(tmp_path, field, value, message):
    _, _, path = _save_supernet(tmp_path)
    ckpt = torch.load(path, weights_only=True)
    ckpt[field] = value
    torch.save(ckpt, path)
    with pytest.raises(HwnasError, match=re.escape(message)):
        load_checkpoint(path)


def test_a_folder_given_for_a_checkpoint(tmp_path):
    with pytest.raises(HwnasError, match="is a folder, not a file"):
        load_checkpoint(tmp_path)
