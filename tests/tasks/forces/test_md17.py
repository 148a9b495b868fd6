"""Tests of the MD17 / rMD17 data layer against a local HTTP server on 127.0.0.1 and real fixtures.

Fixtures (tests/files/SOURCES.md): an exact copy of the sGDML ethanol ccsd(T) training set, a
50-frame subset of MD17 ethanol with a recomputed embedded fingerprint, the first 50 frames of an
rMD17 ethanol split file, and real XYZ exports.
"""
from __future__ import annotations

import hashlib
import io
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from gaatool.errors import ConfigError, DownloadError, InputFileError
from gaatool.tasks.forces import md17
from gaatool.tasks.forces.md17 import (
    MOLECULES,
    MolecularData,
    load_md17,
    paper_split,
    published_split,
    read_molecular_file,
    sgdml_fingerprint,
)

PERM = [3, 4, 5, 6, 7, 8, 0, 1, 2]  # extxyz atom i is npz atom PERM[i] (SOURCES.md)


@pytest.fixture(scope="module")
def ccsd(files_dir):
    return files_dir / "md17" / "ethanol_ccsd_t-train.npz"


@pytest.fixture
def server(http_server, monkeypatch):
    monkeypatch.setattr(md17, "MD17_BASE_URL", http_server.base + "/gdml/data/npz/")
    return http_server


def _files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# --------------------------------------------------------------------------- fingerprint


def test_fingerprint_reproduces_the_official_sgdml_md5(ccsd):
    with np.load(ccsd) as npz:
        z, R, E, F = (npz[k] for k in "zREF")
        embedded = npz["md5"].item().decode()
    assert embedded == "cdad377f9048f070ba9071b647d19397"  # the value recorded upstream
    assert sgdml_fingerprint(z, R, E, F) == embedded
    data = read_molecular_file(ccsd)
    assert data.provenance["fingerprint"] == embedded and data.provenance["fingerprint_verified"]
    assert data.fingerprint() == embedded  # canonical re-hash agrees for a little-endian uint8/float64 file
    assert sgdml_fingerprint(z, R, E[:, 0], F) == embedded  # (F,) and (F, 1) hash the same bytes
    assert sgdml_fingerprint(z, R, E, -F) != embedded


def test_fingerprint_hashes_bytes_as_stored(tmp_path, md17_50):
    with np.load(md17_50) as npz:
        z, R, E, F = (npz[k] for k in "zREF")
    big = {k: a.astype(a.dtype.newbyteorder(">")) for k, a in zip("zREF", (z, R, E, F))}
    big_md5 = sgdml_fingerprint(*big.values())
    assert big_md5 != sgdml_fingerprint(z, R, E, F)
    np.savez(tmp_path / "be.npz", md5=np.bytes_(big_md5.encode()), **big)
    data = read_molecular_file(tmp_path / "be.npz")  # verified although not native byte order
    np.testing.assert_array_equal(data.forces, F)
    assert data.forces.dtype == np.float64 and data.forces.dtype.isnative
    # The little-endian digest embedded in a big-endian file is a mismatch.
    np.savez(tmp_path / "be_wrong.npz", md5=np.bytes_(sgdml_fingerprint(z, R, E, F).encode()), **big)
    with pytest.raises(InputFileError, match="fingerprint"):
        read_molecular_file(tmp_path / "be_wrong.npz")


def test_xyz_export_fingerprint_equals_npz_fingerprint(md17_50, sgdml_xyz):
    xyz = read_molecular_file(sgdml_xyz)
    npz = read_molecular_file(md17_50)
    assert xyz.subset([0]).fingerprint() == npz.subset([0]).fingerprint()
    assert xyz.subset([1]).fingerprint() != npz.subset([0]).fingerprint()


# --------------------------------------------------------------------------- download


