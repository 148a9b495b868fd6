"""Crystal-structure identification commands: data crystals, train/evaluate crystal, identify."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import ConfigError
from ..io.atomic import check_output_path
from . import options, render
from .groups import data_app, evaluate_app, train_app


@train_app.command("crystal")
def crystal(
    ctx: typer.Context,
    dataset: Path = typer.Argument(..., help="Dataset from `gaatool data crystals`."),
    out: Path = typer.Option(Path("runs/crystal"), "-o", "--out", help="Output folder for checkpoints and metrics."),
    model: str = typer.Option("gaa", "--model", help="gaa (the paper's network) or steinhardt (the baseline MLP)."),
    epochs: int = options.Epochs,
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Particle environments per training step."),
    lr: float = options.LearningRate,
    n_dim: int = typer.Option(32, "--dim", min=1, help="Working dimension."),
    rank: int = typer.Option(2, "--rank", min=1, max=3, help="Tuple rank of the attention (1-3)."),
    o3: bool = typer.Option(False, "--o3", help="O(3)-invariant: ignore the sign of the trivector."),
    dropout: Optional[float] = typer.Option(None, "--dropout", help="Dropout rate in the MLPs (paper: 0.5)."),
    max_time: Optional[float] = options.MaxTime,
    resume: bool = options.Resume,
    init_from: Optional[Path] = options.InitFrom,
    fresh_noise: bool = typer.Option(False, "--fresh-noise",
                                     help="Draw the training replicas' noise anew every epoch (the dataset's recipe)."),
    config_file: Optional[Path] = typer.Option(None, "--config", help='JSON settings: {"train": {...}, "model": '
                                               '{...}}; flags typed on the command line win.'),
    seed: int = options.Seed, device: str = options.Device, quiet: bool = options.Quiet, as_json: bool = options.AsJson,
) -> None:
    """Train a crystal-structure classifier (defaults: the paper's Listing 1 and schedule)."""
    from ..tasks.crystal.train import CrystalModelOptions, train_crystal

    options.check_stdout_refused(out, options.NO_STDOUT_RUN)
    overrides = options.load_json_config(config_file)
    config = options.train_config(ctx, overrides, config_file)
    model_options = options.options_from(ctx, overrides, "model", CrystalModelOptions,
                                         {"model": "model", "n_dim": "n_dim", "rank": "rank", "o3": "o3",
                                          "dropout": "dropout"}, config_file)
    options.report(train_crystal(dataset, out, model_options, config, resume=resume, quiet=quiet, init_from=init_from,
                                 fresh_noise=fresh_noise), as_json)


@data_app.command("crystals")
def data_crystals(
    out: Path = typer.Option(Path("crystals.npz"), "-o", "--out", help="Dataset file to write (.npz)."),
    train_replicas: int = typer.Option(1, "--train-replicas", min=1, help="Independent noisy replicas per class for training."),
    min_particles: int = typer.Option(2048, "--min-particles", help="Replicate each cell to at least this many particles."),
    noise: str = typer.Option("0.001,0.05,0.1", "--noise", help="Comma-separated Gaussian noise sigmas (units of d_nn)."),
    extra: list[Path] = typer.Option([], "--add", help="Extra class from a unit cell (CIF, POSCAR, GSD); repeatable."),
    prototypes: Optional[str] = typer.Option(None, "--prototypes",
                                             help="Comma-separated subset of the 8 prototypes (default: all)."),
    steinhardt: bool = typer.Option(True, "--steinhardt/--no-steinhardt", help="Also store the baseline's features."),
    seed: int = options.Seed, as_json: bool = options.AsJson,
) -> None:
    """Build the crystal-identification dataset from the 8 AFLOW prototypes (plus --add cells)."""
    from ..tasks.crystal.dataset import CrystalDatasetConfig, build_crystal_dataset

    try:
        levels = tuple(float(x) for x in noise.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"--noise {noise!r}: give comma-separated numbers, e.g. 0.001,0.05,0.1") from None
    options.check_stdout_refused(out, options.NO_STDOUT_DATASET)
    chosen = {} if prototypes is None else {"prototypes": tuple(p.strip() for p in prototypes.split(",") if p.strip())}
    config = CrystalDatasetConfig(seed=seed, noise_levels=levels, min_particles=min_particles,
                                  replicas={"train": train_replicas, "val": 1, "test": 1}, steinhardt=steinhardt,
                                  **chosen)
    check_output_path(out, inputs=tuple(extra))  # before the replicas are built
    dataset = build_crystal_dataset(config, extra_cells=tuple(extra))
    path = dataset.save(out)
    summary = dataset.summary()
    if as_json:
        render.print_json({"path": str(path), "classes": summary})
        return
    columns = list(summary[0].keys())
    render.stderr_console().print(render.table(f"crystal dataset {path}", columns, [list(r.values()) for r in summary]))


@evaluate_app.command("crystal")
def evaluate_crystal(
    checkpoint: Path = typer.Argument(..., help="Crystal checkpoint (.safetensors)."),
    dataset: Path = typer.Argument(..., help="Dataset from `gaatool data crystals`."),
    split: str = typer.Option("test", "--split", help="train, val or test."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write the confusion matrix as a PNG here."),
    smooth: int = typer.Option(0, "--smooth", metavar="ROUNDS",
                               help="Average class probabilities over each particle's 12 neighbours first, as "
                               "`gaatool identify` does (default there: 1); 0: per environment, as the paper."),
    device: str = options.Device, as_json: bool = options.AsJson,
) -> None:
    """Accuracy overall, per class, per noise level and per both, and the confusion matrix."""
    from ..data.splits import SPLIT_NAMES
    from ..tasks.crystal.evaluate import evaluate_crystal as run

    if split not in SPLIT_NAMES:  # as evaluate forces/backmap say it (the dataset "lacked ['foo/labels', ...]")
        raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(SPLIT_NAMES)}")
    options.check_png(plot, inputs=(checkpoint, dataset))  # before the evaluation, not after it
    result = run(checkpoint, dataset, split=split, device=device, confusion_png=plot, smooth=smooth)
    if as_json:
        render.print_json(result.to_dict())
        return
    console = render.stderr_console()
    averaged = f", class probabilities averaged over neighbours x{smooth}" if smooth else ""
    console.print(f"{checkpoint} on {dataset} [{split}]: accuracy {100 * result.accuracy:.2f}% "
                  f"over {result.n_environments} environments{averaged}")
    levels = list(result.per_noise)
    console.print(render.table("accuracy % per class and noise level (sigma)", ["class", "all", *levels],
                               [(name, 100 * result.per_class[name],
                                 *(100 * by_level[key] if key in by_level else "-" for key in levels))
                                for name, by_level in result.per_class_noise.items()]
                               + [("all", 100 * result.accuracy, *(100 * result.per_noise[key] for key in levels))]))
    names = result.class_names
    console.print(render.table("confusion (rows: true, columns: predicted)", ["true"] + names,
                               [[name] + row for name, row in zip(names, result.confusion)]))


def attach(app: typer.Typer) -> None:
    """Add the top-level `identify` command."""

    @app.command("identify")
    def identify(
        path: Path = typer.Argument(..., help="Snapshot file: .gsd, .xyz/.extxyz, a LAMMPS text dump (.lammpstrj, .dump) or data file (.data, .lmp), or a VASP POSCAR, CONTCAR or XDATCAR; - reads stdin."),
        out: Optional[Path] = typer.Option(None, "-o", "--out",
                                           help="Write labels: .npz (arrays), .xyz/.extxyz (labelled frames; - for stdout) "
                                           "or .gsd (a labelled copy of a .gsd input)."),
        model: Optional[Path] = options.Model,
        frames: Optional[str] = typer.Option(None, "--frames", help="Frames to label: start:stop:step (0-based) or one index."),
        scale: Optional[float] = typer.Option(None, "--scale", help="Length unit in file units (default: measured, as for the training data: the median over particles of the distance to the closest one, which thermal motion makes shorter than the lattice's nearest-neighbour distance; give that measured value, not the lattice's)."),
        type_map: Optional[str] = typer.Option(None, "--type-map", help="Map file types to model types, e.g. Cu=A,Zn=B, or to the elements of a training cell, e.g. 1=Cs,2=Cl (default: same names, any single type, or the elements of one of the model's training cells)."),
        box: Optional[str] = typer.Option(None, "--box", help="Box for XYZ files without a lattice: 'Lx,Ly,Lz'."),
        threshold: Optional[float] = typer.Option(None, "--threshold", help="Label particles below this confidence 'unknown' "
                                                  "(0.8 marks most of a liquid and few crystal particles near melting; "
                                                  "0.99 with --smooth 0)."),
        smooth: int = typer.Option(1, "--smooth", metavar="ROUNDS",
                                   help="Rounds of averaging each particle's class probabilities with its 12 neighbours' "
                                   "(own probabilities weigh 4; 0: the model's per-particle output; 1 keeps single stacking layers, 2 does not)."),
        chunk_size: Optional[int] = typer.Option(None, "--chunk-size",
                                                 help="Particles per model call, bounds memory (default: 2048 on a CPU, 16384 on a GPU)."),
        compile_mode: str = typer.Option("auto", "--compile", metavar="auto|on|off",
                                         help="torch.compile the model (auto: CPU frames of >= 5M particles)."),
        device: str = options.Device, as_json: bool = options.AsJson,
    ) -> None:
        """Identify the crystal structure around every particle of a snapshot or trajectory ('-': stdin)."""
        from contextlib import nullcontext

        from ..io.readers import parse_frame_selection, read_frames, stdin_snapshot
        from ..tasks.crystal.identify import identify_file, parse_type_map

        selection, lattice = parse_frame_selection(frames), _parse_box(box)
        to_stdout, from_stdin = out is not None and str(out) == "-", str(path) == "-"
        suffix = ".xyz" if to_stdout else out.suffix.lower() if out is not None else None
        if suffix not in (None, ".npz", ".gsd", ".xyz", ".extxyz"):
            raise ConfigError(f"-o {out}: choose a .npz, .xyz, .extxyz or .gsd output file, or - (XYZ on stdout)")
        if to_stdout and as_json:
            raise ConfigError("-o - writes the labelled frames to stdout, so --json cannot; write to a file or drop --json")
        check_output_path(out, inputs=(path,))  # before the work; -o traj.gsd on traj.gsd would destroy it
        with stdin_snapshot() if from_stdin else nullcontext(path) as source:
            if suffix == ".gsd" and source.suffix.lower() != ".gsd":
                raise ConfigError("-o .gsd needs a .gsd input (it copies the trajectory); use -o labels.npz or -o labels.xyz")
            result = identify_file(source, checkpoint=model, frames=selection, box=lattice, scale=scale,
                                   type_map=parse_type_map(type_map), threshold=threshold, device=device,
                                   chunk_size=chunk_size, compile=compile_mode, smooth=smooth)
            if from_stdin:
                result.source = "stdin"
            # the .xyz and .gsd outputs copy the frames, so they are written while the input exists
            if suffix == ".npz":
                result.save_npz(out)
            elif suffix in (".xyz", ".extxyz"):
                result.save_xyz(out, read_frames(source, selection, box=lattice))
            elif suffix == ".gsd":
                from ..io.gsd import write_labeled_gsd

                write_labeled_gsd(source, out, [f.labels for f in result.frames], [f.index for f in result.frames],
                                  result.class_names, confidence=[f.confidence for f in result.frames])
        if as_json:
            render.print_json(result.to_dict())
            render.print_messages("note", result.notes)  # in the JSON too, but a pipeline's log is stderr
            return
        names = result.class_names + ["unknown"]
        rows = [[f.index, len(f.labels)] + [100 * x for x in f.fractions(len(result.class_names))]
                for f in result.frames]
        if len(rows) > TABLE_FRAMES:  # a long trajectory: its ends and the whole, not a screenful per frame
            import numpy as np

            half = TABLE_FRAMES // 2
            counts = np.array([len(f.labels) for f in result.frames], dtype=float)
            shares = np.array([row[2:] for row in rows])
            whole = (counts[:, None] * shares).sum(0) / counts.sum()
            rows = rows[:half] + [[f"... {len(rows) - 2 * half} more", ""] + [""] * len(names)] + rows[-half:] + [
                [f"all {len(rows)}", int(counts.sum())] + whole.tolist()]
        render.stderr_console().print(render.table(f"{result.source}: % of particles per structure",
                                                   ["frame", "N"] + names, rows))
        render.print_messages("note", result.notes)


#: Frames listed in identify's table; longer trajectories show their first and last frames and all of them together
#: (--json lists every frame).
TABLE_FRAMES = 20


def _parse_box(text: Optional[str]):
    if text is None:
        return None
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        raise ConfigError(f"--box {text!r}: give 3 lengths (Lx,Ly,Lz), 6 HOOMD box parameters, or 9 lattice numbers") from None
    # Lx, Ly, Lz of 3 lengths or 6 HOOMD parameters: a negative one would pass as a mirrored box
    if len(values) in (3, 6) and not all(0 < v < float("inf") for v in values[:3]):
        raise ConfigError(f"--box {text!r}: the box lengths Lx, Ly, Lz must be positive numbers")
    return values
