"""Ground-truth files: stand-alone accuracies of a fixed set of subnets, the yardstick of a ranking.

A ground truth is one JSON file (``format: hwnas-ground-truth``, ``format_version`` 1) holding:

* ``space``: the space's settings (:meth:`SearchSpace.config`: name, width, resolution, classes);
* ``data``: dataset name, split seed, the split the accuracies were measured on and its size;
* ``recipe``: the :class:`~hwnas.ranking.standalone.StandaloneRecipe` every subnet was trained with;
* ``seeds``: the training seeds (replica ``k`` of subnet ``i`` trains with ``seeds[k] * 1000 + i``);
* ``sample``: how the subnets were chosen (spread evenly over the MACs range, seeded);
* ``subnets``: per subnet its genes, MACs, params and per-seed top-1 / loss / training seconds;
* ``summary``: the seed-to-seed correlations (the noise ceiling no supernet can beat), the MACs
  baseline, the accuracy range, total wall time; ``versions`` and ``created``.

:func:`build_ground_truth` trains the subnets one after the other and appends every finished
training to ``<out>.partial.jsonl``, so an interrupted build resumes where it stopped;
:func:`load_ground_truth` validates a file and :meth:`GroundTruth.check_compatible` refuses a
checkpoint of another space, width, resolution or dataset.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.errors import HwnasError
from hwnas.io import atomic_write_json
from hwnas.ranking.metrics import correlations
from hwnas.ranking.standalone import StandaloneRecipe
from hwnas.spaces.registry import read_space_config

FORMAT = "hwnas-ground-truth"
FORMAT_VERSION = 1
#: the space settings a supernet must share with a ground truth to be scored against it
MATCH_KEYS = ("name", "width", "resolution", "num_classes", "in_channels", "layout")
#: what to do with a ground truth of a space this hwnas builds differently (an old ``mbv2`` layout)
TRUTH_REMEDY = "its subnets are other networks now; build it again with tools/rank_truth.py"
#: replica k of subnet i trains with seed ``seeds[k] * SEED_STRIDE + i``
SEED_STRIDE = 1000
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "ground_truth"


@dataclass(frozen=True)
class TruthEntry:
    """One subnet: its genes, costs and one result per training seed."""

    genes: tuple[int, ...]
    macs: int
    params: int
    top1: tuple[float, ...]
    loss: tuple[float, ...]
    seconds: tuple[float, ...]

    @property
    def mean_top1(self) -> float:
        return float(np.mean(self.top1))

    def to_dict(self) -> dict[str, Any]:
        return {"genes": list(self.genes), "macs": self.macs, "params": self.params,
                "top1": list(self.top1), "loss": list(self.loss), "seconds": list(self.seconds)}


@dataclass(frozen=True)
class GroundTruth:
    space: dict[str, Any]
    data: dict[str, Any]
    recipe: StandaloneRecipe
    seeds: tuple[int, ...]
    sample: dict[str, Any]
    subnets: tuple[TruthEntry, ...]
    versions: dict[str, str]
    created: str
    path: Path | None = None

    # ---- figures ---------------------------------------------------------------------------
    def top1(self) -> np.ndarray:
        """Mean top-1 over seeds, one per subnet (the ground truth a supernet is scored against)."""
        return np.array([e.mean_top1 for e in self.subnets])

    def macs(self) -> np.ndarray:
        return np.array([e.macs for e in self.subnets], dtype=np.float64)

    def seed_to_seed(self) -> dict[str, float | None]:
        """Correlations between the first two seeds' accuracies (the noise ceiling)."""
        if len(self.seeds) < 2:
            return {"kendall": None, "spearman": None, "pearson": None}
        a = np.array([e.top1[0] for e in self.subnets])
        b = np.array([e.top1[1] for e in self.subnets])
        return correlations(a, b)

    def macs_baseline(self) -> dict[str, float | None]:
        """Correlations of MACs alone with the ground truth (the free proxy to beat)."""
        return correlations(self.macs(), self.top1())

    def summary(self) -> dict[str, Any]:
        t = self.top1()
        return {"n": len(self.subnets), "seed_to_seed": self.seed_to_seed(),
                "macs_baseline": self.macs_baseline(),
                "top1_min": float(t.min()), "top1_max": float(t.max()),
                "top1_range_points": float(100 * (t.max() - t.min())),
                "test_images": int(self.data.get("images", 0)),
                "wall_seconds": float(sum(sum(e.seconds) for e in self.subnets))}

    def describe(self) -> str:
        s = self.space
        return (f"{s.get('name')} width {s.get('width')} resolution {s.get('resolution')} "
                f"on {self.data.get('name')}")

    # ---- compatibility ---------------------------------------------------------------------
    def check_compatible(self, space_config: dict[str, Any], data_name: str, split_seed: int,
                         source: str) -> None:
        """Raise a one-line HwnasError when ``source`` (a checkpoint) has another space or data."""
        where = self.path or "the ground truth"
        for key in MATCH_KEYS:
            a, b = self.space.get(key), space_config.get(key)
            if key == "in_channels":
                a, b = a or 3, b or 3
            if a != b:
                raise HwnasError(
                    f"ground truth {where} is for {self.describe()} ({key} {a!r}); {source} has "
                    f"{key} {b!r}: score a supernet of the same space, width, resolution and dataset, "
                    f"or build a ground truth for it with tools/rank_truth.py")
        from hwnas.data.registry import training_identity

        # a ground truth measured on a larger test split (gratings-fine:test=N) fits supernets
        # trained on the plain dataset: the option changes only the test images
        if training_identity(str(data_name)) != training_identity(str(self.data.get("name"))):
            raise HwnasError(
                f"ground truth {where} is for {self.describe()}; {source} was trained on "
                f"{data_name!r}: score a supernet trained on {self.data.get('name')!r}, or build a "
                f"ground truth for it with tools/rank_truth.py")
        if int(split_seed) != int(self.data.get("split_seed", 0)):
            raise HwnasError(
                f"ground truth {where} was measured on split seed {self.data.get('split_seed', 0)}; "
                f"{source} used split seed {split_seed} (other images): retrain with the same split seed")

    # ---- (de)serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "space": self.space,
                "data": self.data, "recipe": self.recipe.to_dict(), "seeds": list(self.seeds),
                "sample": self.sample, "subnets": [e.to_dict() for e in self.subnets],
                "summary": self.summary(), "versions": self.versions, "created": self.created}

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, self.to_dict())


