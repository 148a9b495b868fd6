"""Smoke tests of the benchmark harness (benchmarks/): reference parity, FLOPs, memory, cases, output. No timings."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # benchmarks/ is not installed; with plain `pytest` the root is not on the path
    sys.path.insert(0, str(ROOT))

pytest.importorskip("geometric_algebra_attention.pytorch")

from benchmarks import harness  # noqa: E402
from benchmarks.bench_identify_scaling import _parse_sizes, fcc_frame, measure, random_checkpoint, scaling_exponent  # noqa: E402
from benchmarks.bench_models_reference import (BACKMAP_ATOMS, FULL_CASES, MOLECULES, CaseSpec, make_inputs,  # noqa: E402
                                               prepare)
from benchmarks.reference import _reference_key, build_reference, copy_weights, parameter_count  # noqa: E402
from benchmarks.run import main as run_main, select_cases  # noqa: E402
from gaatool.models.backmap import Backmapper  # noqa: E402
from gaatool.models.crystal import CrystalClassifier  # noqa: E402
from gaatool.models.forces import ForceField  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Using a non-tuple sequence")

TINY = {"crystal": {"n_dim": 8, "attention": {"dropout": 0.5, "hidden": 16}},
        "ethanol": {"n_dim": 8, "n_blocks": 2, "attention": {"merge": "concat", "join": "concat",
                                                            "score_activation": "swish", "hidden": 16}},
        "backmap": {"n_dim": 8, "attention": {"merge": "concat", "join": "concat", "hidden": 16}}}


def _max_error(a, b) -> float:
    return float((a - b).detach().abs().max())


def test_crystal_reference_has_equal_parameters_and_outputs():
    torch.manual_seed(0)
    model = CrystalClassifier(CrystalClassifier.Config(**TINY["crystal"])).eval()
    reference = build_reference(model)
    assert parameter_count(reference) == parameter_count(model) > 0
    r = torch.randn(3, 7, 3)
    types = torch.randn(3, 7, 4)
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, -2:] = False
    with torch.no_grad():
        assert _max_error(model(r, types), reference(r, types)) < 1e-5
        assert _max_error(model(r, types, mask), reference(r, types, mask)) < 1e-5
        # a different reference weight changes the output: the comparison can fail
        next(reference.parameters()).add_(0.1)
        assert _max_error(model(r, types), reference(r, types)) > 1e-4


def test_force_reference_energy_forces_and_training_gradients_agree():
    torch.manual_seed(1)
    model = ForceField(ForceField.Config(**TINY["ethanol"]))
    reference = build_reference(model)
    assert parameter_count(reference) == parameter_count(model)
    inputs = make_inputs(CaseSpec("ethanol", "train", 3), seed=2)
    mask = torch.ones(3, 9, dtype=torch.bool)
    mask[2, -3:] = False
    for m in (None, mask):
        energy, forces = model.eval()(inputs["positions"], inputs["types"], m)
        ref_energy, ref_forces = reference.eval()(inputs["positions"], inputs["types"], m)
        assert _max_error(energy, ref_energy) < 1e-5
        assert _max_error(forces, ref_forces) < 1e-5
        assert forces.abs().max() > 0
    # the force-loss training step differentiates twice; both give the same parameter gradients
    for net in (model, reference):
        _, forces = net.train()(inputs["positions"], inputs["types"], create_graph=True)
        (forces - inputs["forces"]).pow(2).mean().backward()
    ours = {_reference_key(name): p.grad for name, p in model.named_parameters()}
    theirs = dict((name, p.grad) for name, p in reference.named_parameters())
    assert ours.keys() == theirs.keys()
    scale = max(float(g.abs().max()) for g in ours.values())
    assert max(_max_error(ours[k], theirs[k]) for k in ours) < 1e-5 * max(scale, 1.0)


def test_backmap_reference_with_masks_agrees():
    torch.manual_seed(2)
    model = Backmapper(Backmapper.Config(**TINY["backmap"])).eval()
    reference = build_reference(model)
    assert parameter_count(reference) == parameter_count(model)
    x = make_inputs(CaseSpec("backmap", "inference", 4), seed=3)
    x["neighbor_mask"][0, -3:] = False  # a residue near a chain end
    args = [x[k] for k in ("neighbor_positions", "neighbor_types", "residue_types", "atom_labels",
                           "neighbor_mask", "atom_mask")]
    with torch.no_grad():
        out, ref = model(*args), reference(*args)
    assert out.shape == (4, BACKMAP_ATOMS, 3)
    assert _max_error(out, ref) < 1e-5
    assert torch.all(out[~x["atom_mask"]] == 0) and torch.all(ref[~x["atom_mask"]] == 0)


def test_copy_weights_refuses_a_different_architecture():
    small = CrystalClassifier(CrystalClassifier.Config(n_dim=8))
    reference = build_reference(CrystalClassifier(CrystalClassifier.Config(n_dim=8, n_blocks=1)))
    with pytest.raises(ValueError, match="differ"):
        copy_weights(small, reference)
    with pytest.raises(ValueError, match="O\\(3\\)"):
        build_reference(CrystalClassifier(CrystalClassifier.Config(n_dim=8, attention={"o3": True})))


def test_reference_mlps_use_plain_torch_modules():
    reference = build_reference(CrystalClassifier(CrystalClassifier.Config(n_dim=8)))
    kinds = {type(m).__name__ for m in reference.modules()}
    assert "Dropout" in kinds and "FastDropout" not in kinds
    assert any(type(m) is torch.nn.ReLU for m in reference.modules())
    assert not any(isinstance(m, torch.nn.ReLU) and type(m) is not torch.nn.ReLU for m in reference.modules())
    forces = build_reference(ForceField(ForceField.Config(n_dim=8, n_blocks=1)))
    kinds = {type(m).__name__ for m in forces.modules()}
    assert "SiLU" in kinds and "Swish" not in kinds


def test_prepared_steps_run_for_every_model_at_tiny_size():
    for model in ("crystal", "ethanol", "backmap"):
        for mode in ("inference", "train"):
            prepared = prepare(CaseSpec(model, mode, 2), config_overrides=TINY[model])
            counts = prepared.parameter_counts
            assert counts["gaatool"] == counts["reference"]
            before = [p.detach().clone() for p in prepared.models["reference"].parameters()]
            for step in prepared.steps.values():
                step()
            changed = any(not torch.equal(a, b) for a, b in zip(before, prepared.models["reference"].parameters()))
            assert changed == (mode == "train")  # a training step updates the weights, inference does not


def test_synthetic_inputs_have_realistic_geometry():
    crystal = make_inputs(CaseSpec("crystal", "inference", 5))
    lengths = crystal["r_ij"].norm(dim=-1)
    assert crystal["r_ij"].shape == (5, 12, 3) and crystal["r_ij"].dtype == torch.float32
    assert 0.7 < float(lengths.min()) and float(lengths.max()) < 1.3
    for name, symbols in MOLECULES.items():
        x = make_inputs(CaseSpec(name, "inference", 3))
        assert x["positions"].shape == (3, len(symbols), 3)
        d = torch.cdist(x["positions"], x["positions"]) + 100 * torch.eye(len(symbols))
        assert float(d.min()) >= 1.0 - 1e-5
    assert (make_inputs(CaseSpec("aspirin", "inference", 1))["types"] == 1).sum() == 9  # carbons
    backmap = make_inputs(CaseSpec("backmap", "inference", 6))
    from gaatool.tasks.backmap.residues import RESIDUE_ATOMS, RESIDUE_NAMES

    sizes = [len(RESIDUE_ATOMS[RESIDUE_NAMES[int(t)]]) for t in backmap["residue_types"]]
    assert backmap["atom_mask"].sum(-1).tolist() == sizes


def test_count_flops_counts_matrix_products_forward_and_backward():
    linear = torch.nn.Linear(5, 7)
    x = torch.randn(3, 5)
    assert harness.count_flops(lambda: linear(x)) == 2 * 3 * 5 * 7
    # backward adds the input and the weight gradients: twice the forward
    assert harness.count_flops(lambda: linear(x.requires_grad_(True)).sum().backward()) == 3 * 2 * 3 * 5 * 7


def test_time_alternating_interleaves_and_bounds_repeats():
    calls = []
    steps = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    samples = harness.time_alternating(steps, warmup=1, min_repeats=3, max_repeats=5, target_seconds=10.0)
    assert [len(v) for v in samples.values()] == [5, 5]  # instant calls: capped at max_repeats
    assert calls == ["a", "b"] * 7  # warm-up, sizing round, 5 timed rounds
    samples = harness.time_alternating(steps, warmup=1, min_repeats=3, max_repeats=5, target_seconds=0.0)
    assert len(samples["a"]) == 3


def test_time_alternating_sizes_the_run_after_the_warm_up():
    """A slow first call (compilation) must not cut the run to min_repeats."""
    import time as clock

    calls = {"n": 0}

    def compiles_first() -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            clock.sleep(0.3)

    samples = harness.time_alternating({"a": compiles_first}, warmup=1, min_repeats=3, max_repeats=10,
                                       target_seconds=0.2)
    assert len(samples["a"]) == 10


def _in_fresh_process(code: str) -> str:
    """Memory probes are only sound in a fresh process (a long pytest run reuses freed, resident pages)."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", code], env=harness.child_environment(), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_cpu_peak_growth_sees_a_torch_allocation():
    size = 64 * 2**20
    code = (
        "import torch\nfrom benchmarks import harness\n"
        f"size = {size}\n"
        "growth = harness.cpu_peak_growth(lambda: torch.ones(size // 4, dtype=torch.float32).sum())\n"
        "idle = harness.cpu_peak_growth(lambda: None)\n"
        "print(growth, idle)\n"
    )
    growth, idle = map(int, _in_fresh_process(code).split())
    assert 0.9 * size < growth < 2 * size
    assert idle < 0.1 * size


