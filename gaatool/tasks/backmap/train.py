"""Training of backmapping models: the GAA network of Listing 3 or the transformer baseline.

Loss: mean squared error of the atom positions (Å², per coordinate, over the
real atoms of the batch). Metric ``rmsd_a``: per-residue heavy-atom RMSD in Å,
averaged over the batch's residues. The transformer is trained with a random
rotation of every residue's neighbourhood and atoms (Appendix B); the GAA
model is rotation-covariant and needs none.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from ...data.store import load_dataset
from ...errors import ConfigError, InputFileError
from ...ga.rotations import random_rotation
from ...models.backmap import Backmapper, BackmapTransformer
from ...models.blocks import MAX_RANK
from ...train.array_task import ArrayTask
from ...train.engine import FitResult, TrainConfig, fit
from .residues import LABELS, RESIDUE_NAMES, label_names

__all__ = ["MODEL_KINDS", "BackmapModelOptions", "BackmapTrainTask", "train_backmap", "split_tensors",
           "predict_atoms", "masked_squared_error", "check_vocabulary", "bucketed_batches"]

MODEL_KINDS = ("gaa", "transformer")
_OFFSETS = "neighbor_offsets"
_INPUTS = ("neighbor_positions", "neighbor_types", "neighbor_mask", "residue_types", "atom_labels", "atom_mask",
           "atom_positions")


@dataclass
class BackmapModelOptions:
    """Architecture choices; defaults are Listing 3 (dim 32, 2 blocks, 2 refinements, pairwise attention).

    ``translation_rank`` / ``refine_rank`` (GAA only) override the tuple rank
    of the translation and refinement layers (None: ``rank``); rank 1 there is
    several times faster on CPUs. ``rotate`` (None: only for the transformer)
    trains on randomly rotated residues. ``sequence_offsets`` (GAA only; 0 =
    off, the paper) embeds where each neighbour bead lies along the chain, up
    to that many residues away (see :class:`~gaatool.models.backmap.Backmapper`).
    ``bead_noise`` (Å, 0 = off) adds Gaussian noise of that standard deviation
    to the neighbour beads of every training batch (a fresh draw each time):
    beads of a coarse-grained simulation never sit exactly where the atoms'
    centroids would, and the noise keeps the model from memorising the
    training proteins' exact bead geometry.
    """

    model: str = "gaa"
    n_dim: int = 32
    n_blocks: int = 2
    n_refine: int = 2
    rank: int = 2
    translation_rank: int | None = None
    refine_rank: int | None = None
    n_heads: int = 4
    length_scale: float = 8.0
    rotate: bool | None = None
    sequence_offsets: int = 0
    bead_noise: float = 0.0

    def __post_init__(self):
        if self.model not in MODEL_KINDS:
            raise ConfigError(f"unknown backmap model {self.model!r}; choose one of {list(MODEL_KINDS)}")
        for name in ("n_dim", "rank", "n_heads"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("n_blocks", "n_refine"):
            if int(getattr(self, name)) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        # None means `rank`; 0 did too in the model, while the checkpoint recorded 0
        for name in ("rank", "translation_rank", "refine_rank"):
            value = getattr(self, name)
            if value is not None and not 1 <= int(value) <= MAX_RANK:
                raise ConfigError(f"{name} must be from 1 to {MAX_RANK}, got {value}")
        if not float(self.length_scale) > 0:
            raise ConfigError(f"length_scale must be > 0, got {self.length_scale}")
        if not 0.0 <= float(self.bead_noise) < 10.0:
            raise ConfigError(f"bead_noise must be in [0, 10) Å, got {self.bead_noise}")
        if int(self.sequence_offsets) < 0:
            raise ConfigError(f"sequence_offsets must be >= 0, got {self.sequence_offsets}")
        if self.model == "transformer" and self.sequence_offsets:
            raise ConfigError("sequence offsets are a GAA backmapper option; the transformer baseline has none")
        if self.model == "transformer" and self.n_dim % self.n_heads:
            raise ConfigError(f"--dim {self.n_dim} must be a multiple of the {self.n_heads} attention heads")

    @property
    def augment(self) -> bool:
        return self.model == "transformer" if self.rotate is None else bool(self.rotate)

    def build(self) -> torch.nn.Module:
        """A fresh model of these options."""
        common = dict(n_residue_types=len(RESIDUE_NAMES), n_labels=len(LABELS), n_dim=self.n_dim,
                      n_blocks=self.n_blocks, n_refine=self.n_refine, length_scale=self.length_scale)
        if self.model == "transformer":
            return BackmapTransformer(BackmapTransformer.Config(n_heads=self.n_heads, **common))
        attention = {"merge": "concat", "join": "concat", "rank": self.rank}
        return Backmapper(Backmapper.Config(attention=attention, translation_rank=self.translation_rank,
                                            refine_rank=self.refine_rank, sequence_offsets=self.sequence_offsets,
                                            **common))


def check_vocabulary(metadata: dict[str, Any], source: str) -> None:
    """Raise unless ``metadata["atom_labels"]`` is this gaatool's vocabulary."""
    if list(metadata.get("atom_labels", [])) != label_names():
        raise InputFileError(f"{source}: atom vocabulary differs from this gaatool's; rebuild it with this version")


