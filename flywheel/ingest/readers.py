"""Read one landing file into raw records, whatever its format, without losing any.

Formats: JSON Lines (`.jsonl`, `.ndjson`, `.json` in events/ or interventions/, optionally
`.gz`), CSV (`.csv`, optionally `.gz`), Parquet (`.parquet`) and OTLP JSON (`.json` /
`.json.gz` in otlp/). Each record comes out as a `RawRecord`: its position in the file, its raw
text (for the quarantine) and the decoded object, or the reason it could not be decoded. A file
that cannot be read at all raises `BadFile`.

Memory is bounded whatever the file holds: a compressed file is decompressed as a stream and
refused (`BadFile`) once it has expanded beyond `Limits.max_decompressed_bytes`, or beyond
`Limits.max_compression_ratio` times the compressed bytes read (checked from `RATIO_CHECK_BYTES`
of output on, so small files of repeated text pass): a gzip bomb is refused after ~64 MiB. A CSV
line longer than the record limit makes the file bad (Python's csv module cannot skip a record);
JSON Lines records over the limit are quarantined by the streaming reader (`batches.line_blocks`)
after reading at most the limit. An OTLP file is parsed whole, so it may expand to at most
`MAX_DOCUMENT_BYTES`. Anything that is not a regular file (a named pipe, a device) is refused
without blocking on it. A landing area on an object store (`FLYWHEEL_LANDING=s3://...`) is read
through its filesystem (s3fs); every object is a regular file there, so that guard is local only.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import stat
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from isal import igzip, isal_zlib

from flywheel.contracts import MAX_RECORD_BYTES
from flywheel.ingest.validate import Problem
from flywheel.objectstore import is_remote

KINDS = ("events", "interventions", "otlp")
READ_BYTES = 16 * 1024 * 1024
RATIO_CHECK_BYTES = 64 * 1024 * 1024
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024  # parsed whole: a 61 MiB OTLP file peaked at +408 MiB
RAW_KEEP = 4096  # characters of an oversized record kept as its raw text


class BadFile(Exception):
    """The whole file is unreadable; the message says why."""


@dataclass(frozen=True)
class Limits:
    """How far a compressed landing file may expand (settings FLYWHEEL_MAX_DECOMPRESSED_BYTES and
    FLYWHEEL_MAX_COMPRESSION_RATIO, see flywheel/config.py)."""

    max_decompressed_bytes: int = 16 * 1024**3
    max_compression_ratio: float = 100.0

    @classmethod
    def of(cls, settings: Any) -> "Limits":
        """The limits of a `config.Settings`."""
        return cls(settings.max_decompressed_bytes, settings.max_compression_ratio)


class _Counting:
    """A binary file that counts the bytes read from it (the compressed bytes a decoder consumed)."""

    def __init__(self, fh: Any):
        self.fh, self.count = fh, 0

    def read(self, size: int = -1) -> bytes:
        data = self.fh.read(size)
        self.count += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        n = self.fh.readinto(buffer)
        self.count += n or 0
        return n


def open_regular(path: Path) -> Any:
    """`path` opened for binary reading, or BadFile if it is not a regular file. Opened without
    blocking, so a named pipe with no writer is refused instead of waiting for one forever.
    An object (a remote path) is opened through its filesystem."""
    if is_remote(path):
        return path.open("rb")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise BadFile(f"{path.name} is not a regular file (a named pipe, socket or device); refused")
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def decompressed_blocks(path: Path, limits: Limits | None = None, size: int = READ_BYTES) -> Iterator[bytes]:
    """The file's bytes in blocks of at most `size`, decompressed as they stream if its name ends
    in .gz; `BadFile` once the output passes `limits` (see the module docstring). gzip errors are
    raised as the gzip module raises them (OSError, EOFError, zlib.error).

    Decompressed by ISA-L (python-isal's `igzip`, the gzip module's interface): 0.9-1.3 s of CPU for a
    1M-event day's 1 GB where the gzip module takes 2.6-3.5 s (`bench/gzip_speed.py`, BENCHMARKS.md). It accepts and refuses the same streams (a
    truncated one, a bad CRC or length, a corrupt deflate block, several members, zero padding, trailing
    garbage: tests/test_reliability_readers.py); callers word a refusal with the gzip module
    (`read_whole_file`), so messages do not change."""
    limits = limits or Limits()
    with open_regular(path) as raw:
        if not path.name.lower().endswith(".gz"):
            while block := raw.read(size):
                yield block
            return
        counted = _Counting(raw)
        out = 0
        try:
            with igzip.GzipFile(fileobj=counted, mode="rb") as fh:  # type: ignore[arg-type]
                while block := fh.read(size):
                    out += len(block)
                    if out > limits.max_decompressed_bytes:
                        raise BadFile(f"{path.name} decompresses to more than {limits.max_decompressed_bytes} bytes "
                                      "(FLYWHEEL_MAX_DECOMPRESSED_BYTES); refused")
                    if out >= RATIO_CHECK_BYTES and out > limits.max_compression_ratio * max(counted.count, 1):
                        raise BadFile(f"{path.name} expands more than {limits.max_compression_ratio:g} times its "
                                      "compressed size (FLYWHEEL_MAX_COMPRESSION_RATIO); refused as a likely "
                                      "compression bomb")
                    yield block
        except isal_zlib.error as exc:  # type: ignore[misc]  # (its stub types it as an instance) a bad deflate stream, raised as the gzip module raises it
            raise zlib.error(str(exc)) from None


class BlockStream(io.RawIOBase):
    """A readable binary stream over byte blocks (`decompressed_blocks`), so CSV is decoded and parsed as it streams."""

    def __init__(self, blocks: Iterator[bytes]):
        self._blocks, self._buf = blocks, memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, out: Any) -> int:
        # A view, not a slice of the bytes: slicing copied the rest of a 16 MB block on every 1 MB read.
        while not self._buf:
            block = next(self._blocks, None)
            if block is None:
                return 0
            self._buf = memoryview(block)
        n = min(len(out), len(self._buf))
        out[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def _expanded_size(path: Path, limits: Limits | None) -> int | None:
    """The decompressed size of a .gz file, checked against `limits` (BadFile beyond them); None
    if the gzip stream is broken (the caller's own decoder then words the error)."""
    total = 0
    try:
        for block in decompressed_blocks(path, limits):
            total += len(block)
    except (OSError, EOFError, zlib.error):
        return None
    return total


class BoundedLines:
    """The lines of a text stream (newline="" semantics: a line ends at \n, \r\n or \r, kept), as
    csv.reader reads them, each read with a bound: a line longer than `limit` characters raises
    BadFile, after at most `limit` + `size` characters of it are read.

    The stream is read `size` characters at a time and cut into lines by one regular expression,
    so csv.reader pulls its lines from a generator instead of calling readline once a line."""

    def __init__(self, stream: Any, limit: int, size: int = 1 << 20):
        self.stream, self.limit, self.size, self.number = stream, limit, size, 0

    def __iter__(self) -> Iterator[str]:
        limit, read, size = self.limit, self.stream.read, self.size
        carry = ""
        while True:
            chunk = read(size)
            if not chunk:
                if carry:
                    self.number += 1
                    yield carry
                return
            buf = carry + chunk if carry else chunk
            # Whole lines only: up to the last \n, or the last \r unless it ends the chunk (its \n
            # may begin the next one). The pattern then never fails a match, so never rescans.
            end = max(buf.rfind("\n"), buf.rfind("\r", 0, len(buf) - 1)) + 1
            lines = _LINE.findall(buf, 0, end) if end else []
            carry = buf[end:]
            if lines and max(map(len, lines)) > limit:
                for line in lines:
                    self._check(line)  # raises at the long line, after the lines before it
                    yield line
            else:
                self.number += len(lines)
                yield from lines
            if len(carry) > limit:
                self._check(carry)

    def _check(self, line: str) -> None:
        self.number += 1
        if len(line) > self.limit:
            raise BadFile(f"CSV line {self.number} is longer than the record limit of {self.limit} bytes; "
                          "a CSV record cannot be skipped, so the file is refused")


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)")


