"""Tests of the backmapping dataset built from real structures; downloads use a server on 127.0.0.1."""
from __future__ import annotations

import gzip
import zlib

import numpy as np
import pytest

from gaatool.data.store import load_dataset
from gaatool.errors import ConfigError, DownloadError, InputFileError
from gaatool.io.structure import read_structure
from gaatool.tasks.backmap.coarse_grain import bead_positions
from gaatool.tasks.backmap.dataset import (
    PAPER_ENTRIES,
    BackmapDatasetConfig,
    build_backmap_dataset,
    fetch_entries,
    structure_paths,
)
from gaatool.tasks.backmap.residues import LABELS, RESIDUE_NAMES


def test_rows_reconstruct_the_real_atoms(small_backmap_dataset, pdb_files):
    arrays, meta = load_dataset(small_backmap_dataset, expected_task="backmap")
    assert [e["entry"] for e in meta["entries"]] == ["1A8O", "1AJJ", "1CKB"]
    assert {e["entry"]: e["split"] for e in meta["entries"]} == {"1A8O": "test", "1AJJ": "train", "1CKB": "val"}
    assert meta["neighbors"] == 16 and meta["bead"] == "centroid" and len(meta["atom_labels"]) == 187
    # 1AJJ is the whole training split: every residue is complete, so rows = residues, in file order
    s = read_structure(pdb_files / "1AJJ.pdb.gz")
    beads = bead_positions(s)[0]
    assert len(arrays["train/entry"]) == s.n_residues == 37
    absolute = arrays["train/atom_positions"] + arrays["train/bead_positions"][:, None]
    starts = s.residue_starts()
    for r in range(s.n_residues):
        mask = arrays["train/atom_mask"][r]
        labels = [LABELS[i] for i in arrays["train/atom_labels"][r][mask]]
        assert [atom for _, atom in labels] == list(s.atom_names[starts[r]:starts[r + 1]])
        assert all(res == s.residue_names[r] for res, _ in labels)
        assert np.allclose(absolute[r][mask], s.positions[0, starts[r]:starts[r + 1]], atol=1e-4)
        assert RESIDUE_NAMES[arrays["train/residue_types"][r]] == s.residue_names[r]
    assert np.allclose(arrays["train/bead_positions"], beads)
    # the centroid of each target is its own bead
    mask = arrays["train/atom_mask"]
    centroid = (arrays["train/atom_positions"] * mask[..., None]).sum(1) / mask.sum(1)[:, None]
    assert np.abs(centroid).max() < 1e-4


def test_neighbours_peptide_links_and_incomplete_residues(small_backmap_dataset):
    arrays, meta = load_dataset(small_backmap_dataset)
    val = {e["entry"]: e for e in meta["entries"]}["1CKB"]
    assert val["residues"] == 65 and val["rows"] == 63  # two incomplete residues are neighbours only
    assert val["skipped"]["incomplete residue (neighbour bead only)"] == 2
    assert len(arrays["val/entry"]) == 63
    for split in ("train", "val", "test"):
        d = np.linalg.norm(arrays[f"{split}/neighbor_positions"], axis=-1)
        assert np.all(np.diff(d, axis=1) >= -1e-5) and arrays[f"{split}/neighbor_mask"].all()
        # consecutive residues: C(previous) - N(this) are bonded in these real structures
        prev = arrays[f"{split}/previous"]
        rows = np.flatnonzero(prev >= 0)
        names = np.array([atom for _, atom in LABELS])[arrays[f"{split}/atom_labels"]]
        absolute = arrays[f"{split}/atom_positions"] + arrays[f"{split}/bead_positions"][:, None]
        c = absolute[prev[rows], np.argmax(names[prev[rows]] == "C", axis=1)]
        n = absolute[rows, np.argmax(names[rows] == "N", axis=1)]
        assert np.all(np.abs(np.linalg.norm(n - c, axis=1) - 1.33) < 0.1)
    assert np.sum(arrays["test/previous"] < 0) == 3  # 1A8O: chain start + two gaps left by MSE


