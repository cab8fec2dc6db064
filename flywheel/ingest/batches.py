"""Read one landing file in batches of decoded records, streaming where the format allows.

The same records, line numbers, raw texts and read problems as `readers.read_file`, but as
`Chunk`s of parallel lists, a few tens of thousands of records at a time, so that the sync never
holds a whole day of decoded records (a 1M-event day is ~1 GB of JSON) and never builds one
object per record it does not need. Raw texts are produced only for records that are
quarantined (`Chunk.raw`). JSON Lines (plain or gzip) is decompressed and split as it streams;
CSV is decoded and parsed as it streams too; Parquet and OTLP are read whole, as before, and handed
out in batches.
"""

from __future__ import annotations

import csv
import gzip
import io
import queue
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

import flywheel.ingest.readers as readers
from flywheel.ingest.readers import BadFile, file_format
from flywheel.ingest.validate import Problem

BATCH = 20_000
READ_BYTES = 16 * 1024 * 1024


class Chunk:
    """A batch of records of one kind: `lines[i]`, `records[i]` (None when `problems[i]` is set)."""

    __slots__ = ("kind", "loose", "lines", "records", "problems", "_raws")

    def __init__(self, kind: str, loose: bool):
        self.kind = kind
        self.loose = loose
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

    def raw(self, i: int) -> str | None:
        """Record i's raw text, exactly as `readers.read_file` gives it."""
        raw = self._raws[i]
        if isinstance(raw, bytes):
            return raw.decode("utf-8")
        if isinstance(raw, list):
            return readers._csv_line(raw)
        if isinstance(raw, dict):
            return readers._json_raw(raw)
        return raw


def read_chunks(path: Path, folder_kind: str, size: int = BATCH) -> Iterator[Chunk]:
    """Every record of the landing file at `path` (folder `folder_kind`), `size` at a time."""
    fmt = file_format(folder_kind, path.name)
    if fmt is None or fmt == "otlp":
        yield from _from_raw_records(readers.read_file(path, folder_kind), size)
    elif fmt == "jsonl":
        yield from jsonl_chunks(line_blocks(path), folder_kind, size)
    elif fmt == "csv":
        yield from _csv_file(path, folder_kind, size)
    else:
        yield from _parquet(path, folder_kind, size)


def _from_raw_records(records: Iterator[readers.RawRecord], size: int) -> Iterator[Chunk]:
    chunks: dict[str, Chunk] = {}
    for rec in records:
        chunk = chunks.setdefault(rec.kind, Chunk(rec.kind, rec.loose))
        chunk.add(rec.line, rec.record, rec.problem, rec.raw)
        if len(chunk) >= size:
            yield chunks.pop(rec.kind)
    yield from chunks.values()


def _byte_blocks(path: Path) -> Iterator[bytes]:
    """The file's bytes (decompressed if .gz) in blocks, read one block ahead in a thread (zlib and
    file reads release the GIL, so decompression overlaps the parsing); a bad gzip raises `BadFile`
    worded as `readers` words it."""
    gz = path.name.lower().endswith(".gz")
    try:
        yield from _prefetched(path, gz)
    except (OSError, EOFError, zlib.error) as exc:
        if not gz:
            raise
        readers._read_bytes(path)  # the whole-file decoder's own wording of the error
        raise BadFile(f"{path.name} is named .gz but is not valid gzip: {exc}") from None


def _prefetched(path: Path, gz: bool) -> Iterator[bytes]:
    blocks: queue.Queue[Any] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def produce() -> None:
        try:
            with (gzip.open(path, "rb") if gz else open(path, "rb")) as fh:
                while not stop.is_set():
                    block = fh.read(READ_BYTES)
                    _put(blocks, block, stop)
                    if not block:
                        return
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


def line_blocks(path: Path) -> Iterator[tuple[int, bytes]]:
    """(number of its first line, block) over the file: each block is whole lines joined by b"\n",
    so that splitting every block on b"\n" gives the lines of `data.split(b"\n")` in order."""
    rest = b""
    first = 1
    for block in _byte_blocks(path):
        data = rest + block if rest else block
        cut = data.rfind(b"\n")
        if cut < 0:
            rest = data
            continue
        piece, rest = data[:cut], data[cut + 1:]
        yield first, piece
        first += piece.count(b"\n") + 1
    yield first, rest


