"""torch.compile for inference: same outputs at a fixed batch, padding invisible, eager fallback on failure."""
import pytest
import torch
from torch._dynamo.utils import counters

from gaatool.models.crystal import CrystalClassifier
from gaatool.nn import compiled
from gaatool.nn.compiled import FixedBatchCompiled, compiled_batch_size, should_compile


def small_model():
    torch.manual_seed(0)
    return CrystalClassifier(CrystalClassifier.Config(n_dim=8, attention={"hidden": 8})).eval()


def test_should_compile_modes():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert should_compile("on", 1, cpu) and not should_compile("off", 10**9, cpu)
    assert should_compile("auto", compiled.AUTO_MIN_ITEMS, cpu) and not should_compile("auto", 1000, cpu)
    assert not should_compile("auto", 10**9, cuda)
    with pytest.raises(ValueError):
        should_compile("sometimes", 1, cpu)


def test_compiled_equals_eager_with_padding():
    model = small_model()
    wrapped = FixedBatchCompiled(model, batch_size=16)
    g = torch.Generator().manual_seed(1)
    r, t = torch.randn(37, 12, 3, generator=g), torch.randn(37, 12, 4, generator=g)
    graphs = []
    with torch.no_grad():
        # a full batch, a short (padded) one, a long one (pieces of 16): no recompilation, same numbers
        for n in (16, 5, 37):
            torch.testing.assert_close(wrapped(r[:n], t[:n]), model(r[:n], t[:n]), rtol=1e-5, atol=1e-5)
            graphs.append(counters["stats"]["unique_graphs"])
    assert wrapped._compiled is not None and graphs[0] == graphs[-1]


def test_compiled_batch_is_cache_sized_on_cpu():
    assert compiled_batch_size(2048, torch.device("cpu")) == compiled.CPU_COMPILED_BATCH
    assert compiled_batch_size(100, torch.device("cpu")) == 100
    assert compiled_batch_size(16384, torch.device("cuda")) == 16384


def test_compile_failure_falls_back_to_eager(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler\nmore detail")

    monkeypatch.setattr(torch, "compile", lambda model, **kw: broken)
    model = small_model()
    wrapped = FixedBatchCompiled(model, batch_size=4)
    r, t = torch.randn(3, 12, 3), torch.randn(3, 12, 4)
    with pytest.warns(RuntimeWarning, match="torch.compile failed .RuntimeError: no C\\+\\+ compiler.; running"):
        out = wrapped(r, t)
    torch.testing.assert_close(out, model(r, t))
    assert wrapped._compiled is None


def test_padded_sizes_are_few_and_bounded():
    wrapped = FixedBatchCompiled(small_model(), batch_size=16384)
    assert [wrapped.padded_size(n) for n in (1, 256, 257, 5000, 16384)] == [256, 256, 512, 8192, 16384]
    assert FixedBatchCompiled(small_model(), batch_size=100).padded_size(3) == 100


def test_compiled_energy_forces_fall_back_to_eager(monkeypatch):
    from gaatool.models.forces import ForceField
    from gaatool.nn.compiled import CompiledEnergyForces

    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(torch, "compile", lambda fn, **kw: broken)
    torch.manual_seed(0)
    model = ForceField(ForceField.Config(n_dim=8, n_blocks=1)).double().eval()
    positions, types = torch.randn(2, 5, 3, dtype=torch.float64), torch.randint(0, 3, (2, 5))
    wrapped = CompiledEnergyForces(lambda r, t: model.energy(r, t), model)
    with pytest.warns(RuntimeWarning, match="torch.compile failed"):
        energy, forces = wrapped(positions, types)
    expected_energy, expected_forces = model(positions, types)
    torch.testing.assert_close(energy, expected_energy.detach())
    torch.testing.assert_close(forces, expected_forces)
    assert wrapped._compiled is None and all(p.requires_grad for p in model.parameters())


def test_compiled_energy_forces_compile_once_and_match_eager():
    """The second call reuses the first call's graphs: no recompilation for the pair-layout cache."""
    from gaatool.models.forces import ForceField

    torch.manual_seed(0)
    model = ForceField(ForceField.Config(n_dim=8, n_blocks=1)).double().eval()
    positions, types = torch.randn(1, 5, 3, dtype=torch.float64), torch.randint(0, 3, (1, 5))
    wrapped = model.compiled_energy_forces()
    wrapped(positions[0].as_strided((1, 5, 3), (0, 3, 1)), types)  # batch stride 0, as numpy's a[None]
    graphs = counters["stats"]["unique_graphs"]
    energy, forces = wrapped(positions + 0.01, types)
    assert counters["stats"]["unique_graphs"] == graphs
    expected_energy, expected_forces = model(positions + 0.01, types, include_shift=False)
    torch.testing.assert_close(energy, expected_energy.detach())
    torch.testing.assert_close(forces, expected_forces)