def test_select_cases():
    assert select_cases(None) == list(FULL_CASES)
    assert [c.key for c in select_cases("aspirin-inference-b64,crystal-train")] == \
        ["aspirin-inference-b64", "crystal-train-b256"]
    assert {c.model for c in select_cases("ethanol")} == {"ethanol"}
    with pytest.raises(ValueError, match="matches no case"):
        select_cases("argon")
    with pytest.raises(ValueError, match="unknown benchmark model"):
        select_cases("argon-inference-b1")


def test_device_slug_and_markdown_table():
    slug = harness.device_slug("cpu")
    assert slug.startswith("cpu-") and all(c.isalnum() or c == "-" for c in slug)
    table = harness.markdown_table(["a", "b"], [[1, 2.5]])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | 2.5 |"]


def test_run_quick_one_case_writes_json_and_markdown(tmp_path):
    assert run_main(["--quick", "--cases", "ethanol-inference-b1", "--out", str(tmp_path), "--threads", "1"]) == 0
    (json_path,) = tmp_path.glob("cpu-*-quick.json")
    payload = json.loads(json_path.read_text())
    (case,) = payload["cases"]
    assert case["case"] == "ethanol-inference-b1"
    assert case["parameters"]["gaatool"] == case["parameters"]["reference"]
    for name in ("gaatool", "reference"):
        entry = case[name]
        assert entry["ms_per_item"] > 0 and entry["flops_per_item"] > 1e6
        assert entry["peak_memory_bytes"] > 0 and entry["process_peak_bytes"] > entry["peak_memory_bytes"]
    assert case["speedup"] == pytest.approx(case["reference"]["ms_per_item"] / case["gaatool"]["ms_per_item"])
    assert payload["matmul_peak"]["gflops"] > 0 and payload["machine"]["torch_version"] == torch.__version__
    markdown = json_path.with_suffix(".md").read_text()
    assert "ethanol energy+forces" in markdown and "speed-up" in markdown
    assert run_main(["--cases", "argon", "--out", str(tmp_path)]) == 1


