"""Stage one landing file in batches: bulk validation, per-record fallback, streamed Parquet.

`stage_file` reads the file as `batches.Chunk`s (JSON Lines records in the common shape decoded
into checked structs, `typed`), stages each chunk (`chunk_stager.stage_chunk`:
column-wise validation, with only the records the fast path could not vouch for sent through
`validate.validate_record`, so every quarantined record gets exactly the per-record reason code
and message), and appends the valid rows of each UTC day to that day's staged Parquet file as it
goes. Staged files are written under temporary names and renamed into place at the end (on an
object store: uploads completed at the end, `store.AtomicFile`), so a file that turns out bad
halfway (a corrupt gzip trailer) leaves nothing staged but its one quarantine row. The result is the same as the per-record reference's (`tests/reference_ingest.py`, held equal
by `tests/test_ingest_fastpath.py`), in a fraction of the time and memory (a chunk of decoded
records at a time instead of the whole file).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from flywheel.ingest import parallel
from flywheel.ingest.batches import read_chunks
from flywheel.ingest.chunk_stager import bad_file_row, stage_chunk
from flywheel.ingest.manifest import FileResult, file_manifest
from flywheel.ingest.readers import BadFile, Limits, file_format
from flywheel.privacy import hash_key
from flywheel.schemas import QUARANTINE, STAGED
from flywheel.store import AtomicFile, Layout, write_parquet_atomic

_ROW_GROUP = 65_536


class _DayWriter:
    """One staged (kind, day) file, written through a temporary file in its final folder (or, on an
    object store, straight to its key and published when the upload completes: `store.AtomicFile`).

    Row groups are encoded and compressed on `pool`'s thread (pyarrow releases the GIL), overlapping
    the parsing of the next batch; one write per file is in flight at a time."""

    def __init__(self, path: Path, schema: pa.Schema, pool: ThreadPoolExecutor):
        self.target = AtomicFile(path)
        self.path, self.pool = path, pool
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.writing: Future[None] | None = None
        self.writer = pq.ParquetWriter(self.target.sink, schema, compression="zstd")

    def add(self, table: pa.Table) -> None:
        self.pending.append(table)
        self.pending_rows += table.num_rows
        if self.pending_rows >= _ROW_GROUP:
            self.flush()

    def flush(self) -> None:
        self.wait()
        if self.pending:
            table = pa.concat_tables(self.pending)
            self.pending, self.pending_rows = [], 0
            self.writing = self.pool.submit(self.writer.write_table, table, row_group_size=_ROW_GROUP * 2)

    def wait(self) -> None:
        if self.writing is not None:
            writing, self.writing = self.writing, None
            writing.result()

    def commit(self) -> None:
        self.flush()
        self.wait()
        self.writer.close()
        self.target.commit()

    def discard(self) -> None:
        try:
            if self.writing is not None:
                self.writing.exception()
            self.writer.close()
        finally:
            self.target.discard()


# Worker processes are started when a sync has at least PARALLEL_MIN_BYTES of JSON Lines to read
# (starting them costs ~2 s of CPU, more than they save on a 100k-event day's 21 MB file), and then
# decode every JSON Lines file of at least PARALLEL_MIN_FILE_BYTES (on disk).
PARALLEL_MIN_BYTES = 32 * 1024 * 1024
PARALLEL_MIN_FILE_BYTES = 16 * 1024 * 1024


def stage_file(layout: Layout, folder_kind: str, rel: str, path: Path, fid: str, seq: int,
               refusal: str | None, workers: parallel.Workers | None = None,
               limits: Limits | None = None) -> tuple[dict[str, Any], FileResult]:
    """Stage the file at `path`; returns (manifest, FileResult). See the module docstring.

    `workers` (a `parallel.Workers`) lets a large JSON Lines file be decoded by worker processes;
    if they cannot start or die, the file is staged again in this process. A compressed file may
    expand only within `limits`.
    """
    key = hash_key(layout.root)
    if (refusal is None and workers is not None and not workers.broken
            and file_format(folder_kind, path.name) == "jsonl" and path.stat().st_size >= PARALLEL_MIN_FILE_BYTES):
        try:
            return _stage(layout, folder_kind, rel, path, fid, seq, refusal,
                          parallel.pieces(path, folder_kind, rel, seq, key, workers, limits))
        except BrokenProcessPool:
            workers.broken = True  # staged pieces were discarded; read the file here instead
    return _stage(layout, folder_kind, rel, path, fid, seq, refusal,
                  _serial_pieces(path, folder_kind, rel, seq, key, limits))


def _serial_pieces(path: Path, folder_kind: str, rel: str, seq: int, key: bytes,
                   limits: Limits | None) -> Iterator[parallel.Piece]:
    pseudonyms: dict[str, str] = {}
    for chunk in read_chunks(path, folder_kind, limits=limits):
        quarantine: list[dict[str, Any]] = []
        table = stage_chunk(chunk, rel, seq, quarantine, key, pseudonyms)
        yield chunk.kind, len(chunk), table, quarantine


def _stage(layout: Layout, folder_kind: str, rel: str, path: Path, fid: str, seq: int, refusal: str | None,
           pieces: Iterator[parallel.Piece]) -> tuple[dict[str, Any], FileResult]:
    writers: dict[tuple[str, date], _DayWriter] = {}
    staged: dict[str, int] = {}
    quarantine: list[dict[str, Any]] = []
    read = 0
    bad: str | None = refusal
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="staging-writer")
    try:
        if bad is None:
            try:
                for kind, n, table, rejects in pieces:
                    read += n
                    quarantine.extend(rejects)
                    if table is not None:
                        staged[kind] = staged.get(kind, 0) + table.num_rows
                        _add_by_day(layout, kind, table, fid, writers, pool)
            except BadFile as exc:
                bad = str(exc)
        if bad is not None:
            # Nothing from a bad file is kept but the file itself: one quarantine row, counted as one record.
            for writer in writers.values():
                writer.discard()
            writers.clear()
            staged.clear()
            read = 1
            quarantine = [bad_file_row(folder_kind, rel, bad)]
        for writer in writers.values():
            writer.commit()
    except BaseException:
        for writer in writers.values():
            writer.discard()
        raise
    finally:
        pool.shutdown(wait=True)
    if quarantine:
        write_parquet_atomic(pa.Table.from_pylist(quarantine, schema=QUARANTINE), layout.staged_quarantine(fid))
    days: dict[str, list[str]] = {"events": [], "interventions": []}
    for kind, day in writers:
        days[kind].append(day.isoformat())
    manifest = file_manifest(folder_kind, rel, path.name, fid, seq, read, staged, len(quarantine), bad, refusal,
                             days["events"], days["interventions"])
    return manifest, FileResult(rel, "new", read, staged, len(quarantine), bad)


def _add_by_day(layout: Layout, kind: str, table: pa.Table, fid: str, writers: dict[tuple[str, date], _DayWriter],
                pool: ThreadPoolExecutor) -> None:
    """Append the table's rows to the staged file of their UTC day (in order of first appearance)."""
    day_of = table["occurred_at"].cast(pa.date32())
    unique = day_of.unique().to_pylist()
    for day in unique:
        part = table if len(unique) == 1 else table.filter(pc.equal(day_of, pa.scalar(day, pa.date32())))
        writer = writers.get((kind, day))
        if writer is None:
            writer = writers[(kind, day)] = _DayWriter(layout.staged(kind, day, fid), STAGED[kind], pool)
        writer.add(part)

