"""Read new and changed landing files once, and stage their records by day.

`sync_landing` walks `<landing>/events`, `<landing>/interventions` and `<landing>/otlp`. A file
whose size, modification time and SHA-256 match its manifest is skipped (already ingested); a new
or changed file is read in batches (`staging`): valid records are staged as Parquet per day (events by their UTC
event date, interventions by their UTC date) and every invalid record goes to the file's
quarantine piece with its reason. Each file's manifest (`ingest.manifest`) records what was read, so that
`records read = staged + quarantined` per file, and later
`staged = stored + duplicates + partition quarantine + pending`. Before a file's manifest is written,
the event days whose inputs it changed are recorded as days to rebuild (`changed_days`).

Files whose names start with '.' or '_' or end with .tmp/.part are skipped as in-progress
deliveries. Symbolic links that point outside the landing folder, and anything that is not a
regular file (a named pipe), are refused (quarantined as a bad file), never read.

Temporary files a killed sync left in the store's staging and manifest folders (written whole and
renamed into place, so never read) are removed by the next sync, under the staging lock.

A file that vanishes between discovery and reading is skipped (status `vanished`, logged) and
read at the next sync if it comes back; what it gave before stays staged. A file deleted from the
landing folder keeps its records (the store is the system of record). A new file with the same
bytes (SHA-256) as a file that has left the landing folder is a rename (status `renamed`): it is
not read again, so its records are neither stored nor quarantined twice; they stay under the name
they were first read from.

The landing area may be on an object store (`FLYWHEEL_LANDING=s3://bucket/prefix`): it is then
found by one listing, and a file is recognised as unchanged by its size and ETag (recorded as
`etag` in its manifest) instead of its modification time; the symbolic link and named pipe checks
are local only (every object is a regular file). With the store on an object store, the staging
lock is a lease object (`store.exclusive`).
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from flywheel.config import Settings
from flywheel.ingest import changed_days, readers, staging
from flywheel.ingest.changed_days import file_changed_days
from flywheel.ingest.manifest import FileResult, file_id, file_manifest, load_manifests, write_manifest
from flywheel.ingest.parallel import Workers
from flywheel.ingest.readers import KINDS, Limits, file_format
from flywheel.ingest.staging import stage_file
from flywheel.objectstore import is_remote, root_of
from flywheel.store import Layout, exclusive, remove_temporaries

_SKIP_SUFFIXES = (".tmp", ".part", ".crdownload", ".partial")
log = logging.getLogger(__name__)


@dataclass
class SyncReport:
    """The files seen, the days whose staged data changed, and the event days this sync marked
    to rebuild (`changed_days`; they stay recorded until a run clears them)."""

    files: list[FileResult]
    event_days: set[date]
    intervention_days: set[date]
    rebuild_days: set[date] = field(default_factory=set)

    @property
    def changed(self) -> list[FileResult]:
        return [f for f in self.files if f.status != "unchanged"]

    def bad_files_warning(self, shown: int = 5) -> str | None:
        """One message naming the files this sync quarantined whole, nothing of them kept (refused
        unread: a link out of the landing folder, not a regular file; bad: a corrupt Parquet file, a
        bad gzip stream, over the size limits, possibly found part-way through the read), each with
        its reason, or None when there were none. A night made only of such files has nothing to
        rebuild, and an operator must still hear why."""
        bad = [f for f in self.files if f.bad is not None]  # only a file staged now carries one
        if not bad:
            return None
        lines = [f"  {f.path}: {f.bad}" for f in bad[:shown]]
        if len(bad) > shown:
            lines.append(f"  ... and {len(bad) - shown} more (ingest.quarantine, reason_code 'bad_file')")
        return (f"flywheel: {len(bad)} landing file(s) quarantined whole, nothing of them kept "
                "(each is one row of ingest.quarantine; fix or replace the file and it is read again):\n"
                + "\n".join(lines))


def discover(landing: Path) -> list[tuple[str, str, Path]]:
    """(folder kind, relative path, path) of every candidate landing file, sorted by relative path."""
    if is_remote(landing):
        return [(kind, rel, path) for kind, rel, path, _ in _listing(landing)]
    found: list[tuple[str, str, Path]] = []
    for kind in KINDS:
        folder = landing / kind
        if not folder.is_dir():
            continue
        for path in folder.rglob("*"):
            name = path.name
            if name.startswith((".", "_")) or name.endswith(_SKIP_SUFFIXES):
                continue
            if path.is_dir() and not path.is_symlink():
                continue
            rel = path.relative_to(landing).as_posix()
            found.append((kind, rel, path))
    return sorted(found, key=lambda item: item[1])


def _listing(landing: Path) -> list[tuple[str, str, Path, dict[str, Any]]]:
    """`discover` on an object store, with each object's listing entry (size, ETag): one paginated
    listing per folder kind instead of a request per file."""
    fs, base = landing.fs, landing.path.rstrip("/")  # type: ignore[attr-defined]
    found: list[tuple[str, str, Path, dict[str, Any]]] = []
    for kind in KINDS:
        for name, info in fs.find(f"{base}/{kind}", detail=True).items():
            if info.get("type") == "directory" or name.endswith("/"):
                continue
            rel = name[len(base) + 1:]
            if rel.rsplit("/", 1)[-1].startswith((".", "_")) or rel.endswith(_SKIP_SUFFIXES):
                continue
            found.append((kind, rel, landing / rel, info))
    return sorted(found, key=lambda item: item[1])


def _stamp(path: Path, info: dict[str, Any] | None) -> dict[str, Any]:
    """What recognises an unchanged file besides its bytes: size and modification time locally,
    size and ETag on an object store (its LastModified has whole seconds only)."""
    if info is not None:
        return {"size": info["size"], "etag": info["ETag"]}
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def sync_landing(settings: Settings, workers: int | None = None) -> SyncReport:
    """Stage every new or changed landing file; see the module docstring.

    Files are staged one after another, each streamed in batches (`staging.stage_file`). When
    there is enough JSON Lines to read (`staging.PARALLEL_MIN_BYTES`), large JSON Lines files are
    decoded by `workers` processes (default: up to 2, one per core; 1 keeps everything in this
    process), and the other files are staged whole in those processes meanwhile (`_stage_jobs`).
    """
    layout = Layout(settings.store)
    landing = settings.landing
    results: list[FileResult | None] = []
    jobs: list[tuple[int, dict[str, Any]]] = []
    event_days: set[date] = set()
    intervention_days: set[date] = set()
    rebuild_days: set[date] = set()
    with exclusive(layout.lock("staging")):
        # what a sync killed mid-write left (every writer of these folders holds this lock)
        left = sum(remove_temporaries(folder) for folder in (layout.root / "staging", layout.manifests))
        if left:
            log.info("removed %d temporary file(s) an interrupted sync left in the store", left)
        manifests = load_manifests(layout)
        next_seq = 1 + max((m["seq"] for m in manifests.values()), default=0)
        remote = is_remote(landing)
        landing_root = None if remote else landing.resolve()
        n = workers if workers is not None else min(2, os.cpu_count() or 1)
        listed = _listing(landing) if remote else [(kind, rel, path, None) for kind, rel, path in discover(landing)]
        found = [(kind, rel, path) for kind, rel, path, _ in listed]
        infos = {rel: info for _, rel, _, info in listed}
        present = {rel for _, rel, _ in found}
        gone = {m["sha256"]: m for m in manifests.values() if m.get("sha256") and m["path"] not in present}
        for kind, rel, path in found:
            fid = file_id(rel)
            old = manifests.get(fid)
            try:
                refusal = None if landing_root is None else _refusal(path, landing_root)
                if refusal is None:
                    stamp = _stamp(path, infos[rel])
                    if old and all(old.get(k) == v for k, v in stamp.items()):
                        results.append(FileResult(rel, "unchanged"))
                        continue
                    digest = _sha256(path)
            except FileNotFoundError:
                results.append(_vanished(rel))
                continue
            if refusal is None:
                if old and old.get("sha256") == digest:
                    old.update(stamp)
                    write_manifest(layout, fid, old)
                    results.append(FileResult(rel, "unchanged"))
                    continue
                if not old and digest in gone:
                    _record_rename(layout, gone[digest], kind, rel, fid, next_seq, digest, stamp)
                    next_seq += 1
                    results.append(FileResult(rel, "renamed"))
                    continue
            else:
                if old and old.get("refused") == refusal:
                    results.append(FileResult(rel, "unchanged"))
                    continue
                digest, stamp = None, {"size": None, "mtime_ns": None}
            seq = old["seq"] if old else next_seq
            if not old:
                next_seq += 1
            jobs.append((len(results), {"store": str(layout.root), "kind": kind, "rel": rel, "path": str(path),
                                        "fid": fid, "seq": seq, "refusal": refusal, "digest": digest,
                                        "size": stamp["size"], "stamp": stamp, "old": old,
                                        "lag": settings.max_review_lag_days,
                                        "limits": (settings.max_decompressed_bytes, settings.max_compression_ratio)}))
            results.append(None)
        jsonl_bytes = sum(job["size"] or 0 for _, job in jobs if file_format(job["kind"], job["rel"]) == "jsonl")
        pool = Workers(n) if n > 1 and jsonl_bytes >= staging.PARALLEL_MIN_BYTES else None
        try:
            done = _stage_jobs([job for _, job in jobs], pool)
        finally:
            if pool is not None:
                pool.close()
        for (index, job), (manifest, result, changed) in zip(jobs, done):
            results[index] = result
            if manifest is None:  # vanished while it was read
                continue
            rebuild_days |= changed
            for m in (job["old"], manifest):
                if m:
                    event_days.update(date.fromisoformat(d) for d in m.get("event_days", []))
                    intervention_days.update(date.fromisoformat(d) for d in m.get("intervention_days", []))
    return SyncReport([r for r in results if r is not None], event_days, intervention_days, rebuild_days)


Staged = tuple[dict[str, Any] | None, FileResult, set[Path]]  # manifest (None: vanished), result, pieces before
Done = tuple[dict[str, Any] | None, FileResult, set[date]]  # manifest (None: vanished), result, days marked


def _stage_jobs(jobs: list[dict[str, Any]], pool: Workers | None) -> list[Done]:
    """`_stage_job` of every job, in order. With worker processes (a sync with much JSON Lines), each
    file that is not JSON Lines (CSV, Parquet, OTLP: read in one process) is staged whole in a worker
    while this process feeds the JSON Lines files' blocks to the pool, instead of after them on one
    core; then every file's days are marked and its manifest written here, in the files' order, as
    one process would (the record's versions come out the same)."""
    side = [k for k, job in enumerate(jobs) if file_format(job["kind"], job["rel"]) != "jsonl"] if pool else []
    if not side:
        done = []
        for job in jobs:
            with _no_gc():
                done.append(_stage_job(job, pool))
            gc.collect()  # whatever cyclic garbage the file left, while little else is alive
        return done
    assert pool is not None
    futures = {k: pool.pool().submit(_stage_in_worker, jobs[k], readers.MAX_RECORD_BYTES) for k in side}
    staged: dict[int, Staged] = {}
    for k, job in enumerate(jobs):
        if k not in futures:
            with _no_gc():
                staged[k] = _stage_only(job, pool)
            gc.collect()
    for k, future in futures.items():
        try:
            staged[k] = future.result()
        except BrokenProcessPool:  # the worker died: stage the file again here
            with _no_gc():
                staged[k] = _stage_only(jobs[k], None)
            gc.collect()
    return [_finish_job(job, *staged[k]) for k, job in enumerate(jobs)]


def _stage_in_worker(job: dict[str, Any], limit: int) -> Staged:
    """`_stage_only` in a worker process (with the parent's record limit, which a spawned worker does not see)."""
    readers.MAX_RECORD_BYTES = limit
    with _no_gc():
        return _stage_only(job, None)


@contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while staging: decoding creates millions of containers
    (none of them cyclic) and each full collection walks them all; this alone cost ~14 µs a record.
    Reference counting still frees every batch as soon as it is written."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _vanished(rel: str) -> FileResult:
    log.warning("landing file %s vanished before it could be read; skipped (it is read at the next sync "
                "if it comes back; what it gave before stays stored)", rel)
    return FileResult(rel, "vanished")


def _record_rename(layout: Layout, original: dict[str, Any], kind: str, rel: str, fid: str, seq: int,
                   digest: str, stamp: dict[str, Any]) -> None:
    """Write the manifest of `rel`, a file with the same bytes as `original` (whose path has left the
    landing folder): nothing read from it, its records stay those of `original`."""
    manifest = {**file_manifest(kind, rel, rel, fid, seq, 0, {}, 0, None, None, [], []),
                "renamed_from": original["path"], "sha256": digest, **stamp}
    log.info("landing file %s has the bytes of %s, which left the landing folder: a rename, not read again",
             rel, original["path"])
    write_manifest(layout, fid, manifest)


def _stage_job(job: dict[str, Any], pool: Workers | None) -> Done:
    """Read and stage one landing file, mark the event days it changed, and write its manifest;
    returns (manifest, result, days marked), or (None, result, no day) if the file vanished
    before it could be read (what it staged before is left as it was)."""
    return _finish_job(job, *_stage_only(job, pool))


def _stage_only(job: dict[str, Any], pool: Workers | None) -> Staged:
    """Stage one landing file's records (nothing marked, no manifest written yet)."""
    layout = Layout(root_of(job["store"]))
    fid = job["fid"]
    before = _staged_pieces(layout, fid)
    limits = Limits(*job["limits"])
    path = root_of(job["path"])
    args = (layout, job["kind"], job["rel"], path, fid, job["seq"], job["refusal"])
    try:
        manifest, result = stage_file(*args, workers=pool, limits=limits)
    except FileNotFoundError:
        if path.exists() if is_remote(path) else os.path.lexists(path):
            raise  # something else is missing
        return None, _vanished(job["rel"]), before
    return manifest, result, before


def _finish_job(job: dict[str, Any], manifest: dict[str, Any] | None, result: FileResult, before: set[Path]) -> Done:
    """After `_stage_only`: drop the file's old pieces, mark its days, write its manifest."""
    if manifest is None:
        return None, result, set()
    layout = Layout(root_of(job["store"]))
    fid = job["fid"]
    # The new pieces replaced the old ones of the same days; the old ones of other days go now.
    for piece in before - _staged_pieces(layout, fid, manifest):
        piece.unlink(missing_ok=True)
    manifest.update(sha256=job["digest"], **job["stamp"])
    result.status = "refused" if job["refusal"] else ("changed" if job["old"] else "new")
    # Marked before the manifest is written: a crash in between re-stages the file and marks again.
    changed = file_changed_days(layout, manifest, job["old"], job["lag"])
    changed_days.mark(layout, changed)
    write_manifest(layout, job["fid"], manifest)
    return manifest, result, changed


def _refusal(path: Path, landing_root: Path) -> str | None:
    """Why the file at `path` is refused unread, or None; FileNotFoundError if it has vanished."""
    os.lstat(path)
    if path.is_symlink():
        target = path.resolve()
        if not target.is_relative_to(landing_root):
            return f"symbolic link to {target} points outside the landing folder; refused"
        if not target.is_file():
            return "symbolic link to something that is not a file; refused"
    elif not path.is_file():
        return "not a regular file; refused"
    return None


def _sha256(path: Path) -> str:
    with path.open("rb") if is_remote(path) else open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _staged_pieces(layout: Layout, fid: str, manifest: dict[str, Any] | None = None) -> set[Path]:
    """The staged pieces of file `fid` on disk, or those `manifest` says it has."""
    if manifest is None:
        found = set(layout.root.glob(f"staging/*/*/{fid}.parquet"))
        quarantine = layout.staged_quarantine(fid)
        return found | {quarantine} if quarantine.exists() else found
    out = {layout.staged(kind, date.fromisoformat(d), fid)
           for kind in ("events", "interventions") for d in manifest[f"{kind[:-1]}_days"]}
    return out | {layout.staged_quarantine(fid)} if manifest["quarantined"] else out