def test_identify_scaling_pieces(tmp_path):
    frame = fcc_frame(1000)
    assert frame.n_particles >= 1000 and frame.box is not None
    checkpoint = random_checkpoint(tmp_path / "random.safetensors")
    code = (
        "import json\nfrom benchmarks.bench_identify_scaling import measure\n"
        f"print(json.dumps(measure(600, {str(checkpoint)!r}, repeats=1)))\n"
    )
    result = json.loads(_in_fresh_process(code))
    assert result["n_particles"] >= 600 and result["particles_per_second"] > 0
    assert result["peak_memory_bytes"] > 0
    assert scaling_exponent([1e4, 1e5, 1e6], [1.0, 10.0, 100.0]) == pytest.approx(1.0)
    assert scaling_exponent([1e4, 1e5], [1.0, 100.0]) == pytest.approx(2.0)
    assert _parse_sizes("1e4,2e4", quick=False) == [10_000, 20_000]
    with pytest.raises(ValueError, match="at least 100"):
        _parse_sizes("10", quick=False)
    assert np.isnan(scaling_exponent([1e4], [1.0]))


@pytest.mark.parametrize("module", ["benchmarks.reference", "benchmarks.bench_models_reference", "benchmarks.harness"])
def test_doctests_of_benchmark_modules(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_compiled_crystal_inference_step_runs():
    prepared = prepare(CaseSpec("crystal", "inference", 3), config_overrides=TINY["crystal"], compile=True)
    assert prepared.steps["gaatool"].__name__ == "compiled_step"
    assert prepare(CaseSpec("crystal", "train", 3), config_overrides=TINY["crystal"],
                   compile=True).steps["gaatool"].__name__ == "step"  # training is never compiled
    prepared.steps["gaatool"]()  # compiles once, then runs at the fixed batch


def test_compiled_forces_step_is_chosen_for_molecular_inference_only():
    assert prepare(CaseSpec("ethanol", "inference", 2), config_overrides=TINY["ethanol"],
                   compile=True).steps["gaatool"].__name__ == "compiled_forces_step"
    assert prepare(CaseSpec("ethanol", "train", 2), config_overrides=TINY["ethanol"],
                   compile=True).steps["gaatool"].__name__ == "engine_step"  # double backward: never compiled


def test_ab_switches_flip_and_restore_the_change():
    import gaatool.models.backmap as backmap_model
    import gaatool.models.crystal as crystal_model
    import gaatool.models.forces as forces_model
    import gaatool.nn.attention as attention
    import gaatool.nn.masking as masking
    import gaatool.nn.mlp as mlp
    import gaatool.nn.chunks as chunks
    import gaatool.nn.compiled as compiled
    import gaatool.nn.workspace as workspace
    import gaatool.nn.frozen as frozen
    import gaatool.nn.fused as fused
    import gaatool.tasks.forces.train as forces_train
    from benchmarks.ab_switches import SWITCHES

    def state():
        return (mlp.FUSE_MAX_INPUTS, backmap_model.CPU_CHUNK_TUPLES, backmap_model.TRAIN_CPU_CHUNK_TUPLES,
                forces_model.frozen_parameters, forces_train.MIN_PIECE_TUPLES, chunks._worker_pool,
                compiled.CPU_CPP_WRAPPER, attention.PairSum.materialize,
                crystal_model.CPU_CHUNK_TUPLES, masking.SHORT_SET, chunks.CPU_CHUNK_TUPLES, workspace.ENABLED,
                frozen.KEEP_DERIVED, attention.TupleSum.materialize, attention.TupleSum.through,
                attention.BLOCK_ROWS, mlp.FastDropout.forward, attention.broadcast_shape, mlp.FUSE_MIN_ROWS,
                chunks.draws_unstreamed_random_numbers,
                attention.scattered_pair_weights, mlp.ROW_STATS_ONCE, fused.ENABLED, mlp.STATS_CHANNELS_FIRST,
                attention.FOLD_RELU_BIAS, crystal_model.BUDGET_PER_WORKER)

    before = state()
    for name, (switch, cases, _) in SWITCHES.items():
        switch(False)
        assert state() != before, name
        switch(True)
        assert state() == before, name  # on = as shipped
        assert cases


def test_ab_switches_combine_and_alternate():
    import gaatool.nn.attention as attention
    from benchmarks.ab_switches import SWITCHES, _alternating, _combined

    switch, cases, compile = _combined(["tuple-workspace", "row-blocks"])
    assert [spec.key for spec in cases] == ["backmap-inference-b256", "crystal-inference-b1024"] and not compile
    shipped = (attention.TupleSum.through, attention.BLOCK_ROWS)
    switch(False)
    assert attention.TupleSum.through != shipped[0] and attention.BLOCK_ROWS != shipped[1]  # both flipped
    switch(True)
    assert (attention.TupleSum.through, attention.BLOCK_ROWS) == shipped
    states = []
    flags = []
    steps = {"on": lambda: states.append(("on", flags[-1])), "off": lambda: states.append(("off", flags[-1]))}
    times = _alternating(steps, flags.append, calls=3, batch=2)
    assert [len(times["on"]), len(times["off"])] == [3, 3]
    assert all((state == "on") == flag for state, flag in states)  # each step ran in its own state
    assert [state for state, _ in states[4:]] == ["on", "off", "off", "on", "on", "off"]  # alternating, after warm-ups
    assert "row-blocks" in SWITCHES


def test_force_training_step_is_the_engines_with_pieces_side_by_side():
    spec = CaseSpec("ethanol", "train", 6)
    prepared = prepare(spec, config_overrides=TINY["ethanol"])
    assert prepared.steps["gaatool"].__name__ == "engine_step"
    assert prepared.steps["reference"].__name__ == "step"
    before = [p.detach().clone() for p in prepared.models["gaatool"].parameters()]
    prepared.steps["gaatool"]()  # runs (split in pieces on a multi-core machine) and updates the weights
    assert any(not torch.equal(a, b) for a, b in zip(before, prepared.models["gaatool"].parameters()))
    crystal = prepare(CaseSpec("crystal", "train", 4), config_overrides=TINY["crystal"])
    assert crystal.steps["gaatool"].__name__ == "step"  # crystal and backmap split inside their models


def test_allocator_benchmark_measures_and_summarizes(monkeypatch):
    from benchmarks.bench_allocator import child_environment, measure, summarize

    result = measure(CaseSpec("crystal", "inference", 2), "default", calls=2)
    assert result["case"] == "crystal-inference-b2" and result["applied"] is False
    assert result["ms_per_item"] > 0 and len(result["samples_ms_per_item"]) == 2 and result["faults_per_call"] >= 0
    with pytest.raises(ValueError):
        measure(CaseSpec("crystal", "inference", 2), "tuned")
    runs = [{"case": "c", "setting": s, "applied": s == "kept", "ms_per_item": t, "faults_per_call": f}
            for s, t, f in [("default", 2.0, 900), ("kept", 1.0, 0), ("default", 4.0, 1100), ("kept", 1.0, 2)]]
    (row,) = summarize(runs)
    assert row["default"]["ms_per_item"] == 3.0 and row["kept"]["ms_per_item"] == 1.0 and row["speedup"] == 3.0
    assert row["default"]["range_ms_per_item"] == [2.0, 4.0] and row["kept"]["applied"]
    assert row["default"]["faults_per_call"] == 1000
    monkeypatch.setenv("MALLOC_TOP_PAD_", "1")  # it would stop keep_freed_memory in the children
    assert not any(key.startswith("MALLOC_") for key in child_environment())


def test_profile_case_reports_time_and_operations(capsys):
    from benchmarks.profile_case import main, parse_case

    assert parse_case("crystal-inference-b256") == CaseSpec("crystal", "inference", 256)
    with pytest.raises(SystemExit, match="case must look like"):
        parse_case("crystal-256")
    threads = torch.get_num_threads()
    try:
        main(["crystal-inference-b2", "--calls", "4", "--rows", "3"])
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "crystal-inference-b2, one thread:" in out and "minor page faults" in out and "aten::" in out
    assert "ms per call under the profiler" in out  # the profiler's distortion is shown, not hidden


def test_profiler_distortion_times_the_models_silu_with_and_without_the_profiler(capsys):
    import gaatool.nn.swish as swish_module
    from benchmarks.profiler_distortion import main

    original = swish_module.nn
    threads = torch.get_num_threads()
    result = main(["ethanol-inference-b1", "--calls", "1"])
    assert swish_module.nn is original and torch.get_num_threads() == threads  # both put back
    assert result["silu_elements"] == 9 * 9 * 9 * 64  # the rank-2 tuple hidden layer of 9 atoms
    assert all(result[f"{label}_{what}"] > 0 for label in ("plain", "profiled")
               for what in ("ms_per_call", "model_silu_us", "alone_silu_us"))
    assert "under the profiler" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="only the force models"):
        main(["crystal-inference-b2"])


