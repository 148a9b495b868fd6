"""CLI: how the train commands lay flags over --config files, and their checks of both (all three workflows)."""
from __future__ import annotations

import json

import pytest

from gaatool.checkpoint import read_metadata
from gaatool.errors import ConfigError

RUN = ["--epochs", "1", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def crystals(tmp_path_factory, cli_exit_code):
    """Two tiny crystal datasets of other noise draws."""
    folder = tmp_path_factory.mktemp("crystals")
    for seed in (0, 1):
        assert cli_exit_code("data", "crystals", "-o", folder / f"c{seed}.npz", "--min-particles", "40",
                             "--no-steinhardt", "--prototypes", "cF4-Cu,cI2-W", "--seed", seed, "--json") == 0
    return folder


def _config(tmp_path, values) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(values))
    return path


def test_config_values_apply_unless_the_flag_is_given(cli, tmp_path, crystals):
    config = _config(tmp_path, {"model": {"n_dim": 8, "n_blocks": 1},
                                "train": {"batch_size": 16, "learning_rate": 0.01, "lr_patience": 3,
                                          "metrics_format": "jsonl"}})
    code, _, err = cli("train", "crystal", crystals / "c0.npz", "-o", tmp_path / "a", *RUN, "--config", config)
    assert code == 0, err
    meta = read_metadata(tmp_path / "a" / "last.safetensors")
    assert (meta["model_options"]["n_dim"], meta["model_options"]["n_blocks"]) == (8, 1)
    assert (meta["train"]["batch_size"], meta["train"]["learning_rate"], meta["train"]["lr_patience"]) == (16, 0.01, 3)
    assert (tmp_path / "a" / "metrics.jsonl").is_file()
    # a flag typed on the command line wins, even one that repeats its default
    code, _, err = cli("train", "crystal", crystals / "c0.npz", "-o", tmp_path / "b", *RUN, "--config", config,
                       "--dim", "4", "--batch-size", "256", "--lr", "0.001")
    assert code == 0, err
    meta = read_metadata(tmp_path / "b" / "last.safetensors")
    assert (meta["model_options"]["n_dim"], meta["train"]["batch_size"], meta["train"]["learning_rate"]) == (4, 256, 0.001)
    assert (meta["model_options"]["n_blocks"], meta["train"]["lr_patience"]) == (1, 3)


@pytest.mark.parametrize("workflow", ["forces", "backmap"])
def test_config_values_reach_forces_and_backmap(cli, tmp_path, monkeypatch, workflow):
    seen = {}

    def capture(data, out, options, config, **kwargs):
        seen.update(options=options, config=config)
        raise ConfigError("captured")

    monkeypatch.setattr(f"gaatool.tasks.{workflow}.train.train_{workflow}", capture)
    data = ["--data", tmp_path / "d.npz"] if workflow == "forces" else [tmp_path / "d.npz"]
    config = _config(tmp_path, {"model": {"n_dim": 16}, "train": {"batch_size": 8, "learning_rate": 0.1,
                                                                  "lr_patience": 3}})
    assert cli("train", workflow, *data, "--config", config, "--seed", "5").one_line_error() == "error: captured"
    options, train = seen["options"], seen["config"]
    assert options.n_dim == 16 and (train.batch_size, train.learning_rate, train.lr_patience, train.seed) == (8, 0.1, 3, 5)
    if workflow == "forces":  # the force field's own schedule stays where neither sets it
        assert (train.epochs, train.stop_patience) == (50000, 2500)
    cli("train", workflow, *data, "--config", config, "--dim", "32", "--batch-size", "32")
    assert (seen["options"].n_dim, seen["config"].batch_size, seen["config"].learning_rate) == (32, 32, 0.1)


