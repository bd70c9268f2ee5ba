"""``gratings``: a synthetic image dataset generated in code, built for ranking benchmarks.

Why it exists: a one-shot supernet is judged by how well it ranks subnets the way stand-alone
training does, and that ground truth must itself repeat from one training seed to the next. On
small real datasets (``digits``: 1,257 training images) it does not. Here the data are plentiful,
their labels exact, and every image is generated deterministically.

**Classes** (10): the orientation of the image's *class grating*, 0, 18, ..., 162 degrees
(+- 20 % of the 18-degree step). Each image is

* a background level (0.35-0.65) with a colour tint per grating;
* the class grating: a cosine grating of that orientation whose **period** is drawn log-uniform
  from 2.4 px (near the pixel scale: early layers need enough channels, and the stem must resolve
  it before the first stride) to 8 px at 16 px input (half the image: a receptive field of a
  period or more is needed, so kernel size and depth before the strides matter), and whose
  **contrast** is drawn from faint to clear (0.08-0.4), so images range from easy to hard;
* a *competing* grating of another orientation and period, at 0-70 % of the class grating's
  contrast: the label is the dominant orientation, a comparison of two oriented energies;
* grey pixel noise (sd 0.06).

Images are rendered at the space's resolution (the long periods scale with it; the shortest stays
2.4 px), drawn in chunks of 1,000 from ``SeedSequence([GRATINGS_SEED, split_seed, split, chunk])``:
an image is a pure function of (split seed, split, index) and the same call gives the same bytes
on any machine. The splits are held in memory, already normalised (fixed constants of the
generator). No augmentation: a training's only randomness is its seed (weights, data order).

Sizes: 12,000 train, 2,000 search-val, 4,000 test (one test image = 0.025 accuracy points).
``gratings:test=N`` / ``gratings-fine:test=N`` generate a test split of ``N`` images instead
(``TEST_RANGE``); its first 4,000 are the default test images (chunks are drawn independently), and
the training and search-val images are unchanged, so a supernet trained on ``gratings-fine`` is
scored against a ground truth measured on ``gratings-fine:test=N``.

``gratings-fine``: the same generator with **40** classes (4.5 degrees apart, same +- 20 % jitter),
periods from 2.4 px to the whole image, clearer class gratings (contrast 0.2-0.5), a weaker
competitor (0-40 %) and less pixel noise (sd 0.04): the label is nearly always recoverable, and the
error left is the precision of the orientation estimate, which grows with a subnet's capacity
instead of saturating (the 10-class task is limited by its hard images for every subnet).
See docs/ranking.md for what the benchmark measures and how its ground truth repeats.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hwnas.data.base import DataSplits, ImageSplit
from hwnas.data.registry import register_dataset
from hwnas.errors import HwnasError

GRATINGS_SEED = 20_231_202
SIZES = {"train": 12_000, "search_val": 2_000, "test": 4_000}
#: allowed sizes of a larger test split (``gratings:test=N``)
TEST_RANGE = (1_000, 200_000)
NUM_CLASSES = 10  # orientations of the class grating, 18 degrees apart
NOISE_STD = 0.06
CHUNK = 1000
PERIOD = (2.4, 8.0)  # pixels at 16 px; the upper end scales with the resolution
CONTRAST = (0.08, 0.4)
RATIO = (0.0, 0.7)  # contrast of the competing grating relative to the class's one
JITTER = 0.2  # orientation jitter, as a fraction of the 18-degree step
#: normalisation constants (uint8 scale) shared by every split: the data are generated, so these
#: are properties of the generator, not statistics of one split.
MEAN, STD = 127.5, 45.0


@dataclass(frozen=True)
class GratingsSpec:
    """The generator's settings (one per registered dataset)."""

    num_classes: int = NUM_CLASSES
    period: tuple[float, float] = PERIOD
    contrast: tuple[float, float] = CONTRAST
    ratio: tuple[float, float] = RATIO
    noise: float = NOISE_STD


SPECS = {"gratings": GratingsSpec(),
         "gratings-fine": GratingsSpec(num_classes=40, period=(2.4, 16.0), contrast=(0.2, 0.5),
                                       ratio=(0.0, 0.4), noise=0.04)}


def _grating(xx: np.ndarray, yy: np.ndarray, theta: np.ndarray, period: np.ndarray,
             phase: np.ndarray) -> np.ndarray:
    """cos gratings, one per image: orientation ``theta`` (rad), ``period`` (px), ``phase``."""
    col = lambda a: np.asarray(a, dtype=np.float32)[:, None, None]  # noqa: E731
    k = np.float32(2 * np.pi) / col(period)
    return np.cos(k * (xx * col(np.cos(theta)) + yy * col(np.sin(theta))) + col(phase))


