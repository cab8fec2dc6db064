"""Read new and changed landing files once, and stage their records by day.

`sync_landing` walks `<landing>/events`, `<landing>/interventions` and `<landing>/otlp`. A file
whose size, modification time and SHA-256 match its manifest is skipped (already ingested); a new
or changed file is read in batches (`staging`): valid records are staged as Parquet per day (events by their UTC
event date, interventions by their UTC date) and every invalid record goes to the file's
quarantine piece with its reason. Each file's manifest records what was read, so that
`records read = staged + quarantined` per file, and later
`staged = stored + duplicates + partition quarantine + pending`. Before a file's manifest is written,
the event days whose inputs it changed are recorded as days to rebuild (`changed_days`).

Files whose names start with '.' or '_' or end with .tmp/.part are skipped as in-progress
deliveries. Symbolic links that point outside the landing folder are refused (quarantined as a
bad file), never read.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from flywheel.config import Settings
from flywheel.ingest.parallel import Workers
from flywheel.ingest import changed_days, staging
from flywheel.ingest.changed_days import file_changed_days
from flywheel.ingest.readers import KINDS, file_format
from flywheel.ingest.reference import stage_file_reference
from flywheel.ingest.staging import stage_file
from flywheel.store import Layout, exclusive, write_bytes_atomic

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
    """The files seen, the days whose staged data changed, and the event days this sync marked
    to rebuild (`changed_days`; they stay recorded until a run clears them)."""

    files: list[FileResult]
    event_days: set[date]
    intervention_days: set[date]
    rebuild_days: set[date] = field(default_factory=set)

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


def sync_landing(settings: Settings, workers: int | None = None, *, reference: bool = False) -> SyncReport:
    """Stage every new or changed landing file; see the module docstring.

    Files are staged one after another, each streamed in batches (`staging.stage_file`). When
    there is enough JSON Lines to read (`staging.PARALLEL_MIN_BYTES`), large JSON Lines files are
    decoded by `workers` processes (default: up to 2, one per core; 1 keeps everything in this
    process). `reference=True` stages record by record instead (`reference.stage_file_reference`),
    the slow path the fast one is tested against.
    """
    layout = Layout(settings.store)
    landing = settings.landing
    results: list[FileResult | None] = []
    jobs: list[tuple[int, dict[str, Any]]] = []
    event_days: set[date] = set()
    intervention_days: set[date] = set()
    rebuild_days: set[date] = set()
    with exclusive(layout.lock("staging")):
        manifests = load_manifests(layout)
        next_seq = 1 + max((m["seq"] for m in manifests.values()), default=0)
        landing_root = landing.resolve()
        n = workers if workers is not None else min(2, os.cpu_count() or 1)
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
                                        "size": size, "mtime_ns": mtime_ns, "old": old, "reference": reference,
                                        "lag": settings.max_review_lag_days}))
            results.append(None)
        jsonl_bytes = sum(job["size"] or 0 for _, job in jobs if file_format(job["kind"], job["rel"]) == "jsonl")
        pool = Workers(n) if n > 1 and jsonl_bytes >= staging.PARALLEL_MIN_BYTES else None
        try:
            done = []
            for _, job in jobs:
                with _no_gc():
                    done.append(_stage_job(job, pool))
                gc.collect()  # whatever cyclic garbage the file left, while little else is alive
        finally:
            if pool is not None:
                pool.close()
        for (index, job), (manifest, result, changed) in zip(jobs, done):
            results[index] = result
            rebuild_days |= changed
            for m in (job["old"], manifest):
                if m:
                    event_days.update(date.fromisoformat(d) for d in m.get("event_days", []))
                    intervention_days.update(date.fromisoformat(d) for d in m.get("intervention_days", []))
    return SyncReport([r for r in results if r is not None], event_days, intervention_days, rebuild_days)


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


def _stage_job(job: dict[str, Any], pool: Workers | None) -> tuple[dict[str, Any], FileResult, set[date]]:
    """Read and stage one landing file, mark the event days it changed, and write its manifest;
    returns (manifest, result, days marked)."""
    layout = Layout(Path(job["store"]))
    _remove_staged(layout, job["fid"])
    args = (layout, job["kind"], job["rel"], Path(job["path"]), job["fid"], job["seq"], job["refusal"])
    manifest, result = stage_file_reference(*args) if job["reference"] else stage_file(*args, workers=pool)
    manifest.update(sha256=job["digest"], size=job["size"], mtime_ns=job["mtime_ns"])
    result.status = "refused" if job["refusal"] else ("changed" if job["old"] else "new")
    # Marked before the manifest is written: a crash in between re-stages the file and marks again.
    changed = file_changed_days(layout, manifest, job["old"], job["lag"])
    changed_days.mark(layout, changed)
    write_bytes_atomic(json.dumps(manifest, indent=1).encode(), layout.manifest(job["fid"]))
    return manifest, result, changed


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