@pytest.mark.parametrize("workflow, values, message", [
    ("crystal", {"train": {"grad_clip": "1.0"}}, 'train.grad_clip must be a number or null (got "1.0")'),
    ("crystal", {"train": {"stop_patience": "5"}}, 'train.stop_patience must be an integer (got "5")'),
    ("crystal", {"train": {"lr_patience": 2.5}}, "train.lr_patience must be an integer (got 2.5)"),
    ("crystal", {"train": {"epochs": True}}, "train.epochs must be an integer (got true)"),
    ("crystal", {"model": {"dropout": "0.1"}}, 'model.dropout must be a number (got "0.1")'),
    ("crystal", {"model": {"invariant_mode": "bogus"}}, "model.invariant_mode: unknown invariant_mode 'bogus'"),
    ("crystal", {"model": {"n_blocks": 0}}, "model.n_blocks: n_blocks must be at least 1"),
    ("crystal", {"model": {"bogus": 1}}, "model: unknown keys ['bogus']"),
    ("crystal", {"trian": {}}, "unknown sections ['trian']"),
    ("crystal", {"model": []}, "section 'model' must be a JSON object"),
    ("backmap", {"trian": {}}, "unknown sections ['trian']"),
    ("backmap", {"model": {"translation_rank": 0}}, "model.translation_rank: translation_rank must be from 1 to 3"),
    ("forces", {"model": {"attention": {"rank": "2"}}}, 'model.attention.rank must be an integer (got "2")'),
    ("forces", {"model": {"attention": {"merge": "max"}}}, "model.attention: attention settings"),
    ("forces", {"data": {"n_train": 20}}, "the data section builds the --molecule dataset; --data"),
    ("molecule", {"data": {"n_train": "20"}}, 'data.n_train must be an integer or null (got "20")'),
    ("molecule", {"data": {"n_val": -2}}, "data.n_val must be >= 0 (got -2)"),
])
def test_config_errors_name_the_file_and_key(cli, tmp_path, workflow, values, message):
    data = {"forces": ["forces", "--data", tmp_path / "d.npz"], "molecule": ["forces", "--molecule", "ethanol"],
            "crystal": ["crystal", tmp_path / "d.npz"], "backmap": ["backmap", tmp_path / "d.npz"]}[workflow]
    config = _config(tmp_path, values)
    error = cli("train", *data, "-o", tmp_path / "run", "--config", config).one_line_error()
    assert error.startswith(f"error: {config}: ") and message in error
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args", [
    ["train", "crystal", "d.npz", "--rank", "4"], ["train", "crystal", "d.npz", "--rank", "0"],
    ["train", "crystal", "d.npz", "--dim", "0"], ["train", "crystal", "d.npz", "--dim", "-3"],
    ["train", "backmap", "d.npz", "--translation-rank", "-1"], ["train", "backmap", "d.npz", "--translation-rank", "0"],
    ["train", "backmap", "d.npz", "--refine-rank", "4"], ["train", "forces", "--data", "d.npz", "--blocks", "0"],
    ["train", "forces", "--data", "d.npz", "--batch-size", "0"],
    ["evaluate", "backmap", "m.safetensors", "d.npz", "--batch-size", "-1"],
    ["evaluate", "backmap", "m.safetensors", "d.npz", "--batch-size", "0"],
    ["evaluate", "forces", "m.safetensors", "d.npz", "--batch-size", "0"],
    ["data", "crystals", "-o", "c.npz", "--train-replicas", "0"],  # a dataset without a training split
])
def test_sizes_out_of_range_are_usage_errors(cli, tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(*args)
    assert code == 2 and "Invalid value for '--" in err and out == ""
    assert list(tmp_path.iterdir()) == []


def test_model_options_check_their_ranges():
    from gaatool.tasks.backmap.train import BackmapModelOptions
    from gaatool.tasks.crystal.train import CrystalModelOptions
    from gaatool.tasks.forces.train import ForcesModelOptions

    for build, match in [(lambda: CrystalModelOptions(rank=4), "rank must be from 1 to 3"),
                         (lambda: CrystalModelOptions(n_dim=0), "n_dim must be at least 1"),
                         (lambda: CrystalModelOptions(invariant_mode="bogus"), "unknown invariant_mode"),
                         (lambda: BackmapModelOptions(translation_rank=0), "translation_rank must be from 1 to 3"),
                         (lambda: BackmapModelOptions(refine_rank=4), "refine_rank must be from 1 to 3"),
                         (lambda: ForcesModelOptions(n_blocks=0), "n_blocks must be at least 1"),
                         (lambda: ForcesModelOptions(attention={"bogus": 1}), "attention must be an object")]:
        with pytest.raises(ConfigError, match=match):
            build()


def test_resume_refuses_another_dataset_or_noise_recipe(cli, tmp_path, crystals):
    tiny = [*RUN, "--dim", "4", "--batch-size", "64"]
    assert cli("train", "crystal", crystals / "c0.npz", "-o", tmp_path / "run", *tiny)[0] == 0
    before = {path.name: path.read_bytes() for path in (tmp_path / "run").iterdir()}
    resume = ["-o", tmp_path / "run", "--resume", "--epochs", "2", "--device", "cpu", "--quiet", "--dim", "4",
              "--batch-size", "64"]
    error = cli("train", "crystal", crystals / "c1.npz", *resume).one_line_error()
    assert "was trained on other data" in error and str(crystals / "c0.npz") in error
    error = cli("train", "crystal", crystals / "c0.npz", *resume, "--fresh-noise").one_line_error()
    assert "data.fresh_noise: checkpoint False, now True" in error
    assert {path.name: path.read_bytes() for path in (tmp_path / "run").iterdir()} == before


@pytest.mark.parametrize("command", ["crystal", "forces"])
def test_evaluate_plot_must_be_a_png(cli, tmp_path, command):
    error = cli("evaluate", command, tmp_path / "m.safetensors", tmp_path / "d.npz", "--plot",
                tmp_path / "p.txt").one_line_error()
    assert "--plot" in error and ".png" in error and not (tmp_path / "p.txt").exists()
