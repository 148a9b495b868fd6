"""Tests of gaatool.io.structure on real PDB/mmCIF entries (tests/files/pdb, see SOURCES.md)."""
from __future__ import annotations

import gzip
import io

import gemmi
import numpy as np
import pytest

from gaatool.errors import ConfigError, InputFileError
from gaatool.io.structure import (
    MD_RESIDUE_ALIASES,
    STANDARD_AMINO_ACIDS,
    ProteinStructure,
    parse_structure,
    read_structure,
    structure_format,
    structure_text,
    write_structure,
)



def residue_atom_sets(s: ProteinStructure):
    return [sorted(s.atom_names[s.atom_residues == r]) for r in range(s.n_residues)]


def gemmi_atoms(path, seqnum, name=None):
    """Heavy atoms of one residue straight from gemmi: [(name, altloc, occ, xyz)]."""
    st = gemmi.read_structure(str(path))
    out = []
    for residue in st[0]["A"]:
        if residue.seqid.num == seqnum and (name is None or residue.name == name):
            out += [(a.name, a.altloc, a.occ, (a.pos.x, a.pos.y, a.pos.z)) for a in residue if a.element.name != "H"]
    return out


def test_alternate_locations_keep_every_atom_once_2vb1_matches_1aki(pdb_files):
    # 2VB1 (0.65 Å, 1440 alt-loc atoms) and 1AKI (1.5 Å, no alt-locs) are the same protein: after resolving
    # alternate locations the residues and heavy-atom names must coincide exactly.
    ultra, plain = read_structure(pdb_files / "2VB1.pdb.gz"), read_structure(pdb_files / "1AKI.cif.gz")
    assert ultra.n_residues == plain.n_residues == 129
    assert ultra.n_atoms == plain.n_atoms == 1001
    assert list(ultra.residue_names) == list(plain.residue_names)
    assert residue_atom_sets(ultra) == residue_atom_sets(plain)
    assert ultra.skipped["water HOH"] == 170 and ultra.skipped["hydrogen atoms"] == 1334
    assert ultra.skipped["atoms of other alternate conformers"] == 322


@pytest.mark.parametrize("seqnum, name, letter",
                         [(100, "SER", "B"), (85, "SER", "B"), (37, "ASN", "B"), (1, "LYS", "A")])
def test_highest_occupancy_conformer_is_kept(seqnum, name, letter, pdb_files):
    # In 2VB1 SER100 (A 0.35, B 0.65) and SER85 (A 0.33, B 0.47, C 0.18) the *second* letter is the major
    # conformer, so keeping the first alt-loc (gemmi's remove_alternative_conformations) would differ.
    s = read_structure(pdb_files / "2VB1.pdb.gz")
    r = int(np.flatnonzero((s.residue_numbers == seqnum) & (s.residue_names == name))[0])
    kept = {str(n): p for n, p in zip(s.atom_names[s.atom_residues == r], s.positions[0][s.atom_residues == r])}
    raw = gemmi_atoms(pdb_files / "2VB1.pdb.gz", seqnum, name)
    alt_names = {a[0] for a in raw if a[1] != "\x00"}
    assert alt_names, "the residue should have alternate locations"
    for atom_name in alt_names:
        expected = [a[3] for a in raw if a[0] == atom_name and a[1] == letter]
        assert np.allclose(kept[atom_name], expected[0], atol=1e-6)
    first = gemmi.read_structure(str(pdb_files / "2VB1.pdb.gz"))
    first.remove_alternative_conformations()
    if letter != "A":
        differs = [a for a in first[0]["A"][str(seqnum)][0] if a.name in alt_names]
        assert any(not np.allclose(kept[a.name], (a.pos.x, a.pos.y, a.pos.z)) for a in differs)


def test_microheterogeneity_keeps_the_major_residue_3nir(pdb_files):
    s = read_structure(pdb_files / "3NIR_atoms_only.pdb.gz")
    assert s.n_residues == 46 and s.n_atoms == 327  # crambin: 46 residues, 327 heavy atoms
    assert s.residue_names[s.residue_numbers == 22].tolist() == ["PRO"]  # PRO ~0.66 vs SER ~0.33
    # ILE (B, mean 0.43) comes first in the file, LEU (A, mean 0.56) is the major residue
    assert s.residue_names[s.residue_numbers == 25].tolist() == ["LEU"]
    assert s.skipped["alternative residue at the same position (micro-heterogeneity)"] == 2
    assert not np.any(s.elements == "H")
    # every residue holds each heavy-atom name once, and all names its chosen residue has in any conformer
    starts = s.residue_starts()
    for r in range(s.n_residues):
        names = s.atom_names[starts[r]:starts[r + 1]].tolist()
        assert len(names) == len(set(names))
        raw = gemmi_atoms(pdb_files / "3NIR_atoms_only.pdb.gz", int(s.residue_numbers[r]), str(s.residue_names[r]))
        assert set(names) == {a[0] for a in raw}