def test_download_verify_and_cache(server, tmp_path, md17_50):
    server.routes["/gdml/data/npz/md17_ethanol.npz"] = md17_50.read_bytes()
    data = load_md17("Ethanol", cache=tmp_path)
    assert isinstance(data, MolecularData)
    assert (data.name, data.n_frames, data.n_atoms, data.formula) == ("ethanol", 50, 9, "C2H6O")
    with np.load(md17_50) as npz:
        np.testing.assert_array_equal(data.positions, npz["R"])
        np.testing.assert_array_equal(data.energies, npz["E"][:, 0])
        np.testing.assert_array_equal(data.forces, npz["F"])
        assert data.provenance["fingerprint"] == npz["md5"].item().decode()
    assert data.positions.dtype == data.energies.dtype == data.forces.dtype == np.float64
    assert data.atomic_numbers.tolist() == [6, 6, 8, 1, 1, 1, 1, 1, 1]
    prov = data.provenance
    assert prov["url"] == server.base + "/gdml/data/npz/md17_ethanol.npz"
    assert prov["sha256"] == hashlib.sha256(md17_50.read_bytes()).hexdigest()
    assert prov["fingerprint_verified"] and prov["source"] == "download" and not prov["revised"]
    assert _files_under(tmp_path) == ["md17/md17_ethanol.npz"]
    again = load_md17("ethanol", cache=tmp_path, download=False)
    assert server.hits["/gdml/data/npz/md17_ethanol.npz"] == 1
    np.testing.assert_array_equal(again.forces, data.forces)


def test_env_var_selects_the_cache(server, tmp_path, monkeypatch, md17_50):
    server.routes["/gdml/data/npz/md17_ethanol.npz"] = md17_50.read_bytes()
    monkeypatch.setenv("GAATOOL_CACHE_DIR", str(tmp_path / "env"))
    load_md17("ethanol")
    assert _files_under(tmp_path / "env") == ["md17/md17_ethanol.npz"]