def test_sequence_offsets_follow_the_chain(small_backmap_dataset):
    arrays, _ = load_dataset(small_backmap_dataset)
    for split in ("train", "val", "test"):
        offsets = arrays[f"{split}/neighbor_offsets"].astype(np.int64)
        beads, prev = arrays[f"{split}/bead_positions"], arrays[f"{split}/previous"]
        relative = arrays[f"{split}/neighbor_positions"].astype(np.float64)
        assert offsets.shape == arrays[f"{split}/neighbor_types"].shape
        # the bead at offset -1 is the peptide-bonded predecessor (when it is a row too)
        for row in np.flatnonzero(prev >= 0):
            (at,) = np.flatnonzero(offsets[row] == -1)
            np.testing.assert_allclose(beads[row] + relative[row, at], beads[prev[row]], atol=1e-4)
        # one bead per place along the chain
        for row in offsets:
            near = row[row != 0]
            assert len(set(near.tolist())) == len(near)


def test_splits_are_by_entry(pdb_files):
    paths = [pdb_files / n for n in ("1AJJ.pdb.gz", "1CKB.pdb.gz", "1A8O.cif.gz", "3NIR_atoms_only.pdb.gz")]
    a = build_backmap_dataset(paths, BackmapDatasetConfig(val_fraction=0.25, test_fraction=0.25, seed=3))
    b = build_backmap_dataset(paths, BackmapDatasetConfig(val_fraction=0.25, test_fraction=0.25, seed=3))
    splits = {e.entry: e.split for e in a.entries}
    assert splits == {e.entry: e.split for e in b.entries}
    assert sorted(splits.values()) == ["test", "train", "train", "val"]
    for index, entry in enumerate(a.entries):
        for split in ("train", "val", "test"):
            rows = int(np.sum(a.arrays[f"{split}/entry"] == index))
            assert rows == (entry.rows if entry.split == split else 0)
    seeds = {tuple(e.split for e in build_backmap_dataset(
        paths, BackmapDatasetConfig(val_fraction=0.25, test_fraction=0.25, seed=s)).entries) for s in range(6)}
    assert len(seeds) > 1  # the seed matters
    with pytest.raises(ConfigError, match="not among the entries"):
        build_backmap_dataset(paths, BackmapDatasetConfig(val_entries=("9XYZ",)))
    with pytest.raises(ConfigError):
        BackmapDatasetConfig(val_entries=("1AJJ",), test_entries=("1ajj",))
    with pytest.raises(ConfigError):
        BackmapDatasetConfig(val_fraction=0.6, test_fraction=0.4)
    with pytest.raises(ConfigError, match="neighbors must be from 1 to 256"):
        BackmapDatasetConfig(neighbors=257)  # 100000 wrote 155 MB for one protein


def test_bad_and_duplicate_files_are_skipped_with_reasons(pdb_files, tmp_path):
    broken = tmp_path / "broken.pdb"
    broken.write_bytes(gzip.decompress((pdb_files / "1AJJ.pdb.gz").read_bytes())[:3000] + b"\nATOM  12")
    water = tmp_path / "water.pdb"
    water.write_text("HETATM    1  O   HOH A   1       0.000   0.000   0.000  1.00  0.00           O\nEND\n")
    copy = tmp_path / "1AJJ.pdb.gz"
    copy.write_bytes((pdb_files / "1AJJ.pdb.gz").read_bytes())
    ds = build_backmap_dataset([pdb_files / "1AJJ.pdb.gz", copy, broken, water],
                               BackmapDatasetConfig(val_fraction=0, test_fraction=0))
    reasons = dict(ds.skipped_files)
    assert "already read" in reasons[str(copy)]
    assert "cannot read" in reasons[str(broken)]
    assert "no complete standard" in reasons[str(water)]
    assert [e.entry for e in ds.entries] == ["1AJJ"]
    with pytest.raises(InputFileError, match="no usable structures"):
        build_backmap_dataset([broken, water])
    with pytest.raises(InputFileError, match="no such file"):
        build_backmap_dataset([tmp_path / "missing.pdb"])
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "1AY7.bcif").write_bytes(b"\x00binary")
    found, skipped = structure_paths([tmp_path])
    assert found == sorted([copy, broken, water, tmp_path / "1AY7.bcif"])  # BinaryCIF is read too
    assert skipped == []


