"""The latency-predictor protocol, its registry and its files.

A latency predictor maps architectures of one space to predicted end-to-end latency (ms) on one
device and runtime. It is fitted on a few subnets measured end to end (:meth:`~LatencyPredictor.fit`),
predicts whole genes matrices at once, and round-trips through JSON (no pickles):
:meth:`~LatencyPredictor.to_json` / :meth:`~LatencyPredictor.from_json`.

``block_additive`` declares that the prediction is an increasing function of a sum of per-block
terms (the calibrated table sum, the non-negative physical model): only then may search take the
exact minimum of :func:`hwnas.search.objectives.metric_minimum` as the cheapest architecture.

Predictors register by name (:func:`register_predictor`), as spaces, strategies and runtimes do;
:func:`create_predictor` builds one. A fitted predictor is stored as
``<tables>/<device>/<space>-<runtime>.<space@wXrY>.predictor.<name>.json`` next to the device's
table (:func:`predictor_path`), stamped with device, runtime, precision, space config, versions and
the measurements it was fitted on; :func:`load_predictor` reads it back and refuses a file of
another space or device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from hwnas.errors import HwnasError
from hwnas.spaces.base import SearchSpace

FORMAT = "hwnas.latency_predictor"
FORMAT_VERSION = 1


@dataclass
class PredictorContext:
    """What a predictor is fitted and used for: the space, the device's latency table (``None``
    where the device has none: predictors with ``needs_table`` are then unavailable), device name,
    runtime and precision."""

    space: SearchSpace
    device: str
    runtime: str = "tflite"
    precision: str = "fp32"
    table: Any = None
    _features: Any = field(default=None, init=False, repr=False)
    _table_sum: Any = field(default=None, init=False, repr=False)

    def features(self):
        """The space's :class:`~hwnas.latency.predictors.features.SubnetFeatures` (built once)."""
        if self._features is None:
            from hwnas.latency.predictors.features import SubnetFeatures

            self._features = SubnetFeatures(self.space)
        return self._features

    def table_sum(self):
        """The uncalibrated table sum of the device's table (:class:`hwnas.latency.predict.LatencyPredictor`)."""
        if self.table is None:
            raise HwnasError(f"device {self.device!r} has no latency table for space {self.space.name!r} "
                             f"({self.runtime}); the table-sum and hybrid predictors need one")
        if self._table_sum is None:
            from hwnas.latency.predict import LatencyPredictor as TableSum

            self._table_sum = TableSum(self.table, self.space, calibrated=False)
        return self._table_sum


@runtime_checkable
class LatencyPredictor(Protocol):
    """Predicted end-to-end latency (ms) of architectures of one space on one device."""

    #: registry name
    name: ClassVar[str]
    #: an increasing function of a sum of per-block terms (search may take exact minima)
    block_additive: ClassVar[bool]
    #: needs the device's latency table
    needs_table: ClassVar[bool]
    #: fewest measured subnets it fits on
    min_fit: ClassVar[int]

    def fit(self, genes_list: Sequence[Sequence[int]], latency_ms: Sequence[float],
            context: PredictorContext) -> None: ...

    def predict(self, genes: Any) -> np.ndarray: ...

    def to_json(self) -> dict[str, Any]: ...

    @classmethod
    def from_json(cls, d: dict[str, Any], context: PredictorContext) -> LatencyPredictor: ...


# ---- registry ----------------------------------------------------------------------------------
_PREDICTORS: dict[str, type] = {}
#: listed first, in this order (plug-ins follow in registration order)
BUILTIN = ("table-sum", "physical", "gbdt-genes", "gbdt-features", "mlp-genes", "mlp-features", "hybrid")


def register_predictor(cls: type) -> type:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    _PREDICTORS[cls.name] = cls
    return cls


def predictor_names() -> list[str]:
    _load_builtin()
    return [n for n in BUILTIN if n in _PREDICTORS] + [n for n in _PREDICTORS if n not in BUILTIN]


def predictor_class(name: str) -> type:
    _load_builtin()
    cls = _PREDICTORS.get(name)
    if cls is None:
        raise HwnasError(f"unknown latency predictor {name!r}; allowed: {', '.join(predictor_names())}")
    return cls


def create_predictor(name: str, **options: Any) -> LatencyPredictor:
    """An unfitted predictor ``name`` (options go to its constructor)."""
    return predictor_class(name)(**options)


def parse_predictor_names(text: str | Sequence[str] | None, option: str = "--predictors") -> list[str]:
    """Names from a comma-separated list (every predictor when ``None``), each checked."""
    if text is None:
        return predictor_names()
    names = [n.strip() for n in text.split(",")] if isinstance(text, str) else [str(n) for n in text]
    names = [n for n in names if n]
    if not names:
        raise HwnasError(f"{option} is empty; allowed: {', '.join(predictor_names())}")
    for n in names:
        if n not in predictor_names():
            raise HwnasError(f"{option}: unknown latency predictor {n!r}; allowed: {', '.join(predictor_names())}")
    return list(dict.fromkeys(names))


def _load_builtin() -> None:
    from hwnas.latency.predictors import builtin  # noqa: F401  (registers)


# ---- files -------------------------------------------------------------------------------------
def predictor_path(device: str, space: SearchSpace, runtime: str, name: str,
                   root: str | Path | None = None, precision: str | None = None) -> Path:
    """Where predictor ``name`` of ``device`` / ``runtime`` / ``precision`` for ``space`` lives:
    next to where the device's table is written (under ``root``, by default your tables folder)."""
    from hwnas.latency.table import space_tag, table_path

    t = table_path(device, space.name, runtime, root, precision)
    return t.with_name(f"{t.stem}.{space_tag(space)}.predictor.{name}.json")


