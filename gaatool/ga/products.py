"""Geometric products of all tuples of input vectors, by broadcasting.

For a cloud r (..., N, 3) and rank R, the product of a tuple (i, j, k, ...) is
p_ijk... = r_i r_j r_k ..., and tuple axes are laid out as (..., N_i, N_j, ...)
with size-1 axes where a factor does not depend on that index (so the rank-1
"product" r_i has shape (..., N, 1, 3) when R = 2). Products alternate parity:
rank 1 is a vector (3 components), even ranks are scalar + bivector (4), odd
ranks > 1 are vector + trivector (4).

The *series* of a tuple follows the reference library: starting at slot s,
the chain r_s, r_s r_{s+1}, ..., r_s ... r_{R-1}.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .algebra import even_vector, odd_vector, vector_vector

__all__ = ["TupleProduct", "slot_view", "product_chain", "product_sets"]


@dataclass(frozen=True)
class TupleProduct:
    """One geometric product of a chain of tuple slots.

    slots: the tuple slots multiplied, in order (e.g. (0, 1) for r_i r_j).
    components: (..., *tuple axes, 3 or 4) broadcastable tensor.
    """

    slots: tuple[int, ...]
    components: torch.Tensor

    @property
    def order(self) -> int:
        """Number of vectors multiplied."""
        return len(self.slots)

    @property
    def is_vector(self) -> bool:
        """A single input vector (3 components)."""
        return self.order == 1

    @property
    def is_even(self) -> bool:
        """Scalar + bivector (products of an even number of vectors)."""
        return self.order % 2 == 0


def slot_view(x: torch.Tensor, slot: int, rank: int) -> torch.Tensor:
    """View per-point data (..., N, C) as tuple slot ``slot`` of ``rank``: (..., 1, N, 1, C) etc.

    >>> slot_view(torch.zeros(5, 4, 3), 1, 2).shape
    torch.Size([5, 1, 4, 3])
    """
    shape = list(x.shape[:-2]) + [1] * rank + [x.shape[-1]]
    shape[x.dim() - 2 + slot] = x.shape[-2]
    return x.reshape(shape)


def product_chain(r: torch.Tensor, rank: int, start: int = 0) -> list[TupleProduct]:
    """The chain r_start, r_start r_{start+1}, ... up to slot rank-1 (shortest first)."""
    result = []
    product = None
    for slot in range(start, rank):
        right = slot_view(r, slot, rank)
        if product is None:
            components = right
        elif len(result) == 1:
            components = vector_vector(product, right)
        elif len(result) % 2 == 0:  # product so far is even (scalar + bivector)
            components = even_vector(product, right)
        else:
            components = odd_vector(product, right)
        product = components
        result.append(TupleProduct(tuple(range(start, slot + 1)), components))
    return result


def product_sets(r: torch.Tensor, rank: int) -> dict[str, list[TupleProduct]]:
    """Products used by each mode, in the reference library's order.

    r (..., N, 3) -> {"single": [p_01..], "partial": [p_01.., ..., r_0], "full": all chains}.
    'single' is the full tuple product; 'partial' adds the intermediate products
    from slot 0 (longest first); 'full' adds the chains from every start slot.
    """
    chains = [list(reversed(product_chain(r, rank, start))) for start in range(rank)]
    return {
        "single": chains[0][:1],
        "partial": list(chains[0]),
        "full": [product for chain in chains for product in chain],
    }