def test_corrupted_download_is_rejected_and_not_cached(server, tmp_path, md17_50):
    raw = bytearray(md17_50.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # a flipped byte inside the stored arrays
    server.routes["/gdml/data/npz/md17_ethanol.npz"] = bytes(raw)
    with pytest.raises(DownloadError, match="--from FILE"):
        load_md17("ethanol", cache=tmp_path)
    assert _files_under(tmp_path) == []


def test_edited_data_fails_the_fingerprint(server, tmp_path, md17_50):
    with np.load(md17_50) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["F"] = arrays["F"].copy()
    arrays["F"][7, 3, 1] += 1e-9  # the embedded md5 no longer matches the data
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    server.routes["/gdml/data/npz/md17_ethanol.npz"] = buffer.getvalue()
    with pytest.raises(DownloadError, match="fingerprint") as info:
        load_md17("ethanol", cache=tmp_path)
    assert server.base in str(info.value) and "\n" not in str(info.value)
    assert _files_under(tmp_path) == []


def test_interrupted_download(server, tmp_path, md17_50):
    server.routes["/gdml/data/npz/md17_ethanol.npz"] = md17_50.read_bytes()[:5000]
    server.truncated.add("/gdml/data/npz/md17_ethanol.npz")
    with pytest.raises(DownloadError, match="interrupted"):
        load_md17("ethanol", cache=tmp_path)
    assert _files_under(tmp_path) == []


def test_wrong_molecule_served(server, tmp_path, md17_50):
    server.routes["/gdml/data/npz/md17_toluene.npz"] = md17_50.read_bytes()
    with pytest.raises(DownloadError, match="C2H6O.*toluene is C7H8"):
        load_md17("toluene", cache=tmp_path)
    assert _files_under(tmp_path) == []


def test_offline_and_damaged_cache(server, tmp_path, md17_50):
    with pytest.raises(DownloadError, match="downloads are off"):
        load_md17("ethanol", cache=tmp_path, download=False)
    assert server.hits == Counter()
    cached = tmp_path / "md17" / "md17_ethanol.npz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(md17_50.read_bytes()[:-100])
    with pytest.raises(DownloadError, match="damaged"):
        load_md17("ethanol", cache=tmp_path, download=False)
    assert not cached.exists()
    cached.write_bytes(md17_50.read_bytes()[:-100])
    server.routes["/gdml/data/npz/md17_ethanol.npz"] = md17_50.read_bytes()
    assert load_md17("ethanol", cache=tmp_path).n_frames == 50  # fetched anew
    assert server.hits["/gdml/data/npz/md17_ethanol.npz"] == 1


def test_unknown_molecule():
    with pytest.raises(ConfigError) as info:
        load_md17("caffeine")
    for name in MOLECULES:
        assert name in str(info.value)


# --------------------------------------------------------------------------- rMD17 archive


def _rmd17_splits() -> dict:
    """Split n trains on frames 10(n-1)..10(n-1)+9 and tests on those frames + 25 (mod 50)."""
    return {n: (range(10 * (n - 1), 10 * n), [(i + 25) % 50 for i in range(10 * (n - 1), 10 * n)])
            for n in range(1, 6)}


@pytest.fixture
def rmd17_server(server, tmp_path, monkeypatch, rmd17_archive):
    archive = rmd17_archive(tmp_path / "src.tar.bz2", _rmd17_splits(),
                            extra={"rmd17/npz_data/rmd17_toluene.npz": b"not needed, never extracted"}).read_bytes()
    server.routes["/figshare/rmd17"] = archive
    server.routes["/mirror/rmd17"] = archive
    monkeypatch.setattr(md17, "RMD17_URLS", (server.base + "/figshare/rmd17", server.base + "/mirror/rmd17"))
    monkeypatch.setattr(md17, "RMD17_SHA256", hashlib.sha256(archive).hexdigest()[:12])
    return server


def test_revised_download_with_published_splits(rmd17_server, tmp_path, rmd17_50):
    cache = tmp_path / "cache"
    data = load_md17("ethanol", revised=True, cache=cache)
    with np.load(rmd17_50) as npz:
        np.testing.assert_array_equal(data.positions, npz["coords"])
        np.testing.assert_array_equal(data.energies, npz["energies"])
        np.testing.assert_array_equal(data.forces, npz["forces"])
    assert data.provenance["revised"] and data.provenance["url"].endswith("/figshare/rmd17")
    assert not data.provenance["fingerprint_verified"]
    assert sorted(data.splits) == [1, 2, 3, 4, 5]
    assert data.splits[2]["train"].tolist() == list(range(10, 20))
    files = _files_under(cache)
    assert "rmd17/npz_data/rmd17_ethanol.npz" in files and "rmd17/rmd17.tar.bz2" in files
    assert "rmd17/npz_data/rmd17_toluene.npz" not in files  # only the needed members
    load_md17("ethanol", revised=True, cache=cache, download=False)
    assert rmd17_server.hits["/figshare/rmd17"] == 1
    (cache / "rmd17" / "npz_data" / "rmd17_ethanol.npz").unlink()  # re-extracted from the cached archive
    assert load_md17("ethanol", revised=True, cache=cache, download=False).n_frames == 50
    assert sum(rmd17_server.hits.values()) == 1
    split = published_split(data, split=2, n_val=20, seed=3)
    assert split["train"].tolist() == list(range(10, 20))
    assert split["test"].tolist() == sorted((i + 25) % 50 for i in range(10, 20))
    assert len(set(split["val"]) | set(split["train"]) | set(split["test"])) == 40
    with pytest.raises(ConfigError, match="only 30 frames"):
        published_split(data, split=1, n_val=31)
    with pytest.raises(ConfigError, match="does not exist"):
        published_split(data, split=6)


def test_revised_mirror_and_checksum(rmd17_server, tmp_path, monkeypatch):
    del rmd17_server.routes["/figshare/rmd17"]
    data = load_md17("ethanol", revised=True, cache=tmp_path / "a")
    assert data.provenance["url"].endswith("/mirror/rmd17")
    monkeypatch.setattr(md17, "RMD17_SHA256", "0" * 12)
    with pytest.raises(DownloadError, match="SHA-256"):
        load_md17("ethanol", revised=True, cache=tmp_path / "b")
    assert _files_under(tmp_path / "b") == []


def test_revised_archive_with_bad_content_is_dropped(server, tmp_path, monkeypatch, write_tar_bz2, md17_50):
    # sGDML keys where rMD17 keys belong
    path = write_tar_bz2(tmp_path / "bad.tar.bz2", {"rmd17/npz_data/rmd17_ethanol.npz": md17_50.read_bytes()})
    server.routes["/rmd17"] = path.read_bytes()
    monkeypatch.setattr(md17, "RMD17_URLS", (server.base + "/rmd17",))
    monkeypatch.setattr(md17, "RMD17_SHA256", None)
    with pytest.raises(DownloadError, match="failed verification"):
        load_md17("ethanol", revised=True, cache=tmp_path / "c")
    assert _files_under(tmp_path / "c") == []


def test_revised_from_local_archive(tmp_path, rmd17_archive):
    archive = rmd17_archive(tmp_path / "rmd17.tar.bz2", _rmd17_splits())
    data = load_md17("ethanol", revised=True, source=archive, cache=tmp_path / "cache", download=False)
    assert data.n_frames == 50 and data.splits[1]["test"][0] == 25
    assert data.provenance["source"] == "file"
    assert data.provenance["archive_sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()


def test_revised_edited_cached_files_are_extracted_again(rmd17_server, tmp_path, rmd17_50):
    # edits that keep the files valid (a moved atom, another frame index) pass the structural checks;
    # the SHA-256 recorded at extraction catches them, and the cached archive restores the files
    cache = tmp_path / "cache"
    load_md17("ethanol", revised=True, cache=cache)
    npz = cache / "rmd17" / "npz_data" / "rmd17_ethanol.npz"
    with np.load(rmd17_50) as source:
        arrays = {k: source[k] for k in source.files}
    arrays["coords"] = arrays["coords"].copy()
    arrays["coords"][3, 2, 0] += 0.5
    np.savez(npz, **arrays)
    split = cache / "rmd17" / "splits" / "index_train_02.csv"
    split.write_text(split.read_text().replace("19\n", "29\n"))
    data = load_md17("ethanol", revised=True, cache=cache, download=False)
    with np.load(rmd17_50) as source:
        np.testing.assert_array_equal(data.positions, source["coords"])
    assert data.splits[2]["train"].tolist() == list(range(10, 20))
    assert sum(rmd17_server.hits.values()) == 1  # restored from the cached archive, not downloaded
    # files extracted by an older gaatool (no recorded checksum) are checked as before, then recorded
    for recorded in cache.rglob("*.sha256"):
        recorded.unlink()
    assert load_md17("ethanol", revised=True, cache=cache, download=False).n_frames == 50
    assert (cache / "rmd17" / "npz_data" / "rmd17_ethanol.npz.sha256").is_file()


def test_damaged_cache_that_cannot_be_removed(server, tmp_path, md17_50, unremovable):
    cached = tmp_path / "md17" / "md17_ethanol.npz"  # e.g. a read-only cache shared by a group
    cached.parent.mkdir(parents=True)
    cached.write_bytes(md17_50.read_bytes()[:-100])
    unremovable(cached)
    with pytest.raises(DownloadError, match="damaged .*cannot be removed") as info:
        load_md17("ethanol", cache=tmp_path)
    assert "--cache" in str(info.value) and "\n" not in str(info.value)
    assert server.hits == Counter()


# --------------------------------------------------------------------------- --from FILE


def test_from_npz_and_xyz_agree(md17_50, rmd17_50, extxyz, sgdml_xyz):
    sgdml = load_md17("ethanol", source=md17_50, download=False)
    assert sgdml.provenance["format"] == "sgdml-npz" and sgdml.provenance["fingerprint_verified"]
    xyz = load_md17("ethanol", source=sgdml_xyz, download=False)
    assert xyz.n_frames == 3 and xyz.provenance["format"] == "xyz"
    np.testing.assert_array_equal(xyz.positions[0], sgdml.positions[0])
    np.testing.assert_array_equal(xyz.forces[0], sgdml.forces[0])
    assert xyz.energies[0] == sgdml.energies[0]

    rmd = load_md17("ethanol", revised=True, source=rmd17_50, download=False)
    assert rmd.provenance["format"] == "rmd17-npz" and rmd.n_frames == 50 and rmd.splits is None
    ext = load_md17("ethanol", revised=True, source=extxyz, download=False)
    assert ext.n_frames == 5
    assert ext.atomic_numbers.tolist() == rmd.atomic_numbers[PERM].tolist()
    np.testing.assert_array_equal(ext.positions, rmd.positions[:5][:, PERM])
    np.testing.assert_array_equal(ext.forces, rmd.forces[:5][:, PERM])
    np.testing.assert_array_equal(ext.energies, rmd.energies[:5])
    assert ext.provenance["sha256"] == hashlib.sha256(extxyz.read_bytes()).hexdigest()


def test_from_stdin(monkeypatch, extxyz):
    monkeypatch.setattr(sys, "stdin", io.StringIO(extxyz.read_text()))
    assert read_molecular_file("-").n_frames == 5


def test_from_file_of_another_molecule(md17_50):
    with pytest.raises(InputFileError, match="C2H6O.*salicylic is C7H6O3"):
        load_md17("Salicylic acid", source=md17_50)  # the alias is accepted, the formula is not


def _xyz_error(tmp_path, text: str) -> str:
    path = tmp_path / "bad.xyz"
    path.write_text(text)
    with pytest.raises(InputFileError) as info:
        read_molecular_file(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    return str(info.value)


def test_inconsistent_xyz_frames(tmp_path, sgdml_xyz):
    lines = sgdml_xyz.read_text().splitlines(keepends=True)
    fewer = lines[:11] + ["8\n"] + lines[12:21] + lines[22:]  # frame 1 (the second) without its last atom
    assert "frame 1 has 8 atoms" in _xyz_error(tmp_path, "".join(fewer))
    swapped = lines[:14] + [lines[15], lines[14]] + lines[16:]  # frame 1 lists its 2nd C and the O swapped
    assert "frame 1 atom 2" in _xyz_error(tmp_path, "".join(swapped))
    plain = "".join(line if i % 11 < 2 else " ".join(line.split()[:4]) + "\n" for i, line in enumerate(lines))
    assert "no forces" in _xyz_error(tmp_path, plain)
    no_energy = "".join("comment\n" if i % 11 == 1 else line for i, line in enumerate(lines))
    assert "no numeric energy" in _xyz_error(tmp_path, no_energy)


def test_bad_npz_files(tmp_path, md17_50):
    with np.load(md17_50) as npz:
        arrays = {k: npz[k] for k in "zREF"}
    np.savez(tmp_path / "keys.npz", positions=arrays["R"])
    with pytest.raises(InputFileError, match="neither sGDML"):
        read_molecular_file(tmp_path / "keys.npz")
    nan = dict(arrays, F=arrays["F"].copy())
    nan["F"][4, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", **nan)
    with pytest.raises(InputFileError, match="frame 4 has non-finite forces"):
        read_molecular_file(tmp_path / "nan.npz")
    np.savez(tmp_path / "shape.npz", **dict(arrays, F=arrays["F"][:, :8]))
    with pytest.raises(InputFileError, match="forces have shape"):
        read_molecular_file(tmp_path / "shape.npz")
    np.savez(tmp_path / "obj.npz", **dict(arrays, z=np.array([6, "C"], dtype=object)))
    with pytest.raises(InputFileError, match="obj.npz"):
        read_molecular_file(tmp_path / "obj.npz")  # object arrays need pickle, which is never allowed
    (tmp_path / "trunc.npz").write_bytes(md17_50.read_bytes()[:3000])
    with pytest.raises(InputFileError, match="trunc.npz"):
        read_molecular_file(tmp_path / "trunc.npz")


# --------------------------------------------------------------------------- splits and units


def test_paper_split():
    split = paper_split(3500, seed=11)
    assert [len(split[k]) for k in ("train", "val", "test")] == [1000, 1000, 1000]
    joined = np.concatenate([split["train"], split["val"], split["test"]])
    assert len(np.unique(joined)) == 3000 and joined.min() >= 0 and joined.max() < 3500
    again = paper_split(3500, seed=11)
    assert all((split[k] == again[k]).all() for k in split)
    other = paper_split(3500, seed=12)
    assert not (split["train"] == other["train"]).all()
    with pytest.raises(ConfigError, match="needs 3000 frames.*has 2999"):
        paper_split(2999, seed=0)
    with pytest.raises(ConfigError, match="n_val"):
        paper_split(100, seed=0, n_train=10, n_val=-1, n_test=10)


def test_summary_reports_mev(md17_50):
    data = read_molecular_file(md17_50)
    summary = data.to_dict()
    assert summary["energy_std_mev"] == pytest.approx(np.std(data.energies) * 43.364, rel=1e-12)
    assert summary["force_rms_mev_per_a"] == pytest.approx(np.sqrt(np.mean(data.forces**2)) * 43.364, rel=1e-12)
    assert summary["formula"] == "C2H6O" and summary["n_frames"] == 50
    assert data.subset(np.arange(10)).n_frames == 10


def test_an_npz_with_an_unsupported_zip_feature_is_a_one_line_error(tmp_path, md17_50):
    """A central-directory entry asking for zip version 9.1 raised NotImplementedError ('this is a bug')."""
    data = bytearray(md17_50.read_bytes())
    entry = data.index(b"PK\x01\x02")  # the first central-directory entry: "version needed" at offset 6
    data[entry + 6] = 91
    odd = tmp_path / "v91.npz"
    odd.write_bytes(bytes(data))
    with pytest.raises(InputFileError, match="v91.npz: not a readable npz file"):
        read_molecular_file(odd)
