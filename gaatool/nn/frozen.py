"""Run a module with its parameters out of autograd, for gradients with respect to inputs only."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, Sequence

import torch
from torch import nn

__all__ = ["frozen_parameters", "derived_while_frozen", "KEEP_DERIVED"]

#: Keep derived weights at all (the A/B switch of ``benchmarks.ab_switches derived-weights``).
KEEP_DERIVED = True


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


def derived_while_frozen(owner: nn.Module, key: object, parameters: Sequence[torch.Tensor],
                         compute: Callable[[], object]):
    """``compute()``, kept on ``owner`` for as long as ``parameters`` take no gradient and stay unchanged.

    Layers fold their weights into other forms on every call (a fused layer norm's quadratic form, a
    join kernel folded into a value net's last layer): a few small operations per layer, a fixed
    part of a one-molecule force call of about 1,000 operations (``python -m benchmarks.ab_switches
    derived-weights --rounds 6``, 2-core EPYC, ms per molecule, kept / folded every call: ethanol
    at batch 1 11.6-13.2 / 12.2-13.2 in the five rounds of each without a 20 ms outlier, aspirin
    55.9-69.6 / 61.6-79.6; ``benchmarks/results/ab-switches-cpu-amd-epyc-session14-derived.txt``). Under
    :func:`frozen_parameters` (force inference) or with gradients off (crystal and backmapping
    inference) their results are the same from call to call until a parameter changes; any change
    (an optimiser step, ``load_state_dict``, ``.double()``) gives a new version or storage, which
    computes them again. Never while tracing for torch.compile.
    """
    if (not KEEP_DERIVED or torch.compiler.is_compiling()
            or (torch.is_grad_enabled() and any(p.requires_grad for p in parameters))):
        return compute()
    stamp = tuple((p.data_ptr(), p._version, p.dtype, p.device, p.shape) for p in parameters)
    cache = owner.__dict__.setdefault("_derived_while_frozen", {})
    hit = cache.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    value = compute()
    cache[key] = (stamp, value)
    return value