def generate(n: int, *, resolution: int, seed: int, split_id: int, noise: float | None = None,
             spec: GratingsSpec | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images (uint8, N x 3 x R x R) and labels (int64) of one split; deterministic.

    Images are drawn in chunks of ``CHUNK``, chunk ``c`` from its own generator seeded with
    ``SeedSequence([GRATINGS_SEED, seed, split_id, c])``: image ``i`` does not depend on ``n``.
    """
    res = int(resolution)
    spec = spec or SPECS["gratings"]
    imgs = np.empty((n, 3, res, res), dtype=np.uint8)
    labels = np.empty(n, dtype=np.int64)
    for c, start in enumerate(range(0, n, CHUNK)):
        stop = min(n, start + CHUNK)
        rng = np.random.default_rng(np.random.SeedSequence([GRATINGS_SEED, int(seed), int(split_id), c]))
        # every chunk is drawn in full (the last one cut), so image i never depends on n
        x, y = _chunk(rng, CHUNK, res, spec.noise if noise is None else noise, spec)
        imgs[start:stop], labels[start:stop] = x[: stop - start], y[: stop - start]
    return imgs, labels


def _chunk(rng: np.random.Generator, n: int, res: int, noise: float,
           spec: GratingsSpec) -> tuple[np.ndarray, np.ndarray]:
    f32 = np.float32
    nc = spec.num_classes
    labels = rng.integers(0, nc, n)
    col = lambda a: np.asarray(a, dtype=f32)[:, None, None]  # noqa: E731  (per image -> (N,1,1))
    yy, xx = np.meshgrid(np.arange(res, dtype=f32), np.arange(res, dtype=f32), indexing="ij")
    u = lambda lo, hi: rng.uniform(lo, hi, n)  # noqa: E731
    img = np.empty((n, 3, res, res), dtype=f32)
    img[:] = col(u(0.35, 0.65))[:, None]
    step = np.pi / nc
    # the class's grating: orientation k * 18 deg (+- jitter), period log-uniform from near the
    # pixel scale to half the image, contrast from faint to clear
    period = np.exp(u(np.log(spec.period[0]), np.log(spec.period[1] * res / 16)))
    c1 = u(*spec.contrast)
    g1 = _grating(xx, yy, labels * step + u(-JITTER, JITTER) * step, period, u(0, 2 * np.pi))
    # a competing grating of another orientation and period, weaker by a random ratio
    other = (labels + rng.integers(1, nc, n)) % nc
    period2 = np.exp(u(np.log(spec.period[0]), np.log(spec.period[1] * res / 16)))
    g2 = _grating(xx, yy, other * step + u(-JITTER, JITTER) * step, period2, u(0, 2 * np.pi))
    tint1, tint2 = rng.uniform(0.6, 1.0, (2, n, 3)).astype(f32)
    img += (tint1 * c1[:, None].astype(f32))[:, :, None, None] * g1[:, None]
    img += (tint2 * (c1 * u(*spec.ratio))[:, None].astype(f32))[:, :, None, None] * g2[:, None]
    img += rng.standard_normal((n, 1, res, res), dtype=f32) * f32(noise)  # grey noise
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8), labels.astype(np.int64)


class _GratingSource:
    """Normalised float images held in memory; ``source[i]`` -> (tensor C x R x R, label)."""

    def __init__(self, images: torch.Tensor, labels: list[int]) -> None:
        self.images, self.targets = images, labels

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], self.targets[i]


def _split(n: int, seed: int, split_id: int, resolution: int, in_channels: int,
           spec: GratingsSpec) -> _GratingSource:
    imgs, labels = generate(n, resolution=resolution, seed=seed, split_id=split_id, spec=spec)
    x = (torch.from_numpy(imgs).float() - MEAN) / STD
    if in_channels != 3:  # grey (the mean of the channels), repeated to in_channels
        x = x.mean(dim=1, keepdim=True).expand(-1, in_channels, -1, -1)
    return _GratingSource(x.contiguous(), labels.tolist())


def parse_test_arg(name: str, arg: str | None) -> int:
    """The test-split size of ``name[:test=N]`` (the default without an argument)."""
    if arg is None:
        return SIZES["test"]
    key, _, value = arg.partition("=")
    lo, hi = TEST_RANGE
    try:
        n = int(value) if key.strip() == "test" else None
    except ValueError:
        n = None
    if n is None or not lo <= n <= hi:
        raise HwnasError(f"dataset {name!r} takes no ':' argument other than test=N (N test images, "
                         f"an integer {lo}-{hi}); got {name}:{arg}")
    return n


def _build(name: str, resolution: int, in_channels: int, split_seed: int,
           arg: str | None = None) -> DataSplits:
    spec = SPECS[name]
    sizes = dict(SIZES, test=parse_test_arg(name, arg))
    parts = {split: _split(n, split_seed, k, resolution, in_channels, spec)
             for k, (split, n) in enumerate(sizes.items())}

    def split(key: str) -> ImageSplit:
        src = parts[key]
        return ImageSplit(src, range(len(src)), None, src.targets)

    step = 180 / spec.num_classes
    return DataSplits(name=name if arg is None else f"{name}:{arg}", num_classes=spec.num_classes, resolution=resolution,
                      in_channels=in_channels, train=split("train"), train_clean=split("train"),
                      search_val=split("search_val"), test=split("test"),
                      class_names=tuple(f"{step * k:g}deg" for k in range(spec.num_classes)),
                      mean=(MEAN / 255.0,) * in_channels, std=(STD / 255.0,) * in_channels)


@register_dataset("gratings", test_arg="test=N")
def build_gratings(*, resolution: int, in_channels: int, root: Path | None, download: bool,
                   split_seed: int, arg: str | None) -> DataSplits:
    return _build("gratings", resolution, in_channels, split_seed, arg)


@register_dataset("gratings-fine", test_arg="test=N")
def build_gratings_fine(*, resolution: int, in_channels: int, root: Path | None, download: bool,
                        split_seed: int, arg: str | None) -> DataSplits:
    return _build("gratings-fine", resolution, in_channels, split_seed, arg)
