"""The per-record reference ingest: the test oracle the batch staging is held equal to.

This is the sync's original staging, kept with the tests and not in the product: every record
read by `readers.read_file` and checked by `validate.check_record`, all rows held in memory and
written at the end (each file's table in its stored form by `canonical.finish`, as the sync's are). It is slow (~35 µs a record) and memory-hungry, and is kept only as the
definition of the right answer: `sync_landing_reference` runs the product's `sync_landing` with
each file staged by `stage_file_reference` instead of `staging.stage_file`, and
`tests/test_ingest_fastpath.py` asserts that both write exactly the same staged rows, quarantine
and manifests.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any
from unittest import mock

import polars as pl
import pyarrow as pa

import flywheel.ingest.sync as sync
from flywheel.config import Settings
from flywheel.ingest.canonical import finish
from flywheel.ingest.chunk_stager import bad_file_row, quarantine_row
from flywheel.ingest.manifest import FileResult, file_manifest
from flywheel.ingest.readers import BadFile, Limits, read_file
from flywheel.ingest.validate import check_record
from flywheel.privacy import hash_key, pseudonymise
from flywheel.schemas import QUARANTINE, STAGED
from flywheel.store import Layout, write_parquet_atomic


def sync_landing_reference(settings: Settings, workers: int | None = None) -> sync.SyncReport:
    """`sync.sync_landing`, with every file staged record by record (`stage_file_reference`)."""
    with mock.patch.object(sync, "stage_file", stage_file_reference):
        return sync.sync_landing(settings, workers=workers)


def stage_file_reference(layout: Layout, folder_kind: str, rel: str, path: Path, fid: str, seq: int,
                         refusal: str | None, workers: Any = None,
                         limits: Limits | None = None) -> tuple[dict[str, Any], FileResult]:
    """Stage the file at `path` record by record; returns (manifest, FileResult) like
    `staging.stage_file` (`workers` is ignored: everything is read in this process)."""
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    quarantine: list[dict[str, Any]] = []
    read = 0
    key = hash_key(layout.root)
    bad: str | None = refusal
    if bad is None:
        try:
            for rec in read_file(path, folder_kind, limits):
                read += 1
                problems = [rec.problem] if rec.problem else []
                row = None
                if not problems:
                    row, problems = check_record(rec.kind, rec.record, loose=rec.loose)
                if row is None:
                    quarantine.append(quarantine_row(rec.kind, rel, rec.line, problems, rec.raw, key, rec.reviewer_col))
                    continue
                if rec.kind == "interventions" and row.get("reviewer_id") is not None:
                    row["reviewer_id"] = pseudonymise(row["reviewer_id"], key)
                row.update(source_file=rel, source_line=rec.line, ingest_seq=seq, record_hash="")
                rows[rec.kind].append(row)
        except BadFile as exc:
            bad = str(exc)
    if bad is not None:
        # Nothing from a bad file is kept but the file itself: one quarantine row, counted as one record.
        rows.clear()
        read = 1
        quarantine = [bad_file_row(folder_kind, rel, bad)]
    days: dict[str, list[str]] = {"events": [], "interventions": []}
    for kind, kind_rows in rows.items():
        days[kind] = _write_staged(layout, kind, kind_rows, fid)
    if quarantine:
        write_parquet_atomic(pa.Table.from_pylist(quarantine, schema=QUARANTINE), layout.staged_quarantine(fid))
    staged = {kind: len(kind_rows) for kind, kind_rows in rows.items()}
    manifest = file_manifest(folder_kind, rel, path.name, fid, seq, read, staged, len(quarantine), bad, refusal,
                             days["events"], days["interventions"])
    return manifest, FileResult(rel, "new", read, staged, len(quarantine))


def _write_staged(layout: Layout, kind: str, rows: list[dict[str, Any]], fid: str) -> list[str]:
    table = finish(kind, pa.Table.from_pylist(rows, schema=STAGED[kind]))
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
