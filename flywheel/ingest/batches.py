"""Read one landing file in batches of decoded records, streaming where the format allows.

The same records, line numbers, raw texts and read problems as `readers.read_file`, but as
`Chunk`s of parallel lists, a few tens of thousands of records at a time, so that the sync never
holds a whole day of decoded records (a 1M-event day is ~1 GB of JSON) and never builds one
object per record it does not need. Raw texts are produced only for records that are
quarantined (`Chunk.raw`). JSON Lines (plain or gzip) is decompressed and split as it streams;
CSV is decoded and parsed as it streams too; Parquet and OTLP are read whole, as before, and handed
out in batches. Memory stays bounded: decompression within `readers.Limits`, a JSON Lines line over
the record limit cut to its first bytes as it streams (`line_blocks`), a CSV line read with a bound
(`readers.BoundedLines`).
"""

from __future__ import annotations

import csv
import io
import queue
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import orjson

import flywheel.ingest.readers as readers
from flywheel.ingest import typed
from flywheel.ingest.readers import BadFile, Limits, file_format
from flywheel.ingest.validate import Problem

BATCH = 20_000
READ_BYTES = readers.READ_BYTES


class Chunk:
    """A batch of records of one kind: `lines[i]`, `records[i]` (None when `problems[i]` is set)."""

    __slots__ = ("kind", "loose", "lines", "records", "problems", "_raws", "reviewer_col")

    def __init__(self, kind: str, loose: bool, reviewer_col: int | None = None):
        self.kind = kind
        self.loose = loose
        self.reviewer_col = reviewer_col  # a CSV row's reviewer_id column, hashed in the quarantine
        self.lines: list[int] = []
        self.records: list[Any] = []
        self.problems: list[Problem | None] = []
        self._raws: list[Any] = []  # str, or bytes / CSV row / Parquet row to render on demand

    def add(self, line: int, record: Any, problem: Problem | None, raw: Any) -> None:
        self.lines.append(line)
        self.records.append(record)
        self.problems.append(problem)
        self._raws.append(raw)

    def __len__(self) -> int:
        return len(self.lines)

    def record(self, i: int) -> tuple[Any, Problem | None]:
        """Record i as `readers.read_jsonl` reads it, for the per-record reference path: a struct
        `typed.decoder` made is read again from its line by `read_jsonl` (orjson refuses JSON nested
        over 1,024 levels where msgspec does not; then the line's problem, as `read_jsonl` gives it)."""
        rec = self.records[i]
        if not isinstance(rec, msgspec.Struct):
            return rec, None
        (read,) = readers.read_jsonl(self._raws[i], self.kind)
        return read.record, read.problem

    def raw(self, i: int) -> str | None:
        """Record i's raw text, exactly as `readers.read_file` gives it."""
        raw = self._raws[i]
        if isinstance(raw, bytes):
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:  # as read_jsonl keeps a line that is not UTF-8
                return readers.raw_text(raw)
        if isinstance(raw, list):
            return readers.csv_line(raw)
        if isinstance(raw, dict):
            return readers.json_raw(raw)
        return raw


def read_chunks(path: Path, folder_kind: str, size: int = BATCH, limits: Limits | None = None) -> Iterator[Chunk]:
    """Every record of the landing file at `path` (folder `folder_kind`), `size` at a time; a
    compressed file may expand only within `limits`."""
    fmt = file_format(folder_kind, path.name)
    if fmt is None or fmt == "otlp":
        yield from _from_raw_records(readers.read_file(path, folder_kind, limits), size)
    elif fmt == "jsonl":
        yield from jsonl_chunks(line_blocks(path, limits), folder_kind, size)
    elif fmt == "csv":
        yield from _csv_file(path, folder_kind, size, limits)
    else:
        yield from _parquet(path, folder_kind, size)


def _from_raw_records(records: Iterator[readers.RawRecord], size: int) -> Iterator[Chunk]:
    chunks: dict[str, Chunk] = {}
    for rec in records:
        chunk = chunks.setdefault(rec.kind, Chunk(rec.kind, rec.loose, rec.reviewer_col))
        chunk.add(rec.line, rec.record, rec.problem, rec.raw)
        if len(chunk) >= size:
            yield chunks.pop(rec.kind)
    yield from chunks.values()


def _byte_blocks(path: Path, limits: Limits | None = None) -> Iterator[bytes]:
    """The file's bytes (decompressed if .gz, within `limits`) in blocks, read one block ahead in a
    thread (zlib and file reads release the GIL, so decompression overlaps the parsing); a bad gzip
    raises `BadFile` worded as `readers` words it."""
    gz = path.name.lower().endswith(".gz")
    try:
        yield from _prefetched(path, limits)
    except (OSError, EOFError, zlib.error) as exc:
        if not gz or isinstance(exc, FileNotFoundError):
            raise
        readers.read_whole_file(path, limits)  # the whole-file decoder's own wording of the error
        raise BadFile(f"{path.name} is named .gz but is not valid gzip: {exc}") from None