MIRROR = "/{id}.cif.gz"


@pytest.fixture
def rcsb(pdb_files, http_server):
    """A PDB mirror on 127.0.0.1 (``rcsb.url(MIRROR)`` is its URL template) that serves 1A8O for 1AKI too."""
    real = (pdb_files / "1A8O.cif.gz").read_bytes()
    http_server.routes.update({"/1A8O.cif.gz": real, "/1AKI.cif.gz": real, "/2XYZ.cif.gz": b"not gzip"})
    return http_server


def test_fetch_entries_from_a_local_mirror(rcsb, tmp_path):
    cache = tmp_path / "cache"
    (path,) = fetch_entries(["1a8o"], cache=cache, url_template=rcsb.url(MIRROR))
    assert path == cache / "pdb" / "1A8O.cif.gz"
    assert read_structure(path).entry_id == "1A8O"
    rcsb.close()  # a second call uses the cache and needs no server
    assert fetch_entries(["1A8O"], cache=cache, url_template=rcsb.url(MIRROR)) == [path]


def test_fetch_entries_rejects_wrong_or_bad_files(rcsb, tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="not 1AKI"):
        fetch_entries(["1AKI"], cache=cache, url_template=rcsb.url(MIRROR))  # the server sends 1A8O
    with pytest.raises(DownloadError, match="verification"):
        fetch_entries(["2XYZ"], cache=cache, url_template=rcsb.url(MIRROR))
    with pytest.raises(DownloadError, match="404"):
        fetch_entries(["3ABC"], cache=cache, url_template=rcsb.url(MIRROR))
    assert not (cache / "pdb").exists() or list((cache / "pdb").iterdir()) == []
    with pytest.raises(ConfigError, match="not a PDB entry id"):
        fetch_entries(["lysozyme"], cache=cache, url_template=rcsb.url(MIRROR))
    with pytest.raises(ConfigError, match="placeholder"):
        fetch_entries(["1AKI"], cache=cache, url_template="http://127.0.0.1/x")


def _damaged_deflate(data: bytes) -> bytes:
    """``data`` (gzip) with one byte changed so that zlib, not the gzip reader, rejects it (zlib.error)."""
    for pos in range(20, len(data)):
        damaged = bytearray(data)
        damaged[pos] ^= 0xFF
        try:
            gzip.decompress(bytes(damaged))
        except zlib.error:
            return bytes(damaged)
        except (OSError, EOFError):
            continue
    raise AssertionError("no damaging byte found")


def test_fetch_entries_damaged_deflate_data(rcsb, tmp_path, pdb_files):
    real = (pdb_files / "1A8O.cif.gz").read_bytes()
    damaged = _damaged_deflate(real)
    cache = tmp_path / "cache"
    (cache / "pdb").mkdir(parents=True)
    (cache / "pdb" / "1A8O.cif.gz").write_bytes(damaged)  # a damaged cached copy is fetched anew
    (path,) = fetch_entries(["1A8O"], cache=cache, url_template=rcsb.url(MIRROR))
    assert path.read_bytes() == real and rcsb.hits["/1A8O.cif.gz"] == 1
    rcsb.routes["/1A8O.cif.gz"] = damaged  # and a damaged download is a one-line error
    with pytest.raises(DownloadError, match="damaged") as info:
        fetch_entries(["1A8O"], cache=tmp_path / "other", url_template=rcsb.url(MIRROR))
    assert "\n" not in str(info.value) and "instead of --ids" in str(info.value)
    assert list((tmp_path / "other" / "pdb").iterdir()) == []


def test_paper_entries():
    assert len(PAPER_ENTRIES) == 19 == len(set(PAPER_ENTRIES))
    assert PAPER_ENTRIES[0] == "3X2L" and PAPER_ENTRIES[-1] == "6SAY"
