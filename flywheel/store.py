"""The layout of the store folder, atomic file writes, and the locks that serialise writers.

Everything flywheel keeps lives under the store as Parquet (the system of record) and small
JSON manifests. Every file is written to a temporary name in its final folder and renamed into
place, so a reader sees the old file or the new one, never half of one. Steps that must not run
twice at once in different processes (reading the landing folder, publishing the catalog) take
an exclusive `flock` on a lock file; partition writes touch only their own files and need none.
"""

from __future__ import annotations

import fcntl
import os
import signal
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from queue import Queue

import pyarrow as pa
import pyarrow.parquet as pq


@dataclass(frozen=True)
class Layout:
    """Paths inside the store folder `root`."""

    root: Path

    @property
    def manifests(self) -> Path:
        return self.root / "manifests"

    def manifest(self, file_id: str) -> Path:
        return self.manifests / f"{file_id}.json"

    def staged(self, kind: str, day: date, file_id: str) -> Path:
        key = "event_date" if kind == "events" else "occurred_date"
        return self.root / "staging" / kind / f"{key}={day.isoformat()}" / f"{file_id}.parquet"

    def staged_days_dir(self, kind: str) -> Path:
        return self.root / "staging" / kind

    def staged_quarantine(self, file_id: str) -> Path:
        return self.root / "staging" / "quarantine" / f"{file_id}.parquet"

    def table(self, name: str, day: date) -> Path:
        """The partition file of table `name` (events, interventions, quarantine/events, ...) for `day`."""
        return self.root / name / f"event_date={day.isoformat()}" / "data.parquet"

    def table_glob(self, name: str) -> str:
        return str((self.root / name).resolve() / "*" / "data.parquet")

    def empty_table(self, name: str, schema: pa.Schema) -> Path:
        """A Parquet file with `schema` and no rows (`_schema/<name>.parquet`, written once), to
        read in place of a partition that does not exist."""
        path = self.root / "_schema" / f"{name.replace('/', '_')}.parquet"
        if not path.exists():
            write_parquet_atomic(pa.Table.from_pylist([], schema=schema), path)
        return path

    def day_file(self, name: str, day: date, schema: pa.Schema) -> Path:
        """The partition of table `name` for `day`, or `empty_table` when the day has none."""
        path = self.table(name, day)
        return path if path.exists() else self.empty_table(name, schema)

    def lock(self, name: str) -> Path:
        return self.root / f".{name}.lock"


_writes: dict[str, int] = {}


def fault_point(path: Path) -> None:
    """Fault injection for the reliability tests: FLYWHEEL_KILL_AT=<kind>:<n> makes the process
    SIGKILL itself at its n-th write of that kind (staging, manifest, table, feed, report), after
    the temporary file is complete and before it is renamed into place. Unset in normal use."""
    spec = os.environ.get("FLYWHEEL_KILL_AT")
    if not spec:
        return
    parts = path.parts
    kind = ("staging" if "staging" in parts else "manifest" if "manifests" in parts else
            "feed" if "feed" in parts else "report" if "report" in parts else "table")
    want, _, nth = spec.partition(":")
    if kind != want:
        return
    _writes[kind] = _writes.get(kind, 0) + 1
    if _writes[kind] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


@contextmanager
def _atomic(path: Path) -> Iterator[str]:
    """A temporary file beside `path` to write; on success it is fsynced and renamed over `path`
    (a reader sees the old file or the new one, never half of one); on failure it is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        fsync_file(tmp)
        fault_point(path)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    """Write `table` to `path` through a temporary file in the same folder and an atomic rename.

    Raises ValueError for a table without columns: an empty day must still be written with its
    table's schema, or every query of the analysts' view over that table fails."""
    if table.num_columns == 0:
        raise ValueError(f"refusing to write {path}: the table has no columns (an empty table needs its schema)")
    with _atomic(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def write_batches_atomic(batches: Iterable[pa.RecordBatch], schema: pa.Schema, path: Path) -> int:
    """Write record batches to `path` as one Parquet file with `schema`, atomically (like
    `write_parquet_atomic`, without holding the whole table: a day of 1M events is ~1 GB of
    Arrow); returns the rows written. Batches are encoded and compressed in a second thread while
    the next ones are produced (Arrow's Parquet writer runs without the GIL)."""
    done = object()
    queue: Queue = Queue(maxsize=2)  # at most two batches wait: memory stays bounded
    failure: list[BaseException] = []

    def write(tmp: str) -> None:
        try:
            with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
                while (item := queue.get()) is not done:
                    writer.write_table(pa.Table.from_batches([item]).cast(schema))
        except BaseException as exc:  # handed to the producing thread
            failure.append(exc)
            while queue.get() is not done:  # drain, so the producer never blocks
                pass

    rows = 0
    with _atomic(path) as tmp:
        writer = threading.Thread(target=write, args=(tmp,), name="parquet-writer", daemon=True)
        writer.start()
        try:
            for batch in batches:
                if failure:
                    break
                queue.put(batch)
                rows += batch.num_rows
        finally:
            queue.put(done)
            writer.join()
        if failure:
            raise failure[0]
    return rows


def write_bytes_atomic(data: bytes, path: Path) -> None:
    """Write `data` to `path` atomically (temporary file, fsync, rename)."""
    with _atomic(path) as tmp:
        Path(tmp).write_bytes(data)


def fsync_file(path: str) -> None:
    """Flush the file at `path` to disk (before it is renamed into place)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_path` (blocking) for the duration of the block."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


@contextmanager
def shared(lock_path: Path) -> Iterator[None]:
    """Hold a shared lock on `lock_path`: many readers at once, never alongside `exclusive`."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