def predictor_document(pred: LatencyPredictor, context: PredictorContext,
                       genes_list: Sequence[Sequence[int]], latency_ms: Sequence[float],
                       source: str, fingerprint: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON document of a fitted predictor with its stamps and fit measurements (and the
    fingerprint of the machine that took them, None when unknown: a CSV)."""
    from hwnas.latency.table import now_iso

    doc: dict[str, Any] = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "predictor": pred.name,
        "block_additive": bool(pred.block_additive), "device": context.device,
        "runtime": context.runtime, "precision": context.precision, "space": context.space.config(),
        "versions": versions(), "created": now_iso(),
        "fitted_on": {"source": source, "n": len(latency_ms),
                      "genes": [[int(v) for v in g] for g in genes_list],
                      "latency_ms": [float(v) for v in latency_ms], "fingerprint": fingerprint},
        "model": pred.to_json(),
    }
    if pred.needs_table and context.table is not None:
        doc["table"] = {"path": str(context.table.path), "updated": context.table.metadata.get("updated"),
                        "fingerprint": context.table.metadata.get("fingerprint")}
    return doc


def versions() -> dict[str, str]:
    """hwnas, scikit-learn, scipy, numpy and Python versions (read from package metadata: stamping
    a table-sum predictor does not import scikit-learn)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from hwnas import __version__

    out = {"hwnas": __version__, "numpy": np.__version__, "python": platform.python_version()}
    for key, dist in (("sklearn", "scikit-learn"), ("scipy", "scipy")):
        try:
            out[key] = version(dist)
        except PackageNotFoundError:
            out[key] = "not installed"
    return out


def save_predictor(path: str | Path, doc: dict[str, Any]) -> Path:
    from hwnas.io import atomic_write_json

    return atomic_write_json(path, doc, indent=None)


@dataclass
class StoredPredictor:
    """A predictor read from its file: callable on genes matrices (a search objective), with its
    stamps."""

    predictor: LatencyPredictor
    doc: dict[str, Any]
    path: Path | None = None

    @property
    def name(self) -> str:
        return self.predictor.name

    @property
    def block_additive(self) -> bool:
        return bool(self.predictor.block_additive)

    def fitted_genes(self) -> list[tuple[int, ...]]:
        return [tuple(int(v) for v in g) for g in self.doc["fitted_on"]["genes"]]

    def __call__(self, genes_matrix: Any) -> np.ndarray:
        return np.asarray(self.predictor.predict(genes_matrix), dtype=np.float64).reshape(-1)


def predictor_from_document(doc: Any, context: PredictorContext, where: str) -> StoredPredictor:
    """Check a predictor document against ``context`` (format, space, device, runtime) and build it."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise HwnasError(f"{where} is not a latency-predictor file (no format={FORMAT!r} entry)")
    if not isinstance(doc.get("format_version"), int) or doc["format_version"] > FORMAT_VERSION:
        raise HwnasError(f"{where} has format version {doc.get('format_version')!r}; this hwnas reads "
                         f"up to {FORMAT_VERSION}")
    for key in ("predictor", "device", "runtime", "space", "model", "fitted_on"):
        if key not in doc:
            raise HwnasError(f"{where} lacks the {key!r} entry")
    from hwnas.spaces.registry import read_space_config

    doc = {**doc, "space": read_space_config(doc["space"], where, "fit it again with `hwnas lut fit`")}
    if doc["space"] != context.space.config():
        raise HwnasError(f"{where} was fitted on space {_space_text(doc['space'])}, not on "
                         f"{_space_text(context.space.config())}; fit one with `hwnas lut fit`")
    if doc["device"] != context.device:
        raise HwnasError(f"{where} was fitted on device {doc['device']!r}, not on {context.device!r}")
    if (doc["runtime"], doc.get("precision", "fp32")) != (context.runtime, context.precision):
        raise HwnasError(f"{where} was fitted for runtime {doc['runtime']} {doc.get('precision', 'fp32')}, "
                         f"not {context.runtime} {context.precision}")
    cls = predictor_class(str(doc["predictor"]))
    try:
        pred = cls.from_json(doc["model"], context)
    except HwnasError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise HwnasError(f"{where} is damaged: cannot rebuild its {doc['predictor']} model "
                         f"({type(exc).__name__}: {str(exc)[:120]})") from None
    return StoredPredictor(pred, doc)


def _space_text(cfg: Any) -> str:
    if not isinstance(cfg, dict):
        return repr(cfg)
    return " ".join([str(cfg.get("name"))] + [f"{k}={v}" for k, v in cfg.items() if k != "name"])


def load_predictor(path: str | Path, context: PredictorContext) -> StoredPredictor:
    """The stored predictor in ``path``, checked to belong to ``context``'s space, device and runtime."""
    from hwnas.io import read_json

    path = Path(path)
    if not path.exists():
        raise HwnasError(f"latency predictor file {path} does not exist (fit it with `hwnas lut fit "
                         f"--device {context.device} --space {context.space.name} ...`)")
    stored = predictor_from_document(read_json(path, "latency predictor file"), context,
                                     f"latency predictor file {path}")
    stored.path = path
    return stored
