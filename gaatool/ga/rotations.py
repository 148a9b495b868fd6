"""Random rotations and reflections for tests and data augmentation."""
from __future__ import annotations

import torch

__all__ = ["random_rotation", "random_reflection"]


def random_rotation(generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64,
                    batch: tuple[int, ...] = ()) -> torch.Tensor:
    """Uniformly random rotation matrices (det +1) from random unit quaternions.

    -> (*batch, 3, 3). Apply to row vectors as ``r @ Q.T``.

    >>> Q = random_rotation(torch.Generator().manual_seed(0))
    >>> bool(torch.allclose(Q @ Q.T, torch.eye(3, dtype=Q.dtype))), round(float(torch.det(Q)), 6)
    (True, 1.0)
    """
    q = torch.randn(*batch, 4, generator=generator, dtype=torch.float64)
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    matrix = torch.stack([
        1 - 2*(y*y + z*z), 2*(x*y - z*w), 2*(x*z + y*w),
        2*(x*y + z*w), 1 - 2*(x*x + z*z), 2*(y*z - x*w),
        2*(x*z - y*w), 2*(y*z + x*w), 1 - 2*(x*x + y*y),
    ], dim=-1).reshape(*batch, 3, 3)
    return matrix.to(dtype)


def random_reflection(generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64,
                      batch: tuple[int, ...] = ()) -> torch.Tensor:
    """Random improper orthogonal matrices (det -1): a rotation times inversion."""
    return -random_rotation(generator, dtype, batch)