def split_tensors(arrays: dict[str, np.ndarray], split: str, source: str = "dataset") -> dict[str, torch.Tensor]:
    """The tensors a backmapping model consumes for one split (float32 positions, int64 indices)."""
    missing = [f"{split}/{name}" for name in _INPUTS if f"{split}/{name}" not in arrays]
    if missing:
        raise InputFileError(f"{source}: backmap dataset lacks {missing}; rebuild it with `gaatool data pdb`")
    names = _INPUTS + ((_OFFSETS,) if f"{split}/{_OFFSETS}" in arrays else ())  # datasets before 0.1: none
    result = {name: torch.from_numpy(np.ascontiguousarray(arrays[f"{split}/{name}"])) for name in names}
    for name in ("neighbor_types", "residue_types", "atom_labels", _OFFSETS):
        if name in result:
            result[name] = result[name].long()
    for name in ("neighbor_positions", "atom_positions"):
        result[name] = result[name].float()
    return result


def predict_atoms(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Atom positions (B, A, 3) in Å relative to the bead, for either model kind.

    Atoms are packed to the left of the atom axis, so only the first
    ``max(atom count)`` columns go through the model (the refinement costs
    grow with the cube of that number); the rest of the output is zero.
    """
    mask = batch["atom_mask"]
    n = int(mask.sum(-1).max()) if mask.numel() else 0
    offsets = {}
    if getattr(model, "embed_offset", None) is not None:
        if _OFFSETS not in batch:
            raise InputFileError("this backmapping model needs the neighbours' sequence offsets, which the dataset "
                                 "lacks (built by an older gaatool); rebuild it with `gaatool data pdb`")
        offsets[_OFFSETS] = batch[_OFFSETS]
    out = model(batch["neighbor_positions"], batch["neighbor_types"], batch["residue_types"],
                batch["atom_labels"][:, :n], batch["neighbor_mask"], mask[:, :n], **offsets)
    if n == mask.shape[-1]:
        return out
    return torch.cat([out, out.new_zeros(out.shape[0], mask.shape[-1] - n, 3)], dim=1)


def bucketed_batches(arrays: dict[str, torch.Tensor], batch_size: int, generator: torch.Generator | None = None,
                     bucket: int = 16) -> Iterable[dict[str, torch.Tensor]]:
    """Batches of residues with similar atom counts, so little padding goes through the model.

    With a generator: shuffle, sort each run of ``bucket`` batches by atom
    count, cut into batches and shuffle their order (every row once per
    epoch). Without: all rows sorted by atom count, in a fixed order.
    """
    counts = arrays["atom_mask"].sum(-1)
    n = len(counts)
    if generator is None:
        order = torch.argsort(counts, stable=True)
        starts = list(range(0, n, batch_size))
    else:
        order = torch.randperm(n, generator=generator)
        span = batch_size * bucket
        order = torch.cat([chunk[torch.argsort(counts[chunk], stable=True)] for chunk in order.split(span)]) \
            if n else order
        starts = [int(i) * batch_size for i in torch.randperm(-(-n // batch_size), generator=generator)]
    for start in starts:
        rows = order[start:start + batch_size]
        yield {key: value[rows] for key, value in arrays.items()}


def masked_squared_error(predicted: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Squared distances (B, A) in Å², zero on padded atoms."""
    return ((predicted - target) ** 2).sum(-1) * mask.to(predicted.dtype)


def _jitter_beads(batch: dict[str, torch.Tensor], sigma: float, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Gaussian noise (sigma, Å) on the neighbour beads; padded beads stay zero."""
    positions = batch["neighbor_positions"]
    noise = torch.randn(positions.shape, generator=generator, dtype=positions.dtype) * sigma
    jittered = dict(batch)
    jittered["neighbor_positions"] = positions + noise * batch["neighbor_mask"].unsqueeze(-1).to(positions.dtype)
    return jittered


def _rotate_batch(batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The same random rotation for each residue's neighbourhood and atoms."""
    n = len(batch["residue_types"])
    q = random_rotation(generator, batch["neighbor_positions"].dtype, (n,))
    rotated = dict(batch)
    for key in ("neighbor_positions", "atom_positions"):
        rotated[key] = torch.einsum("bij,bkj->bki", q, batch[key])
    return rotated


class BackmapTrainTask(ArrayTask):
    """TrainTask for backmapping: MSE of atom positions, per-residue RMSD metric."""

    task_name = "backmap"
    # what the weights' inputs and outputs mean: --init-from needs the same values
    compatibility_keys = ("residue_names", "atom_labels", "bead", "neighbors", "length_unit")
    # augmentation (rotate, bead_noise) as well as the architecture: --resume needs the same values
    resume_keys = ("model_options",)

    def __init__(self, dataset_path: str | Path, options: BackmapModelOptions, batch_size: int):
        arrays, self.dataset_metadata = load_dataset(dataset_path, expected_task="backmap")
        check_vocabulary(self.dataset_metadata, str(dataset_path))
        self.dataset_path, self.options = Path(dataset_path), options
        train = split_tensors(arrays, "train", str(dataset_path))
        val = split_tensors(arrays, "val", str(dataset_path))
        if options.sequence_offsets and _OFFSETS not in train:
            raise InputFileError(f"{dataset_path}: has no neighbour sequence offsets (built by an older gaatool); "
                                 "rebuild it with `gaatool data pdb` to train with --sequence-offsets")
        for name, part in (("training", train), ("validation", val)):
            if len(part["residue_types"]) == 0:
                raise InputFileError(f"{dataset_path}: the {name} split is empty; rebuild the dataset with entries "
                                     f"for it (--val-fraction or --val-ids)")
        super().__init__(train, val, batch_size, val_batch_size=max(batch_size, 256))

    def train_batches(self, epoch: int, generator: torch.Generator) -> Iterable[dict[str, torch.Tensor]]:
        for batch in bucketed_batches(self.train_arrays, self.batch_size, generator):
            # rotations come from the engine's generator so that resume stays exact
            if self.options.bead_noise:
                batch = _jitter_beads(batch, float(self.options.bead_noise), generator)
            yield _rotate_batch(batch, generator) if self.options.augment else batch

    def val_batches(self) -> Iterable[dict[str, torch.Tensor]]:
        return bucketed_batches(self.val_arrays, self.val_batch_size)

    def build_model(self) -> torch.nn.Module:
        return self.options.build()

    def loss(self, model, batch, train: bool):
        predicted = predict_atoms(model, batch)
        mask = batch["atom_mask"]
        squared = masked_squared_error(predicted, batch["atom_positions"], mask)
        n_atoms = mask.sum(-1).clamp(min=1)
        loss = squared.sum() / (3.0 * mask.sum().clamp(min=1))
        rmsd = (squared.sum(-1) / n_atoms).sqrt().mean()
        return loss, {"rmsd_a": float(rmsd.detach())}

    def metadata(self) -> dict[str, Any]:
        meta = self.dataset_metadata
        entries = meta.get("entries", [])
        return {
            "residue_names": list(RESIDUE_NAMES),
            "atom_labels": label_names(),
            "bead": meta.get("bead", "centroid"),
            "neighbors": int(meta.get("neighbors", 16)),
            "length_unit": "Å",
            "model_options": asdict(self.options),
            "data": {
                "path": str(self.dataset_path),
                "config": meta.get("config", {}),
                "train_entries": [e["entry"] for e in entries if e.get("split") == "train"],
                "val_entries": [e["entry"] for e in entries if e.get("split") == "val"],
                "test_entries": [e["entry"] for e in entries if e.get("split") == "test"],
                "sources": {e["entry"]: {"file": Path(e["source"]).name, "sha256": e.get("sha256", "")}
                            for e in entries},
            },
        }


def train_backmap(dataset: str | Path, out_dir: str | Path, options: BackmapModelOptions | None = None,
                  config: TrainConfig | None = None, resume: bool = False, quiet: bool = False,
                  init_from: str | Path | None = None) -> FitResult:
    """Train a backmapping model on a dataset from ``gaatool data pdb``; see :func:`gaatool.train.fit`."""
    options = options or BackmapModelOptions()
    config = config or TrainConfig()
    task = BackmapTrainTask(dataset, options, config.batch_size)
    return fit(task, config, out_dir, resume=resume, quiet=quiet, init_from=init_from)
