"""A search from its settings: what ``hwnas search`` does before it runs, as one library call.

:func:`build_problem` turns the settings of a search (a supernet checkpoint or a bare space,
objective names, budgets, the device whose latency table predicts latency) into an
:class:`~hwnas.search.problem.ArchProblem`, the initial population (the checkpoint's GreedyNAS
candidate pool) and the settings stamped into the result files. :func:`checkpoint_error_objective`
is its accuracy objective: top-1 error with inherited weights on the held-out ``search-val`` split.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.errors import HwnasError
from hwnas.search.objectives import Objective
from hwnas.search.problem import ArchProblem

#: training batches for BN recalibration of each subnet (SPOS recalibrates on a random subset of
#: the training images).
DEFAULT_CALIB_BATCHES = 20


@dataclass(frozen=True)
class SearchSetup:
    """What :func:`~hwnas.search.run.run_search` needs: the problem, its initial population (or
    ``None``) and the settings to stamp into the result files."""

    problem: ArchProblem
    initial: np.ndarray | None = None
    settings: dict[str, Any] = field(default_factory=dict)


def default_objectives(*, checkpoint: bool, device: bool) -> list[str]:
    """``error,latency`` with a device, else ``error,macs``; without a supernet the error objective
    is unavailable: ``latency,macs`` with a device, else ``macs,params``."""
    second = "latency" if device else "macs"
    if checkpoint:
        return ["error", second]
    return [second, "macs" if device else "params"]


def checkpoint_error_objective(supernet: Any, ckpt: Mapping[str, Any], checkpoint: str | Path, *,
                               data: str | None = None, data_root: str | None = None,
                               eval_batches: int | None = None,
                               calib_batches: int = DEFAULT_CALIB_BATCHES, batch_size: int = 256,
                               device: str | None = None) -> Objective:
    """Top-1 error (%) on the ``search-val`` split (held out of supernet training) after BN
    recalibration on a fixed random subset of the clean training images (SPOS Sec. 3, "Evolutionary
    Architecture Search": BN statistics are recalculated before each candidate is evaluated).

    The data come from the training stage's own evaluation path
    (:func:`hwnas.train.evaluate.eval_data`): the training run's dataset unless ``data`` overrides
    it, ``digits`` for a supernet checkpoint without a training config; at most ``eval_batches``
    batches of ``batch_size`` images.
    """
    from hwnas.search.objectives import error_objective

    try:
        from hwnas.train.distributed import resolve_device
        from hwnas.train.evaluate import SubnetEvaluator, eval_data
    except ImportError as exc:
        raise HwnasError(f"the error objective needs the training and data modules: {exc}") from None
    max_images = None if eval_batches is None else eval_batches * batch_size
    eval_b, calib_b = eval_data(dict(ckpt), checkpoint, split="search-val", batch_size=batch_size,
                                calib_batches=calib_batches, data_root=data_root, max_images=max_images,
                                data=data)
    dev = resolve_device(device)
    return error_objective(SubnetEvaluator(supernet.to(dev), eval_b, calib_b, dev))


def build_problem(*, checkpoint: str | Path | None = None, space: str | None = None,
                  width: float | None = None, resolution: int | None = None,
                  num_classes: int | None = None, device: str | None = None, runtime: str = "tflite",
                  tables_dir: str | Path | None = None, precision: str | None = None,
                  predictor: str | None = None, objectives: str | Sequence[str] | None = None,
                  budgets: Mapping[str, float | None] | None = None, use_pool: bool = True,
                  data: str | None = None, data_root: str | None = None, eval_batches: int | None = None,
                  calib_batches: int = DEFAULT_CALIB_BATCHES, batch_size: int = 256,
                  eval_device: str | None = None, adapt: bool = False,
                  on_adapt: Callable[[Any], None] | None = None) -> SearchSetup:
    """The search ``hwnas search`` runs, from the same settings (see its ``--help``).

    ``checkpoint`` (a supernet) or ``space`` (cost / latency objectives only) says what is
    searched; ``objectives`` are metric names (``error``, ``latency``, ``macs``, ``params``,
    ``bitops``, ``searched_bitops``, ``flops``, ``peak_act_bytes``; a list or comma-separated, by
    default :func:`default_objectives`); ``budgets`` maps metric names to upper bounds
    (``{"latency": 20.0, "searched_bitops": 6.5e9}``); ``device`` / ``runtime`` / ``precision`` /
    ``tables_dir`` locate the latency table, and ``predictor`` names a stored latency predictor
    of that device (``hwnas lut fit``) to use instead of the table's calibrated sum; ``adapt``
    adapts a host table measured on another computer to this one first
    (:mod:`hwnas.latency.adapt`, ``on_adapt`` receives what it did). The remaining settings configure the error objective
    (:func:`checkpoint_error_objective`).
    """
    from hwnas.cost import CostModel
    from hwnas.search.algorithms import initial_from_checkpoint
    from hwnas.search.objectives import load_latency_predictor
    from hwnas.search.problem import problem_from_names
    from hwnas.spaces import create_space

    budgets = dict(budgets or {})
    if checkpoint is None and space is None:
        raise HwnasError("pass --checkpoint (a supernet) or --space (cost / latency objectives only)")
    if budgets.get("latency") is not None and device is None:
        raise HwnasError("--max-latency-ms needs --device: the latency table of which device?")
    if predictor is not None and device is None:
        raise HwnasError("--predictor needs --device: the latency predictor of which device?")
    if objectives is None:
        names = default_objectives(checkpoint=checkpoint is not None, device=device is not None)
    elif isinstance(objectives, str):
        names = [n.strip() for n in objectives.split(",") if n.strip()]
    else:
        names = [str(n) for n in objectives]
    if len(set(names)) != len(names):
        raise HwnasError(f"--objectives {','.join(names)!r} names a metric twice")
    if "latency" in names and device is None:
        raise HwnasError("the latency objective needs --device (the latency table of which device?)")
    if predictor is not None and "latency" not in names and budgets.get("latency") is None:
        raise HwnasError(f"--predictor {predictor} predicts latency, which this search neither minimises "
                         f"nor bounds: add latency to --objectives or give --max-latency-ms")

    supernet = ckpt = None
    if checkpoint is not None:
        from hwnas.models import supernet_from_checkpoint

        supernet, ckpt = supernet_from_checkpoint(checkpoint, space_name=space)
        sp = supernet.space
    else:
        sp = create_space(space, width=width, resolution=resolution, num_classes=num_classes)
    cm = CostModel(sp)
    latency = None
    if device is not None and ("latency" in names or budgets.get("latency") is not None):
        latency = load_latency_predictor(device, sp, runtime, tables_dir, precision, predictor,
                                         adapt=adapt, on_adapt=on_adapt)
    error = None
    settings: dict[str, Any] = {
        "checkpoint": None if checkpoint is None else str(Path(checkpoint).resolve()),
        "device": device, "runtime": runtime if device else None,
        "precision": (precision or "fp32") if device else None}
    if predictor is not None:
        settings["predictor"] = predictor
    if "error" in names:
        if supernet is None:
            raise HwnasError("the error objective needs --checkpoint (a trained supernet)")
        error = checkpoint_error_objective(supernet, ckpt, checkpoint, data=data, data_root=data_root,
                                           eval_batches=eval_batches, calib_batches=calib_batches,
                                           batch_size=batch_size, device=eval_device)
        settings["evaluation"] = {"data": data, "data_root": data_root, "eval_batches": eval_batches,
                                  "calib_batches": calib_batches, "batch_size": batch_size}
    problem = problem_from_names(sp, names, budgets, latency=latency, error=error, cost_model=cm)
    initial = initial_from_checkpoint(ckpt, sp) if (use_pool and ckpt is not None) else None
    return SearchSetup(problem, initial, settings)
