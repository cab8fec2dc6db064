"""The layout of the store folder, atomic file writes, and the locks that serialise writers.

Everything flywheel keeps lives under the store as Parquet (the system of record) and small
JSON manifests. Every file is written to a temporary name in its final folder and renamed into
place, so a reader sees the old file or the new one, never half of one. Steps that must not run
twice at once in different processes (reading the landing folder, publishing the catalog) take
an exclusive `flock` on a lock file; partition writes touch only their own files and need none.

The store may also be an S3-compatible object store (`FLYWHEEL_STORE=s3://bucket/prefix`, see
`flywheel.objectstore`): `Layout.root` is then a `UPath` and so is every path it hands out. The same
functions dispatch on the path's kind: a remote write goes straight to its final key and is
published whole when the upload completes (one object's PUT is an atomic replace), or discarded on
any exception, never published truncated; `exclusive` and `shared` take a lease object in place of
the `flock` (on an object store a shared hold is exclusive too: there is no reader count).
"""

from __future__ import annotations

import fcntl
import os
import signal
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from queue import Queue
from typing import IO, Any, cast

import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from flywheel.objectstore import AnyPath, cas_update, flock, is_remote, lease, root_of, url


@dataclass(frozen=True)
class Layout:
    """Paths inside the store folder `root` (a local `Path`, or a `UPath` on an object store; a string
    is read by `objectstore.root_of`, so `Layout("s3://bucket/prefix")` works)."""

    root: AnyPath

    def __post_init__(self) -> None:
        if isinstance(self.root, str):
            object.__setattr__(self, "root", root_of(self.root))

    @property
    def manifests(self) -> AnyPath:
        return self.root / "manifests"

    def manifest(self, file_id: str) -> AnyPath:
        return self.manifests / f"{file_id}.json"

    def staged(self, kind: str, day: date, file_id: str) -> AnyPath:
        key = "event_date" if kind == "events" else "occurred_date"
        return self.root / "staging" / kind / f"{key}={day.isoformat()}" / f"{file_id}.parquet"

    def staged_days_dir(self, kind: str) -> AnyPath:
        return self.root / "staging" / kind

    def staged_quarantine(self, file_id: str) -> AnyPath:
        return self.root / "staging" / "quarantine" / f"{file_id}.parquet"

    def table(self, name: str, day: date) -> AnyPath:
        """The partition file of table `name` (events, interventions, quarantine/events, ...) for `day`."""
        return self.root / name / f"event_date={day.isoformat()}" / "data.parquet"

    def partitions(self, name: str, start: date, end: date) -> list[AnyPath]:
        """The partition files of table `name` for the days `start` .. `end` that exist, in day order."""
        return [self.table(name, day) for day in self.days(name, start, end)]

    def days(self, name: str, start: date, end: date) -> list[date]:
        """The days `start` .. `end` whose partition file of table `name` exists, in order. One
        listing of the table's folder (on a bucket one LIST request in place of a HEAD per day)."""
        folder = self.root / name
        if is_remote(folder):
            remote = cast(UPath, folder)
            try:
                keys = remote.fs.find(remote.path)
            except FileNotFoundError:
                keys = []
            present = {key.rsplit("/", 2)[-2] for key in keys if key.endswith("/data.parquet")}
        else:
            try:
                present = {entry.name for entry in os.scandir(folder) if entry.is_dir()}
            except FileNotFoundError:
                present = set()
        out: list[date] = []
        for n in range((end - start).days + 1):
            day = start + timedelta(days=n)
            # locally a day's folder may hold only a file still being written (its temporary name)
            if f"event_date={day.isoformat()}" in present and (is_remote(folder) or self.table(name, day).exists()):
                out.append(day)
        return out

    def table_glob(self, name: str) -> str:
        return url(self.root / name) + "/*/data.parquet"

    def empty_table(self, name: str, schema: pa.Schema) -> AnyPath:
        """A Parquet file with `schema` and no rows (`_schema/<name>.parquet`, written once), to
        read in place of a partition that does not exist."""
        path = self.root / "_schema" / f"{name.replace('/', '_')}.parquet"
        if not path.exists():
            write_parquet_atomic(pa.Table.from_pylist([], schema=schema), path)
        return path

    def day_file(self, name: str, day: date, schema: pa.Schema) -> AnyPath:
        """The partition of table `name` for `day`, or `empty_table` when the day has none."""
        path = self.table(name, day)
        return path if path.exists() else self.empty_table(name, schema)

    def lock(self, name: str) -> AnyPath:
        return self.root / f".{name}.lock"


_writes: dict[str, int] = {}


def fault_point(path: AnyPath) -> None:
    """Fault injection for the reliability tests: FLYWHEEL_KILL_AT=<kind>:<n> makes the process
    SIGKILL itself at its n-th write of that kind (staging, manifest, table, feed, report), after
    the temporary file is complete and before it is renamed into place (on an object store: before
    the upload completes, so nothing is published). Unset in normal use."""
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


REMOTE_BLOCK = 8 * 2**20
"""Part size of a remote write: a file up to this size is one PUT, a larger one a multipart upload."""