def test_skips_are_reported_with_reasons_and_chains_kept(pdb_files):
    s = read_structure(pdb_files / "1A8O.cif.gz")
    assert s.skipped["non-standard amino acid MSE"] == 4
    assert s.skipped["water HOH"] == 88
    assert set(s.residue_names.tolist()) <= set(STANDARD_AMINO_ACIDS)
    assert s.entry_id == "1A8O"
    two = read_structure(pdb_files / "1CKB.pdb.gz")
    assert [(c, len(r)) for c, r in two.chains()] == [("A", 57), ("B", 8)]
    text = structure_text(two, "pdb").replace("END", "HETATM 9999  O   HOH W   1       1.000   2.000   3.000  1.00"
                                                     "  0.00           O\nEND")
    with_water_chain = parse_structure(text, "pdb")
    assert with_water_chain.skipped == {"water HOH": 1, "chain W without standard amino acids": 1}
    assert with_water_chain.n_atoms == two.n_atoms


def test_gzip_plain_stdin_and_text_agree(tmp_path, pdb_files):
    text = gzip.decompress((pdb_files / "1AJJ.pdb.gz").read_bytes())
    plain = tmp_path / "1AJJ.pdb"
    plain.write_bytes(text)
    a, b = read_structure(pdb_files / "1AJJ.pdb.gz"), read_structure(plain)
    c = read_structure("-", stdin=io.BytesIO(text))
    d = read_structure("-", stdin=io.BytesIO(gzip.compress(text)))
    for other in (b, c, d):
        assert np.array_equal(a.positions, other.positions)
        assert list(a.atom_names) == list(other.atom_names)
    cif_text = gzip.decompress((pdb_files / "1AKI.cif.gz").read_bytes())
    e = read_structure("-", stdin=io.BytesIO(cif_text))  # format sniffed from `data_`
    assert e.n_atoms == 1001 and e.source == "stdin"
    # file atom indices count every atom of the model in file order (ATOM + HETATM records)
    records = [line for line in text.decode().splitlines() if line.startswith(("ATOM", "HETATM"))]
    assert a.file_atom_count == len(records)
    for i in (0, 5, a.n_atoms - 1):
        assert records[a.file_atom_index[i]][12:16].strip() == a.atom_names[i]


@pytest.mark.parametrize("suffix", [".pdb", ".cif", ".pdb.gz", ".cif.gz"])
def test_write_read_round_trip(tmp_path, suffix, pdb_files):
    s = read_structure(pdb_files / "1CKB.pdb.gz")
    path = tmp_path / f"out{suffix}"
    write_structure(s, path)
    back = read_structure(path)
    assert np.allclose(back.positions, s.positions, atol=1e-3)  # PDB keeps 3 decimals
    for field in ("atom_names", "elements", "residue_names", "residue_numbers", "chain_ids", "insertion_codes"):
        assert list(getattr(back, field)) == list(getattr(s, field)), field
    if suffix.endswith(".gz"):
        assert path.read_bytes()[:2] == b"\x1f\x8b"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp files left


def test_multi_model_round_trip_and_stdout(tmp_path, pdb_files):
    s = read_structure(pdb_files / "1AJJ.pdb.gz")
    two = s.with_positions(np.stack([s.positions[0], s.positions[0] + 1.0]))
    out = io.StringIO()
    write_structure(two, "-", stdout=out)
    text = out.getvalue()
    assert text.count("MODEL") == 2
    back = parse_structure(text, "pdb", all_models=True)
    assert back.positions.shape == (2, s.n_atoms, 3)
    assert np.allclose(back.positions[1] - back.positions[0], 1.0, atol=2e-3)
    assert parse_structure(text, "pdb").positions.shape[0] == 1
    assert parse_structure(text, "pdb").skipped["models after the first"] == 1
    cif = structure_text(two, "cif")
    assert parse_structure(cif, "cif", all_models=True).positions.shape == (2, s.n_atoms, 3)


