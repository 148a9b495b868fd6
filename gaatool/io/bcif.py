"""BinaryCIF (``.bcif``): decode to mmCIF text that gemmi reads.

BinaryCIF is mmCIF stored column by column in MessagePack, each column
compressed by a chain of encodings (ByteArray, FixedPoint,
IntervalQuantization, RunLength, Delta, IntegerPacking, StringArray;
specification: https://github.com/molstar/BinaryCIF). gemmi reads text
mmCIF only, so the columns are decoded with numpy and written back as
mmCIF loops; everything downstream (residues, alt-locs, models) is then the
same code as for ``.cif`` files. MessagePack data cannot execute code.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputFileError

__all__ = ["bcif_to_cif_text", "decode_column", "looks_like_bcif"]

# ByteArray type codes -> little-endian numpy dtypes
_BYTE_TYPES = {1: "<i1", 2: "<i2", 3: "<i4", 4: "<u1", 5: "<u2", 6: "<u4", 32: "<f4", 33: "<f8"}
_FLOAT_TYPES = {32: np.float32, 33: np.float64}


def looks_like_bcif(head: bytes) -> bool:
    """Whether ``head`` (the first bytes of a file) starts a BinaryCIF MessagePack map."""
    return bool(head) and (0x80 <= head[0] <= 0x8F or head[0] in (0xDE, 0xDF)) and b"dataBlocks" in head[:256]


def _integer_unpack(values: np.ndarray, byte_count: int, unsigned: bool, size: int) -> np.ndarray:
    """IntegerPacking: a value at the type's limit continues into the next one (they add up)."""
    values = values.astype(np.int64)
    if unsigned:
        upper, lower = (1 << (8 * byte_count)) - 1, None
    else:
        upper, lower = (1 << (8 * byte_count - 1)) - 1, -(1 << (8 * byte_count - 1))
    at_limit = values == upper if lower is None else (values == upper) | (values == lower)
    if not at_limit.any():
        return values
    # each output value ends at the first element that is not at a limit
    ends = np.flatnonzero(~at_limit)
    sums = np.cumsum(values)
    result = np.diff(np.concatenate([[0], sums[ends]]))
    if len(result) != size:
        raise ValueError(f"IntegerPacking decoded {len(result)} values, expected {size}")
    return result


def _decode(data: Any, encodings: list[dict]) -> Any:
    for encoding in reversed(encodings):
        kind = encoding["kind"]
        if kind == "ByteArray":
            data = np.frombuffer(data, dtype=_BYTE_TYPES[encoding["type"]])
        elif kind == "FixedPoint":
            data = (np.asarray(data, dtype=np.float64) / encoding["factor"]).astype(_FLOAT_TYPES[encoding["srcType"]])
        elif kind == "IntervalQuantization":
            step = (encoding["max"] - encoding["min"]) / max(encoding["numSteps"] - 1, 1)
            data = (encoding["min"] + step * np.asarray(data, dtype=np.float64)).astype(_FLOAT_TYPES[encoding["srcType"]])
        elif kind == "RunLength":
            pairs = np.asarray(data, dtype=np.int64).reshape(-1, 2)
            data = np.repeat(pairs[:, 0], pairs[:, 1])
            if len(data) != encoding["srcSize"]:
                raise ValueError(f"RunLength decoded {len(data)} values, expected {encoding['srcSize']}")
        elif kind == "Delta":
            data = np.cumsum(np.asarray(data, dtype=np.int64)) + encoding["origin"]
        elif kind == "IntegerPacking":
            data = _integer_unpack(np.asarray(data), encoding["byteCount"], encoding["isUnsigned"],
                                   encoding["srcSize"])
        elif kind == "StringArray":
            offsets = np.asarray(_decode(encoding["offsets"], encoding["offsetEncoding"]), dtype=np.int64)
            indices = np.asarray(_decode(data, encoding["dataEncoding"]), dtype=np.int64)
            text = encoding["stringData"]
            strings = [text[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]
            data = [strings[i] if i >= 0 else None for i in indices.tolist()]
        else:
            raise ValueError(f"unknown BinaryCIF encoding {kind!r}")
    return data


def decode_column(column: dict) -> list[str]:
    """One BinaryCIF column as mmCIF tokens ('.' and '?' where its mask says so)."""
    import gemmi

    values = _decode(column["data"]["data"], column["data"]["encoding"])
    if isinstance(values, np.ndarray):
        if values.dtype.kind == "f":
            tokens = [repr(float(v)) if np.isfinite(v) else "?" for v in values.tolist()]
        else:
            tokens = [str(v) for v in values.tolist()]
    else:
        tokens = ["?" if v is None else gemmi.cif.quote(v) for v in values]
    mask = column.get("mask")
    if mask is not None:
        flags = np.asarray(_decode(mask["data"], mask["encoding"]))
        tokens = [token if flag == 0 else ("." if flag == 1 else "?") for token, flag in zip(tokens, flags.tolist())]
    return tokens


def _separated(token: str) -> str:
    # a multi-line text field (;...;) must start and end on lines of its own
    return f"\n{token}\n" if token.startswith(";") else f" {token}"


def bcif_to_cif_text(data: bytes, source: str = "<bcif>") -> str:
    """mmCIF text of BinaryCIF ``data``; :class:`InputFileError` naming ``source`` if it cannot be decoded."""
    import msgpack

    try:
        document = msgpack.unpackb(data, raw=False, strict_map_key=False)
        lines: list[str] = []
        for block in document["dataBlocks"]:
            lines.append(f"data_{block['header']}")
            for category in block["categories"]:
                name = category["name"]
                columns = [(column["name"], decode_column(column)) for column in category["columns"]]
                rows = int(category["rowCount"])
                if any(len(tokens) != rows for _, tokens in columns):
                    raise ValueError(f"{name}: columns of unequal length")
                if rows == 1:
                    lines += [f"{name}.{tag}{_separated(tokens[0])}" for tag, tokens in columns]
                else:
                    lines.append("loop_")
                    lines += [f"{name}.{tag}" for tag, _ in columns]
                    lines += ["".join(map(_separated, row)).lstrip(" ")
                              for row in zip(*(tokens for _, tokens in columns))]
                lines.append("#")
    except (ValueError, KeyError, TypeError, IndexError, msgpack.exceptions.ExtraData,
            msgpack.exceptions.FormatError, msgpack.exceptions.StackError) as err:
        raise InputFileError(f"{source}: not a readable BinaryCIF file ({str(err).splitlines()[0][:200]})") from err
    if not lines:
        raise InputFileError(f"{source}: BinaryCIF file holds no data blocks")
    return "\n".join(lines) + "\n"