def test_kernel_benchmark_compares_equal_results(capsys):
    from benchmarks.bench_kernels import main

    rows = main(["--environments", "3", "--repeats", "3"])  # asserts old and new agree before timing
    assert [row["step"] for row in rows][0].startswith("pair sums") and len(rows) == 4
    assert all(row["old_us"] > 0 and row["new_us"] > 0 for row in rows)
    assert "3 environments: old" in capsys.readouterr().out


def test_keep_freed_memory_option(monkeypatch):
    import argparse

    import gaatool.allocator as allocator

    parser = argparse.ArgumentParser()
    harness.add_keep_freed_memory_option(parser)
    applied = []
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda: applied.append(True) or True)
    harness.apply_keep_freed_memory_option(parser, parser.parse_args([]))
    assert applied == []  # not asked for: the process's malloc as it is
    harness.apply_keep_freed_memory_option(parser, parser.parse_args(["--keep-freed-memory"]))
    assert applied == [True]
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda: False)  # e.g. MALLOC_* set by the user
    with pytest.raises(SystemExit) as error:
        harness.apply_keep_freed_memory_option(parser, parser.parse_args(["--keep-freed-memory"]))
    assert error.value.code == 2


def test_identify_scaling_as_the_command_runs(tmp_path):
    from benchmarks.bench_identify_scaling import main as scaling_main

    checkpoint = random_checkpoint(tmp_path / "random.safetensors")
    assert scaling_main(["--sizes", "600", "--keep-freed-memory", "--model", str(checkpoint), "--threads", "1",
                         "--out", str(tmp_path)]) == 0
    (result,) = tmp_path.glob("identify-*-kept.json")
    payload = json.loads(result.read_text())
    assert payload["kept_memory"] is True and payload["sizes"][0]["particles_per_second"] > 0
    assert "freed memory kept" in result.with_suffix(".md").read_text()


def test_identify_scaling_reports_a_damaged_checkpoint_in_one_line(tmp_path, capsys):
    from benchmarks.bench_identify_scaling import main as scaling_main

    damaged = tmp_path / "damaged.safetensors"
    damaged.write_text("not a checkpoint")
    out = tmp_path / "out"
    assert scaling_main(["--sizes", "600", "--keep-freed-memory", "--model", str(damaged), "--out", str(out)]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "\n" not in error and "not a safetensors checkpoint" in error
    assert not out.exists() or not any(out.iterdir())  # nothing written
