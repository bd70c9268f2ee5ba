"""Search-space contract: genes, decoded configs and the ``OpSpec`` list every stage derives from.

An architecture is a fixed-length tuple of ints (``genes``); gene ``i`` lies in
``range(space.choices[i])``. ``space.layers(genes, resolution)`` returns the ordered ``OpSpec``s the
subnet executes (stem and head included). That single list drives the cost model, the latency-table
keys and the static subnet builder, so the three can never disagree.

Blocks are independent: the ops of block ``b`` depend only on the genes of ``groups[b]``. Every
per-block computation therefore enumerates :meth:`SearchSpace.block_options` (each option of each
block, once) and evaluates many architectures with :class:`BlockTable` gathers.

Elastic depth (Once-for-All, Cai et al. 2020, Sec. 3.2: "the first d layers of a stage run") keeps
that rule by sharing a gene: a stage's depth gene is listed in the group of every layer it can
switch off, with ``GeneGroup.gate = (depth gene, first value at which the layer runs)``. A gated
layer's ops then still depend only on its own group's genes (they are empty while the gate is
closed), so per-block tables, latency keys and supernet blocks need nothing new. What changes is
that blocks sharing a gene are no longer chosen independently: :meth:`SearchSpace.minimize_additive`
picks them jointly (per value of the shared genes), :meth:`SearchSpace.genes_from_options`
refuses options that disagree on a shared gene, :meth:`SearchSpace.size` counts distinct subnets
(the genes of a switched-off layer do not matter) and :meth:`SearchSpace.canonical` zeroes them.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import numpy as np

from hwnas.errors import HwnasError

Shape = tuple[int, int, int]  # (C, H, W)

#: op types a space may emit; each has a builder in ``hwnas.nn.blocks.BLOCKS`` and a cost in
#: hwnas.cost. ``basic`` (ResNet basic block) and ``qmbconv`` (MBConv) quantize at the spec's bits;
#: ``mbconv3`` is the MobileNetV3 / Once-for-All MBConv (its SE gates with the hard sigmoid);
#: ``fbblock`` the FBNet block of HW-NAS-Bench (``groups``: of its two 1x1 convs, with a channel
#: shuffle when 2).
OP_TYPES = ("conv", "mbconv", "shuffle", "shuffle_x", "gap", "linear", "basic", "maxpool", "qmbconv",
            "resblock", "mbconv3", "fbblock")
#: activations a block may use (``OpSpec.act`` / ``OpSpec.act2``); each has a module in
#: ``hwnas.nn.blocks.activation``.
ACTIVATIONS = ("relu", "relu6", "hswish", "mish", "prelu", "none")


@dataclass(frozen=True)
class OpSpec:
    """One executed op of a subnet: the unit of cost, latency key and static module.

    ``block`` is the index of the gene group (searchable block) the op belongs to, or -1 for the
    fixed stem/head. ``mid`` is the hidden width (expanded channels of an MBConv, mid channels of a
    ShuffleNetV2 / residual block); a supernet shares one weight per op that differs only in ``mid``
    and slices it (SPOS channel search, OFA elastic width).
    """

    op: str
    in_shape: Shape
    out_shape: Shape
    kernel: int = 1
    stride: int = 1
    mid: int = 0
    expand: float = 0.0
    groups: int = 1
    se: bool = False
    act: str = "relu"
    w_bits: int = 32
    a_bits: int = 32
    block: int = -1
    bias: bool = False
    act2: str = ""

    def __post_init__(self) -> None:
        if self.op not in OP_TYPES:
            raise ValueError(f"unknown op type {self.op!r}; known: {', '.join(OP_TYPES)}")
        for a in (self.act, self.act2 or self.act):
            if a not in ACTIVATIONS:
                raise ValueError(f"unknown activation {a!r}; known: {', '.join(ACTIVATIONS)}")

    @property
    def second_act(self) -> str:
        """The block's second activation (``act2``, else ``act``)."""
        return self.act2 or self.act

    @property
    def dtype(self) -> str:
        if self.w_bits == 32 and self.a_bits == 32:
            return "fp32"
        return f"w{self.w_bits}a{self.a_bits}"

    def module_key(self) -> OpSpec:
        """The spec with elastic width and bits removed: ops sharing it share supernet weights."""
        return dataclasses.replace(self, mid=0, w_bits=32, a_bits=32, block=-1)

    def latency_key(self) -> str:
        """Canonical latency-table key: what the runtime executes (op, shapes, widths, bits)."""
        ci, hi, wi = self.in_shape
        co, ho, wo = self.out_shape
        parts = [
            self.op,
            f"in{hi}x{wi}x{ci}",
            f"out{ho}x{wo}x{co}",
            f"k{self.kernel}",
            f"s{self.stride}",
            f"mid{self.mid}",
            f"e{self.expand:g}",
            f"g{self.groups}",
            "se" if self.se else "nose",
            self.act,
            self.dtype,
        ]
        if self.act2:  # only then: keys of blocks with one activation stay as they were
            parts.append(f"a2{self.act2}")
        return "-".join(parts)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["in_shape"] = list(self.in_shape)
        d["out_shape"] = list(self.out_shape)
        return d


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round channels to a multiple of ``divisor`` without dropping more than 10 % (MobileNetV2)."""
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def se_channels(mid: int) -> int:
    """Squeeze width of an SE module (MnasNet / ProxylessNAS: mid / 4, divisible by 8)."""
    return make_divisible(mid / 4, 8)


def pact_count(spec: OpSpec) -> int:
    """Number of PACT clipping parameters (one scalar each) of a ``basic`` / ``qmbconv`` block."""
    if spec.op == "basic":
        return 2
    if spec.op == "qmbconv":
        return 2 if spec.expand != 1 else 1
    return 0


def conv_out(size: int, kernel: int, stride: int) -> int:
    """Output size of a 'same'-padded conv (padding = kernel // 2)."""
    pad = kernel // 2
    return (size + 2 * pad - kernel) // stride + 1


@dataclass(frozen=True)
class GeneGroup:
    """Genes that together choose one searchable block (e.g. SPOS op + channel scale).

    ``gate`` (elastic depth): ``(gene, value)``, the block runs only while ``genes[gene] >= value``;
    ``gene`` is one of ``genes`` (the stage's depth gene, shared by every gated layer of the stage),
    so the block's ops still depend on its own genes only. A gene may belong to several groups only
    as such a gate gene.
    """

    name: str
    genes: tuple[int, ...]
    gate: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.gate is not None and self.gate[0] not in self.genes:
            raise ValueError(f"gene group {self.name!r}: gate gene {self.gate[0]} is not one of its genes")

    @property
    def own_genes(self) -> tuple[int, ...]:
        """The genes of this block only (all but the gate gene)."""
        return tuple(i for i in self.genes if self.gate is None or i != self.gate[0])

    def runs(self, genes: Sequence[int]) -> bool:
        """Whether the block executes in the architecture ``genes`` (always, without a gate)."""
        return self.gate is None or int(genes[self.gate[0]]) >= self.gate[1]


@dataclass(frozen=True)
class BlockOption:
    """One option of one searchable block, as :meth:`SearchSpace.block_options` yields it.

    ``index`` is the option's position in :meth:`SearchSpace.group_options` (the value
    :meth:`SearchSpace.group_index` gives it); ``values`` are the genes of ``groups[block]``;
    ``genes`` is a whole architecture (the space's reference genes with this block set; where the
    block shares a depth gene, the other blocks of its stage see that depth too);
    ``ops`` are the ops of that architecture that belong to the block (empty for an identity).
    """

    block: int
    index: int
    values: tuple[int, ...]
    genes: tuple[int, ...]
    ops: tuple[OpSpec, ...]


class BlockTable(NamedTuple):
    """A per-op quantity tabulated per block option: ``fixed`` (stem / head) and ``tables[b][j]``.

    ``gather(idx)`` evaluates it for many architectures from their option indices
    (``space.group_index(genes_matrix)``): ``fixed + sum_b tables[b][idx[:, b]]`` (``combine=np.add``)
    or the maximum over the blocks (``combine=np.maximum``, for peak memory).
    """

    fixed: float
    tables: list[np.ndarray]

    def gather(self, idx: np.ndarray, combine: Callable[[np.ndarray, np.ndarray], np.ndarray] = np.add
               ) -> np.ndarray:
        out = np.full(idx.shape[0], self.fixed, dtype=np.float64)
        for b, t in enumerate(self.tables):
            out = combine(out, t[idx[:, b]])
        return out


@dataclass(frozen=True)
class SearchSpace(ABC):
    """A registered search space. Subclasses are frozen dataclasses (hashable, comparable).

    ``width``, ``resolution`` and ``num_classes`` scale a space from a laptop toy to the paper's
    ImageNet version.
    """

    name: ClassVar[str] = "space"
    #: how the source paper states the size (shown next to the exact size by `hwnas spaces`).
    paper_note: ClassVar[str] = ""
    #: values ``act`` may take on this space (empty: the space has no activation setting).
    block_acts: ClassVar[tuple[str, ...]] = ()
    width: float = 1.0
    resolution: int = 224
    num_classes: int = 1000
    in_channels: int = 3
    #: the blocks' second activation (PGONAS Sec. 3.1, ``--act``); empty: the space's own. Left out
    #: of :meth:`config` while empty, so configs stored before the setting existed still match.
    act: str = field(default="", metadata={"omit_if_default": True})
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    # ---- the contract -------------------------------------------------------------------------
    @property
    @abstractmethod
    def choices(self) -> tuple[int, ...]:
        """Number of options of each gene."""

    @property
    @abstractmethod
    def groups(self) -> tuple[GeneGroup, ...]:
        """Gene groups, one per searchable block, in block order (OpSpec.block indexes this)."""

    @abstractmethod
    def decode(self, genes: Sequence[int]) -> Any:
        """Readable frozen config for ``genes``."""

    @abstractmethod
    def encode(self, cfg: Any) -> tuple[int, ...]:
        """Inverse of :meth:`decode`."""

    @abstractmethod
    def _layers(self, genes: tuple[int, ...], resolution: int) -> list[OpSpec]:
        """Build the op list for validated genes."""

    @abstractmethod
    def gene_labels(self, index: int) -> tuple[str, ...]:
        """Human-readable names of the options of gene ``index``."""

    # ---- derived API --------------------------------------------------------------------------
    @property
    def num_genes(self) -> int:
        return len(self.choices)

    def config(self) -> dict[str, Any]:
        """The settings that rebuild this space: stored in checkpoints, tables and exports."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if f.init and not (f.metadata.get("omit_if_default") and getattr(self, f.name) == f.default)}
        return {"name": self.name, **d}

    @classmethod
    def read_config(cls, config: Mapping[str, Any], where: str, remedy: str) -> dict[str, Any]:
        """``config`` (:meth:`config` as a file stored it) as this hwnas reads it, or a one-line
        HwnasError naming ``where`` and saying ``remedy`` when this hwnas builds another network
        for it. A space whose structure changed overrides this (``mbv2``'s ``layout``); called
        through ``hwnas.spaces.registry.read_space_config`` by every loader."""
        return dict(config)

    def second_act(self, own: str) -> str:
        """``OpSpec.act2`` of the space's blocks whose own second activation is ``own``."""
        return "" if self.act in ("", own) else self.act

    def check_act(self) -> None:
        """Raise HwnasError unless ``act`` is empty or one of :attr:`block_acts`."""
        if not self.act or self.act in self.block_acts:
            return
        if not self.block_acts:
            raise HwnasError(f"space {self.name!r} has no block activation setting (act={self.act!r}); "
                             f"leave --act out")
        raise HwnasError(f"activation {self.act!r} not allowed on space {self.name!r}; allowed: "
                         f"{', '.join(self.block_acts)}")

    def validate(self, genes: Sequence[int]) -> tuple[int, ...]:
        """Check length and ranges; return genes as a tuple of ints or raise HwnasError."""
        try:
            g = tuple(int(x) for x in genes)
        except (TypeError, ValueError) as exc:
            raise HwnasError(f"genes for space {self.name!r} must be integers: {exc}") from None
        if len(g) != self.num_genes:
            raise HwnasError(
                f"space {self.name!r} takes {self.num_genes} genes, got {len(g)}")
        for i, (v, n) in enumerate(zip(g, self.choices)):
            if not 0 <= v < n:
                raise HwnasError(
                    f"gene {i} ({self.gene_name(i)}) of space {self.name!r} is {v}; "
                    f"allowed range is 0..{n - 1} ({', '.join(self.gene_labels(i))})")
        return g

    def gene_name(self, index: int) -> str:
        for grp in self.groups:
            if grp.gate is not None and grp.gate[0] == index:
                continue  # a shared depth gene: named below
            if index in grp.genes:
                if len(grp.genes) == 1:
                    return grp.name
                return f"{grp.name}.{grp.genes.index(index)}"
        if any(grp.gate is not None and grp.gate[0] == index for grp in self.groups):
            return f"depth{index}"
        return f"gene{index}"

    def layers(self, genes: Sequence[int], resolution: int | None = None) -> list[OpSpec]:
        """The ordered OpSpecs the subnet executes at ``resolution`` (default: the space's)."""
        g = self.validate(genes)
        res = self.resolution if resolution is None else int(resolution)
        key = ("layers", g, res)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._layers(g, res)
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[key] = cached
        return list(cached)

    def size(self) -> int:
        """Exact number of distinct architectures.

        Without gates, ``prod(choices)``. With elastic depth the genes of a switched-off layer do
        not change the subnet, so each gate gene contributes ``sum over its values of the product
        of the option counts of the layers running at that value`` (OFA: ``(9^2 + 9^3 + 9^4)^5``).
        """
        gated = [g for g in self.groups if g.gate is not None]
        if not gated:
            return math.prod(self.choices)
        gate_genes = {g.gate[0] for g in gated}
        in_gated = {i for g in gated for i in g.own_genes}
        total = math.prod(c for i, c in enumerate(self.choices) if i not in gate_genes | in_gated)
        for gg in sorted(gate_genes):
            layers = [g for g in gated if g.gate[0] == gg]
            total *= sum(math.prod(math.prod(self.choices[i] for i in g.own_genes)
                                   for g in layers if v >= g.gate[1])
                         for v in range(self.choices[gg]))
        return total

    def genotype_count(self) -> int:
        """Number of gene tuples, ``prod(choices)`` (larger than :meth:`size` with elastic depth)."""
        return math.prod(self.choices)

    def canonical(self, genes: Sequence[int]) -> tuple[int, ...]:
        """``genes`` with the genes of switched-off (gated) layers set to 0: one tuple per subnet."""
        g = list(self.validate(genes))
        for grp in self.groups:
            if not grp.runs(g):
                for i in grp.own_genes:
                    g[i] = 0
        return tuple(g)

    def canonical_matrix(self, genes_matrix: np.ndarray) -> np.ndarray:
        """:meth:`canonical` of each row of an ``(n, num_genes)`` matrix."""
        m = self.validate_matrix(genes_matrix).copy()
        for grp in self.groups:
            if grp.gate is not None:
                off = m[:, grp.gate[0]] < grp.gate[1]
                for i in grp.own_genes:
                    m[off, i] = 0
        return m

    def shared_genes(self) -> tuple[int, ...]:
        """Genes listed in more than one group (elastic-depth gate genes); empty for most spaces."""
        key = ("shared_genes",)
        if key not in self._cache:
            count: dict[int, int] = {}
            for grp in self.groups:
                for i in grp.genes:
                    count[i] = count.get(i, 0) + 1
            self._cache[key] = tuple(sorted(i for i, n in count.items() if n > 1))
        return self._cache[key]

    def sample(self, rng: np.random.Generator) -> tuple[int, ...]:
        """A uniformly random architecture (SPOS uniform sampling)."""
        return tuple(int(rng.integers(n)) for n in self.choices)

    def sample_many(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` uniform architectures as an ``(n, num_genes)`` int array."""
        return np.stack([rng.integers(0, c, size=n) for c in self.choices], axis=1).astype(np.int64)

    def group_options(self, group: int) -> list[tuple[int, ...]]:
        """Every assignment of the genes of ``group`` (a mixed-radix enumeration)."""
        grp = self.groups[group]
        return list(itertools.product(*(range(self.choices[i]) for i in grp.genes)))

    def fixed_ops(self, resolution: int | None = None) -> list[OpSpec]:
        """The ops outside every searchable block (stem, head): the same in every architecture."""
        return [op for op in self.layers(self.smallest_valid(), resolution) if op.block < 0]

    def block_options(self, resolution: int | None = None) -> Iterator[BlockOption]:
        """Every option of every searchable block, block by block, in :meth:`group_options` order.

        The one enumeration behind per-block tables (cost, latency), latency-table keys, supernet
        candidates and exact per-block minima: valid because a block's ops depend only on its own
        genes, so ``sum(options per block)`` architectures cover the whole space.
        """
        ref = self.smallest_valid()
        for b, grp in enumerate(self.groups):
            for j, values in enumerate(self.group_options(b)):
                genes = list(ref)
                for i, v in zip(grp.genes, values):
                    genes[i] = v
                ops = tuple(op for op in self.layers(genes, resolution) if op.block == b)
                yield BlockOption(b, j, tuple(values), tuple(genes), ops)

    def genes_from_options(self, options: Sequence[int]) -> tuple[int, ...]:
        """The architecture whose block ``b`` takes option ``options[b]``: inverse of :meth:`group_index`."""
        if len(options) != len(self.groups):
            raise HwnasError(f"space {self.name!r} has {len(self.groups)} blocks, got {len(options)} options")
        genes: list[int] = list(self.smallest_valid())
        set_by: dict[int, int] = {}
        for b, (grp, j) in enumerate(zip(self.groups, options)):
            for i, v in zip(grp.genes, self.group_options(b)[int(j)]):
                if i in set_by and genes[i] != v:
                    raise HwnasError(
                        f"options disagree on shared gene {i} ({self.gene_name(i)}) of space {self.name!r}: "
                        f"block {set_by[i]} ({self.groups[set_by[i]].name}) sets {genes[i]}, "
                        f"block {b} ({grp.name}) sets {v}")
                genes[i] = v
                set_by[i] = b
        return tuple(genes)

    def minimize_additive(self, fn: Callable[[np.ndarray], np.ndarray]) -> tuple[int, ...]:
        """An architecture minimising a block-additive ``fn`` (genes matrix -> one value per row).

        ``fn(genes) = fixed + sum_b term_b(genes of groups[b])`` (MACs, a latency table, ...). Blocks
        that share no gene are minimised one by one; blocks sharing a gate gene (one elastic-depth
        stage) are minimised for each value of the shared genes and the best value is kept, so the
        result is exact. Two calls of ``fn`` in all (every probe in one matrix).
        """
        ref = list(self.smallest_valid())
        shared = set(self.shared_genes())
        # connected components of blocks linked by shared genes (union-find over blocks)
        parent = list(range(len(self.groups)))

        def root(b: int) -> int:
            while parent[b] != b:
                b = parent[b]
            return b

        owner: dict[int, int] = {}
        for b, grp in enumerate(self.groups):
            for i in grp.genes:
                if i in shared:
                    if i in owner:
                        parent[root(b)] = root(owner[i])
                    else:
                        owner[i] = b
        members: dict[int, list[int]] = {}
        for b in range(len(self.groups)):
            members.setdefault(root(b), []).append(b)
        comps = [(blocks, sorted({i for b in blocks for i in self.groups[b].genes if i in shared}))
                 for blocks in members.values()]
        # probes: per component, per assignment of its shared genes, per block, each own option
        probes: list[list[int]] = []
        plan: list[tuple[int, tuple[int, ...], int, list[tuple[int, ...]], int]] = []
        for c, (blocks, gs) in enumerate(comps):
            for assign in itertools.product(*(range(self.choices[i]) for i in gs)):
                for b in blocks:
                    own = [i for i in self.groups[b].genes if i not in gs]
                    values = list(itertools.product(*(range(self.choices[i]) for i in own)))
                    plan.append((c, assign, b, values, len(probes)))
                    for vals in values:
                        g = list(ref)
                        for i, v in zip(gs, assign):
                            g[i] = v
                        for i, v in zip(own, vals):
                            g[i] = v
                        probes.append(g)
        scores = np.asarray(fn(np.asarray(probes, dtype=np.int64)), dtype=np.float64)
        combos: dict[tuple[int, tuple[int, ...]], list[int]] = {}
        for c, assign, b, values, start in plan:
            g = combos.setdefault((c, assign), list(ref))
            for i, v in zip(comps[c][1], assign):
                g[i] = v
            best = values[int(np.argmin(scores[start:start + len(values)]))]
            for i, v in zip([i for i in self.groups[b].genes if i not in comps[c][1]], best):
                g[i] = v
        keys = list(combos)
        totals = np.asarray(fn(np.asarray([combos[k] for k in keys], dtype=np.int64)), dtype=np.float64)
        out = list(ref)
        for c, (blocks, gs) in enumerate(comps):
            ks = [n for n, k in enumerate(keys) if k[0] == c]
            win = combos[keys[ks[int(np.argmin(totals[ks]))]]]
            for b in blocks:
                for i in self.groups[b].genes:
                    out[i] = win[i]
        return tuple(out)

    def block_table(self, fn: Callable[[OpSpec], float], resolution: int | None = None,
                    reduce: Callable[[list[float]], float] = sum) -> BlockTable:
        """Per-block lookup tables of an additive per-op quantity (cost, latency).

        ``fixed`` sums ``fn`` over the stem/head ops, and ``tables[b][j]`` sums it over block
        ``b``'s ops when its genes take option ``j`` of :meth:`group_options`. ``reduce`` replaces
        the sum (``max`` for peak memory); it receives a list.
        """
        fixed = reduce([fn(op) for op in self.fixed_ops(resolution)] or [0.0])
        vals: list[list[float]] = [[] for _ in self.groups]
        for opt in self.block_options(resolution):
            vals[opt.block].append(reduce([fn(op) for op in opt.ops] or [0.0]))
        return BlockTable(float(fixed), [np.asarray(v, dtype=np.float64) for v in vals])

    def group_index(self, genes_matrix: np.ndarray) -> np.ndarray:
        """Option index of each block for each row: ``(n, num_blocks)`` ints."""
        genes_matrix = np.asarray(genes_matrix, dtype=np.int64)
        if genes_matrix.ndim == 1:
            genes_matrix = genes_matrix[None, :]
        cols = []
        for grp in self.groups:
            idx = np.zeros(genes_matrix.shape[0], dtype=np.int64)
            for i in grp.genes:
                idx = idx * self.choices[i] + genes_matrix[:, i]
            cols.append(idx)
        return np.stack(cols, axis=1)

    def validate_matrix(self, genes_matrix: np.ndarray) -> np.ndarray:
        """Check an ``(n, num_genes)`` matrix of architectures; raise HwnasError on the first bad one."""
        m = np.asarray(genes_matrix)
        if m.ndim == 1:
            m = m[None, :]
        if m.ndim != 2 or m.shape[1] != self.num_genes:
            raise HwnasError(
                f"space {self.name!r} takes {self.num_genes} genes per architecture, "
                f"got an array of shape {tuple(m.shape)}")
        hi = np.asarray(self.choices)
        bad = (m < 0) | (m >= hi)
        if bad.any():
            row, col = map(int, np.argwhere(bad)[0])
            self.validate(m[row])
        return m.astype(np.int64)

    def smallest_valid(self) -> tuple[int, ...]:
        return tuple(0 for _ in self.choices)

    def _extreme(self, pick: Callable[[np.ndarray], int]) -> tuple[int, ...]:
        from hwnas.spaces.costs import op_costs  # local import: costs build on this module

        macs = self.block_table(lambda op: op_costs(op).macs)
        params = self.block_table(lambda op: op_costs(op).params)

        if not self.shared_genes():
            return self.genes_from_options([pick(m * 1e6 + p * 1e-3)
                                            for m, p in zip(macs.tables, params.tables)])
        sign = 1.0 if pick(np.array([0.0, 1.0])) == 0 else -1.0  # argmin or argmax

        def score(m: np.ndarray) -> np.ndarray:
            # MACs first, params to break ties (identity vs a block of equal MACs never ties)
            idx = self.group_index(m)
            return sign * (macs.gather(idx) * 1e6 + params.gather(idx) * 1e-3)

        return self.canonical(self.minimize_additive(score))

    def smallest(self) -> tuple[int, ...]:
        """The architecture with the fewest MACs (per-block argmin; jointly per depth gene)."""
        key = ("smallest",)
        if key not in self._cache:
            self._cache[key] = self._extreme(lambda s: int(np.argmin(s)))
        return self._cache[key]

    def largest(self) -> tuple[int, ...]:
        """The architecture with the most MACs."""
        key = ("largest",)
        if key not in self._cache:
            self._cache[key] = self._extreme(lambda s: int(np.argmax(s)))
        return self._cache[key]

    def describe(self, genes: Sequence[int]) -> list[dict[str, Any]]:
        """One row per block: its name and the chosen option label of each gene."""
        g = self.validate(genes)
        rows = []
        for grp in self.groups:
            if not grp.runs(g):
                rows.append({"block": grp.name, "choice": "off (depth)"})
                continue
            rows.append({"block": grp.name,
                         "choice": " / ".join(self.gene_labels(i)[g[i]] for i in grp.own_genes)})
        return rows
