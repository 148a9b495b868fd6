"""VectorAttention: geometric algebra attention producing values (Eq. 1).

Shapes: B... batch axes, N points, F working dimension, R rank. Inputs are
padded clouds with an optional boolean mask (..., N); padded points never
change any output and padded outputs are zero.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn
from torch.nn import functional

from ..ga.invariants import invariant_count, pair_invariants, tuple_invariants
from ..ga.products import slot_view
from . import fused, workspace
from .frozen import derived_while_frozen
from .geometry import Geometry
from .masking import masked_softmax
from .merge import Join, TupleMerge
from .mlp import FastDropout, ValueMLP, relu_then_identities, score_net as make_score_net, value_net as make_value_net
from .shapes import broadcast_shape

__all__ = ["VectorAttention", "AttentionOutput", "TupleAttentionBase", "TupleSum"]


@dataclass
class AttentionOutput:
    """What a layer computed: output and attention weights (for interpretation)."""

    output: torch.Tensor
    attention: torch.Tensor


def tuple_mask(mask: torch.Tensor | None, rank: int) -> torch.Tensor | None:
    """Point mask (..., N) -> tuple mask (..., N, ..., N): a tuple is valid if all its points are."""
    if mask is None:
        return None
    result = None
    for slot in range(rank):
        part = slot_view(mask.unsqueeze(-1), slot, rank).squeeze(-1)
        result = part if result is None else result & part
    return result


def clean_padding(positions: "torch.Tensor | Geometry", values: torch.Tensor | None, mask: torch.Tensor | None):
    """Zero padded points so garbage (even NaN) in the padding cannot reach any output.

    Returns (Geometry, values); a Geometry passed in is used as is (its
    positions were cleaned with the same mask when it was made).
    """
    geometry = Geometry.of(positions, mask)
    if mask is not None and values is not None:
        values = torch.where(mask.unsqueeze(-1), values, torch.zeros_like(values))
    return geometry, values


def _identity(x: torch.Tensor, out_slot: str | None = None) -> torch.Tensor:
    return x


def _broadcast_sum(parts: list[torch.Tensor], out_slot: str | None = None) -> torch.Tensor:
    """Sum of broadcastable tensors, adding the pair with the smallest result first (big outputs last).

    ``out_slot``: the last (biggest) sum may go to that :mod:`.workspace` buffer, for a caller that
    consumes the result before the slot's next use.
    """
    parts = list(parts)
    while len(parts) > 1:
        # a plain loop rather than min(key=...), which torch.compile cannot trace
        best, best_size = (0, 1), None
        for a in range(len(parts)):
            for b in range(a + 1, len(parts)):
                size = broadcast_shape(parts[a].shape, parts[b].shape).numel()
                if best_size is None or size < best_size:
                    best, best_size = (a, b), size
        a, b = parts[best[0]], parts[best[1]]
        total = a + b if out_slot is None or len(parts) > 2 else workspace.add(a, b, out_slot)
        parts = [p for k, p in enumerate(parts) if k not in best] + [total]
    return parts[0]


def _leading_linear(net: nn.Module) -> nn.Linear | None:
    return net[0] if isinstance(net, nn.Sequential) and len(net) and isinstance(net[0], nn.Linear) else None


#: Rows of a net's hidden layer per block where no graph is recorded (:func:`_in_blocks`).
BLOCK_ROWS = 8192


def _in_blocks(rest: Callable[[torch.Tensor], torch.Tensor], hidden_of: Callable[[int, int], torch.Tensor], items: int,
               rows_per_item: int) -> torch.Tensor:
    """rest(hidden) for the items [start, stop) of the leading axis at a time, concatenated.

    ``hidden_of(start, stop)`` gives the first Linear's output for those items in the reused "hidden"
    buffer (:mod:`.workspace`). In blocks of about BLOCK_ROWS rows (2 MiB at 64 channels) it stays in
    the core's cache for the activation and the final Linear, where a piece's whole hidden layer (tens
    of MiB for a backmapping refinement) passed through memory three times (``python -m
    benchmarks.ab_switches row-blocks``).
    """
    step = max(1, BLOCK_ROWS // max(rows_per_item, 1))
    if step >= items:
        return rest(hidden_of(0, items))
    return torch.cat([rest(hidden_of(start, min(items, start + step))) for start in range(0, items, step)])


def _after_first(net: nn.Sequential, skip: int = 1) -> Callable[[torch.Tensor], torch.Tensor]:
    """``net[skip:]`` as a function, without making the slice (a new module per call)."""
    modules = list(net)[skip:]

    def rest(x: torch.Tensor) -> torch.Tensor:
        for module in modules:
            x = module(x)
        return x

    return rest


def _row_count(x: torch.Tensor) -> int:
    return x.numel() // max(x.shape[-1], 1)


def _blocks_pay(x: torch.Tensor) -> bool:
    """Whether nets on the rows of ``x`` run in blocks of BLOCK_ROWS: more than two blocks' worth of rows, and
    results that may go to the reused buffers."""
    return _row_count(x) > 2 * BLOCK_ROWS and workspace.applies(x)


#: Move a net's first bias through its ReLU into its last Linear (the A/B switch of
#: ``benchmarks.ab_switches relu-bias-fold``).
FOLD_RELU_BIAS = True


def _leading_product(net: nn.Sequential, x: torch.Tensor) -> tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]:
    """(rows of x -> net's first Linear of them in the "hidden" buffer, the rest of net); a ReLU after that
    Linear goes with it into one fused product where :mod:`.fused` applies to x.

    Otherwise, for a net Linear, ReLU, [eval-mode dropout], Linear with no graph recorded, the first bias
    moves through the ReLU: relu(h + b) = max(h, -b) + b, and the last layer's W b joins its bias. The
    product then writes its result without first copying the bias in and reading it back, and max(h, -b)
    is one pass like the ReLU (``python -m benchmarks.ab_switches relu-bias-fold``).
    """
    first = net[0]
    if len(net) > 1 and fused.fuses(net[1]) and fused.applies(x, first.weight):
        return (lambda rows: fused.linear_relu(rows, first.weight, first.bias)), _after_first(net, 2)
    if FOLD_RELU_BIAS and workspace.applies(x) and x.dtype == first.weight.dtype and _relu_bias_folds(net):
        last = net[-1]
        floor, last_bias = derived_while_frozen(net, "relu_bias_fold", [first.bias, *last.parameters()], lambda: (
            -first.bias, (last.weight @ first.bias) if last.bias is None else torch.addmv(last.bias, last.weight,
                                                                                         first.bias)))
        return ((lambda rows: workspace.linear(rows, first.weight, None, "hidden").clamp_min_(floor)),
                (lambda hidden: functional.linear(hidden, last.weight, last_bias)))
    return (lambda rows: workspace.linear(rows, first.weight, first.bias, "hidden")), _after_first(net)


def _relu_bias_folds(net: nn.Sequential) -> bool:
    """Whether net is Linear (with a bias), an eval-mode ReLU and dropouts, Linear."""
    modules = list(net)
    return (len(modules) >= 3 and isinstance(modules[0], nn.Linear) and modules[0].bias is not None
            and isinstance(modules[-1], nn.Linear) and relu_then_identities(modules[1:-1]))


def _rows_through(net: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """net(x) for a net Linear ... Linear (a fresh result), the first layer's output in the "hidden"
    buffer (or fused with a ReLU after it, or that ReLU's bias moved into the last layer), in blocks of
    rows where that applies."""
    product, rest = _leading_product(net, x)
    if not _blocks_pay(x):
        return rest(product(x))
    rows = _row_count(x)
    flat = x.reshape(rows, x.shape[-1])
    out = _in_blocks(rest, lambda start, stop: product(flat[start:stop]), rows, 1)
    return out.reshape(*x.shape[:-1], out.shape[-1])


@dataclass
class TupleSum:
    """Tuple values v_ij.. = J(V(q_ij..), M(v_i, v_j, ..)) kept as a sum of parts, summed per tuple only when it pays.

    J and M are linear (mean or bias-free maps), so v = core + sum(terms): ``core``
    is J's share of V(q), the only part that depends on the whole tuple (it may
    be computed compactly, once per unordered pair, and expanded by ``expand``);
    each term depends on one point or one label and broadcasts over the rest.
    When a term adds an axis (labels: L outputs per tuple), nets whose first
    layer is a Linear are applied part by part (``through``), so that layer
    costs N^R + L instead of L N^R rows. Everything returned is in the full
    tuple layout (..., N, ..., N, C); results equal the tuple-by-tuple
    evaluation up to rounding.
    """

    core: torch.Tensor
    terms: list[torch.Tensor] = field(default_factory=list)
    #: core -> full layout; the second argument, a :mod:`.workspace` slot the result may go to, or None
    expand: Callable[[torch.Tensor, str | None], torch.Tensor] = _identity
    #: the full layout's shape without channels, (..., N, ..., N); None: that of ``core``
    tuple_shape: torch.Size | None = None
    _values: torch.Tensor | None = field(default=None, repr=False)

    def full(self, x: torch.Tensor) -> torch.Tensor:
        """Results of this class are already in the full layout."""
        return x

    def materialize(self) -> torch.Tensor:
        """The tuple values themselves (computed once).

        Where no graph is recorded (:func:`.workspace.applies`) they are the expanded core, in the
        reused "tuple_values" buffer, with the terms added in place: no tuple-sized tensor is
        allocated (they are dead once their layer is done). ``core`` is owned by this object.
        """
        if self._values is None:
            if workspace.applies(self.core) and not self._terms_widen():
                values = self.expand(self.core, "tuple_values")
                if (values.shape[:-1] == self._tuple_shape()
                        and all(t.dtype == values.dtype and t.device == values.device for t in self.terms)):
                    for term in self.terms:
                        values.add_(term)
                    self._values = values
                else:  # not the full layout after all: a fresh sum of the expanded core and the terms
                    self._values = _broadcast_sum([values, *self.terms])
            else:
                self._values = _broadcast_sum([self.expand(self.core, None), *self.terms])
        return self._values

    def _tuple_shape(self) -> torch.Size:
        return self.core.shape[:-1] if self.tuple_shape is None else self.tuple_shape

    def _terms_widen(self) -> bool:
        tuple_shape = self._tuple_shape()
        return any(broadcast_shape(tuple_shape, t.shape[:-1]) != tuple_shape for t in self.terms)

    def through(self, net: nn.Module) -> torch.Tensor:
        """net(tuple values); a leading Linear is applied part by part when terms add axes.

        When a final Linear follows (a fresh result), the leading Linear's tuple-sized output goes
        to the reused "hidden" :mod:`.workspace` buffer, block by block where no graph is recorded
        (:func:`_in_blocks`), as in :meth:`PairSum.through`.
        """
        first = _leading_linear(net)
        if first is None:
            return net(self.materialize())
        fresh = len(net) >= 2 and isinstance(net[-1], nn.Linear)
        if not self._terms_widen():
            return _rows_through(net, self.materialize()) if fresh else net(self.materialize())
        hidden = [self.expand(functional.linear(self.core, first.weight, first.bias), None)]
        hidden += [functional.linear(term, first.weight) for term in self.terms]
        if not fresh:
            return _after_first(net)(_broadcast_sum(hidden))
        shape = broadcast_shape(*(part.shape for part in hidden))
        if shape[0] < 2 or any(part.dim() != len(shape) for part in hidden) or not workspace.applies(hidden[0]):
            return _after_first(net)(_broadcast_sum(hidden, "hidden"))
        # blocks of the leading (batch) axis; parts that broadcast along it are used whole
        return _in_blocks(_after_first(net), lambda start, stop: _broadcast_sum(
            [part[start:stop] if part.shape[0] > 1 else part for part in hidden], "hidden"),
            shape[0], shape[1:-1].numel())


@dataclass
class PairSum:
    """Rank-2 tuple values that are symmetric (v_ij = v_ji), stored once per unordered pair i <= j.

    Same interface as :class:`TupleSum`, but ``materialize`` and ``through``
    return the compact pair layout (..., P, C); ``full`` expands to (..., N, N, C).
    ``core`` is owned by this object: ``materialize`` may add to it in place.
    With a symmetric merge both points of a pair contribute the same per-point
    term (..., N, F): v_p = core_p + term[first_p] + term[second_p].
    """

    core: torch.Tensor
    point_term: torch.Tensor
    layout: "PairLayout"
    _values: torch.Tensor | None = field(default=None, repr=False)

    def full(self, x: torch.Tensor) -> torch.Tensor:
        return self.layout.to_full(x)

    def materialize(self) -> torch.Tensor:
        """The pair values (..., P, C), computed once.

        core_p + term[first_p] + term[second_p] for all pairs is one batched product with
        the (P, N) pair-point incidence matrix, added to the core: 1.7-7.7x faster than two
        row gathers and two sums for a crystal piece (three runs of ``python -m
        benchmarks.bench_kernels``, one core of a 2-core Xeon; the gathers' time varies most).
        """
        if self._values is None:
            core, term, layout = self.core, self.point_term, self.layout
            if core.dtype != term.dtype:  # autocast: the product's output in low precision
                dtype = torch.promote_types(core.dtype, term.dtype)
                core, term = core.to(dtype), term.to(dtype)
            pairs, width = core.shape[-2:]
            batch = broadcast_shape(core.shape[:-2], term.shape[:-2])
            core3 = core.expand(*batch, pairs, width).reshape(-1, pairs, width)
            term3 = term.expand(*batch, layout.n, width).reshape(-1, layout.n, width)
            incidence = layout.incidence(term.dtype).expand(core3.shape[0], pairs, layout.n)
            if core.shape[:-2] == batch and core.is_contiguous() and not torch.compiler.is_compiling():
                # in place (one fresh tensor fewer): the core is this object's own, a product's output
                self._values = core3.baddbmm_(incidence, term3).view(*batch, pairs, width)
            else:
                self._values = torch.baddbmm(core3, incidence, term3).view(*batch, pairs, width)
        return self._values

    def through(self, net: nn.Module) -> torch.Tensor:
        """net(pair values): the values are needed for the weighted sum anyway, and a Linear
        applied part by part would cost the same product per pair plus two gathers of its
        (wider) output. A leading Linear's (hidden) output goes to a reused buffer
        (:mod:`.workspace`) when a final Linear follows, so that the result is a fresh tensor."""
        first = _leading_linear(net)
        if first is None or len(net) < 2 or not isinstance(net[-1], nn.Linear):
            return net(self.materialize())
        return _rows_through(net, self.materialize())

    def weighted_sum(self, weights: torch.Tensor, dims: int) -> torch.Tensor:
        """sum_j w_ij v_ij (dims=1) or sum_ij w_ij v_ij (dims=2) for full-layout weights (..., N, N).

        The weights are scattered onto the pairs, so the sum is one batched
        matrix product with the pair values, never expanding them to (N, N).
        """
        layout, values = self.layout, self.materialize()
        if dims == 1:
            return scattered_pair_weights(weights, layout) @ values
        flat = weights.flatten(-2)
        pair_weights = flat.new_zeros(*flat.shape[:-1], layout.pairs)
        pair_weights = pair_weights.scatter_add(-1, layout.grid.expand(flat.shape), flat)
        return (pair_weights.unsqueeze(-2) @ values).squeeze(-2)


def scattered_pair_weights(weights: torch.Tensor, layout: "PairLayout") -> torch.Tensor:
    """Weights (..., N, N) -> (..., N, P): row i holds w_ij at pair (i, j), zeros elsewhere.

    N times the pair values' size (1.9 MiB for a crystal piece of 512 environments): made fresh, its
    pages faulted in zero-filled and then copied by an out-of-place scatter, it took ~8% of a
    one-thread crystal inference call (``python -m benchmarks.profile_case crystal-inference-b1024``);
    where that applies it goes to the reused "pair_weights" buffer (:mod:`.workspace`), zeroed and
    scattered into in place (``python -m benchmarks.ab_switches pair-weights-buffer``).
    """
    index = layout.grid.reshape(layout.n, layout.n).expand(weights.shape)
    shape = (*weights.shape[:-1], layout.pairs)
    if workspace.applies(weights) and torch.Size(shape).numel() >= workspace.MIN_ELEMENTS:
        return workspace.empty("pair_weights", shape, weights.dtype).zero_().scatter_(-1, index, weights)
    return weights.new_zeros(shape).scatter(-1, index, weights)


class PairLayout:
    """Unordered pairs i <= j of N points: gather indices and the map back to the (N, N) grid."""

    _cache: dict = {}

    def __init__(self, n: int, device: torch.device):
        first, second = torch.triu_indices(n, n, device=device)
        grid = torch.zeros(n, n, dtype=torch.long, device=device)
        ids = torch.arange(first.numel(), device=device)
        grid[first, second] = ids
        grid[second, first] = ids
        self.n, self.first, self.second, self.grid = n, first, second, grid.reshape(-1)
        self.pairs = first.numel()
        self._incidence: dict = {}

    def incidence(self, dtype: torch.dtype) -> torch.Tensor:
        """(P, N) matrix with E[p, first_p] + E[p, second_p] = 1 + 1 (2 on the diagonal pairs i = i):
        E @ term = term[first] + term[second]."""
        if dtype not in self._incidence:
            rows = torch.arange(self.pairs, device=self.first.device)
            matrix = torch.zeros(self.pairs, self.n, dtype=dtype, device=self.first.device)
            matrix.index_put_((rows, self.first), torch.ones((), dtype=dtype, device=matrix.device), accumulate=True)
            matrix.index_put_((rows, self.second), torch.ones((), dtype=dtype, device=matrix.device), accumulate=True)
            self._incidence[dtype] = matrix
        return self._incidence[dtype]

    @classmethod
    def get(cls, n: int, device: torch.device) -> "PairLayout":
        key = (n, str(device))
        if key not in cls._cache:
            cls._cache[key] = cls(n, device)
        return cls._cache[key]

    def to_full(self, pairs: torch.Tensor, out_slot: str | None = None) -> torch.Tensor:
        """(..., P, C) -> (..., N, N, C), symmetric; in that :mod:`.workspace` slot's buffer if given and it applies."""
        if out_slot is None:
            full = pairs.index_select(-2, self.grid)
        else:
            full = workspace.index_select(pairs, -2, self.grid, out_slot)
        return full.reshape(*pairs.shape[:-2], self.n, self.n, pairs.shape[-1])


class TupleAttentionBase(nn.Module):
    """Shared machinery: invariants -> V, merge M, join J, scores S (Eq. 1, first four lines)."""

    n_join_inputs = 2

    def __init__(self, n_dim: int, score_net: nn.Module | None = None, value_net: nn.Module | None = None, *,
                 reduce: bool = False, merge: str = "mean", join: str = "mean", rank: int = 2,
                 invariant_mode: str = "single", include_normalized_products: bool = False, o3: bool = False,
                 hidden: int = 64, activation: str = "relu", dropout: float = 0.0):
        super().__init__()
        if rank < 1:
            raise ValueError(f"rank must be >= 1, got {rank}")
        self.n_dim, self.rank, self.reduce = n_dim, rank, reduce
        self.invariant_mode, self.include_normalized_products, self.o3 = invariant_mode, include_normalized_products, o3
        self.n_invariants = invariant_count(rank, invariant_mode, include_normalized_products)
        self.score_net = score_net if score_net is not None else make_score_net(n_dim, hidden, activation, dropout)
        self.value_net = value_net if value_net is not None else make_value_net(
            self.n_invariants, n_dim, hidden, activation, dropout)
        self.merge = TupleMerge(n_dim, rank, merge)
        self.join = Join(n_dim, self.n_join_inputs, join)

    def invariants(self, positions: "torch.Tensor | Geometry") -> torch.Tensor:
        """q: (..., N, 3) -> (..., N, ..., N, I), computed once per Geometry."""
        geometry = Geometry.of(positions)
        key = ("tuples", self.rank, self.invariant_mode, self.include_normalized_products, self.o3)
        return geometry.cached(key, lambda: tuple_invariants(
            geometry.positions, self.rank, self.invariant_mode, self.include_normalized_products, self.o3))

    def pair_invariants(self, geometry: Geometry, layout: "PairLayout") -> torch.Tensor:
        """q of the unordered pairs (..., P, I), computed once per Geometry."""
        positions = geometry.positions
        return geometry.cached(("pairs", self.include_normalized_products, self.o3), lambda: pair_invariants(
            positions.index_select(-2, layout.first), positions.index_select(-2, layout.second),
            self.include_normalized_products, self.o3))

    def tuple_values(self, geometry: Geometry, values: torch.Tensor, *extra: torch.Tensor,
                     tuple_axis_offset: int = 0) -> TupleSum | PairSum:
        """v_ijk = J(*extra, V(q_ijk), M(v_i, v_j, ...)) as a :class:`TupleSum`, or a :class:`PairSum` when symmetric.

        ``extra`` are the join's leading inputs (labels); ``tuple_axis_offset``
        inserts that many size-1 axes before the tuple axes of V and M.
        """
        n_extra = len(extra)

        def place(x: torch.Tensor, out_slot: str | None = None) -> torch.Tensor:
            for _ in range(tuple_axis_offset):
                x = x.unsqueeze(-2 - self.rank)
            return x

        def placed_shape(shape: torch.Size) -> torch.Size:  # place's on a shape without channels
            return torch.Size((*shape[:len(shape) - self.rank], *([1] * tuple_axis_offset),
                               *shape[len(shape) - self.rank:]))

        if self.uses_pair_symmetry():
            layout = PairLayout.get(geometry.positions.shape[-2], geometry.positions.device)
            invariants = self.pair_invariants(geometry, layout)
            if not extra and self.merge.symmetric:
                # v_ij = core_ij + m_i + m_j is symmetric too: everything stays per pair; V's last
                # bias b is added per point (b/2 to each m_i), not to every pair (one pass fewer)
                core, bias = self.joined_invariant_values(invariants, n_extra, split_bias=True)
                return PairSum(core, self._symmetric_point_term(values, n_extra + 1, bias), layout)
            core = self.joined_invariant_values(invariants, n_extra)
            expand = lambda pairs, out_slot=None: place(layout.to_full(pairs, out_slot))  # noqa: E731
            tuple_shape = placed_shape(core.shape[:-2] + (layout.n, layout.n))
        else:
            core, expand = self.joined_invariant_values(self.invariants(geometry), n_extra), place
            tuple_shape = placed_shape(core.shape[:-1])
        terms = [self.join.input_map(index, part) for index, part in enumerate(extra)]
        terms += [place(term) for term in self._merged_terms(values, n_extra + 1)]
        return TupleSum(core, terms, expand, tuple_shape)

    def _symmetric_point_term(self, values: torch.Tensor, join_index: int, bias: torch.Tensor | None) -> torch.Tensor:
        """m_i + b/2 of a symmetric merge's v_ij = core_ij + m_i + m_j (J's share, V's last bias b split over
        the pair's two points). Mean merge and mean join are two scales: one operation."""
        if self.merge.mode == "mean" and self.join.input_kernel(join_index) is None:
            scale = 1.0 / (self.merge.rank * self.join.n_inputs)
            return values * scale if bias is None else torch.add(bias / 2, values, alpha=scale)
        term = self._merged_terms(values, join_index, per_point=True)[0]
        return term if bias is None else term + bias / 2

    def _merged_terms(self, values: torch.Tensor, join_index: int, per_point: bool = False) -> list[torch.Tensor]:
        """J's share of M(v_i, v_j, ..) as per-slot terms (slot views, or per point), J's kernel folded into M's."""
        kernel = self.join.input_kernel(join_index)
        terms = self.merge.point_terms(values, kernel) if per_point else self.merge.slot_terms(values, kernel)
        if kernel is None:  # mean join: a scale
            terms = [self.join.input_map(join_index, term) for term in terms]
        return terms

    def joined_invariant_values(self, invariants: torch.Tensor, join_index: int, split_bias: bool = False):
        """J's share of V(q): input_map(join_index, V(q)), with J folded into V's last Linear.

        (h W^T + b) K = h (K^T W)^T + b K: one matrix product per tuple instead of two
        (concat join); the mean join's scale is folded the same way. With ``split_bias``
        returns (core without the bias, the bias or None), for callers that add the bias
        where it costs less.
        """
        net = self.value_net
        if not (isinstance(net, nn.Sequential) and isinstance(net[-1], nn.Linear)):
            core = self.join.input_map(join_index, net(invariants))
            return (core, None) if split_bias else core
        last = net[-1]
        kernel = self.join.input_kernel(join_index)

        def folded():
            if kernel is None:  # mean join: a scale
                bias = last.bias
                return (self.join.input_map(join_index, last.weight),
                        None if bias is None else self.join.input_map(join_index, bias))
            return kernel.t() @ last.weight, None if last.bias is None else last.bias @ kernel

        weight, bias = derived_while_frozen(self, ("joined", join_index), [*last.parameters(), *self.join.parameters()],
                                            folded)
        if isinstance(net, ValueMLP) and _blocks_pay(invariants) and weight.dtype == invariants.dtype:
            flat = invariants.reshape(-1, invariants.shape[-1])
            if FOLD_RELU_BIAS:  # relu(h + b) = max(h, -b) + b: W b joins the bias (see _leading_product)
                hidden_of, moved = net.hidden_rows_bias_moved(flat)
                if moved is not None:
                    base = bias  # keyed on the parameters weight and base derive from (kept as they are)
                    bias = derived_while_frozen(
                        self, ("joined_moved", join_index), [*last.parameters(), *self.join.parameters(), moved],
                        lambda: weight @ moved if base is None else torch.addmv(base, weight, moved))
            else:
                hidden_of = net.hidden_rows(flat)
            core = self._core_in_blocks(hidden_of, flat.shape[0], weight, None if split_bias else bias)
            core = core.view(*invariants.shape[:-1], weight.shape[0])
        else:
            core_bias = None if split_bias else bias
            # consumed by the product below at once: the hidden layer may use the reused buffer
            hidden = net.hidden(invariants, "hidden") if isinstance(net, ValueMLP) else net[:-1](invariants)
            # the core of the layer's PairSum or TupleSum: dead once its layer is done, so a reused buffer
            core = workspace.linear(hidden, weight, core_bias, "core")
        return (core, bias) if split_bias else core

    @staticmethod
    def _core_in_blocks(hidden_of: Callable[[int, int], torch.Tensor], rows: int, weight: torch.Tensor,
                        bias: torch.Tensor | None) -> torch.Tensor:
        """hidden_of(start, stop) (a value net's hidden rows) -> (rows, C) in the "core" buffer, BLOCK_ROWS rows
        at a time: each block's hidden layer (64 wide, in the "hidden" buffer) stays in cache for its
        activation and the last product, where a piece's whole hidden layer (10 MiB for a crystal piece of
        512 environments) passed through memory three times."""
        core = workspace.empty("core", (rows, weight.shape[0]), weight.dtype)
        for start in range(0, rows, BLOCK_ROWS):
            stop = min(rows, start + BLOCK_ROWS)
            hidden = hidden_of(start, stop)
            if bias is None:
                torch.mm(hidden, weight.t(), out=core[start:stop])
            else:
                torch.addmm(bias, hidden, weight.t(), out=core[start:stop])
        return core

    def uses_pair_symmetry(self) -> bool:
        """Evaluate V once per unordered pair: exact when rank-2 'single' invariants (symmetric) feed V.

        Not while training with dropout inside V, where (i, j) and (j, i) must
        draw independent masks as in the tuple-by-tuple model.
        """
        if self.rank != 2 or self.invariant_mode != "single":
            return False
        return not (self.training and any(isinstance(m, (FastDropout, nn.Dropout)) and m.p > 0
                                          for m in self.value_net.modules()))

    def reduction_dims(self) -> int:
        """How many trailing tuple axes the softmax and sum run over."""
        return self.rank if self.reduce else self.rank - 1

    def attend(self, scores: torch.Tensor, tuple_values: torch.Tensor | PairSum, valid: torch.Tensor | None):
        """Masked softmax of scores (..., tuple axes) and weighted sum of values (..., tuple axes, C) or pairs."""
        dims = self.reduction_dims()
        weights = masked_softmax(scores, valid, dims)
        if isinstance(tuple_values, PairSum):
            return tuple_values.weighted_sum(weights, dims), weights
        tuple_values = tuple_values.expand(*weights.shape, tuple_values.shape[-1])
        weighted = weights.unsqueeze(-1) * tuple_values
        return (weighted.flatten(-1 - dims, -2).sum(dim=-2) if dims else weighted), weights

    def extra_repr(self) -> str:
        return (f"n_dim={self.n_dim}, rank={self.rank}, reduce={self.reduce}, invariant_mode={self.invariant_mode!r}, "
                f"normalized={self.include_normalized_products}, o3={self.o3}")


class VectorAttention(TupleAttentionBase):
    """Rotation-invariant, permutation-covariant (or invariant with ``reduce``) attention, Eq. 1.

    positions (..., N, 3) (or a :class:`~gaatool.nn.geometry.Geometry` shared
    by several layers), values (..., N, F), mask (..., N) bool ->
    (..., N, F), or (..., F) with ``reduce=True``.

    >>> layer = VectorAttention(8).double()
    >>> layer(torch.randn(2, 5, 3, dtype=torch.float64), torch.randn(2, 5, 8, dtype=torch.float64)).shape
    torch.Size([2, 5, 8])
    """

    def forward(self, positions: "torch.Tensor | Geometry", values: torch.Tensor, mask: torch.Tensor | None = None,
                return_attention: bool = False):
        geometry, values = clean_padding(positions, values, mask)
        tuple_values = self.tuple_values(geometry, values)
        scores = tuple_values.full(tuple_values.through(self.score_net)).squeeze(-1)
        valid = tuple_mask(mask, self.rank)
        values_or_pairs = tuple_values if isinstance(tuple_values, PairSum) else tuple_values.materialize()
        output, weights = self.attend(scores, values_or_pairs, valid)
        if mask is not None and not self.reduce:
            output = output * mask.unsqueeze(-1).to(output.dtype)
        return AttentionOutput(output, weights) if return_attention else output
