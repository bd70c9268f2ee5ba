"""Datasets: seeded held-out splits, reproducible augmentation and loaders, CIFAR / image-folder
files written here (never downloaded), and one-line errors for missing or malformed data."""

import pickle

import numpy as np
import pytest
import torch

from hwnas.data import ImageSplit, dataset_names, load_data, take_batches, train_loader
from hwnas.errors import HwnasError



@pytest.fixture(scope="module")
def digits():
    return load_data("digits", resolution=16)


def test_digits_split_is_disjoint_stratified_and_fixed(digits):
    sizes = digits.sizes()
    assert sizes["train"] + sizes["search-val"] + sizes["test"] == 1797
    assert sizes["train"] == sizes["train-clean"] and 250 <= sizes["search-val"] <= 290
    tr, va, te = (set(digits.split(s).indices) for s in ("train", "search-val", "test"))
    assert not (tr & va) and not (tr & te) and not (va & te)  # search-val is held out of training
    for split in ("train", "search-val", "test"):
        counts = np.bincount(digits.split(split).targets, minlength=10)
        assert counts.min() >= 0.8 * counts.mean()  # stratified: every class present, balanced
    again = load_data("digits", resolution=16)
    assert again.search_val.indices == digits.search_val.indices
    other = load_data("digits", resolution=16, split_seed=1)
    assert other.search_val.indices != digits.search_val.indices


def test_digits_images_are_upsampled_normalised_and_replicated(digits):
    x, y = digits.test[0]
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and 0 <= y < 10
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])
    allx = torch.stack([digits.train_clean[i][0] for i in range(len(digits.train_clean))])
    assert abs(allx.mean().item()) < 0.05 and abs(allx.std().item() - 1) < 0.05
    one = load_data("digits", resolution=32, in_channels=1)
    assert one.test[0][0].shape == (1, 32, 32)


def test_augmentation_is_seeded_per_sample(digits):
    a, _ = digits.train[(5, 123)]
    b, _ = digits.train[(5, 123)]
    c, _ = digits.train[(5, 124)]
    clean, _ = digits.train_clean[5]
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, clean)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    digits.train[(5, 1)]
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is not consumed


def _epoch(ds, **kw):
    return [(x, y) for x, y in train_loader(ds, batch_size=32, **kw)]


def test_loader_order_is_a_function_of_seed_epoch_and_rank(digits):
    src = digits.train.source
    small = ImageSplit(src, digits.train.indices[:320], digits.train.transform, src.targets)
    e0 = _epoch(small, seed=0, epoch=0)
    assert len(e0) == 10
    again = _epoch(small, seed=0, epoch=0)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(e0, again))
    e1 = _epoch(small, seed=0, epoch=1)
    assert not torch.equal(e0[0][1], e1[0][1])
    tail = _epoch(small, seed=0, epoch=0, skip_batches=5)  # resuming mid-epoch
    assert len(tail) == len(e0) - 5
    assert all(torch.equal(a[0], b[0]) for a, b in zip(tail, e0[5:]))
    workers = _epoch(small, seed=0, epoch=0, workers=2)  # same images with worker processes
    assert all(torch.equal(a[0], b[0]) for a, b in zip(workers, e0))
    r0 = _epoch(small, seed=0, epoch=0, rank=0, world=2)
    r1 = _epoch(small, seed=0, epoch=0, rank=1, world=2)
    assert len(r0) == len(r1) == 5
    assert not torch.equal(r0[0][0], r1[0][0])
    # the two shards of one epoch hold the same images as the single-process epoch
    key = lambda batches: sorted(x.sum().item() for b in batches for x in b[0])  # noqa: E731
    assert key(r0 + r1) == pytest.approx(key(e0))


def _write_cifar10(root, n_per_batch=20, n_test=10, hostile=None):
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        n = n_test if name == "test_batch" else n_per_batch
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n)]
        data[0, :1024] = 255  # first image of each batch: pure red (R plane first, then G, B)
        data[0, 1024:] = 0
        labels[0] = 3
        entry = {"batch_label": f"batch {i}", "labels": labels, "data": data,
                 "filenames": [f"img{j}.png" for j in range(n)]}
        with open(d / name, "wb") as fh:
            pickle.dump(hostile if (hostile is not None and name == "data_batch_2") else entry, fh)
    return d


def test_tiny_cifar10_folder_loads(tmp_path):
    _write_cifar10(tmp_path)
    data = load_data("cifar10", resolution=32, root=tmp_path)
    assert data.num_classes == 10
    assert data.sizes()["train"] + data.sizes()["search-val"] == 100 and data.sizes()["test"] == 10
    x, y = data.test[0]
    assert x.shape == (3, 32, 32) and y == 3
    assert (x[0] > 1.5).all() and (x[1] < -1.5).all() and (x[2] < -1.5).all()  # red survived CHW->HWC
    small = load_data("cifar10", resolution=16, root=tmp_path / "cifar-10-batches-py")  # folder itself
    assert small.test[0][0].shape == (3, 16, 16)
    aug, _ = data.train[(0, 7)]
    assert aug.shape == (3, 32, 32) and not torch.equal(aug, data.train_clean[0][0])


