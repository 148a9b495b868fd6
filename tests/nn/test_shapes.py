"""broadcast_shape agrees with torch.broadcast_shapes, errors included."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, strategies as st

from gaatool.nn.shapes import broadcast_shape

sizes = st.sampled_from([1, 1, 2, 3, 5])
shapes = st.lists(sizes, max_size=5).map(tuple)


@given(st.lists(shapes, min_size=1, max_size=4))
def test_broadcast_shape_agrees_with_torch(shape_list):
    try:
        expected = torch.broadcast_shapes(*shape_list)
    except RuntimeError:
        with pytest.raises(RuntimeError, match="cannot be broadcast"):
            broadcast_shape(*shape_list)
        return
    result = broadcast_shape(*shape_list)
    assert result == expected and isinstance(result, torch.Size)


def test_broadcast_shape_of_sizes_and_nothing():
    assert broadcast_shape(torch.Size([4, 1, 3]), torch.Size([7, 1])) == torch.Size([4, 7, 3])
    assert broadcast_shape((0, 1), (1, 3)) == torch.Size([0, 3])  # empty axes broadcast like torch's
    assert broadcast_shape(()) == torch.Size([])
