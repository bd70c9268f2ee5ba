"""Latency tables from op-level traces of a few whole subnets (``hwnas profile --method trace``).

Instead of exporting and timing one model per op key (``--method one-op``), a trace profile
measures a handful of whole subnets, chosen by greedy set cover so that together they execute
every key of the space, with the runtime's op profiler on: onnxruntime's profiler on the host
(``SessionOptions.enable_profiling``, one Chrome-trace event per node and run) or
``benchmark_model --enable_op_profiling`` on a device. Each runtime node is mapped back to the
``OpSpec`` it came from by its name: exported subnets are ``hwnas.supernet.Subnet`` modules whose
``ops[i]`` executes ``space.layers(genes)[i]``, and both exporters keep that module path in the
names (ONNX node ``/ops.3/expand_conv/Conv``; TFLite tensor ``hwnas.supernet.Subnet/
hwnas.nn.blocks.MBConv_3/...``), so the mapping is exact. Nodes the runtime inserted itself
(onnxruntime's layout ``ReorderOutput``, the graph output tensor of a TFLite file) count for the
op that consumes them or, at the end, for the last op.

Per-run overhead: the profiler times kernels, not what happens between them, and timing itself
costs a few microseconds per node, so the node times of a subnet do not add up to its end-to-end
latency. Each traced subnet is therefore also measured end to end without the profiler, and
``e2e = sum(node times) + node_overhead * nodes + run_overhead`` is fitted over the traced subnets
(least squares); every op's entry is its node time plus ``node_overhead`` per node, and
``run_overhead`` becomes the table's offset until a calibration on random subnets replaces it.
This follows nn-Meter (Zhang et al. 2021, Sec. 4): kernels are the unit of latency, and what the
kernels do not cover is fitted on whole models.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from hwnas.errors import HwnasError
from hwnas.latency.keys import op_key, space_ops
from hwnas.latency.table import LatencyTable, now_iso, space_tag
from hwnas.spaces.base import SearchSpace

#: profile methods of ``hwnas profile --method`` (auto: :func:`resolve_method`)
METHODS = ("auto", "trace", "one-op")

_ONNX_SCOPE = re.compile(r"^/ops\.(\d+)/")
_TFLITE_SCOPE = re.compile(r"Subnet/[\w.]+?_(\d+)(?=[/;:\]]|$)")
#: smallest entry, as a share of an op's profiled node time, when the fitted overhead is negative
_FLOOR = 0.05


def op_index(name: str) -> int | None:
    """The index in ``space.layers(genes)`` of the op a runtime node belongs to, from the node's
    name (ONNX node name or TFLite output tensor name of an exported ``Subnet``), None when the
    name names no op (a node the runtime inserted, a delegate node)."""
    m = _ONNX_SCOPE.match(name)
    if m:
        return int(m.group(1))
    found = [int(i) for i in _TFLITE_SCOPE.findall(name)]
    # a fused TFLite tensor lists every module it merges; the op executing it is the latest one
    return max(found) if found else None


def resolve_method(method: str, runner: Any, existing: LatencyTable | None = None,
                   max_keys: int | None = None) -> str:
    """``trace`` or ``one-op``: ``auto`` continues an existing table with its own method, measures
    one op per model when ``max_keys`` limits the keys measured now, else traces where the runner
    profiles ops in-process (onnxruntime on the host: the more accurate table on the development
    machine, though not the faster one to build there, see docs/latency.md), else one-op."""
    if method != "auto":
        if method == "trace" and max_keys is not None:
            raise HwnasError("--max-keys limits a one-op profile; a trace profile measures every key "
                             "at once: drop --max-keys or pass --method one-op")
        return method
    if existing is not None and existing.entries:
        return str(existing.metadata.get("method", "one-op"))
    if max_keys is not None:
        return "one-op"
    from hwnas.runners.host import HostRunner

    cls = runner if isinstance(runner, type) else type(runner)  # a runner or its class (--dry-run)
    return "trace" if issubclass(cls, HostRunner) and cls.op_profiling else "one-op"


def cover_subnets(space: SearchSpace, resolution: int | None = None) -> list[tuple[int, ...]]:
    """Few architectures that together execute every op key of ``space`` (greedy set cover).

    Each round builds one subnet block by block, giving every block the option that executes the
    most keys no earlier subnet (and no earlier block of this one) executes; ties go to the
    option with more ops. Keys that composing options could not reach (blocks sharing a depth
    gene) are covered by the option's own reference architecture.
    """
    ops = space_ops(space, resolution)
    uncovered = set(ops)
    for spec in space.fixed_ops(resolution):  # every subnet runs the stem and the head
        uncovered.discard(op_key(spec))
    options: dict[int, list[Any]] = {}
    for opt in space.block_options(resolution):
        options.setdefault(opt.block, []).append(opt)
    ref = list(space.smallest_valid())
    chosen: list[tuple[int, ...]] = []
    first = True
    while uncovered or first:
        first = False
        genes = list(ref)
        want = set(uncovered)
        for b, opts in sorted(options.items()):
            keys = [{op_key(s) for s in o.ops} for o in opts]
            best = max(range(len(opts)), key=lambda j: (len(keys[j] & want), len(opts[j].ops), -j))
            for i, v in zip(space.groups[b].genes, opts[best].values):
                genes[i] = v
            want -= keys[best]
        try:
            arch = tuple(space.validate(genes))
            got = {op_key(s) for s in space.layers(arch, resolution)}
        except HwnasError:
            got = set()
        if not got & uncovered and uncovered:
            # composing failed to reach a key: take the reference architecture of an option with it
            opt = next(o for opts in options.values() for o in opts
                       if {op_key(s) for s in o.ops} & uncovered)
            arch = tuple(space.validate(opt.genes))
            got = {op_key(s) for s in space.layers(arch, resolution)}
        chosen.append(arch)
        uncovered -= got
    return chosen


def subnet_op_times(rows: Sequence[dict[str, Any]], n_ops: int, source: str
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Per op of a subnet (by index in its ``layers()``): profiled node time (ms) and node count.

    ``rows`` are a runner's ``extra["op_profile"]`` rows in execution order. A node whose name
    names no op counts for the op of the next node that names one (onnxruntime's layout
    ``ReorderOutput`` runs for its consumer); trailing ones count for the subnet's last op (the
    TFLite classifier writes the graph output, named ``serving_default_...``)."""
    times = np.zeros(n_ops)
    nodes = np.zeros(n_ops, dtype=int)
    idx = [op_index(str(r.get("name", ""))) for r in rows]
    if not any(i is not None for i in idx):
        kinds = sorted({str(r.get("node_type", "?")) for r in rows})
        raise HwnasError(
            f"{source}: no profiled node names an op of the subnet (node types: {', '.join(kinds[:5])}); "
            f"a delegate that runs the whole graph as one node hides its ops: profile with "
            f"--delegate cpu, or with --method one-op")
    following: list[int] = []  # the op of the next named node (trailing nodes: the last op)
    nxt = n_ops - 1
    for i in reversed(idx):
        nxt = i if i is not None else nxt
        following.append(nxt)
    following.reverse()
    for r, i, j in zip(rows, idx, following):
        i = j if i is None else i
        if not 0 <= i < n_ops:
            raise HwnasError(f"{source}: node {r.get('name')!r} names op {i}, but the subnet has "
                             f"{n_ops} ops (was the file exported from another architecture?)")
        times[i] += float(r["avg_ms"])
        nodes[i] += 1
    return times, nodes