def jsonl_chunks(blocks: Iterator[tuple[int, bytes]], kind: str, size: int = BATCH) -> Iterator[Chunk]:
    """The records of JSON Lines blocks (see `line_blocks`), exactly as `readers._read_jsonl` reads them."""
    limit = readers.MAX_RECORD_BYTES
    loads, Error = orjson.loads, orjson.JSONDecodeError
    chunk = Chunk(kind, False)
    add_line, add_record, add_problem, add_raw = (chunk.lines.append, chunk.records.append,
                                                  chunk.problems.append, chunk._raws.append)
    for first, block in blocks:
        number = first - 1
        for original in block.split(b"\n"):
            number += 1
            line = original[:-1] if original.endswith(b"\r") else original
            if not line.strip():
                continue
            obj: Any = None
            raw: Any = line
            if len(line) <= limit:
                try:
                    if not line.isascii():
                        raw = line.decode("utf-8")
                    obj = loads(raw)
                except (UnicodeDecodeError, Error):
                    obj = None
            if type(obj) is dict:
                add_line(number)
                add_record(obj)
                add_problem(None)
                add_raw(raw)
            else:
                _add_reference(chunk, number, original, kind)
            if len(chunk.lines) >= size:
                yield chunk
                chunk = Chunk(kind, False)
                add_line, add_record, add_problem, add_raw = (chunk.lines.append, chunk.records.append,
                                                              chunk.problems.append, chunk._raws.append)
    if len(chunk):
        yield chunk


def _add_reference(chunk: Chunk, number: int, line: bytes, kind: str) -> None:
    """A line the fast case did not decode (blank aside): read it exactly as `readers._read_jsonl` does."""
    for rec in readers._read_jsonl(line, kind):
        chunk.add(number, rec.record, rec.problem, rec.raw)


class _BlockStream(io.RawIOBase):
    """A readable binary stream over `_byte_blocks` (so CSV is decoded and parsed as it streams)."""

    def __init__(self, blocks: Iterator[bytes]):
        self._blocks, self._buf = blocks, b""

    def readable(self) -> bool:
        return True

    def readinto(self, out: Any) -> int:
        while not self._buf:
            block = next(self._blocks, None)
            if block is None:
                return 0
            self._buf = block
        n = min(len(out), len(self._buf))
        out[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def _csv_file(path: Path, kind: str, size: int) -> Iterator[Chunk]:
    """CSV records as they stream; a CSV error in a .gz file yields to the gzip error, if any, as
    `readers` (which decompresses first) would report it."""
    try:
        yield from _csv(_byte_blocks(path), kind, size)
    except BadFile:
        if path.name.lower().endswith(".gz"):
            readers._read_bytes(path)
        raise


def _csv(blocks: Iterator[bytes], kind: str, size: int) -> Iterator[Chunk]:
    limit = readers.MAX_RECORD_BYTES
    # utf-8-sig drops one leading BOM, as `readers._read_csv` does; undecodable bytes become surrogates.
    text = io.TextIOWrapper(io.BufferedReader(_BlockStream(blocks), 1 << 20), encoding="utf-8-sig",
                            errors="surrogateescape", newline="")
    reader = csv.reader(text)
    header = readers.csv_header(reader)
    if header is None:
        return
    width = len(header)
    chunk = Chunk(kind, True)
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
            raw = readers._csv_line(row)
            if len(raw.encode("utf-8", errors="surrogateescape")) > limit:
                chunk.add(number, None, Problem("record_too_large", "record exceeds the size limit"), raw[:4096])
                continue
        if readers._has_surrogates(row):
            clean = readers._csv_line(row).encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")
            chunk.add(number, None, Problem("not_utf8", "the row's bytes are not UTF-8"), clean)
        elif len(row) != width:
            chunk.add(number, None, Problem("bad_row", f"row has {len(row)} columns, the header has {width}"),
                      readers._csv_line(row))
        else:
            chunk.add(number, dict(zip(header, row)), None, row)
        if len(chunk) >= size:
            yield chunk
            chunk = Chunk(kind, True)
    if len(chunk):
        yield chunk


def _parquet(path: Path, kind: str, size: int) -> Iterator[Chunk]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise BadFile(f"not a readable Parquet file: {exc}") from None
    number = 0
    for batch in table.to_batches(max_chunksize=size):
        chunk = Chunk(kind, True)
        for row in batch.to_pylist():
            number += 1
            chunk.add(number, row, None, row)
        yield chunk