def test_tiny_cifar100_folder_loads(tmp_path):
    d = tmp_path / "cifar-100-python"
    d.mkdir()
    rng = np.random.default_rng(1)
    for name, n in (("train", 200), ("test", 20)):
        entry = {"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                 "fine_labels": [i % 100 for i in range(n)], "coarse_labels": [0] * n}
        with open(d / name, "wb") as fh:
            pickle.dump(entry, fh)
    data = load_data("cifar100", resolution=32, root=tmp_path)
    assert data.num_classes == 100 and data.sizes()["test"] == 20 and data.sizes()["search-val"] == 20


def test_cifar_missing_root_is_a_clear_error(tmp_path):
    with pytest.raises(HwnasError, match="cifar10 needs --data-root DIR holding cifar-10-batches-py/"):
        load_data("cifar10", resolution=32)
    with pytest.raises(HwnasError, match=f"data root {tmp_path / 'nope'} does not exist"):
        load_data("cifar10", resolution=32, root=tmp_path / "nope")
    with pytest.raises(HwnasError, match=f"data root {tmp_path} has no cifar-100-python/ folder"):
        load_data("cifar100", resolution=32, root=tmp_path)
    assert not (tmp_path / "cifar-10-batches-py").exists()  # nothing downloaded


def test_malformed_cifar_files_are_named(tmp_path):
    d = _write_cifar10(tmp_path / "a")
    (d / "data_batch_3").unlink()
    with pytest.raises(HwnasError, match=r"missing file .*data_batch_3 \(expected a CIFAR python batch"):
        load_data("cifar10", resolution=32, root=tmp_path / "a")
    d = _write_cifar10(tmp_path / "b")
    (d / "data_batch_4").write_bytes(b"\x80\x04not a pickle")
    with pytest.raises(HwnasError, match=r"cannot read .*data_batch_4"):
        load_data("cifar10", resolution=32, root=tmp_path / "b")
    _write_cifar10(tmp_path / "c", hostile={"data": np.zeros((2, 10), np.uint8), "labels": [0, 1]})
    with pytest.raises(HwnasError, match=r"data_batch_2 is not a CIFAR python batch"):
        load_data("cifar10", resolution=32, root=tmp_path / "c")


class _Boom:
    def __reduce__(self):
        import os
        return (os.system, ("touch PWNED",))


def test_cifar_reader_refuses_code_in_pickles(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write_cifar10(tmp_path / "d", hostile={"data": _Boom(), "labels": [0]})
    with pytest.raises(HwnasError, match=r"cannot read .*data_batch_2 .*not allowed"):
        load_data("cifar10", resolution=32, root=tmp_path / "d")
    assert not (tmp_path / "PWNED").exists()


def test_fake_data_is_deterministic():
    data = load_data("fake", resolution=24)
    x, y = data.test[3]
    assert x.shape == (3, 24, 24) and 0 <= y < 10
    assert torch.equal(x, load_data("fake", resolution=24).test[3][0])
    assert not torch.equal(x, data.search_val[3][0])


def test_imagefolder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(10):
            arr = rng.integers(0, 256, size=(20, 24, 3), dtype=np.uint8)
            Image.fromarray(arr).save(tmp_path / "imgs" / cls / f"{i}.png")
    data = load_data(f"imagefolder:{tmp_path / 'imgs'}", resolution=16)
    assert data.num_classes == 2 and sum(data.sizes()[s] for s in ("train", "search-val", "test")) == 20
    assert data.test[0][0].shape == (3, 16, 16) and data.train[(0, 1)][0].shape == (3, 16, 16)
    with pytest.raises(HwnasError, match=f"folder {tmp_path / 'none'} does not exist"):
        load_data(f"imagefolder:{tmp_path / 'none'}", resolution=16)
    (tmp_path / "empty").mkdir()
    with pytest.raises(HwnasError, match="is not an image folder"):
        load_data(f"imagefolder:{tmp_path / 'empty'}", resolution=16)
    with pytest.raises(HwnasError, match="needs a path: use imagefolder:PATH"):
        load_data("imagefolder", resolution=16)


def test_unknown_dataset_lists_the_allowed_ones():
    with pytest.raises(HwnasError) as exc:
        load_data("mnist", resolution=16)
    assert str(exc.value) == ("unknown dataset 'mnist'; allowed: " + ", ".join(dataset_names()))
    assert {"digits", "fake", "cifar10", "cifar100", "imagefolder:PATH"} <= set(dataset_names())


def test_take_batches_seeded_subset(digits):
    a = take_batches(digits.train_clean, 16, max_batches=3, seed=0)
    b = take_batches(digits.train_clean, 16, max_batches=3, seed=0)
    c = take_batches(digits.train_clean, 16, max_batches=3, seed=1)
    assert len(a) == 3 and all(torch.equal(p[0], q[0]) for p, q in zip(a, b))
    assert not torch.equal(a[0][0], c[0][0])
