"""Read new and changed landing files once, and stage their records by day.

`sync_landing` walks `<landing>/events`, `<landing>/interventions` and `<landing>/otlp`. A file
whose size, modification time and SHA-256 match its manifest is skipped (already ingested); a new
or changed file is read whole: valid records are staged as Parquet per day (events by their UTC
event date, interventions by their UTC date) and every invalid record goes to the file's
quarantine piece with its reason. Each file's manifest records what was read, so that
`records read = staged + quarantined` per file, and later
`staged = stored + duplicates + partition quarantine + pending`.

Files whose names start with '.' or '_' or end with .tmp/.part are skipped as in-progress
deliveries. Symbolic links that point outside the landing folder are refused (quarantined as a
bad file), never read.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from flywheel.config import Settings
from flywheel.ingest.readers import KINDS, BadFile, file_format, read_file
from flywheel.ingest.validate import Problem, describe, primary_reason, validate_record
from flywheel.privacy import hash_key, pseudonymise
from flywheel.schemas import QUARANTINE, STAGED
from flywheel.store import Layout, exclusive, write_bytes_atomic, write_parquet_atomic

_SKIP_SUFFIXES = (".tmp", ".part", ".crdownload", ".partial")


@dataclass
class FileResult:
    """What one sync did with one landing file."""

    path: str
    status: str  # new, changed, unchanged, refused
    read: int = 0
    staged: dict[str, int] = field(default_factory=dict)
    quarantined: int = 0


@dataclass
class SyncReport:
    """The files seen and the days whose staged data changed."""

    files: list[FileResult]
    event_days: set[date]
    intervention_days: set[date]

    @property
    def changed(self) -> list[FileResult]:
        return [f for f in self.files if f.status != "unchanged"]


def file_id(relpath: str) -> str:
    """A stable id for a landing path (relative to the landing folder)."""
    return hashlib.blake2b(relpath.encode("utf-8", errors="surrogateescape"), digest_size=10).hexdigest()


def discover(landing: Path) -> list[tuple[str, str, Path]]:
    """(folder kind, relative path, path) of every candidate landing file, sorted by relative path."""
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


def load_manifests(layout: Layout) -> dict[str, dict[str, Any]]:
    """Every file manifest in the store, by file id."""
    out: dict[str, dict[str, Any]] = {}
    if layout.manifests.is_dir():
        for path in layout.manifests.glob("*.json"):
            out[path.stem] = json.loads(path.read_text())
    return out


# Files are read in parallel worker processes when there is this much to read (and more than one
# file): on 2 cores the events and interventions files of a day are parsed side by side.
PARALLEL_MIN_BYTES = 64 * 1024 * 1024


def sync_landing(settings: Settings, workers: int | None = None) -> SyncReport:
    """Stage every new or changed landing file; see the module docstring.

    `workers`: processes that read files at once (default: up to 2, when there is enough to read).
    """
    layout = Layout(settings.store)
    landing = settings.landing
    results: list[FileResult | None] = []
    jobs: list[tuple[int, dict[str, Any]]] = []
    event_days: set[date] = set()
    intervention_days: set[date] = set()
    with exclusive(layout.lock("staging")):
        manifests = load_manifests(layout)
        next_seq = 1 + max((m["seq"] for m in manifests.values()), default=0)
        landing_root = landing.resolve()
        for kind, rel, path in discover(landing):
            fid = file_id(rel)
            old = manifests.get(fid)
            refusal = _refusal(path, landing_root)
            if refusal is None:
                st = path.stat()
                if old and old.get("size") == st.st_size and old.get("mtime_ns") == st.st_mtime_ns:
                    results.append(FileResult(rel, "unchanged"))
                    continue
                digest = _sha256(path)
                if old and old.get("sha256") == digest:
                    old.update(size=st.st_size, mtime_ns=st.st_mtime_ns)
                    write_bytes_atomic(json.dumps(old, indent=1).encode(), layout.manifest(fid))
                    results.append(FileResult(rel, "unchanged"))
                    continue
                size, mtime_ns = st.st_size, st.st_mtime_ns
            else:
                if old and old.get("refused") == refusal:
                    results.append(FileResult(rel, "unchanged"))
                    continue
                digest, size, mtime_ns = None, None, None
            seq = old["seq"] if old else next_seq
            if not old:
                next_seq += 1
            jobs.append((len(results), {"store": str(layout.root), "kind": kind, "rel": rel, "path": str(path),
                                        "fid": fid, "seq": seq, "refusal": refusal, "digest": digest,
                                        "size": size, "mtime_ns": mtime_ns, "old": old}))
            results.append(None)
        hash_key(layout.root)  # create the store's key once, before any worker needs it
        total = sum(job["size"] or 0 for _, job in jobs)
        n = workers if workers is not None else (min(2, os.cpu_count() or 1) if total >= PARALLEL_MIN_BYTES else 1)
        done = None
        if n > 1 and len(jobs) > 1:
            try:
                ctx = multiprocessing.get_context("spawn")
                with ProcessPoolExecutor(max_workers=n, mp_context=ctx) as pool:
                    done = list(pool.map(_stage_job, [job for _, job in jobs]))
            except BrokenProcessPool:
                done = None  # a worker could not start or died: read the files here instead (idempotent)
        if done is None:
            done = [_stage_job(job) for _, job in jobs]
        for (index, job), (manifest, result) in zip(jobs, done):
            results[index] = result
            for m in (job["old"], manifest):
                if m:
                    event_days.update(date.fromisoformat(d) for d in m.get("event_days", []))
                    intervention_days.update(date.fromisoformat(d) for d in m.get("intervention_days", []))
    return SyncReport([r for r in results if r is not None], event_days, intervention_days)


def _stage_job(job: dict[str, Any]) -> tuple[dict[str, Any], FileResult]:
    """Read and stage one landing file and write its manifest (runs in a worker process or inline)."""
    layout = Layout(Path(job["store"]))
    _remove_staged(layout, job["fid"])
    manifest, result = _stage_file(layout, job["kind"], job["rel"], Path(job["path"]), job["fid"], job["seq"],
                                   job["refusal"])
    manifest.update(sha256=job["digest"], size=job["size"], mtime_ns=job["mtime_ns"])
    result.status = "refused" if job["refusal"] else ("changed" if job["old"] else "new")
    write_bytes_atomic(json.dumps(manifest, indent=1).encode(), layout.manifest(job["fid"]))
    return manifest, result


def _refusal(path: Path, landing_root: Path) -> str | None:
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
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _remove_staged(layout: Layout, fid: str) -> None:
    for piece in layout.root.glob(f"staging/*/*/{fid}.parquet"):
        piece.unlink()
    layout.staged_quarantine(fid).unlink(missing_ok=True)


def _stage_file(layout: Layout, folder_kind: str, rel: str, path: Path, fid: str, seq: int,
                refusal: str | None) -> tuple[dict[str, Any], FileResult]:
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    quarantine: list[dict[str, Any]] = []
    read = 0
    key = hash_key(layout.root)
    bad: str | None = refusal
    if bad is None:
        try:
            for rec in read_file(path, folder_kind):
                read += 1
                problems = [rec.problem] if rec.problem else []
                row = None
                if not problems:
                    row, problems = validate_record(rec.kind, rec.record, loose=rec.loose)
                if row is None:
                    quarantine.append(_quarantine_row(rec.kind, rel, rec.line, problems, rec.raw))
                    continue
                if rec.kind == "interventions" and row.get("reviewer_id") is not None:
                    row["reviewer_id"] = pseudonymise(row["reviewer_id"], key)
                row.update(source_file=rel, source_line=rec.line, ingest_seq=seq)
                rows[rec.kind].append(row)
        except BadFile as exc:
            bad = str(exc)
    if bad is not None:
        # Nothing from a bad file is kept but the file itself: one quarantine row, counted as one record.
        rows.clear()
        read = 1
        kind = folder_kind if folder_kind != "otlp" else "events"
        quarantine = [_quarantine_row(kind, rel, None, [Problem("bad_file", bad)], None)]
    days: dict[str, list[str]] = {"events": [], "interventions": []}
    for kind, kind_rows in rows.items():
        days[kind] = _write_staged(layout, kind, kind_rows, fid)
    if quarantine:
        write_parquet_atomic(pa.Table.from_pylist(quarantine, schema=QUARANTINE), layout.staged_quarantine(fid))
    staged = {kind: len(kind_rows) for kind, kind_rows in rows.items()}
    manifest = {
        "path": rel, "file_id": fid, "seq": seq, "folder": folder_kind,
        "format": file_format(folder_kind, path.name), "read": read,
        "staged": staged, "quarantined": len(quarantine), "bad_file": bad,
        "refused": refusal, "event_days": days["events"], "intervention_days": days["interventions"],
    }
    return manifest, FileResult(rel, "new", read, staged, len(quarantine))


def _quarantine_row(kind: str, rel: str, line: int | None, problems: list[Problem], raw: str | None) -> dict[str, Any]:
    return {"record_kind": kind, "source_file": rel, "source_line": line,
            "reason_code": primary_reason(problems), "reason": describe(problems), "raw": raw}


def _write_staged(layout: Layout, kind: str, rows: list[dict[str, Any]], fid: str) -> list[str]:
    table = pa.Table.from_pylist(rows, schema=STAGED[kind])
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    if kind == "events":
        frame = frame.with_columns(pl.col("occurred_at").dt.date().alias("event_date"))
        day_col = "event_date"
    else:
        frame = frame.with_columns(pl.col("occurred_at").dt.date().alias("_day"))
        day_col = "_day"
    written: list[str] = []
    for (day,), part in frame.partition_by(day_col, as_dict=True, maintain_order=True).items():
        if day_col == "_day":
            part = part.drop("_day")
        write_parquet_atomic(part.to_arrow().cast(STAGED[kind]), layout.staged(kind, day, fid))
        written.append(day.isoformat())
    return sorted(written)
