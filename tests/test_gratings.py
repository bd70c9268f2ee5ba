"""``gratings``: the generated ranking-benchmark dataset is deterministic, balanced, registered and
carries the signal its classes are defined by (the orientation of the dominant grating)."""

import numpy as np
import pytest

from hwnas.data import dataset_names, load_data
from hwnas.data import gratings as G


def test_generation_is_a_pure_function_of_seed_split_and_resolution():
    a, la = G.generate(200, resolution=16, seed=0, split_id=0)
    b, lb = G.generate(200, resolution=16, seed=0, split_id=0)
    assert a.dtype == np.uint8 and a.shape == (200, 3, 16, 16)
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    c, _ = G.generate(200, resolution=16, seed=0, split_id=1)  # another split: other images
    d, _ = G.generate(200, resolution=16, seed=1, split_id=0)  # another split seed: other images
    assert not np.array_equal(a, c) and not np.array_equal(a, d)
    big, _ = G.generate(10, resolution=32, seed=0, split_id=0)
    assert big.shape == (10, 3, 32, 32)
    assert a.std() > 10  # not a constant image


def test_labels_are_balanced():
    _, labels = G.generate(5000, resolution=16, seed=0, split_id=0)
    counts = np.bincount(labels, minlength=G.NUM_CLASSES)
    assert G.NUM_CLASSES == 10 and counts.min() > 0.8 * 500 and counts.max() < 1.2 * 500


def test_the_dominant_orientation_is_the_label():
    """On noise-free images the strongest Fourier component points along the class's orientation
    (an 18-degree bin) for most images; the rest are the hard ones (a close competing grating)."""
    imgs, labels = G.generate(1000, resolution=32, seed=0, split_id=0, noise=0.0)
    x = imgs.astype(np.float64).mean(axis=1)
    x -= x.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(x)) ** 2
    f = np.fft.fftfreq(32)
    fy, fx = np.meshgrid(f, f, indexing="ij")
    flat = power.reshape(len(x), -1).argmax(axis=1)
    theta = np.arctan2(fy.ravel()[flat], fx.ravel()[flat]) % np.pi  # wave-vector direction
    pred = np.rint(theta / (np.pi / G.NUM_CLASSES)).astype(int) % G.NUM_CLASSES
    hit = np.mean(pred == labels)
    assert 0.6 < hit < 0.995  # the signal is there, and not every image is easy


def test_registered_splits_sizes_and_channels():
    assert "gratings[:test=N]" in dataset_names()
    d = load_data("gratings", resolution=16)
    assert d.labels()[:2] == ("0deg", "18deg") and d.mean == (0.5,) * 3
    assert d.num_classes == 10 and d.sizes() == {"train": 12000, "train-clean": 12000,
                                                 "search-val": 2000, "test": 4000}
    x, y = d.test[0]
    assert tuple(x.shape) == (3, 16, 16) and abs(float(d.train[0][0].mean())) < 2
    assert 100 / len(d.test) <= 0.05  # one test image is at most 0.05 accuracy points
    imgs, labels = G.generate(8, resolution=16, seed=0, split_id=2)  # the test split, image for image
    assert d.test.targets[:8] == labels.tolist()
    assert np.allclose(d.test[3][0].numpy(), (imgs[3].astype(np.float32) - G.MEAN) / G.STD)
    grey = load_data("gratings", resolution=16, in_channels=1)
    assert tuple(grey.train[0][0].shape) == (1, 16, 16)
    with pytest.raises(Exception, match="takes no"):
        load_data("gratings:x", resolution=16)


def test_fine_variant_has_40_classes_and_leaves_the_10_class_images_unchanged():
    fine = G.SPECS["gratings-fine"]
    a, la = G.generate(300, resolution=16, seed=0, split_id=0, spec=fine)
    b, lb = G.generate(300, resolution=16, seed=0, split_id=0, spec=fine)
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    assert fine.num_classes == 40 and la.max() >= 35 and la.min() == 0
    ten, _ = G.generate(300, resolution=16, seed=0, split_id=0)
    assert not np.array_equal(a, ten)
    assert np.array_equal(ten, G.generate(300, resolution=16, seed=0, split_id=0, spec=G.GratingsSpec())[0])
    d = load_data("gratings-fine", resolution=16)
    assert d.num_classes == 40 and d.name == "gratings-fine" and d.labels()[:2] == ("0deg", "4.5deg")
    assert d.test.targets[:8] == G.generate(8, resolution=16, seed=0, split_id=2, spec=fine)[1].tolist()


def test_a_larger_test_split_is_an_option_that_extends_the_default_one():
    from hwnas.data.registry import training_identity

    d = load_data("gratings-fine", resolution=16)
    big = load_data("gratings-fine:test=5000", resolution=16)
    assert big.sizes() == dict(d.sizes(), test=5000) and big.name == "gratings-fine:test=5000"
    assert big.test.targets[:4000] == d.test.targets  # the default test images come first
    assert np.array_equal(big.test[3999][0].numpy(), d.test[3999][0].numpy())
    assert np.array_equal(big.train[7][0].numpy(), d.train[7][0].numpy())  # training images unchanged
    assert big.search_val.targets == d.search_val.targets
    assert training_identity("gratings-fine:test=5000") == "gratings-fine"
    assert training_identity("imagefolder:/x") == "imagefolder:/x"
    assert "gratings-fine[:test=N]" in dataset_names()
    for bad in ("test=10", "test=abc", "train=5000", "test=999999"):
        with pytest.raises(Exception, match=rf"takes no ':' argument other than test=N .*gratings-fine:{bad}"):
            load_data(f"gratings-fine:{bad}", resolution=16)
