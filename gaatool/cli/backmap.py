"""Protein backmapping commands: data pdb, train/evaluate backmap, and the top-level `backmap`."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..io.atomic import check_output_path
from . import options, render
from .groups import data_app, evaluate_app, train_app


def _progress(quiet: bool):
    if quiet:
        return None
    console = render.stderr_console()
    return lambda message: console.print(message)


def _split_ids(text: Optional[str]) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _skipped_text(skipped: dict, limit: int = 4) -> str:
    items = sorted(skipped.items(), key=lambda item: -item[1])
    text = "; ".join(f"{reason} x{count}" for reason, count in items[:limit])
    return text + (f"; +{len(items) - limit} more" if len(items) > limit else "")


@data_app.command("pdb")
def pdb(
    files: Optional[List[Path]] = typer.Argument(None, help="PDB/mmCIF/BinaryCIF files (.gz ok) or folders of them."),
    more_files: Optional[List[Path]] = typer.Option(None, "--files", help="More files (same as the arguments)."),
    ids: Optional[str] = typer.Option(None, "--ids", help="PDB ids to download as mmCIF, comma-separated, or "
                                                         "'paper' for the paper's 19 entries."),
    out: Path = typer.Option(..., "-o", "--out", help="Dataset file to write (.npz)."),
    bead: str = typer.Option("centroid", "--bead", help="Bead per residue: centroid (paper), com or ca."),
    neighbors: int = typer.Option(16, "--neighbors", help="Neighbour beads per residue (1-256)."),
    val_fraction: float = typer.Option(0.1, "--val-fraction", help="Fraction of entries for validation."),
    test_fraction: float = typer.Option(0.1, "--test-fraction", help="Fraction of entries for testing."),
    val_ids: Optional[str] = typer.Option(None, "--val-ids", help="Validation entries (overrides the fractions)."),
    test_ids: Optional[str] = typer.Option(None, "--test-ids", help="Test entries (overrides the fractions)."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Download cache folder (default: the user cache)."),
    mirror: Optional[str] = typer.Option(None, "--mirror", help="Download address with {id}, e.g. a PDBe mirror."),
    seed: int = options.Seed, quiet: bool = options.Quiet, as_json: bool = options.AsJson,
) -> None:
    """Build the backmapping dataset: residue neighbourhoods of beads and their heavy atoms, split by entry."""
    from ..tasks.backmap.dataset import (PAPER_ENTRIES, RCSB_URL, BackmapDatasetConfig, build_backmap_dataset,
                                         fetch_entries)
    from ..errors import ConfigError

    options.check_stdout_refused(out, options.NO_STDOUT_DATASET)
    config = BackmapDatasetConfig(bead=bead, neighbors=neighbors, val_fraction=val_fraction,
                                  test_fraction=test_fraction, val_entries=tuple(_split_ids(val_ids)),
                                  test_entries=tuple(_split_ids(test_ids)), seed=seed)
    paths = list(files or []) + list(more_files or [])
    check_output_path(out, inputs=tuple(paths))  # before downloads and minutes of building
    id_list = _split_ids(ids)
    if id_list == ["paper"]:
        id_list = list(PAPER_ENTRIES)
    if id_list:
        paths += fetch_entries(id_list, cache=cache, url_template=mirror or RCSB_URL, progress=_progress(quiet))
    if not paths:
        raise ConfigError("give structure files, folders or --ids")
    dataset = build_backmap_dataset(paths, config, progress=_progress(quiet))
    dataset.save(out)
    if as_json:
        render.print_json({"output": str(out), **dataset.to_dict()})
        return
    if quiet:
        return
    console = render.stderr_console()
    rows = [(e.entry, e.split, e.chains, e.residues, e.rows, e.atoms, _skipped_text(e.skipped))
            for e in dataset.entries]
    console.print(render.table("entries", ["entry", "split", "chains", "residues", "targets", "atoms", "skipped"],
                               rows))
    if dataset.skipped_files:
        console.print(render.table("skipped files", ["file", "reason"], dataset.skipped_files))
    counts = dataset.split_counts()
    console.print(render.table(f"{out}", ["split", "entries", "targets"],
                               [(s, c["entries"], c["rows"]) for s, c in counts.items()]))


@train_app.command("backmap")
def train_backmap(
    ctx: typer.Context,
    dataset: Path = typer.Argument(..., help="Dataset from `gaatool data pdb`."),
    out: Path = typer.Option(Path("runs/backmap"), "-o", "--out", help="Output folder for checkpoints and metrics."),
    model: str = typer.Option("gaa", "--model", help="gaa (Listing 3) or transformer (the baseline)."),
    epochs: int = options.Epochs,
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Residues per training step."),
    lr: float = options.LearningRate,
    n_dim: int = typer.Option(32, "--dim", min=1, help="Working dimension."),
    rank: int = typer.Option(2, "--rank", min=1, max=3, help="Tuple rank of the attention (GAA; 1-3)."),
    translation_rank: Optional[int] = typer.Option(None, "--translation-rank", min=1, max=3,
                                                   help="Rank of the translation layer (default: --rank)."),
    refine_rank: Optional[int] = typer.Option(None, "--refine-rank", min=1, max=3,
                                              help="Rank of the refinements (default: --rank)."),
    sequence_offsets: int = typer.Option(0, "--sequence-offsets", min=0, metavar="M",
                                         help="Tell the GAA model which neighbour beads are its chain neighbours, up "
                                         "to M residues away (0: off, as in the paper; the pretrained model: 3)."),
    bead_noise: float = typer.Option(0.0, "--bead-noise", metavar="SIGMA",
                                     help="Gaussian noise (Å) on the neighbour beads of training batches (0: off)."),
    max_time: Optional[float] = options.MaxTime,
    resume: bool = options.Resume,
    init_from: Optional[Path] = options.InitFrom,
    config_file: Optional[Path] = typer.Option(None, "--config",
                                               help='JSON settings: {"train": {...}, "model": {...}}; flags typed '
                                               'on the command line win.'),
    seed: int = options.Seed, device: str = options.Device, quiet: bool = options.Quiet, as_json: bool = options.AsJson,
) -> None:
    """Train a backmapping model (loss: MSE of atom positions; metric: RMSD in Å)."""
    from ..tasks.backmap.train import BackmapModelOptions, train_backmap as run

    options.check_stdout_refused(out, options.NO_STDOUT_RUN)
    overrides = options.load_json_config(config_file)
    config = options.train_config(ctx, overrides, config_file)
    flags = {name: name for name in ("model", "n_dim", "rank", "translation_rank", "refine_rank",
                                     "sequence_offsets", "bead_noise")}
    model_options = options.options_from(ctx, overrides, "model", BackmapModelOptions, flags, config_file)
    options.report(run(dataset, out, model_options, config, resume=resume, quiet=quiet, init_from=init_from), as_json)


@evaluate_app.command("backmap")
def evaluate_backmap(
    checkpoint: Path = typer.Argument(..., help="A backmap checkpoint (.safetensors)."),
    dataset: Path = typer.Argument(..., help="Dataset from `gaatool data pdb`, or an all-atom structure "
                                    "(PDB/mmCIF/BinaryCIF): all its residues."),
    split: str = typer.Option("test", "--split", help="train, val or test (of a dataset)."),
    batch_size: int = typer.Option(512, "--batch-size", min=1, help="Residues per forward pass."),
    relax: bool = typer.Option(False, "--relax/--no-relax",
                               help="Relax the predictions to ideal covalent geometry, clashes pushed apart, first "
                                    "(as `gaatool backmap` does)."),
    device: str = options.Device, as_json: bool = options.AsJson,
) -> None:
    """Heavy-atom RMSD (all, backbone, side chain, per residue), bond-length deviations, clashes and chirality."""
    from ..tasks.backmap.evaluate import evaluate_backmap as run

    result = run(checkpoint, dataset, split=split, device=device, batch_size=batch_size, relax=relax)
    if as_json:
        render.print_json(result.to_dict())
        render.print_messages("warning", result.warnings)  # in the JSON too, but a pipeline's log is stderr
        return
    console = render.stderr_console()
    intra, peptide = result.bonds["intra_residue"], result.bonds["peptide"]
    rows = [
        ("entries", ", ".join(result.entries)), ("residues", result.n_residues), ("atoms", result.n_atoms),
        ("RMSD all (Å)", result.rmsd_a), ("RMSD backbone (Å)", result.backbone_rmsd_a),
        ("RMSD side chain (Å)", result.sidechain_rmsd_a),
        ("RMSD all / side chain, equivalent atoms swapped (Å)",
         f"{result.symmetric['rmsd_a']:.3f} / {result.symmetric['sidechain_rmsd_a']:.3f} "
         f"({result.symmetric['residues_swapped']} residues)"),
        ("bond |Δ| mean (Å)", intra.get("mean_abs_deviation_a", float("nan"))),
        ("bonds |Δ| > 0.1 Å", intra.get("fraction_over_0.1_a", float("nan"))),
        ("peptide C-N mean (Å)", peptide.get("mean_length_a", float("nan"))),
        ("peptide C-N |Δ| mean (Å)", peptide.get("mean_abs_deviation_a", float("nan"))),
        ("peptide omega off 180° mean (°)", peptide.get("omega_mean_abs_deviation_deg", float("nan"))),
        ("clashes predicted / reference", f"{result.clashes['predicted']} / {result.clashes['reference']}"),
        ("crowded atom pairs in residues (residues)", f"{result.crowding['pairs']} ({result.crowding['residues']})"),
        ("chiral centres inverted (D for L)", f"{result.chirality['inverted']} of {result.chirality['centres']}"),
        ("disulfides formed / reference (spurious)", f"{result.disulfides['formed']} / "
         f"{result.disulfides['reference']} ({result.disulfides['spurious']})"),
    ]
    relaxed = ", relaxed" if result.relax else ""
    console.print(render.table(f"{checkpoint} on {split} ({result.model}{relaxed})", ["metric", "value"], rows))
    console.print(render.table("per residue type", ["residue", "count", "RMSD (Å)"],
                               [(name, v["residues"], v["rmsd_a"]) for name, v in result.per_residue.items()]))
    console.print(f"clash: {result.clashes['definition']}; crowded: {result.crowding['definition']}")
    render.print_messages("warning", result.warnings)


def default_output(file: Path, tag: str, fmt: str | None) -> Path:
    """:func:`~.options.named_after` the input, as .pdb (.cif for mmCIF input or ``fmt`` cif)."""
    name = file.name[:-3] if file.name.lower().endswith(".gz") else file.name
    mmcif = name.rpartition(".")[2].lower() in ("cif", "mmcif", "bcif")
    return options.named_after(file, tag, fmt or ("cif" if mmcif else "pdb"))


def attach(app: typer.Typer) -> None:
    """Add the top-level `gaatool backmap` and `gaatool coarse-grain` commands."""

    @app.command("coarse-grain")
    def coarse_grain(
        file: Path = typer.Argument(..., help="All-atom protein structure (PDB/mmCIF/BinaryCIF, .gz ok, "
                                              "'-' = stdin); every model is coarse-grained."),
        out: Optional[Path] = typer.Option(None, "-o", "--out", help="Output .pdb or .cif (.gz ok); '-' = stdout. "
                                           "Default: <input name>_cg.pdb here (.cif for mmCIF input)."),
        bead: str = typer.Option("centroid", "--bead", help="Bead per residue: centroid of the heavy atoms (the "
                                                            "default model's), com, or ca (a C-alpha trace)."),
        fmt: Optional[str] = options.StructureFormat,
        quiet: bool = options.Quiet,
    ) -> None:
        """One bead per residue from an all-atom structure: the input `gaatool backmap` expects."""
        from ..tasks.backmap.coarse_grain import coarse_grain_file

        out = out if out is not None else default_output(file, "cg", fmt)
        beads, warnings = coarse_grain_file(file, out, bead=bead, fmt=fmt)
        render.print_messages("warning", warnings)
        if not quiet and str(out) != "-":
            skipped = f" (left out: {_skipped_text(beads.skipped)})" if beads.skipped else ""
            render.stderr_console().print(f"wrote {out}: {beads.n_models} model(s), {beads.n_residues} {bead} "
                                          f"beads{skipped}")

    @app.command("backmap")
    def backmap(
        file: Path = typer.Argument(..., help="Coarse-grained structure (PDB/mmCIF/BinaryCIF, .gz ok, '-' = stdin; or GROMACS .gro) "
                                              "or a .dcd/.xtc trajectory with --top."),
        out: Optional[Path] = typer.Option(None, "-o", "--out", help="Output .pdb or .cif (.gz ok); '-' = stdout. "
                                           "Default: <input name>_backmapped.pdb here (.cif for mmCIF input)."),
        model: Optional[Path] = options.Model,
        top: Optional[Path] = typer.Option(None, "--top", help="PDB/mmCIF/.gro of the beads of a .dcd/.xtc trajectory."),
        frames: Optional[str] = typer.Option(None, "--frames", help="Models/frames to use: start:stop:step "
                                             "(0-based) or one index."),
        fmt: Optional[str] = options.StructureFormat,
        relax: bool = typer.Option(True, "--relax/--no-relax",
                                   help="Relax the predicted atoms to ideal covalent geometry (bond lengths, bond "
                                        "angles, L chirality, planar peptide bonds, disulfides) and push clashing "
                                        "atoms apart (--no-relax: the network's raw output)."),
        device: str = options.Device, quiet: bool = options.Quiet, as_json: bool = options.AsJson,
    ) -> None:
        """Rebuild heavy atoms from one bead per residue (default model: pretrained/backmap.safetensors, or
        pretrained/backmap-ca.safetensors for C-alpha traces)."""
        from ..errors import ConfigError
        from ..tasks.backmap.rebuild import backmap_file

        out = out if out is not None else default_output(file, "backmapped", fmt)
        if as_json and str(out) == "-":
            raise ConfigError("--json and -o - both write to stdout; write the structure to a file")
        result = backmap_file(file, out, checkpoint=model, top=top, frames=options.parse_frames(frames), fmt=fmt,
                              device=device, relax=relax)
        console = render.stderr_console()
        if not quiet:
            render.print_messages("warning", result.warnings)
        if as_json:
            render.print_json(result.to_dict())
            return
        if quiet:
            return
        summary = result.to_dict()
        if str(out) != "-":
            console.print(f"wrote {out}: {summary['frames']} model(s), {summary['chains']} chain(s), "
                          f"{summary['residues']} residues, {summary['atoms']} atoms per model")
