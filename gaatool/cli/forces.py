"""Molecular force-field commands: data md17, train/evaluate/predict forces."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator, Optional

import typer

from ..io.atomic import check_output_path
from . import options, render
from .groups import data_app, evaluate_app, predict_app, train_app

@contextlib.contextmanager
def _download_progress(quiet: bool) -> Iterator:
    """A progress callback for downloads that shows a bar on stderr once bytes flow."""
    if quiet:
        yield None
        return
    state: dict = {}

    def progress(done: int, total: Optional[int]) -> None:
        if "bar" not in state:
            from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

            state["bar"] = Progress(BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                                    console=render.stderr_console(), transient=True)
            state["bar"].start()
            state["task"] = state["bar"].add_task("download", total=total)
        state["bar"].update(state["task"], completed=done, total=total)

    try:
        yield progress
    finally:
        if "bar" in state:
            state["bar"].stop()


def _dataset_summary(summary: dict, as_json: bool) -> None:
    if as_json:
        render.print_json(summary)
        return
    rows = [(name, part["n_frames"], part["force_rms_mev_per_a"], part["energy_std_mev"])
            for name, part in summary["splits"].items()]
    console = render.stderr_console()
    title = f"{summary['molecule']} ({summary['formula']}, {summary['n_atoms']} atoms)"
    console.print(render.table(title, ["split", "frames", "force RMS (meV/Å)", "energy std (meV)"], rows))
    split = summary["split"]
    how = "paper (seeded random)" if split.get("kind") == "paper" else f"published rMD17 split {split.get('published_split')}"
    console.print(f"split: {how}, seed {split.get('seed')}, from {split.get('source_frames')} frames")
    check = "verified" if summary.get("fingerprint_verified") else "computed"
    console.print(f"source: {summary['source']} (sha256 {str(summary['sha256'])[:16]}..., "
                  f"sGDML fingerprint {summary['fingerprint']} {check})")
    if summary.get("path"):
        console.print(f"wrote {summary['path']}")


@data_app.command("md17")
def md17(
    molecule: Optional[str] = typer.Option(None, "--molecule", help="aspirin, benzene, ethanol, malonaldehyde, "
                                           "naphthalene, salicylic, toluene or uracil."),
    revised: bool = typer.Option(False, "--revised", help="Use the revised MD17 (rMD17)."),
    source: Optional[Path] = typer.Option(None, "--from", help="Local npz / sGDML xyz / extended XYZ "
                                          "(or rmd17.tar.bz2 with --revised) instead of downloading."),
    labels: str = typer.Option("rmd17", "--labels", metavar="rmd17|md17",
                               help="With --from an rMD17 .npz: its own labels (rmd17) or the original MD17 ones "
                                    "it keeps (md17; the pretrained models' labels)."),
    split: str = typer.Option("paper", "--split", help="paper (random, seeded) or published (rMD17 splits)."),
    published_split: int = typer.Option(1, "--published-split", help="Which published rMD17 split (1-5)."),
    n_train: Optional[int] = typer.Option(None, "--n-train", help="Training frames (paper split: 1000)."),
    n_val: Optional[int] = typer.Option(None, "--n-val", help="Validation frames (1000)."),
    n_test: Optional[int] = typer.Option(None, "--n-test", help="Test frames (paper split: 1000)."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Download cache folder (default: user cache)."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Dataset file (default: [r]md17_<molecule>.npz)."),
    seed: int = options.Seed, quiet: bool = options.Quiet, as_json: bool = options.AsJson,
) -> None:
    """Build a train/val/test force dataset of one MD17 molecule (kcal/mol, Å)."""
    from ..tasks.forces.dataset import build_md17_dataset

    if out is None:
        out = Path(f"{'rmd17' if revised else 'md17'}_{molecule}.npz" if molecule
                   else f"{source.stem if source is not None else 'md17'}_dataset.npz")
    options.check_stdout_refused(out, options.NO_STDOUT_DATASET)
    check_output_path(out, inputs=(source,))  # before a download
    with _download_progress(quiet or as_json) as progress:
        dataset = build_md17_dataset(molecule, source=source, revised=revised, split=split, seed=seed,
                                     n_train=n_train, n_val=n_val, n_test=n_test, published_index=published_split,
                                     cache=cache, output=out, progress=progress, labels=labels)
    _dataset_summary(dataset.to_dict(), as_json)


@train_app.command("forces")
def forces(
    ctx: typer.Context,
    molecule: Optional[str] = typer.Option(None, "--molecule", help="Train on this MD17 molecule (downloaded "
                                           "or cached; paper split from --seed)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Dataset from `gaatool data md17`."),
    out: Path = typer.Option(Path("runs/forces"), "-o", "--out", help="Output folder for checkpoints and metrics."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1,
                                         help="Maximum number of epochs (default: the paper's 50000)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Molecules (frames) per training step."),
    lr: float = options.LearningRate,
    energy_weight: float = typer.Option(0.0, "--energy-weight", help="Weight of an energy MSE term "
                                        "(0: forces only, as the paper)."),
    n_dim: int = typer.Option(32, "--dim", min=1, help="Working dimension."),
    n_blocks: int = typer.Option(6, "--blocks", min=1, help="Attention blocks."),
    max_time: Optional[float] = options.MaxTime,
    resume: bool = options.Resume,
    init_from: Optional[Path] = options.InitFrom,
    cache: Optional[Path] = typer.Option(None, "--cache", help="Download cache folder (with --molecule)."),
    config_file: Optional[Path] = typer.Option(None, "--config", help='JSON settings: {"train": {...}, '
                                               '"model": {...}, "data": {...} (with --molecule)}; flags typed on the '
                                               'command line win.'),
    seed: int = options.Seed, device: str = options.Device, quiet: bool = options.Quiet, as_json: bool = options.AsJson,
) -> None:
    """Train a conservative force field (defaults: the paper's Listing 2, forces-only loss, its schedule)."""
    from ..errors import ConfigError
    from ..tasks.forces.dataset import build_md17_dataset
    from ..tasks.forces.train import DATASET_NAME, ForcesModelOptions, forces_train_config, train_forces

    options.check_stdout_refused(out, options.NO_STDOUT_RUN)
    if (molecule is None) == (data is None):
        raise ConfigError("give exactly one of --molecule NAME and --data DATASET")
    overrides = options.load_json_config(config_file, sections=("train", "model", "data"))
    model_options = options.options_from(ctx, overrides, "model", ForcesModelOptions,
                                         {"n_dim": "n_dim", "n_blocks": "n_blocks", "energy_weight": "energy_weight"},
                                         config_file)
    config = options.train_config(ctx, overrides, config_file, factory=forces_train_config)
    source = data
    data_values = dict(overrides.get("data", {}))
    if data is not None and data_values:
        raise ConfigError(f"{config_file}: the data section builds the --molecule dataset; --data {data} is used "
                          "as it was built, so drop the section")
    if molecule is not None:
        import typing

        hints = typing.get_type_hints(build_md17_dataset)
        allowed = ("revised", "n_train", "n_val", "n_test", "split", "published_index", "source")
        options.check_types(data_values, {key: hints[key] for key in allowed}, f"{config_file}: data")
        for key in ("n_train", "n_val", "n_test"):  # here, or the library's error names the --n-* flag
            if (data_values.get(key) or 0) < 0:
                raise ConfigError(f"{config_file}: data.{key} must be >= 0 (got {data_values[key]})")
        with _download_progress(quiet or as_json) as progress:
            source = build_md17_dataset(molecule, seed=config.seed, cache=cache, progress=progress, **data_values)
    result = train_forces(source, out, model_options, config, resume=resume, quiet=quiet, init_from=init_from)
    dataset_path = out / DATASET_NAME if molecule is not None else data
    if as_json:
        render.print_json({**result.to_dict(), "dataset": str(dataset_path)})
        return
    options.report(result, as_json=False)
    render.stderr_console().print(f"evaluate with: gaatool evaluate forces {result.best_path} {dataset_path}",
                                  markup=False, highlight=False)


def _evaluation_summary(result: dict, as_json: bool) -> None:
    if as_json:  # the warnings on stderr too: they say the numbers may be meaningless
        render.print_messages("warning", result.get("warnings", []))
        render.print_json(result)
        return
    trained = "yes" if result["energy_trained"] else "no (offset fitted only)"
    rows = [
        ("force MAE per component (meV/Å)", result["force_mae_mev_per_a"]),
        ("force RMSE (meV/Å)", result["force_rmse_mev_per_a"]),
        ("force cosine similarity", result["force_cosine_similarity"]),
        ("energy MAE (meV)", result["energy_mae_mev"]),
        ("energy RMSE (meV)", result["energy_rmse_mev"]),
        ("energy trained", trained),
    ]
    rows += [(f"force MAE {element} (meV/Å)", value)
             for element, value in result["per_element_force_mae_mev_per_a"].items()]
    title = f"{result['checkpoint']} on {result['dataset']} ({result['split']}, {result['n_frames']} frames)"
    console = render.stderr_console()
    console.print(render.table(title, ["metric", "value"], rows))
    if result.get("model_formula") and result["model_formula"] != result.get("formula"):
        console.print(f"note: the model was trained on {result['model_formula']}; predictions for other "
                      "molecules are extrapolations", markup=False)
    if result.get("labels"):
        what = "the original MD17 labels it keeps (old_*)" if result["labels"] == "md17" else "its own (recomputed) labels"
        console.print(f"note: rMD17 file, against {what}; --labels md17|rmd17 picks", markup=False)
    if result.get("parity_plot"):
        console.print(f"wrote {result['parity_plot']}")
    render.print_messages("warning", result.get("warnings", []))


@evaluate_app.command("forces")
def evaluate_forces_command(
    checkpoint: Path = typer.Argument(..., help="A forces checkpoint (.safetensors)."),
    dataset: Path = typer.Argument(..., help="Dataset from `gaatool data md17` (or dataset.npz of a run), or "
                                    "frames with energies and forces (MD17/rMD17 .npz, sGDML or extended XYZ): all "
                                    "of them."),
    split: str = typer.Option("test", "--split", help="train, val or test (of a dataset)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a force parity plot (PNG) here."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Frames per forward pass."),
    labels: str = typer.Option("auto", "--labels", metavar="auto|md17|rmd17",
                               help="An rMD17 .npz's labels: its own (rmd17), the original MD17 ones it keeps "
                                    "(md17), or those the model was trained on (auto)."),
    device: str = options.Device, as_json: bool = options.AsJson,
) -> None:
    """Force MAE per component (paper Table 1), RMSE, energy MAE and cosine similarity."""
    from ..tasks.forces.evaluate import evaluate_forces

    options.check_png(plot)
    result = evaluate_forces(checkpoint, dataset, split=split, device=device, batch_size=batch_size, parity_png=plot,
                             labels=labels)
    _evaluation_summary(result.to_dict(), as_json)


@predict_app.command("forces")
def predict_forces_command(
    path: Path = typer.Argument(..., help="XYZ, extended XYZ or npz structures (- for XYZ on stdin)."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Output: .xyz/.extxyz (extended XYZ), .npz, or - "
                                       "(stdout). Default: <input name>_forces.extxyz here (stdout for stdin)."),
    model: Optional[Path] = options.Model,
    frames: Optional[str] = typer.Option(None, "--frames", help="start:stop:step (0-based) or one index."),
    batch_size: int = typer.Option(64, "--batch-size", help="Frames per forward pass."),
    compile_mode: str = typer.Option("auto", "--compile", metavar="auto|on|off",
                                     help="torch.compile energies and forces (auto: CPU, --batch-size 1, "
                                     "<= 12 atoms, from 10000 frames)."),
    device: str = options.Device, as_json: bool = options.AsJson,
) -> None:
    """Energy (kcal/mol) and forces (kcal/mol/Å) of every frame, by a trained force field.

    Without --model: the pretrained model of the frames' MD17 molecule where one is shipped
    (pretrained/forces-<molecule>.safetensors), else the ethanol model.
    """
    from ..errors import ConfigError
    from ..tasks.forces.predict import predict_file

    out = out if out is not None else options.named_after(path, "forces", "extxyz")
    if str(out) == "-" and as_json:
        raise ConfigError("-o - writes the structures to stdout, so --json cannot; write to a file or drop --json")
    result = predict_file(path, model, output=out, device=device, frames=options.parse_frames(frames),
                          batch_size=batch_size, compile=compile_mode).to_dict()
    if as_json:
        render.print_messages("warning", result.get("warnings", []))
        render.print_json(result)
        return
    console = render.stderr_console()
    rows = [("frames", result["n_frames"]), ("atoms", ", ".join(map(str, result["n_atoms"]))),
            ("formulas", ", ".join(result["formulas"])),
            # Totals are ~1e5 kcal/mol: show every significant digit, not 4.
            ("energy min (kcal/mol)", f"{result['energy_min']:.4f}"),
            ("energy max (kcal/mol)", f"{result['energy_max']:.4f}"),
            ("largest force component (meV/Å)", result["max_force_component_mev_per_a"])]
    console.print(render.table(f"{result['checkpoint']} on {result['input']}", ["", "value"], rows))
    if not result["matches_training_molecule"]:
        console.print(f"note: the model was trained on {result['model_formula']}; predictions for other "
                      "molecules are extrapolations", markup=False)
    if result["output"] != "-":
        console.print(f"wrote {result['output']}", markup=False)
    render.print_messages("warning", result.get("warnings", []))