class AtomicFile:
    """A file being written to `path`, published whole by `commit()` or dropped by `discard()`.

    `sink` is what to write: locally the name of a temporary file beside `path` (commit fsyncs it
    and renames it over `path`, discard removes it); on an object store a binary file object
    writing straight to `path`'s key (commit completes the upload, which replaces the object
    atomically; discard aborts it, so nothing is published). Never close the remote sink yourself,
    nor open it with `with`: closing it on an exception would publish what was written so far."""

    def __init__(self, path: AnyPath):
        self.path = path
        self.sink: Any
        if is_remote(path):
            remote = cast(UPath, path)
            self.sink = remote.fs.open(remote.path, "wb", block_size=REMOTE_BLOCK)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, self.sink = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)

    def commit(self) -> None:
        if isinstance(self.sink, str):
            fsync_file(self.sink)
            fault_point(self.path)
            os.replace(self.sink, self.path)
        else:
            fault_point(self.path)
            self.sink.close()

    def discard(self) -> None:
        if isinstance(self.sink, str):
            Path(self.sink).unlink(missing_ok=True)
            return
        try:
            self.sink.discard()  # aborts the multipart upload, drops the buffer
        finally:
            self.sink.closed = True  # or the file's finaliser would try to complete what is left


def remove_temporaries(folder: AnyPath) -> int:
    """Delete the temporary files that `AtomicFile` writers killed before their commit left in the
    local `folder` and below (hidden `.<name>.<random>.tmp` files: never read, but each as large as
    what it was writing); return how many. Call it only while holding the lock that serialises every
    writer of `folder`, or it would remove a live writer's file. Nothing on an object store (an
    upload that was never completed publishes nothing)."""
    if is_remote(folder):
        return 0
    removed = 0
    for leftover in Path(folder).rglob(".*.tmp"):
        if leftover.is_file():
            leftover.unlink(missing_ok=True)
            removed += 1
    return removed


@contextmanager
def _atomic(path: AnyPath) -> Iterator[Any]:
    """The sink of an `AtomicFile` for `path` (a temporary file's name locally, a binary file object
    on an object store): committed when the block ends normally, discarded on any exception."""
    target = AtomicFile(path)
    try:
        yield target.sink
        target.commit()
    except BaseException:
        target.discard()
        raise


@contextmanager
def open_atomic(path: AnyPath) -> Iterator[IO[bytes]]:
    """A binary file to write `path` through, published atomically when the block ends normally and
    never on an exception (local: temporary file, fsync, rename; object store: one upload)."""
    with _atomic(path) as sink:
        if isinstance(sink, str):
            with open(sink, "wb") as fh:
                yield fh
        else:
            yield sink


def write_parquet_atomic(table: pa.Table, path: AnyPath) -> None:
    """Write `table` to `path` through a temporary file in the same folder and an atomic rename.

    Raises ValueError for a table without columns: an empty day must still be written with its
    table's schema, or every query of the analysts' view over that table fails."""
    if table.num_columns == 0:
        raise ValueError(f"refusing to write {path}: the table has no columns (an empty table needs its schema)")
    with _atomic(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def write_batches_atomic(batches: Iterable[pa.RecordBatch], schema: pa.Schema, path: AnyPath) -> int:
    """Write record batches to `path` as one Parquet file with `schema`, atomically (like
    `write_parquet_atomic`, without holding the whole table: a day of 1M events is ~1 GB of
    Arrow); returns the rows written. Batches are encoded and compressed in a second thread while
    the next ones are produced (Arrow's Parquet writer runs without the GIL)."""
    done = object()
    queue: Queue = Queue(maxsize=2)  # at most two batches wait: memory stays bounded
    failure: list[BaseException] = []

    def write(tmp: Any) -> None:
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


def write_bytes_atomic(data: bytes, path: AnyPath) -> None:
    """Write `data` to `path` atomically (temporary file, fsync, rename; on an object store one PUT)."""
    with open_atomic(path) as fh:
        fh.write(data)


def fsync_file(path: str) -> None:
    """Flush the file at `path` to disk (before it is renamed into place)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def exclusive(lock_path: AnyPath) -> Iterator[None]:
    """Hold an exclusive lock on `lock_path` (blocking) for the duration of the block; on an object
    store the lease object `lock_path` (`objectstore.lease`)."""
    if is_remote(lock_path):
        with lease(lock_path):
            yield
        return
    assert isinstance(lock_path, Path)
    with flock(lock_path, fcntl.LOCK_EX):
        yield


@contextmanager
def shared(lock_path: AnyPath) -> Iterator[None]:
    """Hold a shared lock on `lock_path`: many readers at once, never alongside `exclusive`.

    On an object store there is no shared lease: this takes the same exclusive lease as `exclusive`
    (readers take turns: day builds on a bucket run one at a time)."""
    if is_remote(lock_path):
        with lease(lock_path):
            yield
        return
    assert isinstance(lock_path, Path)
    with flock(lock_path, fcntl.LOCK_SH):
        yield


def update(path: AnyPath, change: Callable[[bytes | None], bytes]) -> bytes:
    """Replace the document at `path` by `change(old bytes, or None if absent)`, safely against other
    processes doing the same: locally under an exclusive flock on `.<name>.lock` beside it, written
    atomically; on an object store a compare-and-swap loop on the ETag (`objectstore.cas_update`).
    `change` may run more than once; returns what was written."""
    if is_remote(path):
        return cas_update(path, change)
    local = Path(path)
    with exclusive(local.parent / f".{local.name}.lock"):
        try:
            old: bytes | None = local.read_bytes()
        except FileNotFoundError:
            old = None
        new = change(old)
        write_bytes_atomic(new, local)
        return new