def _prefetched(path: Path, limits: Limits | None) -> Iterator[bytes]:
    blocks: queue.Queue[Any] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def produce() -> None:
        try:
            for block in readers.decompressed_blocks(path, limits, READ_BYTES):
                if stop.is_set():
                    return
                _put(blocks, block, stop)
            _put(blocks, b"", stop)
        except BaseException as exc:  # handed to the consumer, raised there
            _put(blocks, exc, stop)

    thread = threading.Thread(target=produce, name="landing-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = blocks.get()
            if isinstance(item, BaseException):
                raise item
            if not item:
                return
            yield item
    finally:
        stop.set()
        thread.join()


def _put(blocks: queue.Queue[Any], item: Any, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            blocks.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


Block = tuple[int, bytes, frozenset[int]]  # first line number, whole lines, numbers of lines cut short


def line_blocks(path: Path, limits: Limits | None = None) -> Iterator[Block]:
    """(number of its first line, block, long lines) over the file: each block is whole lines joined
    by b"\n", so that splitting every block on b"\n" gives the lines of `data.split(b"\n")` in order,
    except that a line over the record limit is cut as it streams (never held whole): to its first
    `_keep()` bytes, its number in `long`, or to nothing if it is blank all along."""
    keep = _keep()
    rest = b""
    first = 1
    long: set[int] = set()
    cutting = False  # the line in `rest` is over the limit: drop its bytes up to the next newline
    blank = True  # and so far it holds only blanks
    for block in _byte_blocks(path, limits):
        if cutting:
            end = block.find(b"\n")
            dropped = block if end < 0 else block[:end]
            blank = blank and not dropped.strip()
            if end < 0:
                continue
            rest = _cut_line(rest, blank, first, long)
            cutting, block = False, block[end:]
        cut = block.rfind(b"\n")
        if cut < 0:
            rest = rest + block
        else:
            # One copy of the block's whole lines (concatenating, then slicing, copied it twice).
            piece = b"".join((rest, memoryview(block)[:cut])) if rest else block[:cut]
            rest = block[cut + 1:]
            yield first, piece, frozenset(long)
            first += _newlines(piece) + 1
            long.clear()
        if len(rest) > keep:
            cutting, blank, rest = True, not rest.strip(), rest[:keep]
    if cutting:
        rest = _cut_line(rest, blank, first, long)
    yield first, rest, frozenset(long)


def _newlines(data: bytes) -> int:
    """How many b"\n" `data` holds (numpy compares a block about twice as fast as bytes.count)."""
    return int(np.count_nonzero(np.frombuffer(data, np.uint8) == 10))


def _keep() -> int:
    """Bytes kept of a line over the limit: enough to know it is over, and its raw text."""
    return max(readers.MAX_RECORD_BYTES + 1, readers.RAW_KEEP)


def _cut_line(head: bytes, blank: bool, number: int, long: set[int]) -> bytes:
    """The kept head of an over-limit line numbered `number`, recorded in `long` (nothing if blank)."""
    if blank:
        return b""
    long.add(number)
    return head


def jsonl_chunks(blocks: Iterator[Block], kind: str, size: int = BATCH) -> Iterator[Chunk]:
    """The records of JSON Lines blocks (see `line_blocks`), exactly as `readers.read_jsonl` reads them.

    Lines are taken in runs of up to `_RUN`: a run of JSON objects within the record limit (in a
    block with no \r and no line cut short) is decoded by one `map` (`_add_run`); any other run is
    read line by line (`_add_lines`). Chunks are cut at the same records either way."""
    limit = readers.MAX_RECORD_BYTES
    chunk = Chunk(kind, False)
    for first, block, long in blocks:
        lines = block.split(b"\n")
        fast = not long and b"\r" not in block
        start = 0
        while start < len(lines):
            # A line adds at most one record, so a run never takes the chunk past `size`.
            end = min(start + _RUN, start + size - len(chunk), len(lines))
            run = lines[start:end]
            if not (fast and _add_run(chunk, first + start, run, limit)):
                _add_lines(chunk, first + start, run, long, limit)
            start = end
            if len(chunk) >= size:
                yield chunk
                chunk = Chunk(kind, False)
    if len(chunk):
        yield chunk


_RUN = 64  # lines decoded at once; a bad line sends its run (~0.1% of lines in generated data) line by line


def _add_run(chunk: Chunk, first: int, run: list[bytes], limit: int) -> bool:
    """Add `run` (lines numbered from `first`) if every line is a JSON object within `limit`
    bytes; else add nothing and return False. Each line becomes a struct (`typed.decoder`: a record
    in the common shape) or else orjson's dict. Both check UTF-8 and refuse a blank line, so a run
    decoded whole holds only records `_add_lines` would decode the same way (the raw text is kept
    as bytes, decoded only if the record is quarantined)."""
    decode, loads = typed.decoder(chunk.kind), orjson.loads
    objs: list[Any] = []
    try:
        for line in run:
            try:
                objs.append(decode(line))
            except typed.DECODE_ERRORS:
                obj = loads(line)
                if type(obj) is not dict:
                    return False
                objs.append(obj)
    except orjson.JSONDecodeError:
        return False
    if max(map(len, run)) > limit:
        return False
    chunk.lines.extend(range(first, first + len(run)))
    chunk.records.extend(objs)
    chunk.problems.extend([None] * len(run))
    chunk._raws.extend(run)
    return True


def _add_lines(chunk: Chunk, first: int, run: list[bytes], long: frozenset[int], limit: int) -> None:
    """Add the records of `run` (lines numbered from `first`) one line at a time."""
    loads, Error, decode = orjson.loads, orjson.JSONDecodeError, typed.decoder(chunk.kind)
    number = first - 1
    for original in run:
        number += 1
        if long and number in long:  # cut short while streaming: over the limit, and not blank
            chunk.add(number, None, readers.too_large(), readers.raw_text(original, readers.RAW_KEEP))
            continue
        line = original[:-1] if original.endswith(b"\r") else original
        if not line or line.isspace():  # blank (isspace: no copy of the line, as strip made)
            continue
        obj: Any = None
        raw: Any = line
        if len(line) <= limit:
            try:
                chunk.add(number, decode(line), None, line)
                continue
            except typed.DECODE_ERRORS:
                pass
            try:
                if not line.isascii():
                    raw = line.decode("utf-8")
                obj = loads(raw)
            except (UnicodeDecodeError, Error):
                obj = None
        if type(obj) is dict:
            chunk.add(number, obj, None, raw)
        else:
            _add_reference(chunk, number, original, kind=chunk.kind)


def _add_reference(chunk: Chunk, number: int, line: bytes, kind: str) -> None:
    """A line the fast case did not decode (blank aside): read it exactly as `readers.read_jsonl` does."""
    for rec in readers.read_jsonl(line, kind):
        chunk.add(number, rec.record, rec.problem, rec.raw)


def _csv_file(path: Path, kind: str, size: int, limits: Limits | None = None) -> Iterator[Chunk]:
    """CSV records as they stream; a CSV error in a .gz file yields to the gzip error, if any, as
    `readers` (which decompresses first) would report it."""
    try:
        yield from _csv(_byte_blocks(path, limits), kind, size)
    except BadFile:
        if path.name.lower().endswith(".gz"):
            readers.read_whole_file(path, limits)
        raise


def _csv(blocks: Iterator[bytes], kind: str, size: int) -> Iterator[Chunk]:
    limit = readers.MAX_RECORD_BYTES
    # utf-8-sig drops one leading BOM, as `readers._read_csv` does; undecodable bytes become surrogates.
    text = io.TextIOWrapper(io.BufferedReader(readers.BlockStream(blocks), 1 << 20), encoding="utf-8-sig",
                            errors="surrogateescape", newline="")
    reader = csv.reader(readers.BoundedLines(text, limit))
    header = readers.csv_header(reader)
    if header is None:
        return
    width = len(header)
    col = readers.reviewer_column(header)
    chunk = Chunk(kind, True, col)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise BadFile(f"CSV syntax error near line {reader.line_num}: {exc}") from None
        number = reader.line_num
        if not row or row == [""]:
            continue
        # A row's CSV text takes at most 4 bytes a character, doubled quotes, 2 quotes and 1 comma a cell.
        if 8 * sum(map(len, row)) + 9 * len(row) > limit:
            raw = readers.csv_line(row)
            if len(raw.encode("utf-8", errors="surrogateescape")) > limit:
                chunk.add(number, None, Problem("record_too_large", "record exceeds the size limit"), raw[:readers.RAW_KEEP])
                continue
        if readers.has_surrogates(row):
            clean = readers.csv_line(row).encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")
            chunk.add(number, None, Problem("not_utf8", "the row's bytes are not UTF-8"), clean)
        elif len(row) != width:
            chunk.add(number, None, Problem("bad_row", f"row has {len(row)} columns, the header has {width}"),
                      readers.csv_line(row))
        else:
            chunk.add(number, dict(zip(header, row)), None, row)
        if len(chunk) >= size:
            yield chunk
            chunk = Chunk(kind, True, col)
    if len(chunk):
        yield chunk


def _parquet(path: Path, kind: str, size: int) -> Iterator[Chunk]:
    readers.open_regular(path).close()
    try:
        table = readers.read_parquet_file(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise BadFile(f"not a readable Parquet file: {exc}") from None
    number = 0
    for rows in readers.parquet_rows(table, size):
        chunk = Chunk(kind, True)
        for row in rows:
            number += 1
            chunk.add(number, row, None, row)
        yield chunk
