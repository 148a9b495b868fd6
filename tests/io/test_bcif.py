"""BinaryCIF: real files decode to what the text mmCIF gives; every encoding; damaged files give one line."""
import dataclasses
import gzip
import io

import msgpack
import numpy as np
import pytest

from gaatool.errors import InputFileError
from gaatool.io.bcif import bcif_to_cif_text, decode_column, looks_like_bcif
from gaatool.io.structure import read_structure


def _same_structure(a, b):
    for field in dataclasses.fields(a):
        if field.name == "source":
            continue
        x, y = getattr(a, field.name), getattr(b, field.name)
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y, err_msg=field.name)
        else:
            assert x == y, field.name


def test_bcif_reads_exactly_like_the_mmcif_of_the_entry(pdb_files, tmp_path):
    from_cif = read_structure(pdb_files / "1AKI.cif.gz")
    from_bcif = read_structure(pdb_files / "1AKI.bcif.gz")
    _same_structure(from_bcif, from_cif)
    assert from_bcif.entry_id == "1AKI" and from_bcif.n_residues == 129
    plain = tmp_path / "1AKI.bcif"
    plain.write_bytes(gzip.decompress((pdb_files / "1AKI.bcif.gz").read_bytes()))
    _same_structure(read_structure(plain), from_cif)
    # from stdin, recognised by its content
    _same_structure(read_structure("-", stdin=io.BytesIO(plain.read_bytes())), from_cif)


def test_rcsb_bcif_with_fixed_point_coordinates(pdb_files):
    structure = read_structure(pdb_files / "1MOL.bcif.gz")
    assert structure.entry_id == "1MOL" and structure.n_residues == 188
    assert sorted(set(structure.chain_ids.tolist())) == ["A", "B"]
    # decoded coordinates are real geometry: N-CA bonds of 1.46 Å
    names, residues, positions = structure.atom_names, structure.atom_residues, structure.positions[0]
    n = {r: i for i, (a, r) in enumerate(zip(names, residues)) if a == "N"}
    ca = {r: i for i, (a, r) in enumerate(zip(names, residues)) if a == "CA"}
    bonds = np.array([np.linalg.norm(positions[n[r]] - positions[ca[r]]) for r in n if r in ca])
    assert len(bonds) == 188 and abs(np.median(bonds) - 1.46) < 0.02 and bonds.max() < 1.6


def _column(name, data, encoding, mask=None):
    return {"name": name, "data": {"data": data, "encoding": encoding}, "mask": mask}


def test_every_encoding_decodes():
    int32 = {"kind": "ByteArray", "type": 3}
    # FixedPoint over ByteArray
    col = _column("x", np.array([1234, -5], "<i4").tobytes(), [{"kind": "FixedPoint", "factor": 100, "srcType": 33}, int32])
    assert decode_column(col) == ["12.34", "-0.05"]
    # IntervalQuantization: 3 steps between 0 and 1
    col = _column("q", np.array([0, 1, 2], "<i4").tobytes(),
                  [{"kind": "IntervalQuantization", "min": 0.0, "max": 1.0, "numSteps": 3, "srcType": 33}, int32])
    assert decode_column(col) == ["0.0", "0.5", "1.0"]
    # Delta over RunLength: run-length pairs (0 x2, 1 x1, 0 x1) are the deltas 0, 0, 1, 0 from origin 5
    col = _column("d", np.array([0, 2, 1, 1, 0, 1], "<i4").tobytes(),
                  [{"kind": "Delta", "origin": 5, "srcType": 3}, {"kind": "RunLength", "srcType": 3, "srcSize": 4}, int32])
    assert decode_column(col) == ["5", "5", "6", "6"]
    # IntegerPacking: int8 values at the limits continue into the next byte
    packed = np.array([127, 3, -128, -2, 7], "<i1").tobytes()
    col = _column("p", packed, [{"kind": "IntegerPacking", "byteCount": 1, "isUnsigned": False, "srcSize": 3},
                                {"kind": "ByteArray", "type": 1}])
    assert decode_column(col) == ["130", "-130", "7"]
    packed = np.array([255, 255, 1, 4], "<u1").tobytes()
    col = _column("u", packed, [{"kind": "IntegerPacking", "byteCount": 1, "isUnsigned": True, "srcSize": 2},
                                {"kind": "ByteArray", "type": 4}])
    assert decode_column(col) == ["511", "4"]
    # StringArray with a mask: '.' and '?'
    strings = {"kind": "StringArray", "dataEncoding": [int32], "stringData": "ALAmy text",
               "offsetEncoding": [int32], "offsets": np.array([0, 3, 10], "<i4").tobytes()}
    mask = {"data": np.array([0, 0, 1, 2], "<u1").tobytes(), "encoding": [{"kind": "ByteArray", "type": 4}]}
    col = _column("s", np.array([0, 1, 0, 0], "<i4").tobytes(), [strings], mask)
    assert decode_column(col) == ["ALA", "'my text'", ".", "?"]


def _document(columns, rows):
    return msgpack.packb({"version": "0.3.0", "encoder": "test", "dataBlocks": [
        {"header": "TEST", "categories": [{"name": "_cat", "rowCount": rows, "columns": columns}]}]})


def test_damaged_or_foreign_files_give_one_line(tmp_path):
    int32 = {"kind": "ByteArray", "type": 3}
    good = _document([_column("v", np.array([1, 2], "<i4").tobytes(), [int32])], 2)
    assert looks_like_bcif(good) and "_cat.v" in bcif_to_cif_text(good)
    cases = {
        "truncated.bcif": good[:-5],
        "text.bcif": b"data_1ABC\n_entry.id 1ABC\n",
        "encoding.bcif": _document([_column("v", b"\0\0\0\0", [{"kind": "Zstd"}])], 1),
        "lengths.bcif": _document([_column("v", np.array([1, 2], "<i4").tobytes(), [int32])], 3),
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(InputFileError) as err:
            read_structure(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value), name
    broken_gzip = tmp_path / "x.bcif.gz"
    broken_gzip.write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(InputFileError, match="cannot read"):
        read_structure(broken_gzip)