def resolve_truth_path(spec: str | Path) -> Path:
    """A file path, or the name of a shipped ground truth (``hwnas/ground_truth/NAME.json``)."""
    p = Path(spec)
    if p.is_file():
        return p
    shipped = SHIPPED_DIR / f"{spec}.json"
    if shipped.is_file():
        return shipped
    names = ", ".join(shipped_names()) or "none"
    raise HwnasError(f"ground truth {spec!r} is neither a file nor a shipped ground truth "
                     f"(shipped: {names})")


def shipped_names() -> list[str]:
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.json")) if SHIPPED_DIR.is_dir() else []


def load_ground_truth(spec: str | Path) -> GroundTruth:
    """Read and validate a ground-truth file (path or shipped name); one-line errors naming the key."""
    path = resolve_truth_path(spec)
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise HwnasError(f"cannot read ground truth {path}: {exc}") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise HwnasError(f"{path} is not a ground-truth file (format must be {FORMAT!r})")
    if d.get("format_version") != FORMAT_VERSION:
        raise HwnasError(f"ground truth {path} has format_version {d.get('format_version')!r}; "
                         f"this hwnas reads {FORMAT_VERSION}")
    try:
        seeds = tuple(int(s) for s in d["seeds"])
        entries = []
        for i, e in enumerate(d["subnets"]):
            entry = TruthEntry(tuple(int(g) for g in e["genes"]), int(e["macs"]), int(e["params"]),
                               tuple(float(v) for v in e["top1"]), tuple(float(v) for v in e["loss"]),
                               tuple(float(v) for v in e["seconds"]))
            if not (len(entry.top1) == len(entry.loss) == len(entry.seconds) == len(seeds)):
                raise HwnasError(f"ground truth {path}: subnets[{i}] has {len(entry.top1)} results "
                                 f"for {len(seeds)} seeds")
            if not all(0.0 <= v <= 1.0 for v in entry.top1):
                raise HwnasError(f"ground truth {path}: subnets[{i}].top1 must lie in [0, 1]")
            entries.append(entry)
        gt = GroundTruth(space=read_space_config(d["space"], f"ground truth {path}", TRUTH_REMEDY),
                         data=dict(d["data"]),
                         recipe=StandaloneRecipe.from_dict(d["recipe"]), seeds=seeds,
                         sample=dict(d.get("sample", {})), subnets=tuple(entries),
                         versions=dict(d.get("versions", {})), created=str(d.get("created", "")),
                         path=path)
    except KeyError as exc:
        raise HwnasError(f"ground truth {path} lacks key {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise HwnasError(f"ground truth {path} has a malformed value: {exc}") from None
    if len(gt.subnets) < 2:
        raise HwnasError(f"ground truth {path} holds {len(gt.subnets)} subnet(s); at least 2 are needed")
    from hwnas.spaces.registry import space_from_config

    space = space_from_config(gt.space, f"ground truth {path}", TRUTH_REMEDY)
    for i, e in enumerate(gt.subnets):
        try:
            space.validate(e.genes)
        except HwnasError as exc:
            raise HwnasError(f"ground truth {path}: subnets[{i}]: {exc}") from None
    return gt


def _same_key(stored: Any, key: str) -> bool:
    """A partial-file record's key is this build's: equal once its space config is read as this
    hwnas reads it (records written before ``layout`` was stamped still count where the network
    is the same)."""
    if stored == key:
        return True
    try:
        d = json.loads(stored)
        d["space"] = read_space_config(d["space"])
    except (HwnasError, TypeError, ValueError, KeyError):
        return False
    return json.dumps(d, sort_keys=True) == key


def build_ground_truth(space_name: str, *, width: float, resolution: int, data: str = "gratings",
                       n: int = 30, seeds: Sequence[int] = (0, 1), recipe: StandaloneRecipe | None = None,
                       out: str | Path, sample_seed: int = 0, split: str = "test", split_seed: int = 0,
                       stride: int = 1, device: str = "cpu",
                       log: Callable[[str], None] | None = None) -> GroundTruth:
    """Train ``n`` subnets spread over the MACs range once per seed and write the ground truth.

    Every finished training is appended to ``<out>.partial.jsonl`` (keyed by genes, seed and
    recipe); a rerun with the same settings skips them, so an interrupted build resumes.
    ``stride`` > 1 keeps every ``stride``-th of the ``n`` spread subnets (the whole MACs range at
    a fraction of the cost); a later build with ``stride`` 1 and the same partial file trains only
    the others.
    """
    import torch

    from hwnas.checkpoint import version_stamp
    from hwnas.cost import CostModel
    from hwnas.data import load_data, take_batches
    from hwnas.ranking.sample import spread_sample
    from hwnas.ranking.standalone import train_subnet
    from hwnas.spaces import create_space
    from hwnas.train.evaluate import evaluate_model

    recipe = recipe or StandaloneRecipe()
    if n < 2:
        raise HwnasError(f"--n must be >= 2 to rank subnets, got {n}")
    if stride < 1:
        raise HwnasError(f"--stride must be >= 1, got {stride}")
    if len(seeds) < 1 or len(set(seeds)) != len(seeds):
        raise HwnasError(f"--seeds must be distinct integers, got {list(seeds)}")
    log = log or (lambda msg: None)
    out = Path(out)
    splits = load_data(data, resolution=resolution, split_seed=split_seed)
    space = create_space(space_name, width=width, resolution=resolution, num_classes=splits.num_classes,
                         in_channels=splits.in_channels)
    archs = spread_sample(space, n, np.random.default_rng(sample_seed))[::stride]
    if len(archs) < 2:
        raise HwnasError(f"--n {n} with --stride {stride} leaves {len(archs)} subnet(s); at least 2 are needed")
    costs = CostModel(space)(np.array(archs))
    eval_batches = take_batches(splits.split(split), 500)
    key = json.dumps({"space": space.config(), "data": data, "split": split, "split_seed": split_seed,
                      "recipe": recipe.to_dict()}, sort_keys=True)
    partial = out.with_name(out.name + ".partial.jsonl")
    done: dict[tuple[tuple[int, ...], int], dict[str, Any]] = {}
    if partial.exists():
        for line in partial.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a line cut off by a crash
            if _same_key(rec.get("key"), key):
                done[tuple(rec["genes"]), int(rec["seed"])] = rec
    dev = torch.device(device)
    total = len(archs) * len(seeds)
    for i, g in enumerate(archs):
        for seed in seeds:
            if (g, seed) in done:
                continue
            t0 = time.perf_counter()
            model = train_subnet(space, g, splits, recipe, seed=seed * SEED_STRIDE + i, device=dev)
            res = evaluate_model(model, eval_batches, dev)
            rec = {"key": key, "genes": list(g), "seed": seed, "top1": res.top1, "loss": res.loss,
                   "seconds": round(time.perf_counter() - t0, 2)}
            partial.parent.mkdir(parents=True, exist_ok=True)
            with open(partial, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(rec) + "\n")
            done[g, seed] = rec
            log(f"[{sum((a, s) in done for a in archs for s in seeds)}/{total}] subnet {i} seed {seed}: top-1 {100 * res.top1:.2f} % "
                f"({int(costs['macs'][i]) / 1e6:.2f} MMACs, {rec['seconds']:.1f} s)")
    entries = tuple(
        TruthEntry(g, int(costs["macs"][i]), int(costs["params"][i]),
                   tuple(float(done[g, s]["top1"]) for s in seeds),
                   tuple(float(done[g, s]["loss"]) for s in seeds),
                   tuple(float(done[g, s]["seconds"]) for s in seeds))
        for i, g in enumerate(archs))
    gt = GroundTruth(space=space.config(),
                     data={"name": data, "split_seed": split_seed, "split": split,
                           "images": len(splits.split(split)), "sizes": splits.sizes()},
                     recipe=recipe, seeds=tuple(int(s) for s in seeds),
                     sample={"method": "spread", "n": n, "stride": stride, "seed": sample_seed},
                     subnets=entries,
                     versions=version_stamp(),
                     created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), path=out)
    gt.save(out)
    return gt

