"""Serialise one landing file: JSON Lines (optionally gzip), CSV or Parquet, byte-for-byte deterministic.

Typed rows are encoded in bulk by polars (JSON objects, CSV cells, Arrow columns); the few `Raw`
records are encoded one by one and damaged as their defect says (invalid UTF-8 bytes, a truncated
line, a bare NaN, an array instead of an object, a CSV row with one cell too many or too few). Rows
and raw records are merged by their sort keys. gzip output has no timestamp or file name, so two
runs give identical bytes.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from flywheel.contracts import CONTRACTS
from flywheel.generate.columns import CELL_COLUMNS, JSON_TEXT_COLUMNS, SCHEMAS
from flywheel.generate.malformed import NAN_MARK, NOT_UTF8_BYTES, NOT_UTF8_MARK, FileContent, Raw

GZIP_LEVEL = 3
_FIELDS = {family: [f.name for f in fields] for family, fields in CONTRACTS.items()}
_TOOL_CALL = pa.struct([("name", pa.string()), ("status", pa.string()), ("arguments", pa.string())])


def write_file(path: Path, fmt: str, family: str, content: FileContent) -> int:
    """Write `content` to `path` in format `fmt` (jsonl, jsonl.gz, csv, parquet); returns records written."""
    keys = np.concatenate([content.keys, content.raw_keys])
    order = np.argsort(keys, kind="stable")
    if fmt == "parquet":
        if content.raws:
            raise ValueError("a Parquet file cannot carry raw (untyped) records")
        _write_parquet(path, family, content.rows[order])
        return content.rows.height
    if fmt in ("jsonl", "jsonl.gz"):
        lines = jsonl_lines(family, content.rows)
        raws = [raw_jsonl_line(family, r) for r in content.raws]
        header = ""
    elif fmt == "csv":
        lines = csv_lines(family, content.rows)
        raws = [raw_csv_line(family, r) for r in content.raws]
        header = ",".join(_FIELDS[family]) + "\n"
    else:
        raise ValueError(f"unknown format {fmt!r}")
    merged = pl.concat([lines, pl.Series(raws, dtype=pl.String)]).gather(order)
    buf = io.BytesIO()
    buf.write(header.encode())
    pl.DataFrame({"line": merged}).write_csv(buf, include_header=False, quote_style="never")  # raw lines + "\n"
    data = buf.getvalue()
    if content.raws:
        data = data.replace(NOT_UTF8_MARK.encode(), NOT_UTF8_BYTES)
    path.write_bytes(gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0) if fmt.endswith(".gz") else data)
    return len(order)


# ----------------------------------------------------------------------------- JSON Lines

def jsonl_lines(family: str, rows: pl.DataFrame) -> pl.Series:
    """One JSON object text per typed row; nested fields are spliced in as JSON."""
    nested = JSON_TEXT_COLUMNS[family]
    scalar = [f for f in _FIELDS[family] if f not in nested]
    parts: list[pl.Expr] = [pl.struct(scalar).struct.json_encode().str.strip_suffix("}")]
    for name, col in nested.items():
        parts += [pl.lit(f',"{name}":'), pl.col(col).fill_null("null")]
    parts.append(pl.lit("}"))
    return rows.select(pl.concat_str(parts).alias("line")).to_series()


def _raw_json_object(family: str, record: dict[str, Any], skip: str | None) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    nested = JSON_TEXT_COLUMNS[family]
    for name in _FIELDS[family]:
        if name == skip:
            continue
        if name in nested:
            text = record[nested[name]]
            obj[name] = orjson.Fragment(text) if text is not None else None
        else:
            obj[name] = record[name]
    return obj


def raw_jsonl_line(family: str, raw: Raw) -> str:
    """One damaged JSON line (a not_utf8 line still holds NOT_UTF8_MARK, replaced once encoded)."""
    if raw.defect == "array":
        obj = _raw_json_object(family, raw.record, None)
        return orjson.dumps(list(obj.values())).decode()
    line = orjson.dumps(_raw_json_object(family, raw.record, raw.field if raw.defect == "missing_key" else None))
    if raw.defect == "nan":
        line = line.replace(f'"{NAN_MARK}"'.encode(), b"NaN")
    elif raw.defect == "truncate":
        cut = max(2, int(len(line) * raw.cut))
        while cut > 1 and line[cut] >= 0x80:  # cut before an ASCII byte: the prefix stays valid UTF-8
            cut -= 1
        line = line[:cut]
    return line.decode()


# ----------------------------------------------------------------------------- CSV

def _csv_cell(name: str) -> pl.Expr:
    """A String column as a CSV cell: quoted (quotes doubled) when it holds a comma, quote or line break."""
    col = pl.col(name)
    quoted = pl.lit('"') + col.str.replace_all('"', '""', literal=True) + pl.lit('"')
    return pl.when(col.str.contains(r'[",\r\n]')).then(quoted).otherwise(col).fill_null("")


def csv_lines(family: str, rows: pl.DataFrame) -> pl.Series:
    """One CSV record (without line terminator) per typed row, columns in contract order."""
    cells = CELL_COLUMNS[family]
    frame = rows.select([pl.col(cells.get(name, name)).cast(pl.String).alias(name) for name in _FIELDS[family]])
    return frame.select(pl.concat_str([_csv_cell(n) for n in _FIELDS[family]], separator=",").alias("line")).to_series()


def raw_csv_line(family: str, raw: Raw) -> str:
    """One damaged CSV record (wrong-typed cell, NOT_UTF8_MARK, or a cell too many or too few)."""
    cells = CELL_COLUMNS[family]
    out = []
    for name in _FIELDS[family]:
        value = raw.record[cells.get(name, name)]
        if value is None:
            out.append("")
        elif isinstance(value, bool):
            out.append("true" if value else "false")
        else:
            out.append(str(value))
    if raw.defect == "extra_cell":
        out.append("unexpected")
    elif raw.defect == "missing_cell":
        out.pop()
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(out)  # \r and \n in a cell then force quoting
    return buf.getvalue()[:-2]


# ----------------------------------------------------------------------------- Parquet

def parquet_schema(family: str) -> pa.Schema:
    """The Arrow schema of a landing Parquet file of `family`."""
    out = []
    for name in _FIELDS[family]:
        dtype = SCHEMAS[family][name]
        if name == "tool_calls":
            out.append(pa.field(name, pa.list_(_TOOL_CALL)))
        elif dtype == pl.Float64:
            out.append(pa.field(name, pa.float64()))
        elif dtype == pl.Int64:
            out.append(pa.field(name, pa.int64()))
        else:
            out.append(pa.field(name, pa.string()))
    return pa.schema(out)


def _write_parquet(path: Path, family: str, rows: pl.DataFrame) -> None:
    cells = CELL_COLUMNS[family]
    frame = rows.select([pl.col(name if name == "tool_calls" else cells.get(name, name)).alias(name)
                         for name in _FIELDS[family]])
    table = frame.to_arrow().cast(parquet_schema(family))
    pq.write_table(table, path, compression="zstd")