@dataclass(frozen=True)
class RawRecord:
    """One record as it came in.

    `kind` is 'events' or 'interventions'; `line` its 1-based line (JSONL, CSV: the row's last
    line; Parquet: row number; OTLP: span or span-event ordinal); `record` the decoded object, or
    None with `problem` set; `loose` whether cells may be text standing for numbers or JSON.
    `reviewer_col` is the index of the reviewer_id column of a CSV row (the quarantine hashes it).
    """

    kind: str
    line: int
    raw: str | None
    record: Any
    problem: Problem | None
    loose: bool
    reviewer_col: int | None = None


def file_format(folder_kind: str, name: str) -> str | None:
    """The format of a landing file from its folder and name, or None if unsupported."""
    lower = name.lower()
    base = lower[:-3] if lower.endswith(".gz") else lower
    if folder_kind == "otlp":
        return "otlp" if base.endswith((".json", ".pb", ".binpb")) else None  # protobuf: flywheel.otlp tells by the bytes
    if base.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if base.endswith(".csv"):
        return "csv"
    if lower.endswith(".parquet"):
        return "parquet"
    return None


def read_file(path: Path, folder_kind: str, limits: Limits | None = None) -> Iterator[RawRecord]:
    """Every record of the landing file at `path`, found in folder `folder_kind`; a compressed
    file may expand only within `limits`."""
    fmt = file_format(folder_kind, path.name)
    if fmt is None:
        raise BadFile(f"unsupported file type {path.name!r}: expected .jsonl, .jsonl.gz, .csv, .parquet (or .json, .pb, .binpb in otlp/, optionally .gz)")
    if fmt == "parquet":
        yield from _read_parquet(path, folder_kind)
        return
    data = read_whole_file(path, limits, MAX_DOCUMENT_BYTES if fmt == "otlp" else None)
    if fmt == "jsonl":
        yield from read_jsonl(data, folder_kind)
    elif fmt == "csv":
        yield from _read_csv(data, folder_kind)
    else:
        yield from _read_otlp(data)


