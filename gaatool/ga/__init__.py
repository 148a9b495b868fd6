"""Geometric algebra of R^3: multivectors, tuple products, invariants, covariants.

Pure tensor functions, no learnable state. Multivector components use the
basis (1, e1, e2, e3, e12, e13, e23, e123).
"""
from .algebra import (BASIS, GRADES, dual, even_to_multivector, even_vector, from_vector,
                      geometric_product, grade, norm, odd_to_multivector, odd_vector, reverse,
                      vector_vector)
from .covariants import COVARIANT_MODES, covariant_count, tuple_covariants
from .invariants import INVARIANT_MODES, invariant_count, tuple_invariants
from .products import TupleProduct, product_chain, product_sets, slot_view
from .rotations import random_reflection, random_rotation
from .safe import safe_abs, safe_norm

__all__ = [
    "BASIS", "GRADES", "geometric_product", "grade", "reverse", "dual", "norm", "from_vector",
    "vector_vector", "even_vector", "odd_vector", "even_to_multivector", "odd_to_multivector",
    "TupleProduct", "slot_view", "product_chain", "product_sets",
    "INVARIANT_MODES", "invariant_count", "tuple_invariants",
    "COVARIANT_MODES", "covariant_count", "tuple_covariants",
    "random_rotation", "random_reflection", "safe_norm", "safe_abs",
]
