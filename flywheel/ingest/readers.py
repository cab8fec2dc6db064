"""Read one landing file into raw records, whatever its format, without losing any.

Formats: JSON Lines (`.jsonl`, `.ndjson`, `.json` in events/ or interventions/, optionally
`.gz`), CSV (`.csv`, optionally `.gz`), Parquet (`.parquet`) and OTLP JSON (`.json` /
`.json.gz` in otlp/). Each record comes out as a `RawRecord`: its position in the file, its raw
text (for the quarantine) and the decoded object, or the reason it could not be decoded. A file
that cannot be read at all raises `BadFile`.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from flywheel.contracts import MAX_RECORD_BYTES
from flywheel.ingest.validate import Problem

KINDS = ("events", "interventions", "otlp")


class BadFile(Exception):
    """The whole file is unreadable; the message says why."""


@dataclass(frozen=True)
class RawRecord:
    """One record as it came in.

    `kind` is 'events' or 'interventions'; `line` its 1-based line (JSONL, CSV: the row's last
    line; Parquet: row number; OTLP: span or span-event ordinal); `record` the decoded object, or
    None with `problem` set; `loose` whether cells may be text standing for numbers or JSON.
    """

    kind: str
    line: int
    raw: str | None
    record: Any
    problem: Problem | None
    loose: bool


def file_format(folder_kind: str, name: str) -> str | None:
    """The format of a landing file from its folder and name, or None if unsupported."""
    lower = name.lower()
    base = lower[:-3] if lower.endswith(".gz") else lower
    if folder_kind == "otlp":
        return "otlp" if base.endswith(".json") else None
    if base.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if base.endswith(".csv"):
        return "csv"
    if lower.endswith(".parquet"):
        return "parquet"
    return None


def read_file(path: Path, folder_kind: str) -> Iterator[RawRecord]:
    """Every record of the landing file at `path`, found in folder `folder_kind`."""
    fmt = file_format(folder_kind, path.name)
    if fmt is None:
        raise BadFile(f"unsupported file type {path.name!r}: expected .jsonl, .jsonl.gz, .csv, .parquet (or .json in otlp/)")
    if fmt == "parquet":
        yield from _read_parquet(path, folder_kind)
        return
    data = _read_bytes(path)
    if fmt == "jsonl":
        yield from _read_jsonl(data, folder_kind)
    elif fmt == "csv":
        yield from _read_csv(data, folder_kind)
    else:
        yield from _read_otlp(data)


def _read_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.lower().endswith(".gz"):
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise BadFile(f"{path.name} is named .gz but is not valid gzip: {exc}") from None
    return data


def _raw_text(line: bytes, limit: int = MAX_RECORD_BYTES) -> str:
    return line[:limit].decode("utf-8", errors="replace")


def _read_jsonl(data: bytes, kind: str) -> Iterator[RawRecord]:
    for number, line in enumerate(data.split(b"\n"), start=1):
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line.strip():
            continue
        if len(line) > MAX_RECORD_BYTES:
            yield RawRecord(kind, number, _raw_text(line, 4096), None,
                            Problem("record_too_large", f"record of {len(line)} bytes exceeds {MAX_RECORD_BYTES}"), False)
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield RawRecord(kind, number, _raw_text(line), None,
                            Problem("not_utf8", f"bytes are not UTF-8 at offset {exc.start}"), False)
            continue
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            yield RawRecord(kind, number, text, None, Problem("invalid_json", f"not valid JSON: {exc}"), False)
            continue
        if not isinstance(obj, dict):
            yield RawRecord(kind, number, text, None,
                            Problem("invalid_json", f"a record must be a JSON object, got {type(obj).__name__}"), False)
            continue
        yield RawRecord(kind, number, text, obj, None, False)


def _has_surrogates(cells: list[str]) -> bool:
    return any(any("\udc80" <= ch <= "\udcff" for ch in cell) for cell in cells if not cell.isascii())


def csv_header(reader) -> list[str] | None:
    """The stripped column names of a CSV `reader`'s first row (None for an empty file); a header
    that cannot be read, is not UTF-8, or has empty or repeated names makes the file a BadFile."""
    try:
        header = next(reader)
    except StopIteration:
        return None
    except csv.Error as exc:
        raise BadFile(f"unreadable CSV header: {exc}") from None
    if _has_surrogates(header):
        raise BadFile("the CSV header is not UTF-8")
    header = [h.strip() for h in header]
    if len(set(header)) != len(header) or not all(header):
        raise BadFile(f"the CSV header has empty or repeated column names: {header[:30]}")
    return header


def _read_csv(data: bytes, kind: str) -> Iterator[RawRecord]:
    text = data.decode("utf-8", errors="surrogateescape")
    if text.startswith("\ufeff"):
        text = text[1:]
    reader = csv.reader(io.StringIO(text, newline=""))
    header = csv_header(reader)
    if header is None:
        return
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise BadFile(f"CSV syntax error near line {reader.line_num}: {exc}") from None
        number = reader.line_num
        if not row or row == [""]:
            continue
        raw = _csv_line(row)
        if len(raw.encode("utf-8", errors="surrogateescape")) > MAX_RECORD_BYTES:
            yield RawRecord(kind, number, raw[:4096], None, Problem("record_too_large", "record exceeds the size limit"), True)
        elif _has_surrogates(row):
            clean = raw.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")
            yield RawRecord(kind, number, clean, None, Problem("not_utf8", "the row's bytes are not UTF-8"), True)
        elif len(row) != len(header):
            yield RawRecord(kind, number, raw, None,
                            Problem("bad_row", f"row has {len(row)} columns, the header has {len(header)}"), True)
        else:
            yield RawRecord(kind, number, raw, dict(zip(header, row)), None, True)


def _csv_line(row: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(row)
    return out.getvalue()


def _read_parquet(path: Path, kind: str) -> Iterator[RawRecord]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise BadFile(f"not a readable Parquet file: {exc}") from None
    number = 0
    for batch in table.to_batches(max_chunksize=65536):
        for row in batch.to_pylist():
            number += 1
            yield RawRecord(kind, number, _json_raw(row), row, None, True)


def _json_raw(row: dict[str, Any]) -> str:
    return orjson.dumps(row, default=_to_text, option=orjson.OPT_NON_STR_KEYS).decode()


def _to_text(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _read_otlp(data: bytes) -> Iterator[RawRecord]:
    from flywheel.otlp import parse_otlp

    try:
        events, interventions = parse_otlp(data)
    except ValueError as exc:
        raise BadFile(f"not OTLP JSON: {exc}") from None
    for kind, records in (("events", events), ("interventions", interventions)):
        for rec in records:
            problem = Problem("invalid_json", rec.error) if rec.error else None
            yield RawRecord(kind, rec.ordinal, rec.raw, rec.record, problem, False)