def test_models_with_different_atoms_are_refused(pdb_files):
    s = read_structure(pdb_files / "1AJJ.pdb.gz")
    text_a = structure_text(s, "pdb")
    text_b = structure_text(s.select_residues(np.arange(s.n_residues) > 0), "pdb")
    body = lambda t: [l for l in t.splitlines() if l.startswith(("ATOM", "TER"))]  # noqa: E731
    two = "\n".join(["MODEL        1", *body(text_a), "ENDMDL", "MODEL        2", *body(text_b), "ENDMDL", "END"])
    with pytest.raises(InputFileError, match="model 2 has other residues"):
        parse_structure(two, "pdb", all_models=True)


def test_bad_inputs_give_one_line_errors(tmp_path, pdb_files):
    with pytest.raises(InputFileError, match="no such file"):
        read_structure(tmp_path / "missing.pdb")
    with pytest.raises(InputFileError, match="is a folder"):
        read_structure(tmp_path)
    truncated = tmp_path / "cut.pdb"
    text = gzip.decompress((pdb_files / "1AJJ.pdb.gz").read_bytes())
    start = text.index(b"\nATOM") + 1
    truncated.write_bytes(text[:start + 40])  # a cut ATOM record
    with pytest.raises(InputFileError) as err:
        read_structure(truncated)
    assert "\n" not in str(err.value) and "cut.pdb" in str(err.value)
    # a .gz cut anywhere, even just before its end: an error, never part of the structure
    packed = (pdb_files / "1AJJ.pdb.gz").read_bytes()
    for size in (len(packed) // 3, len(packed) - 20):
        cut = tmp_path / f"cut{size}.pdb.gz"
        cut.write_bytes(packed[:size])
        with pytest.raises(InputFileError, match=rf"cut{size}\.pdb\.gz: .*(truncated|cannot read)"):
            read_structure(cut)
    bcif = tmp_path / "x.bcif"
    bcif.write_bytes(b"\x00\x01binary")
    with pytest.raises(InputFileError, match="not a readable BinaryCIF file"):
        read_structure(bcif)
    empty = tmp_path / "empty.pdb"
    empty.write_text("HEADER    nothing here\nEND\n")
    s = read_structure(empty)
    assert s.n_residues == 0
    with pytest.raises(InputFileError):
        parse_structure("not a cif", "cif")


def test_failed_write_leaves_no_file(tmp_path, pdb_files):
    s = read_structure(pdb_files / "1AJJ.pdb.gz")
    target = tmp_path / "out.pdb"
    bad = s.with_positions(np.where(np.arange(s.n_atoms)[:, None] == 3, np.nan, s.positions[0]))
    with pytest.raises(InputFileError, match="not finite"):
        write_structure(bad, target)
    far = s.with_positions(s.positions[0] + 20000.0)
    with pytest.raises(ConfigError, match="mmCIF"):
        write_structure(far, target)
    write_structure(far, tmp_path / "far.cif")  # mmCIF has no column limit
    assert list(tmp_path.iterdir()) == [tmp_path / "far.cif"]
    with pytest.raises(ConfigError, match="extension"):
        structure_format("out.xyz")


def test_select_residues_keeps_atoms_contiguous(pdb_files):
    s = read_structure(pdb_files / "1CKB.pdb.gz")
    keep = s.chain_ids == "B"
    b = s.select_residues(keep)
    assert b.n_residues == 8 and set(b.chain_ids.tolist()) == {"B"}
    assert np.array_equal(b.positions[0], s.positions[0][keep[s.atom_residues]])
    assert np.array_equal(b.residue_starts()[-1], b.n_atoms)
    assert np.array_equal(b.file_atom_index, s.file_atom_index[keep[s.atom_residues]])


def test_gromacs_gro_files_read_like_pdb(tmp_path, pdb_files):
    import mdtraj

    source = tmp_path / "1ckb.pdb"
    write_structure(read_structure(pdb_files / "1CKB.pdb.gz"), source)
    trajectory = mdtraj.load(str(source))
    gro = tmp_path / "1ckb.gro"
    trajectory.save_gro(str(gro))
    a, b = read_structure(source), read_structure(gro)
    assert list(b.residue_names) == list(a.residue_names) and list(b.residue_numbers) == list(a.residue_numbers)
    assert list(b.atom_names) == list(a.atom_names)
    # .gro has no chain ids: one chain A, whose residue-number jump marks where chain B began
    from gaatool.tasks.backmap.coarse_grain import chain_breaks

    assert set(b.chain_ids) == {"A"} and set(a.chain_ids) == {"A", "B"}
    start_b = int(np.flatnonzero(a.chain_ids == "B")[0])
    assert (start_b - 1, start_b) in chain_breaks(b)
    np.testing.assert_allclose(b.positions, a.positions, atol=0.006)  # .gro keeps 0.001 nm
    # force-field names are read as standard residues when asked, as for PDB
    text = gro.read_text().replace("HIS", "HSD")
    (tmp_path / "hsd.gro").write_text(text)
    renamed = read_structure(tmp_path / "hsd.gro", residue_aliases={"HSD": "HIS"})
    assert list(renamed.residue_names) == list(a.residue_names)
    bad = tmp_path / "bad.gro"
    bad.write_text("title\n12\n    1ALA     CA    1   0.1\n")
    with pytest.raises(InputFileError, match=r"bad\.gro: cannot read as a GROMACS \.gro file"):
        read_structure(bad)


def _pdb_lines(s: ProteinStructure) -> list[str]:
    return [line for line in structure_text(s, "pdb").splitlines() if line.startswith("ATOM")]


def test_gromacs_four_letter_residue_names_in_pdb_columns(pdb_files):
    # GROMACS writes HISE, CYS2, ... into columns 18-21; gemmi took the 4th letter for the chain id, which split
    # the chain at every such residue
    s = read_structure(pdb_files / "2VB1.pdb.gz")
    lines = _pdb_lines(s)
    renamed = {"HIS": "HISE", "CYS": "CYS2", "LYS": "LYSN"}
    text = "\n".join(line[:17] + renamed[line[17:20]] + line[21:] if line[17:20] in renamed else line
                     for line in lines) + "\n"
    present = sorted({line[17:21] for line in text.splitlines()} & set(renamed.values()))
    assert present == ["CYS2", "HISE", "LYSN"]
    back = parse_structure(text, "pdb", residue_aliases=MD_RESIDUE_ALIASES)
    assert list(back.chain_ids) == list(s.chain_ids) and list(back.residue_names) == list(s.residue_names)
    assert all(f"{name} as {MD_RESIDUE_ALIASES[name]}" in back.notes[0] for name in present)


def test_segment_ids_stand_for_blank_chain_ids_and_long_ids_fit_pdb(pdb_files, tmp_path):
    s = read_structure(pdb_files / "1CKB.pdb.gz")  # chains A and B
    segments = {"A": "PROA", "B": "PROB"}
    text = "\n".join(line[:21] + " " + line[22:72] + f"{segments[line[21]]:<4}" for line in _pdb_lines(s)) + "\n"
    back = parse_structure(text, "pdb")
    assert list(back.chain_ids) == [segments[c] for c in s.chain_ids]
    assert any("segment ids" in note for note in back.notes)
    # written as PDB: single-letter chains, the long ids in the segment-id columns, with a note
    notes = write_structure(back, tmp_path / "out.pdb")
    assert notes and "PROA -> A" in notes[0]
    again = read_structure(tmp_path / "out.pdb")
    assert list(again.chain_ids) == list(s.chain_ids)
    assert {line[72:76] for line in (tmp_path / "out.pdb").read_text().splitlines()
            if line.startswith("ATOM")} == {"PROA", "PROB"}
    # mmCIF keeps them as chain ids, with label numbers 1, 2, ... (not '.')
    assert write_structure(back, tmp_path / "out.cif") == []
    cif = read_structure(tmp_path / "out.cif")
    assert list(cif.chain_ids) == list(back.chain_ids)
    block = gemmi.cif.read(str(tmp_path / "out.cif")).sole_block()
    assert list(block.find_values("_atom_site.label_seq_id"))[0] == "1"
    long = back.select_residues(np.ones(back.n_residues, dtype=bool))
    long.chain_ids = np.array(["CHAINAB"] * back.n_residues)
    with pytest.raises(ConfigError, match="chain id 'CHAINAB' is too long for the PDB format; write mmCIF"):
        write_structure(long, tmp_path / "long.pdb")
    assert not (tmp_path / "long.pdb").exists()


def test_residues_without_numbers_are_refused(pdb_files):
    s = read_structure(pdb_files / "1CKB.pdb.gz")
    text = "\n".join(line[:22] + "    " + line[26:] for line in _pdb_lines(s)) + "\n"
    with pytest.raises(InputFileError, match="has no residue number"):
        parse_structure(text, "pdb", source="blank.pdb")


LYSOZYME_DISULFIDES = [(6, 127), (30, 115), (64, 80), (76, 94)]


def _numbered(s: ProteinStructure, pairs) -> list[tuple[int, int]]:
    return [(int(s.residue_numbers[a]), int(s.residue_numbers[b])) for a, b in pairs]


@pytest.mark.parametrize("name", ["1AKI.cif.gz", "2VB1.pdb.gz"])
def test_disulfide_records_are_read_and_written(tmp_path, pdb_files, name):
    """SSBOND records and mmCIF struct_conn disulfides become residue pairs, written back as either."""
    s = read_structure(pdb_files / name)
    assert _numbered(s, s.disulfides) == LYSOZYME_DISULFIDES
    text = structure_text(s, "pdb")
    ssbond = [line.split()[:8] for line in text.splitlines() if line.startswith("SSBOND")]
    assert len(ssbond) == 4 and ssbond[0] == ["SSBOND", "1", "CYS", "A", "6", "CYS", "A", "127"]
    for suffix in (".pdb", ".cif"):
        write_structure(s, tmp_path / f"out{suffix}")
        assert _numbered(s, read_structure(tmp_path / f"out{suffix}").disulfides) == LYSOZYME_DISULFIDES
    # selecting residues keeps the pairs whose cysteines stay, under their new indices
    kept = s.select_residues(s.residue_numbers > 6)
    assert _numbered(kept, kept.disulfides) == LYSOZYME_DISULFIDES[1:]
    assert read_structure(pdb_files / "1MOL.bcif.gz").disulfides.shape == (0, 2)  # no records: none


def test_force_field_names_are_kept_as_file_residue_names(pdb_files):
    s = read_structure(pdb_files / "1AKI.cif.gz")
    text = "\n".join(line[:17] + "CYX" + line[20:] if line[17:20] == "CYS" else line for line in _pdb_lines(s))
    back = parse_structure(text + "\n", "pdb", residue_aliases=MD_RESIDUE_ALIASES)
    assert list(back.residue_names) == list(s.residue_names)
    cys = s.residue_names == "CYS"
    assert set(back.file_residue_names[cys]) == {"CYX"}
    assert list(back.file_residue_names[~cys]) == list(s.residue_names[~cys])
    assert list(s.file_residue_names) == list(s.residue_names)


def test_recorded_chain_breaks_are_ter_records(tmp_path, pdb_files):
    """PDB output ends each chain part before a recorded break with TER (viewers draw no bond across it); the
    file reads back as the same one chain. mmCIF has no TER records."""
    import dataclasses

    s = dataclasses.replace(read_structure(pdb_files / "1CKB.pdb.gz"), breaks=[(19, 20)])
    lines = structure_text(s, "pdb").splitlines()
    ters = [k for k, line in enumerate(lines) if line.startswith("TER")]
    assert len(ters) == 3  # the break, and the ends of chains A and B
    before, after = lines[ters[0] - 1], lines[ters[0] + 1]
    assert (before[21], int(before[22:26]), after[21], int(after[22:26])) == \
        ("A", int(s.residue_numbers[19]), "A", int(s.residue_numbers[20]))
    path = tmp_path / "broken.pdb"
    write_structure(s, path)
    back = read_structure(path)
    assert list(back.chain_ids) == list(s.chain_ids) and list(back.atom_names) == list(s.atom_names)
    assert back.breaks is None and not back.skipped
    assert "TER" not in structure_text(s, "cif")
    # selected residues keep the recorded breaks and break where residues were left out
    kept = s.select_residues(~np.isin(np.arange(s.n_residues), [5, 6]))
    assert kept.breaks.tolist() == [[4, 5], [17, 18]]
    assert s.select_residues(np.ones(s.n_residues, bool)).breaks.tolist() == [[19, 20]]
    with pytest.raises(ValueError, match="consecutive"):
        dataclasses.replace(s, breaks=[(3, 5)])


def test_damaged_deflate_data_is_a_one_line_error(tmp_path, pdb_files):
    """A flipped byte inside the deflate stream raised zlib.error, which is no OSError: 'this is a bug'."""
    data = bytearray((pdb_files / "1AKI.cif.gz").read_bytes())
    data[20] ^= 0xFF
    damaged = tmp_path / "1AKI.cif.gz"
    damaged.write_bytes(bytes(data))
    with pytest.raises(InputFileError, match="damaged or truncated gzip data"):
        read_structure(damaged)
