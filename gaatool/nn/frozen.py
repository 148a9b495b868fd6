"""Run a module with its parameters out of autograd, for gradients with respect to inputs only."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator

from torch import nn

__all__ = ["frozen_parameters"]


@contextmanager
def frozen_parameters(module: nn.Module | Iterable[nn.Parameter]) -> Iterator[None]:
    """Inside, ``module``'s parameters do not require gradients; restored on exit (also on errors).

    ``module`` may also be the list of its parameters, kept by a caller that
    freezes them on every call: walking the module tree costs ~0.1 ms per call
    for a 6-block force field, ~3% of a compiled ethanol step.

    Forces by autograd (-dE/dr) need gradients with respect to positions only.
    With parameters that require gradients, the forward pass still records
    and saves what their gradients would need: ethanol at batch 1 ~3%, at
    batch 128 ~7% of the inference time (``python -m benchmarks.ab_switches
    frozen-parameters``). Not for a module that
    another thread trains at the same time: the flags are the module's own.

    >>> layer = nn.Linear(2, 2)
    >>> with frozen_parameters(layer):
    ...     layer.weight.requires_grad
    False
    >>> layer.weight.requires_grad
    True
    """
    parameters = module.parameters() if isinstance(module, nn.Module) else module
    changed = [p for p in parameters if p.requires_grad]
    for parameter in changed:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter in changed:
            parameter.requires_grad_(True)