def read_whole_file(path: Path, limits: Limits | None = None, whole: int | None = None) -> bytes:
    """The whole file, decompressed if .gz (within `limits`, and within `whole` bytes if given)."""
    gz = path.name.lower().endswith(".gz")
    with open_regular(path) as fh:
        size = path.stat().st_size if is_remote(path) else os.fstat(fh.fileno()).st_size
        expanded = _expanded_size(path, limits) if gz else size
        if whole is not None and expanded is not None and expanded > whole:
            raise BadFile(f"{path.name} is parsed whole and may hold at most {whole} bytes; refused")
        data = fh.read()
    if gz:
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise BadFile(f"{path.name} is named .gz but is not valid gzip: {exc}") from None
    return data


def too_large() -> Problem:
    """The problem of a record over the size limit."""
    return Problem("record_too_large", f"record of more than {MAX_RECORD_BYTES} bytes")


def raw_text(line: bytes, limit: int = MAX_RECORD_BYTES) -> str:
    """A line's raw text as quarantined: its first `limit` bytes, undecodable bytes replaced."""
    return line[:limit].decode("utf-8", errors="replace")


def read_jsonl(data: bytes, kind: str) -> Iterator[RawRecord]:
    """The records of JSON Lines `data`, one a non-blank line (numbered from 1), each with its problem if any."""
    for number, line in enumerate(data.split(b"\n"), start=1):
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line.strip():
            continue
        if len(line) > MAX_RECORD_BYTES:
            yield RawRecord(kind, number, raw_text(line, RAW_KEEP), None, too_large(), False)
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield RawRecord(kind, number, raw_text(line), None,
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


def has_surrogates(cells: list[str]) -> bool:
    """Whether any CSV cell holds a byte that was not UTF-8 (decoded as a surrogate escape).

    Text decoded from bytes with errors="surrogateescape" holds no surrogate but those escapes
    (U+DC80-U+DCFF), so a strict UTF-8 encode fails exactly when one is there (in C, not a loop
    over characters)."""
    for cell in cells:
        if not cell.isascii():
            try:
                cell.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return False


def csv_header(reader) -> list[str] | None:
    """The stripped column names of a CSV `reader`'s first row (None for an empty file); a header
    that cannot be read, is not UTF-8, or has empty or repeated names makes the file a BadFile."""
    try:
        header = next(reader)
    except StopIteration:
        return None
    except csv.Error as exc:
        raise BadFile(f"unreadable CSV header: {exc}") from None
    if has_surrogates(header):
        raise BadFile("the CSV header is not UTF-8")
    header = [h.strip() for h in header]
    if len(set(header)) != len(header) or not all(header):
        raise BadFile(f"the CSV header has empty or repeated column names: {header[:30]}")
    return header


def _read_csv(data: bytes, kind: str) -> Iterator[RawRecord]:
    text = data.decode("utf-8", errors="surrogateescape")
    if text.startswith("\ufeff"):
        text = text[1:]
    reader = csv.reader(BoundedLines(io.StringIO(text, newline=""), MAX_RECORD_BYTES))
    header = csv_header(reader)
    if header is None:
        return
    col = reviewer_column(header)
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
        raw = csv_line(row)
        if len(raw.encode("utf-8", errors="surrogateescape")) > MAX_RECORD_BYTES:
            yield RawRecord(kind, number, raw[:RAW_KEEP], None, Problem("record_too_large", "record exceeds the size limit"),
                            True, col)
        elif has_surrogates(row):
            clean = raw.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")
            yield RawRecord(kind, number, clean, None, Problem("not_utf8", "the row's bytes are not UTF-8"), True, col)
        elif len(row) != len(header):
            yield RawRecord(kind, number, raw, None,
                            Problem("bad_row", f"row has {len(row)} columns, the header has {len(header)}"), True, col)
        else:
            yield RawRecord(kind, number, raw, dict(zip(header, row)), None, True, col)


def reviewer_column(header: list[str]) -> int | None:
    """The index of the reviewer_id column of a CSV header, if it has one."""
    return header.index("reviewer_id") if "reviewer_id" in header else None


def csv_line(row: list[str]) -> str:
    """A CSV row written back as one line of text (its raw text when quarantined)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(row)
    return out.getvalue()


def read_parquet_file(path: Path, columns: list[str] | None = None) -> Any:
    """The Parquet file at `path` as a pyarrow table (pyarrow's own errors for a corrupt one); a
    remote file is read through its filesystem. Check it with `open_regular` first."""
    import pyarrow.parquet as pq

    if is_remote(path):
        with path.open("rb") as fh:
            return pq.read_table(fh, columns=columns)
    return pq.read_table(path, columns=columns)


def parquet_rows(table: Any, size: int) -> Iterator[list[dict[str, Any]]]:
    """The rows of a Parquet file's table as dicts, `size` at a time; `BadFile` for a table whose rows
    Python cannot be given (pyarrow refuses a struct with a field name given twice, which Arrow allows),
    before any row."""
    import pyarrow as pa

    for field in table.schema:
        _refuse_repeated_names(field.name, field.type)
    for batch in table.to_batches(max_chunksize=size):
        try:
            rows = batch.to_pylist()
        except (ValueError, pa.ArrowException) as exc:
            raise BadFile(f"a Parquet row cannot be read: {exc}") from None
        yield rows


def _refuse_repeated_names(column: str, dtype: Any) -> None:
    import pyarrow as pa

    if pa.types.is_struct(dtype):
        names = [dtype.field(i).name for i in range(dtype.num_fields)]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise BadFile(f"Parquet column {column!r} is a struct with a field name given twice "
                          f"({', '.join(map(repr, repeated))}); refused")
        for i in range(dtype.num_fields):
            _refuse_repeated_names(column, dtype.field(i).type)
    elif pa.types.is_list(dtype) or pa.types.is_large_list(dtype) or pa.types.is_fixed_size_list(dtype):
        _refuse_repeated_names(column, dtype.value_type)
    elif pa.types.is_map(dtype):
        _refuse_repeated_names(column, dtype.key_type)
        _refuse_repeated_names(column, dtype.item_type)


def _read_parquet(path: Path, kind: str) -> Iterator[RawRecord]:
    open_regular(path).close()
    try:
        table = read_parquet_file(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise BadFile(f"not a readable Parquet file: {exc}") from None
    number = 0
    for rows in parquet_rows(table, 65536):
        for row in rows:
            number += 1
            yield RawRecord(kind, number, json_raw(row), row, None, True)


def json_raw(row: dict[str, Any]) -> str:
    """A Parquet row as JSON text (its raw text when quarantined)."""
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
        raise BadFile(f"not OTLP (JSON or protobuf): {exc}") from None
    for kind, records in (("events", events), ("interventions", interventions)):
        for rec in records:
            problem = Problem("invalid_json", rec.error) if rec.error else None
            yield RawRecord(kind, rec.ordinal, rec.raw, rec.record, problem, False)