def fit_overheads(e2e: np.ndarray, node_ms: np.ndarray, nodes: np.ndarray) -> tuple[float, float]:
    """``(node_overhead_ms, run_overhead_ms)`` of ``e2e ~ node_ms + node_overhead * nodes +
    run_overhead``, robustly (soft-L1 loss: one subnet traced while the machine was disturbed
    does not move the fit); with fewer than 3 subnets or equal node counts, the run overhead is
    0 and the node overhead the median gap per node."""
    from scipy.optimize import least_squares

    gap = e2e - node_ms
    per_node = float(np.median(gap / np.maximum(nodes, 1)))
    design = np.stack([nodes.astype(float), np.ones_like(gap)], 1)
    if len(gap) >= 3 and np.linalg.matrix_rank(design) == 2:
        scale = max(float(np.median(np.abs(e2e))) * 0.05, 1e-6)
        fit = least_squares(lambda x: design @ x - gap, x0=[per_node, 0.0], loss="soft_l1", f_scale=scale)
        if fit.success and fit.x[1] >= 0:
            return float(fit.x[0]), float(fit.x[1])
    return per_node, 0.0


def trace_entries(space: SearchSpace, subnets: Sequence[tuple[int, ...]], e2e_ms: Sequence[float],
                  rows: Sequence[Sequence[dict[str, Any]]], *, runs: int, resolution: int | None = None,
                  source: str = "op profile") -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Table entries (by key) and the trace summary from the profiled subnets: per subnet its
    end-to-end latency without the profiler and its profiled rows."""
    per_subnet = []
    for genes, r in zip(subnets, rows):
        specs = space.layers(genes, resolution)
        t, n = subnet_op_times(r, len(specs), f"{source} of subnet {'-'.join(map(str, genes))}")
        per_subnet.append((specs, t, n))
    e2e = np.asarray(e2e_ms, dtype=float)
    node_ms = np.array([t.sum() for _, t, _ in per_subnet])
    node_n = np.array([n.sum() for _, _, n in per_subnet])
    per_node, per_run = fit_overheads(e2e, node_ms, node_n)
    values: dict[str, list[tuple[float, float, int]]] = {}
    specs_of: dict[str, Any] = {}
    for specs, t, n in per_subnet:
        for spec, ti, ni in zip(specs, t, n):
            k = op_key(spec)
            values.setdefault(k, []).append((max(ti + per_node * ni, _FLOOR * ti), ti, int(ni)))
            specs_of[k] = spec
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    entries = {}
    for k, vals in values.items():
        v = np.array([x[0] for x in vals])
        entries[k] = {"count": int(runs * len(v)), "mean_ms": float(v.mean()), "median_ms": float(np.median(v)),
                      "std_ms": float(v.std()), "min_ms": float(v.min()), "max_ms": float(v.max()),
                      "op": specs_of[k].op, "method": "trace", "occurrences": len(v),
                      "profiled_ms": float(np.median([x[1] for x in vals])), "nodes": vals[0][2],
                      "measured": stamp}
    summary = {
        "node_overhead_ms": per_node, "run_overhead_ms": per_run,
        "subnets": [{"genes": list(g), "e2e_ms": float(e), "profiled_ms": float(p), "nodes": int(n),
                     "predicted_ms": float(sum(entries[op_key(s)]["median_ms"] for s in specs) + per_run)}
                    for g, e, p, n, (specs, _, _) in zip(subnets, e2e, node_ms, node_n, per_subnet)],
    }
    return entries, summary


def trace_profile(table: LatencyTable, space: SearchSpace, cfg: Any, runner: Any, mcfg: Any, *,
                  cache: Any = None,
                  on_progress: Callable[[str, int, int], None] | None = None) -> LatencyTable:
    """Fill ``table`` with every key of ``space`` from traces of :func:`cover_subnets`.

    Each subnet is measured ``cfg.rounds`` times round-robin, end to end and with the op profiler;
    each keeps its quietest round of each (the lowest end-to-end median; the profiled round with
    the lowest node total). ``cfg`` is a :class:`~hwnas.latency.profile.ProfileConfig`, ``mcfg``
    the runner's :class:`~hwnas.runners.base.MeasureConfig`; ``cache`` a
    :class:`~hwnas.latency.opmodels.SubnetModelCache` (default: the user's subnet cache).
    """
    from hwnas.cost import CostModel
    from hwnas.latency.opmodels import SubnetModelCache
    from hwnas.runners.quiet import measure_guarded, runner_canary

    if not getattr(runner, "op_profiling", False):
        raise HwnasError(f"runner {runner.name!r} has no op profiler hwnas can read: profile with "
                         f"--method one-op")
    ops = space_ops(space)
    if not table.missing(ops):
        return table
    runtime, precision = table.runtime_precision
    subnets = cover_subnets(space)
    cache = cache or SubnetModelCache(space, runtime, precision=precision)
    total = len(subnets) * (1 + 2 * cfg.rounds)
    done = 0

    def progress(what: str) -> None:
        nonlocal done
        done += 1
        if on_progress is not None:
            on_progress(what, done, total)

    paths = []
    for g in subnets:
        paths.append(cache.get(g))
        progress("export " + "-".join(map(str, g)))
    profiled = replace(mcfg, op_profiling=True)
    best_e2e = [float("inf")] * len(subnets)
    best_rows: list[list[dict[str, Any]] | None] = [None] * len(subnets)
    best_nodes = [float("inf")] * len(subnets)
    guard = None
    if cfg.canary:
        macs = CostModel(space)(np.asarray(subnets))["macs"]
        guard = runner_canary(runner, paths[int(np.argmax(macs))], mcfg, max_wait_s=cfg.canary_max_wait_s)
    items = [(i, kind) for i in range(len(subnets)) for kind in ("e2e", "trace")]

    def measure(item: tuple[int, str]) -> Any:
        i, kind = item
        return runner.measure(paths[i], profiled if kind == "trace" else mcfg)

    def commit(item: tuple[int, str], m: Any) -> None:
        i, kind = item
        if kind == "e2e":
            best_e2e[i] = min(best_e2e[i], m.center_ms)
        else:
            rows = m.extra.get("op_profile")
            if not rows:
                raise HwnasError(f"runner {runner.name!r} returned no op profile for {paths[i]}")
            total_ms = sum(float(r["avg_ms"]) for r in rows)
            if total_ms < best_nodes[i]:
                best_nodes[i], best_rows[i] = total_ms, list(rows)
        progress(f"{kind} {'-'.join(map(str, subnets[i]))}")

    for _ in range(cfg.rounds):
        measure_guarded(items, measure, commit, guard, block=cfg.canary_block)
    entries, summary = trace_entries(space, subnets, best_e2e, [r or [] for r in best_rows],
                                     runs=mcfg.runs, source=f"{runner.name} op profile")
    for k, e in entries.items():
        table.add(k, e, save=False)
    summary.update({"rounds": cfg.rounds, "runner": runner.name, "measured": now_iso(),
                    "space": space_tag(space)})
    table.metadata.setdefault("traces", {})[space_tag(space)] = summary
    tag = space_tag(space)
    if table.calibration(tag) is None:  # until a calibration on random subnets replaces it
        table.set_calibration(tag, 1.0, summary["run_overhead_ms"], per_op_ms=0.0, n=len(subnets),
                              source="trace")
    if guard is not None:
        table.metadata["last_profile_canary"] = guard.summary()
    table.save()
    return table
